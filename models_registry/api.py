"""GET /model/info: the deployments behind every route, as LiteLLM shows them, without any provider secret."""

from __future__ import annotations

from rest_framework.response import Response

from gateway.api import MasterKeyApi
from models_registry.models import Deployment

ENV_PREFIX = "os.environ/"


def masked_secret(value: str) -> str | None:
    """`os.environ/NAME` is shown as is (it names a variable, not a secret); a literal key is masked."""
    if not value:
        return None
    if value.startswith(ENV_PREFIX):
        return value
    return f"{value[:3]}...{value[-2:]}" if len(value) > 12 else "***"


def deployment_as_dict(row: Deployment) -> dict:
    params = {"model": row.litellm_model, "api_key": masked_secret(row.api_key)}
    for field in ("api_base", "api_version"):
        if getattr(row, field):
            params[field] = getattr(row, field)
    for field in ("timeout", "rpm", "tpm", "mock_response", "input_cost_per_token", "output_cost_per_token"):
        if getattr(row, field) is not None:
            params[field] = getattr(row, field)
    if row.weight != 1.0:
        params["weight"] = row.weight
    info = {
        **row.model_info,
        "id": row.deployment_id,
        "access_groups": [group.name for group in row.access_groups.all()],
        "provider": row.provider,
        "source": row.source,
        "input_cost_per_token": row.input_cost_per_token,
        "output_cost_per_token": row.output_cost_per_token,
    }
    return {"model_name": row.model_name, "litellm_params": params, "model_info": info}


class ModelInfoApi(MasterKeyApi):
    def get(self, request):
        rows = Deployment.objects.prefetch_related("access_groups").order_by("position", "id")
        if request.query_params.get("litellm_model_id"):
            rows = [r for r in rows if r.deployment_id == request.query_params["litellm_model_id"]]
        return Response({"data": [deployment_as_dict(row) for row in rows]})
