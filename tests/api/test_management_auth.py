"""Who may call the management API (SPEC §3, §4, §6): only the master key; everyone else is told why, and nothing
changes."""

from __future__ import annotations

import base64

import pytest

from accounts.models import Team, VirtualKey
from tests.api.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(make_team, make_key):
    """A team and a key that a successful (master) call to each endpoint would read or change."""
    team = make_team(team_id="victim-team", team_alias="victim", models=[])
    empty = make_team(team_id="empty-team")
    row, plaintext = make_key(team_id=team.team_id, key_alias="victim-key")
    return {"team": team, "empty_team": empty, "row": row, "plaintext": plaintext}


# (method, path, body or query that would succeed with the master key)
ENDPOINTS = [
    ("post", "/key/generate", lambda v: {"key_alias": "made-by-intruder"}),
    ("get", "/key/info", lambda v: {"key": v["plaintext"]}),
    ("post", "/key/update", lambda v: {"key": v["plaintext"], "models": ["gpt-4"]}),
    ("post", "/key/delete", lambda v: {"keys": [v["plaintext"]]}),
    ("post", "/key/block", lambda v: {"key": v["plaintext"]}),
    ("post", "/key/unblock", lambda v: {"key": v["plaintext"]}),
    ("post", "/key/regenerate", lambda v: {"key": v["plaintext"]}),
    ("get", "/key/list", lambda v: {}),
    ("post", "/team/new", lambda v: {"team_alias": "made-by-intruder"}),
    ("get", "/team/info", lambda v: {"team_id": v["team"].team_id}),
    ("post", "/team/update", lambda v: {"team_id": v["team"].team_id, "blocked": True}),
    ("post", "/team/delete", lambda v: {"team_ids": [v["empty_team"].team_id]}),
    ("get", "/team/list", lambda v: {}),
    ("get", "/model/info", lambda v: {}),
    ("get", "/v1/model/info", lambda v: {}),
]
ENDPOINT_IDS = [f"{method.upper()} {path}" for method, path, _ in ENDPOINTS]


def _call(client_api, method, path, payload, **kwargs):
    if method == "get":
        return client_api.get(path, payload, **kwargs)
    return client_api.post(path, payload, **kwargs)


def _assert_untouched(victim):
    """Nothing the refused call asked for happened."""
    row = VirtualKey.objects.get(pk=victim["row"].pk)
    assert row.key_hash == victim["row"].key_hash
    assert row.models == [] and row.blocked is False
    assert Team.objects.get(team_id="victim-team").blocked is False
    assert Team.objects.filter(team_id="empty-team").exists()
    assert not VirtualKey.objects.filter(key_alias="made-by-intruder").exists()
    assert not Team.objects.filter(team_alias="made-by-intruder").exists()


@pytest.mark.parametrize(("method", "path", "payload"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_rejects_a_request_without_a_key(anon, victim, method, path, payload):
    response = _call(anon, method, path, payload(victim))
    error = assert_error(response, 401, "invalid_api_key")
    assert "Authorization: Bearer" in error["message"]
    _assert_untouched(victim)


@pytest.mark.parametrize(("method", "path", "payload"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_rejects_an_unknown_key(anon, victim, method, path, payload):
    response = _call(anon, method, path, payload(victim), key="sk-not-a-real-key-00000000000")
    assert_error(response, 401, "invalid_api_key")
    _assert_untouched(victim)


@pytest.mark.parametrize(("method", "path", "payload"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_refuses_a_virtual_key_as_admin_only(anon, make_key, victim, method, path, payload):
    _, caller = make_key(key_alias="unrestricted-caller")  # no team, no model limits: the strongest virtual key
    response = _call(anon, method, path, payload(victim), key=caller)
    error = assert_error(response, 403, "admin_only")
    assert "master key" in error["message"]
    _assert_untouched(victim)


@pytest.mark.parametrize(("method", "path", "payload"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_the_master_key_may_call_every_endpoint(api, victim, method, path, payload):
    response = _call(api, method, path, payload(victim))
    assert response.status_code == 200, response.content
    assert "error" not in response.data


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"sk-master-test-0123456789:").decode(),
        "Token sk-master-test-0123456789",
        "sk-master-test-0123456789",
        "Bearer",
        "Bearer    ",
        "Bearer sk-master-test-0123456789 extra",
    ],
    ids=["basic", "token-scheme", "no-scheme", "bearer-without-key", "bearer-blank", "two-tokens"],
)
@pytest.mark.parametrize(("method", "path"), [("get", "/key/list"), ("post", "/team/new")])
def test_it_rejects_a_malformed_authorization_header(client, header, method, path):
    response = getattr(client, method)(path, content_type="application/json", HTTP_AUTHORIZATION=header)
    response.data = response.json()
    assert_error(response, 401, "invalid_api_key")
    assert Team.objects.count() == 0


@pytest.mark.parametrize("header", ["HTTP_API_KEY", "HTTP_X_API_KEY"], ids=["api-key", "x-api-key"])
def test_it_accepts_the_master_key_in_api_key_headers(client, master_key, header):
    created = client.post(
        "/team/new", {"team_alias": "via-header"}, content_type="application/json", **{header: master_key}
    )
    assert created.status_code == 200, created.content
    assert created.json()["team_alias"] == "via-header"

    listed = client.get("/team/list", **{header: master_key})
    assert listed.status_code == 200, listed.content
    assert [team["team_alias"] for team in listed.json()] == ["via-header"]


@pytest.mark.parametrize("header", ["HTTP_API_KEY", "HTTP_X_API_KEY"], ids=["api-key", "x-api-key"])
def test_a_virtual_key_in_api_key_headers_is_still_admin_only(client, make_key, header):
    _, plaintext = make_key()
    response = client.get("/key/list", **{header: plaintext})
    response.data = response.json()
    assert_error(response, 403, "admin_only")


def test_the_authorization_header_wins_over_api_key_headers(client, master_key):
    """SPEC §4: Authorization first, else api-key, else x-api-key. A wrong bearer is not rescued by another header."""
    response = client.get(
        "/key/list",
        HTTP_AUTHORIZATION="Bearer sk-wrong-key-000000000000",
        HTTP_API_KEY=master_key,
        HTTP_X_API_KEY=master_key,
    )
    response.data = response.json()
    assert_error(response, 401, "invalid_api_key")


def test_the_api_key_header_wins_over_x_api_key(client, master_key):
    response = client.get("/key/list", HTTP_API_KEY="sk-wrong-key-000000000000", HTTP_X_API_KEY=master_key)
    response.data = response.json()
    assert_error(response, 401, "invalid_api_key")


def test_unknown_and_deleted_keys_get_the_same_answer(api, anon, make_key):
    """NetBox's anti-enumeration rule: a caller cannot tell 'never existed' from 'existed once'."""
    _, plaintext = make_key()
    assert api.post("/key/delete", {"keys": [plaintext]}).status_code == 200
    deleted = assert_error(anon.get("/key/list", key=plaintext), 401, "invalid_api_key")
    unknown = assert_error(anon.get("/key/list", key="sk-never-existed-000000000000"), 401, "invalid_api_key")
    assert deleted == unknown
    assert plaintext not in deleted["message"]


def test_a_master_key_lookalike_is_rejected(anon, master_key):
    response = anon.get("/key/list", key=master_key + "x")
    assert_error(response, 401, "invalid_api_key")
    response = anon.get("/key/list", key=master_key[:-1])
    assert_error(response, 401, "invalid_api_key")
