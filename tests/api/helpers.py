"""Assertions shared by the management API tests."""

from __future__ import annotations

ERROR_KEYS = {"message", "type", "code", "param"}

# SPEC §6: the OpenAI `type` that goes with each `code` the management API and the relay return.
TYPE_OF_CODE = {
    "invalid_api_key": "authentication_error",
    "expired_key": "authentication_error",
    "blocked_key": "authentication_error",
    "blocked_team": "authentication_error",
    "admin_only": "permission_error",
    "invalid_json": "invalid_request_error",
    "invalid_field": "invalid_request_error",
    "not_found": "invalid_request_error",
    "method_not_allowed": "invalid_request_error",
}

UNSET = object()


def assert_error(response, status: int, code: str, *, param=UNSET, type: str | None = None) -> dict:
    """The response is an error with this status and code, in exactly SPEC §6's shape; returns the error object."""
    assert response.status_code == status, response.content
    body = response.data
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in error["message"]
    expected_type = type or TYPE_OF_CODE.get(code)
    if expected_type is not None:
        assert error["type"] == expected_type, error
    assert error["param"] is None or isinstance(error["param"], str), error
    if param is not UNSET:
        assert error["param"] == param, error
    return error


def chat(api, key: str, model: str = "mock-gpt"):
    """One chat completion through the relay with a virtual key (`mock-gpt` answers offline)."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}]}
    return api.post("/v1/chat/completions", body, key=key)


def assert_chat_works(api, key: str, model: str = "mock-gpt") -> None:
    response = chat(api, key, model)
    assert response.status_code == 200, response.content
    assert response.data["choices"][0]["message"]["content"] == "ping"
