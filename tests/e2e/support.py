"""Small helpers shared by the e2e modules: raw HTTP calls, SPEC §6 error checks, the openai SDK client, and a search
of what the fake upstream received for secrets that must never reach it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import openai
import requests

ERROR_FIELDS = {"message", "type", "code", "param"}
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/')


def chat_body(model: str, text: str = "hello", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post_chat(
    base_url: str,
    key: str | None,
    body: dict | None = None,
    *,
    path: str = "/v1/chat/completions",
    headers: dict | None = None,
    data: bytes | str | None = None,
    timeout: float = 30,
) -> requests.Response:
    """POST a chat completion with raw `requests`; `key` goes in `Authorization: Bearer` unless it is None."""
    sent = {"Content-Type": "application/json"}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    if data is None:
        data = json.dumps(body if body is not None else {})
    response = requests.post(base_url + path, data=data, headers=sent, timeout=timeout)
    assert_no_traceback(response.text)
    return response


def assert_no_traceback(text: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, text


def assert_error(
    response: requests.Response, status: int, type_: str, code: str | None, param: str | None = ...
) -> dict:
    """The response is SPEC §6's error body with this status, type and code (and param, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    assert (error["type"], error["code"]) == (type_, code), error
    if param is not ...:
        assert error["param"] == param, error
    assert isinstance(error["message"], str) and error["message"], error
    assert_no_traceback(error["message"])
    return error


def sdk(base_url: str, key: str) -> openai.OpenAI:
    """The official client pointed at the gateway; no retries, so each call is exactly one request."""
    return openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=30)


def assert_sdk_error(
    exc: openai.APIStatusError, cls: type, status: int, type_: str, code: str | None, param: str | None = ...
) -> dict:
    """The SDK raised `cls` for SPEC §6's error body with this status, type and code."""
    assert type(exc) is cls, repr(exc)
    assert exc.status_code == status
    assert isinstance(exc.body, dict) and set(exc.body) == ERROR_FIELDS, exc.body
    assert (exc.body["type"], exc.body["code"]) == (type_, code), exc.body
    assert (exc.type, exc.code) == (type_, code)
    if param is not ...:
        assert exc.body["param"] == param
    assert exc.response.json() == {"error": exc.body}
    assert_no_traceback(exc.response.text)
    return exc.body


def upstream_leaks(upstream, secrets: Iterable[str]) -> list[str]:
    """Every place (path, header name or value, body) where the fake upstream received one of `secrets`."""
    found = []
    secrets = [s for s in secrets if s]
    for index, request in enumerate(upstream.requests):
        places = {"path": request["path"], "body": request["raw"].decode("utf-8", "replace")}
        for name, value in request["headers"].items():
            places[f"header {name}"] = f"{name}: {value}"
        for where, text in places.items():
            for secret in secrets:
                if secret in text:
                    found.append(f"request {index} {where} contains {secret[:6]}...")
    return found


def headers_of(request: dict) -> dict[str, str]:
    """A recorded upstream request's headers with lower-case names."""
    return {name.lower(): value for name, value in request["headers"].items()}


def poll(check: Callable[[], bool], *, seconds: float, interval: float = 0.1) -> float | None:
    """Call `check` until it returns True; the seconds it took, or None if it never did within `seconds`."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            return None
        time.sleep(interval)
