"""Pure routing: which route serves a requested model name (SPEC §2). No ORM, no HTTP.

`build_route_table(deployments)` turns deployment snapshots into a RouteTable; `RouteTable.resolve(name)` answers
with the route and what its wildcards captured. Exact names win; among wildcard routes the most specific wins: the
longest literal text, then fewer `*`s, then config order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from models_registry.providers import split_provider


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """Snapshot of one Deployment row: everything the relay and the access check need, no ORM."""

    id: str
    model_name: str
    model: str  # litellm_params.model as configured, e.g. "openai/*"
    api_base: str = ""
    api_key: str = ""  # as configured: "os.environ/NAME" is resolved at call time
    api_version: str = ""
    timeout: float | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    mock_response: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    access_groups: frozenset[str] = frozenset()

    @property
    def provider(self) -> str:
        return split_provider(self.model).provider

    def upstream_model(self, captures: tuple[str, ...] = ()) -> str:
        """The model name sent upstream: each `*` replaced by the route's captures, provider prefix removed."""
        model = self.model
        if captures and "*" in model:
            parts = model.split("*")
            filled = [parts[0]]
            for index, part in enumerate(parts[1:]):
                filled.append(captures[index] if index < len(captures) else "")
                filled.append(part)
            model = "".join(filled)
        return split_provider(model).model


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """`*` matches any run of characters, `/` and nothing included; everything else is literal."""
    return re.compile("(.*)".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def pattern_matches(pattern: str, name: str) -> bool:
    return pattern_regex(pattern).fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Route:
    model_name: str
    deployments: tuple[DeploymentSpec, ...]
    order: int
    access_groups: frozenset[str] = field(default=frozenset())
    regex: re.Pattern[str] | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.regex is not None

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: longest literal text first, then fewer `*`s, then config order."""
        stars = self.model_name.count("*")
        return (-(len(self.model_name) - stars), stars, self.order)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    captures: tuple[str, ...] = ()


class RouteTable:
    """Every route of the current deployments, indexed for resolution. Immutable once built."""

    def __init__(self, routes: Iterable[Route]):
        routes = list(routes)
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=lambda r: r.order))
        self.exact: dict[str, Route] = {r.model_name: r for r in routes if not r.is_wildcard}
        self.wildcards: tuple[Route, ...] = tuple(sorted((r for r in routes if r.is_wildcard), key=_specificity))
        self.access_groups: frozenset[str] = frozenset(g for r in routes for g in r.access_groups)

    def resolve(self, name: str) -> RouteMatch | None:
        route = self.exact.get(name)
        if route is not None:
            return RouteMatch(route)
        for route in self.wildcards:
            found = route.regex.fullmatch(name)
            if found is not None:
                return RouteMatch(route, found.groups())
        return None

    def get(self, model_name: str) -> Route | None:
        """The route whose public model_name is exactly this (wildcard patterns included)."""
        route = self.exact.get(model_name)
        if route is not None:
            return route
        return next((r for r in self.wildcards if r.model_name == model_name), None)

    def __len__(self) -> int:
        return len(self.routes)


def _specificity(route: Route) -> tuple[int, int, int]:
    return route.specificity


def build_route_table(deployments: Iterable[DeploymentSpec]) -> RouteTable:
    """Group deployments by model_name, in first-seen order, into routes."""
    grouped: dict[str, list[DeploymentSpec]] = {}
    for deployment in deployments:
        grouped.setdefault(deployment.model_name, []).append(deployment)
    routes = []
    for order, (name, members) in enumerate(grouped.items()):
        routes.append(
            Route(
                model_name=name,
                deployments=tuple(members),
                order=order,
                access_groups=frozenset(g for d in members for g in d.access_groups),
                regex=pattern_regex(name) if "*" in name else None,
            )
        )
    return RouteTable(routes)
