"""The one error hierarchy of modelgate, and the one function that turns an error into a response.

Every error a client can cause is a GatewayError subclass with its HTTP status, OpenAI `type` and `code` as class
attributes (SPEC §6). `error_response` is the only place that builds `{"error": {...}}`; the relay's decorator and
DRF's exception handler both call it, so the API and the relay report errors the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions

logger = logging.getLogger("modelgate")


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


# --- authentication (401) -----------------------------------------------------------------------------------------
class InvalidKeyError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ExpiredKeyError(InvalidKeyError):
    code = "expired_key"


class BlockedKeyError(InvalidKeyError):
    code = "blocked_key"


class BlockedTeamError(InvalidKeyError):
    code = "blocked_team"


# --- permission (403) ---------------------------------------------------------------------------------------------
class AdminOnlyError(GatewayError):
    status = 403
    type = "permission_error"
    code = "admin_only"


class ModelNotAllowedError(GatewayError):
    status = 403
    type = "key_model_access_denied"
    code = "model_not_allowed"


class TeamModelNotAllowedError(ModelNotAllowedError):
    type = "team_model_access_denied"


# --- bad requests (4xx) -------------------------------------------------------------------------------------------
class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_field"


class InvalidJSONError(InvalidRequestError):
    code = "invalid_json"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class NotFoundError(InvalidRequestError):
    status = 404
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


# --- budgets and rate limits (429) ---------------------------------------------------------------------------------
class BudgetExceededError(GatewayError):
    status = 429
    type = "budget_exceeded"
    code = "budget_exceeded"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


# --- upstream (5xx) -----------------------------------------------------------------------------------------------
class UpstreamUnavailableError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeoutError(UpstreamUnavailableError):
    status = 504
    code = "upstream_timeout"


class DeploymentMisconfiguredError(GatewayError):
    """The operator's deployment cannot be called as configured (e.g. its api_key names an unset variable)."""

    status = 500
    type = "server_error"
    code = "deployment_misconfigured"


class ProviderNotSupportedError(GatewayError):
    status = 501
    type = "server_error"
    code = "provider_not_supported"


class UpstreamError(GatewayError):
    """The upstream answered with an error: its status, type and code are kept (SPEC §6)."""

    def __init__(self, message: str, *, status: int, type: str, code: str | None, param: str | None = None):
        super().__init__(message, param=param)
        self.status = status
        self.type = type
        self.code = code


def error_body(exc: GatewayError) -> dict:
    return {"error": {"message": exc.message, "type": exc.type, "code": exc.code, "param": exc.param}}


def error_response(exc: GatewayError) -> JsonResponse:
    response = JsonResponse(error_body(exc), status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def openai_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Turn a GatewayError raised by a plain Django view into its OpenAI-shaped response."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except GatewayError as exc:
            return error_response(exc)

    return wrapper


def _first_error(detail, path: str = "") -> tuple[str | None, str]:
    """Reduce DRF's nested error detail to (field path, first message)."""
    if isinstance(detail, dict):
        for field, inner in detail.items():
            name = f"{path}.{field}" if path else str(field)
            if field == "non_field_errors":
                name = path or None
            return _first_error(inner, name or "")
        return (path or None), "Invalid request."
    if isinstance(detail, list):
        for index, inner in enumerate(detail):
            if isinstance(inner, dict | list):
                return _first_error(inner, f"{path}[{index}]")
            return (path or None), str(inner)
        return (path or None), "Invalid request."
    return (path or None), str(detail)


def drf_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """REST_FRAMEWORK['EXCEPTION_HANDLER']: every management API error in the same OpenAI shape."""
    if isinstance(exc, GatewayError):
        return error_response(exc)
    if isinstance(exc, drf_exceptions.ParseError):
        return error_response(InvalidJSONError(f"Request body is not valid JSON: {exc.detail}"))
    if isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_error(exc.detail)
        text = f"Invalid value for '{param}': {message}" if param else message
        return error_response(InvalidRequestError(text, param=param))
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return error_response(MethodNotAllowedError(str(exc.detail)))
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return error_response(InvalidJSONError("Send the request body as JSON (Content-Type: application/json)."))
    if isinstance(exc, drf_exceptions.APIException):
        err = InvalidRequestError(str(exc.detail))
        err.status = exc.status_code
        return error_response(err)
    return None
