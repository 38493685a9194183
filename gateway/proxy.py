"""The relay: plain Django views on the hot path (no DRF wrapping), each reading top to bottom as its pipeline."""

from __future__ import annotations

import json

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.access import callable_models, callable_patterns, check_access, check_key_status
from accounts.auth import authenticate
from gateway import mock, upstream
from gateway.chat import ChatRequest, parse_chat_request, read_body
from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    error_response,
    openai_errors,
)
from models_registry import providers
from models_registry.registry import current_routes
from models_registry.routing import DeploymentSpec


def _require(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise MethodNotAllowedError(f"Use {method} for {request.path}.")


@csrf_exempt
@openai_errors
def chat_completions(request: HttpRequest) -> HttpResponse:
    _require(request, "POST")
    grant = authenticate(request)
    check_key_status(grant, timezone.now())
    chat = parse_chat_request(read_body(request))
    routes = current_routes()
    match = routes.resolve(chat.model)
    check_access(grant, chat.model, match, routes)
    if match is None:
        raise ModelNotFoundError(
            f"No model named '{chat.model}' is configured on this gateway. See GET /v1/models for what your key "
            "can call.",
            param="model",
        )
    deployment = upstream.pick_deployment(match.route)
    return relay(deployment, chat, deployment.upstream_model(match.captures))


def relay(deployment: DeploymentSpec, chat: ChatRequest, upstream_model: str) -> HttpResponse:
    if deployment.provider == providers.MOCK or deployment.mock_response is not None:
        if chat.stream:
            return _sse(mock.stream(chat.body, upstream_model, deployment.mock_response))
        return JsonResponse(mock.completion(chat.body, upstream_model, deployment.mock_response))
    response = upstream.send(deployment, chat.for_upstream(upstream_model), upstream_model, stream=chat.stream)
    if chat.stream:
        return _sse(upstream.iter_stream(deployment, response))
    return HttpResponse(
        response.content,
        status=response.status_code,
        content_type=response.headers.get("Content-Type", "application/json"),
    )


def _sse(chunks) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass chunks through as they come
    return response


@csrf_exempt
@openai_errors
def list_models(request: HttpRequest) -> HttpResponse:
    _require(request, "GET")
    grant = authenticate(request)
    check_key_status(grant, timezone.now())
    with_patterns = request.GET.get("return_wildcard_routes", "").lower() in ("1", "true", "yes")
    routes = current_routes()
    data = [_model_entry(name) for name in callable_models(grant, routes)]
    if with_patterns:
        data += [_model_entry(name, wildcard=True) for name in callable_patterns(grant, routes)]
    return JsonResponse({"object": "list", "data": data})


def _model_entry(name: str, *, wildcard: bool = False) -> dict:
    entry = {"id": name, "object": "model", "created": 0, "owned_by": "modelgate"}
    if wildcard:
        entry["wildcard"] = True
    return entry


@csrf_exempt
def health_liveliness(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "healthy"})


@csrf_exempt
def health_readiness(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any database failure means "not ready"
        body = {"status": "unhealthy", "db": "unreachable", "error": type(exc).__name__}
        return HttpResponse(json.dumps(body), status=503, content_type="application/json")
    return JsonResponse({"status": "healthy", "db": "connected", "routes": len(current_routes())})


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return error_response(NotFoundError(f"No endpoint at {request.path}. See the README for modelgate's API."))


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(GatewayError("The gateway hit an internal error. It has been logged; try again."))


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """Django's own 400s (a Host not in ALLOWED_HOSTS, a malformed request) in the OpenAI shape."""
    return error_response(InvalidRequestError("The gateway could not accept this request (bad request or Host)."))
