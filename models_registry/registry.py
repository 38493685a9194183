"""The current route table, read from the database and kept in memory for MODELGATE_AUTH_CACHE_TTL seconds."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from gateway.ttlcache import TTLCache
from models_registry.models import Deployment
from models_registry.routing import DeploymentSpec, RouteTable, build_route_table

_routes: TTLCache[RouteTable] = TTLCache(lambda: settings.MODELGATE_AUTH_CACHE_TTL)


def deployment_spec(row: Deployment) -> DeploymentSpec:
    return DeploymentSpec(
        id=row.deployment_id,
        model_name=row.model_name,
        model=row.litellm_model,
        api_base=row.api_base,
        api_key=row.api_key,
        api_version=row.api_version,
        timeout=row.timeout,
        weight=row.weight,
        rpm=row.rpm,
        tpm=row.tpm,
        mock_response=row.mock_response,
        input_cost_per_token=row.input_cost_per_token,
        output_cost_per_token=row.output_cost_per_token,
        access_groups=frozenset(g.name for g in row.access_groups.all()),
    )


def load_route_table() -> RouteTable:
    rows = Deployment.objects.prefetch_related("access_groups").order_by("position", "id")
    return build_route_table(deployment_spec(row) for row in rows)


def current_routes() -> RouteTable:
    return _routes.get_or_load("routes", load_route_table)


def invalidate_routes() -> None:
    _routes.invalidate()
    if connection.in_atomic_block:
        # drop again once the change is visible, so no request caches what it read before the commit
        transaction.on_commit(_routes.invalidate)
