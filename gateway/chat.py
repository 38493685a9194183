"""Parsing and validating a chat-completions request body: once, before any routing or access work."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from gateway.errors import InvalidJSONError, InvalidRequestError, RequestTooLargeError

# Fields that steer LiteLLM itself, never an upstream: a client may not pick credentials or endpoints.
GATEWAY_ONLY_FIELDS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "mock_response",
        "metadata",
        "caching",
        "fallbacks",
        "num_retries",
        "tags",
        "litellm_metadata",
        "proxy_server_request",
        "user_api_key",
    }
)

_NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_POSITIVE_INT_FIELDS = ("n", "max_tokens", "max_completion_tokens")


@dataclass(slots=True)
class ChatRequest:
    body: dict
    model: str
    stream: bool

    @property
    def wants_usage(self) -> bool:
        """Did the client itself ask for the usage chunk of a stream?"""
        return bool((self.body.get("stream_options") or {}).get("include_usage"))

    def for_upstream(self, upstream_model: str, *, ask_usage: bool = False) -> bytes:
        """The body sent upstream: the provider's model name, without gateway-only fields; `ask_usage` adds
        `stream_options.include_usage` so a stream can be costed."""
        out = {k: v for k, v in self.body.items() if k not in GATEWAY_ONLY_FIELDS and not k.startswith("litellm_")}
        out["model"] = upstream_model
        if ask_usage:
            out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_body(request: HttpRequest) -> bytes:
    limit = settings.MODELGATE_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestTooLargeError(f"Request body is {declared} bytes; the limit is {limit}. Send a smaller request.")
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise RequestTooLargeError(f"Request body is larger than the limit of {limit} bytes.") from exc


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_chat_request(raw: bytes) -> ChatRequest:
    if not raw.strip():
        raise InvalidJSONError("Request body is empty. Send a JSON object with 'model' and 'messages'.")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSONError(f"Request body is not valid JSON ({exc}). Send a JSON object.") from exc
    if not isinstance(body, dict):
        raise InvalidJSONError("Request body must be a JSON object with 'model' and 'messages'.")

    model = body.get("model")
    if model is None:
        raise InvalidRequestError("Missing required field 'model'. Say which model to call.", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' must be a non-empty string, e.g. \"gpt-4o\".", param="model")

    messages = body.get("messages")
    if messages is None:
        raise InvalidRequestError(
            "Missing required field 'messages': a list of {role, content} objects.", param="messages"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list of {role, content} objects.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(
                f"'messages[{index}]' must be an object with 'role' and 'content'.", param=f"messages[{index}]"
            )
        if not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"'messages[{index}].role' must be a string such as \"user\".", param=f"messages[{index}].role"
            )

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")

    for name in _NUMBER_FIELDS:
        if body.get(name) is not None and not _is_number(body[name]):
            raise InvalidRequestError(f"'{name}' must be a number.", param=name)
    for name in _POSITIVE_INT_FIELDS:
        if body.get(name) is not None and not (_is_int(body[name]) and body[name] >= 1):
            raise InvalidRequestError(f"'{name}' must be a whole number of at least 1.", param=name)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequestError("'stop' must be a string or a list of strings.", param="stop")
    return ChatRequest(body=body, model=model, stream=stream)
