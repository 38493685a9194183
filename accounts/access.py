"""Pure access decisions (SPEC §3): may this caller use this route? No HTTP, no ORM.

Inputs are frozen snapshots: a KeyGrant built once per key by `accounts.auth`, and the RouteTable of
`models_registry.routing`. The relay, /v1/models, /key/generate's validation and the admin's "who can call this?"
all ask the functions here, so there is one implementation of the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from accounts.budgets import Limits
from gateway.errors import (
    BlockedKeyError,
    BlockedTeamError,
    ExpiredKeyError,
    ModelNotAllowedError,
    ModelNotFoundError,
    TeamModelNotAllowedError,
)
from models_registry.routing import Route, RouteMatch, RouteTable, pattern_matches

ALL_TEAM_MODELS = "all-team-models"
ALL_PROXY_MODELS = "all-proxy-models"
EVERYTHING = frozenset({ALL_PROXY_MODELS, "*"})
SPECIAL_VALUES = frozenset({ALL_TEAM_MODELS, ALL_PROXY_MODELS, "*"})
MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What one authenticated caller may do, as of the moment it was read from the database."""

    key_hash: str
    key_preview: str
    models: tuple[str, ...] = ()
    key_id: int | None = None
    key_alias: str | None = None
    team_id: str | None = None
    team_alias: str | None = None
    team_models: tuple[str, ...] = ()
    expires: datetime | None = None
    blocked: bool = False
    team_blocked: bool = False
    is_master: bool = False
    key_limits: Limits | None = None  # budget and rate limits of the key; None when it has none
    team_limits: Limits | None = None

    @property
    def key_label(self) -> str:
        return self.key_alias or self.key_preview

    @property
    def team_label(self) -> str:
        return self.team_alias or self.team_id or ""


def check_key_status(grant: KeyGrant, now: datetime) -> None:
    """Blocked key, blocked team, expired key: in SPEC §3's order."""
    if grant.is_master:
        return
    if grant.blocked:
        raise BlockedKeyError(f"Key '{grant.key_label}' is blocked. Ask your admin to unblock it (POST /key/unblock).")
    if grant.team_blocked:
        raise BlockedTeamError(
            f"Team '{grant.team_label}' is blocked, so its keys cannot be used. Ask your admin to unblock the team."
        )
    if grant.expires is not None and grant.expires <= now:
        raise ExpiredKeyError(
            f"Key '{grant.key_label}' expired at {grant.expires.isoformat()}. Ask your admin for a new key "
            "or to extend this one (POST /key/update with a new duration)."
        )


def layer_allows(grant_list: Sequence[str], requested: str, route: Route | None) -> bool:
    """Does one grant list (a key's or a team's) allow `requested`, served by `route` (None: no route matches)?"""
    if not grant_list:
        return True
    for entry in grant_list:
        if entry in EVERYTHING or entry == requested:
            return True
        if route is not None and (entry == route.model_name or entry in route.access_groups):
            return True
        if "*" in entry and pattern_matches(entry, requested):
            return True
    return False


def key_layer_allows(grant: KeyGrant, requested: str, route: Route | None) -> bool:
    if ALL_TEAM_MODELS in grant.models:
        return True  # defers to the team layer; a key without a team may use everything
    return layer_allows(grant.models, requested, route)


def team_layer_allows(grant: KeyGrant, requested: str, route: Route | None) -> bool:
    if grant.team_id is None:
        return True
    return layer_allows(grant.team_models, requested, route)


def may_use(grant: KeyGrant, requested: str, route: Route | None) -> bool:
    if grant.is_master:
        return True
    return key_layer_allows(grant, requested, route) and team_layer_allows(grant, requested, route)


def check_access(grant: KeyGrant, requested: str, match: RouteMatch | None, table: RouteTable) -> None:
    """Raise the denial of the first layer that refuses `requested` (key layer, then team layer)."""
    if grant.is_master:
        return
    route = match.route if match is not None else None
    if not key_layer_allows(grant, requested, route):
        allowed = _listing(lambda name, r: key_layer_allows(grant, name, r), table)
        raise ModelNotAllowedError(
            f"Key '{grant.key_label}' may not use model '{requested}'. This key may use: {allowed}. "
            "See GET /v1/models for what your key can call.",
            param="model",
        )
    if not team_layer_allows(grant, requested, route):
        allowed = _listing(lambda name, r: team_layer_allows(grant, name, r), table)
        raise TeamModelNotAllowedError(
            f"Team '{grant.team_label}' may not use model '{requested}'. This team may use: {allowed}. "
            "See GET /v1/models for what your key can call.",
            param="model",
        )


def resolve_allowed(grant: KeyGrant, requested: str, table: RouteTable) -> RouteMatch:
    """The route that serves `requested` for this caller, in SPEC §3's order: access first (so a restricted key
    learns nothing about which models exist), then whether any route serves it. The relay and the admin's
    "try it" both ask this."""
    match = table.resolve(requested)
    check_access(grant, requested, match, table)
    if match is None:
        raise ModelNotFoundError(
            f"No model named '{requested}' is configured on this gateway. See GET /v1/models for what "
            "your key can call.",
            param="model",
        )
    return match


def callable_models(grant: KeyGrant, table: RouteTable) -> list[str]:
    """Exact route names this caller may call (key layer ∩ team layer), in config order: what /v1/models lists."""
    return [r.model_name for r in table.routes if not r.is_wildcard and may_use(grant, r.model_name, r)]


def callable_patterns(grant: KeyGrant, table: RouteTable) -> list[str]:
    """Wildcard routes this caller may call through (`?return_wildcard_routes=true` on /v1/models)."""
    return [r.model_name for r in table.routes if r.is_wildcard and may_use(grant, r.model_name, r)]


def _listing(allows, table: RouteTable) -> str:
    names = [r.model_name for r in table.routes if allows(r.model_name, r)]
    if not names:
        return "no configured model"
    shown = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        shown += f" (and {len(names) - MAX_LISTED} more)"
    return shown


def team_allows_entry(team_models: Sequence[str], entry: str, table: RouteTable) -> bool:
    """May a key of a team with `team_models` list `entry`? (SPEC §4, /key/generate validation.)

    `all-team-models` always; a group when the team lists it or is unrestricted; `all-proxy-models`/`*` only for an
    unrestricted team; a pattern when the team lists it or a team pattern covers it; any other name when the team
    layer would let a request for it through.
    """
    if not team_models or entry == ALL_TEAM_MODELS or any(e in EVERYTHING for e in team_models):
        return True
    if entry in EVERYTHING:
        return False
    if entry in team_models:
        return True
    if "*" in entry:
        return any("*" in e and pattern_matches(e, entry) for e in team_models) or layer_allows(
            team_models, entry, table.get(entry)
        )
    if entry in table.access_groups and table.get(entry) is None and entry not in table.exact:
        return False  # a group the team does not list
    match = table.resolve(entry)
    return layer_allows(team_models, entry, match.route if match else None)
