"""Helpers shared by the spend, budget and rate-limit tests: requests through the relay, SSE parsing, error checks."""

from __future__ import annotations

import json
import time

from accounts.auth import invalidate_grants

PING = [{"role": "user", "content": "ping"}]

# The fake upstream answers "echo: ping" with usage 12 prompt + 2 completion tokens. Route `priced` costs $1 per input
# token and $2 per output token (exact in binary floating point), so one request costs exactly $16.
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 2
TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
PRICED_COST = 16.0

RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


def chat(anon, key: str | None, model: str = "priced", **extra):
    """One non-streamed chat completion through the relay (the response's `.data` is its JSON)."""
    return anon.post("/v1/chat/completions", {"model": model, "messages": PING, **extra}, key=key)


def stream_request(client, key: str, model: str = "priced", **extra):
    """A streamed chat completion, not yet read: the request stays in flight until `read_stream` consumes it."""
    body = {"model": model, "messages": PING, "stream": True, **extra}
    return client.post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def read_stream(response) -> list:
    """Consume a streamed response (which finishes the request) and return its SSE events: dicts, and "[DONE]"."""
    assert response.status_code == 200, response.content
    raw = b"".join(response.streaming_content).decode()
    events = []
    for block in raw.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data:"), block
        data = block[5:].strip()
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def streamed_text(events: list) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict)
        for choice in event.get("choices") or ()
    )


def assert_error(response, status: int, code: str, *, type: str | None = None, param=...) -> dict:
    """The response is an error with this status and code, in SPEC §6's shape; returns the error object."""
    assert response.status_code == status, response.content
    error = response.data["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert error["code"] == code, error
    if type is not None:
        assert error["type"] == type, error
    if param is not ...:
        assert error["param"] == param, error
    assert error["message"] and "Traceback" not in error["message"]
    return error


def assert_budget_exceeded(response) -> str:
    return assert_error(response, 429, "budget_exceeded", type="budget_exceeded")["message"]


def assert_rate_limited(response) -> str:
    message = assert_error(response, 429, "rate_limit_exceeded", type="rate_limit_error")["message"]
    assert 1 <= int(response["Retry-After"]) <= 60
    return message


def update_row(model, pk, **fields) -> None:
    """Change a key or team behind the services' back (as another process would), and drop cached snapshots."""
    model.objects.filter(pk=pk).update(**fields)
    invalidate_grants()


def wait_for_fresh_window(min_left: float = 5.0) -> None:
    """Rate windows are whole clock minutes: when fewer than `min_left` seconds remain, wait for the next one so a
    test's requests all land in one window."""
    left = 60 - time.time() % 60
    if left < min_left:
        time.sleep(left + 0.05)
