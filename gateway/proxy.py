"""The relay: plain Django views on the hot path (no DRF wrapping), each reading top to bottom as its pipeline."""

from __future__ import annotations

import json
import time

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.access import callable_models, callable_patterns, check_key_status, resolve_allowed
from accounts.auth import authenticate
from gateway.chat import parse_chat_request, read_body
from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    error_response,
    openai_errors,
)
from gateway.relay import Call
from models_registry.registry import current_routes


def _require(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise MethodNotAllowedError(f"Use {method} for {request.path}.")


@csrf_exempt
@openai_errors
def chat_completions(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    _require(request, "POST")
    grant = authenticate(request)
    call = Call(grant=grant, started=started, now=timezone.now())
    try:
        check_key_status(grant, call.now)
        call.chat = parse_chat_request(read_body(request))
        match = resolve_allowed(grant, call.chat.model, current_routes())  # ModelNotAllowedError / ModelNotFoundError
        headers = call.admit(match)  # budgets, then rate limits (BudgetExceededError / RateLimitError)
        return call.relay(headers)  # UpstreamUnavailableError / UpstreamTimeoutError / UpstreamError
    except GatewayError as exc:
        call.fail(exc)
        raise
    except Exception:
        call.finish(status=500, error_code="internal_error")  # give back what admission took, log the row
        raise


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
