"""SPEC §6: every management API error is {"error": {"message", "type", "code", "param"}} and nothing else."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import ERROR_KEYS

pytestmark = pytest.mark.django_db

# (description, call, status, type, code, param)
CASES = [
    ("no key", lambda api, anon: anon.get("/key/list"), 401, "authentication_error", "invalid_api_key", None),
    (
        "wrong key",
        lambda api, anon: anon.get("/team/list", key="sk-wrong-00000000000000"),
        401,
        "authentication_error",
        "invalid_api_key",
        None,
    ),
    (
        "virtual key",
        lambda api, anon: anon.post("/team/new", {}, key=anon.virtual),
        403,
        "permission_error",
        "admin_only",
        None,
    ),
    (
        "not json",
        lambda api, anon: api.post("/key/generate", raw="{oops"),
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (
        "not an object",
        lambda api, anon: api.post("/team/new", raw="[]"),
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (
        "unknown field",
        lambda api, anon: api.post("/key/generate", {"bogus": 1}),
        400,
        "invalid_request_error",
        "invalid_field",
        "bogus",
    ),
    (
        "wrong type",
        lambda api, anon: api.post("/team/new", {"rpm_limit": "1"}),
        400,
        "invalid_request_error",
        "invalid_field",
        "rpm_limit",
    ),
    (
        "service check",
        lambda api, anon: api.post("/key/generate", {"duration": "1y"}),
        400,
        "invalid_request_error",
        "invalid_field",
        "duration",
    ),
    (
        "bad query",
        lambda api, anon: api.get("/key/list", {"page": "x"}),
        400,
        "invalid_request_error",
        "invalid_field",
        "page",
    ),
    (
        "unknown key",
        lambda api, anon: api.get("/key/info", {"key": "sk-nope-000000000000"}),
        404,
        "invalid_request_error",
        "not_found",
        "key",
    ),
    (
        "unknown team",
        lambda api, anon: api.get("/team/info", {"team_id": "nope"}),
        404,
        "invalid_request_error",
        "not_found",
        "team_id",
    ),
    (
        "wrong method",
        lambda api, anon: api.get("/key/generate"),
        405,
        "invalid_request_error",
        "method_not_allowed",
        None,
    ),
    (
        "wrong method on a GET path",
        lambda api, anon: api.post("/team/list", {}),
        405,
        "invalid_request_error",
        "method_not_allowed",
        None,
    ),
]


@pytest.mark.parametrize(
    ("call", "status", "type_", "code", "param"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_every_error_has_exactly_the_openai_shape(api, anon, make_key, call, status, type_, code, param):
    _, anon.virtual = make_key()
    response = call(api, anon)
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == ERROR_KEYS
    assert (error["type"], error["code"], error["param"]) == (type_, code, param)
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert "Traceback" not in error["message"] and 'File "' not in error["message"]
    assert anon.virtual[3:] not in response.content.decode()
