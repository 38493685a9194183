"""LiteLLM's "Control Model Access" guide (Restrict Model Access + Model Access Groups), end to end.

A real `modelgate serve` (gunicorn, 2 workers) serves the guide's config pointed at a real local fake upstream. Keys
and teams are made through the management API with the master key; every flow is called through the official
openai SDK and with raw HTTP on both `/chat/completions` and `/v1/chat/completions`.
"""

from __future__ import annotations

import openai
import pytest
import requests

from tests.e2e.conftest import E2E_MASTER_KEY
from tests.e2e.support import (
    assert_error,
    assert_sdk_error,
    chat_body,
    headers_of,
    post_chat,
    sdk,
    upstream_leaks,
)

pytestmark = pytest.mark.e2e

HTTP_PATHS = ["/chat/completions", "/v1/chat/completions"]
KEY_DENIED = "key_model_access_denied"
TEAM_DENIED = "team_model_access_denied"

OPENAI_PATH = "/v1/chat/completions"
AZURE_PATH = "/v1/openai/deployments/chatgpt-v-2/chat/completions?api-version=2024-10-21"
FIREWORKS = "fireworks-llama-v3-70b-instruct"
FIREWORKS_UPSTREAM = "accounts/fireworks/models/llama-v3-70b-instruct"
PROVIDER_SECRETS = ("sk-provider-secret-xyz", "fake-key", "azure-secret", "fw-secret-from-env")


@pytest.fixture(scope="module")
def teams(gateway) -> dict[str, dict]:
    """The guide's teams: `litellm-dev` (models: azure-gpt-3.5) and a team on the `beta-models` access group."""
    made = {}
    for alias, models in (("litellm-dev", ["azure-gpt-3.5"]), ("beta-team", ["beta-models"])):
        response = gateway.admin("/team/new", {"team_alias": alias, "models": models})
        assert response.status_code == 200, response.text
        made[alias] = response.json()
    return made


@pytest.fixture(scope="module")
def keys(gateway, teams) -> dict[str, str]:
    """One virtual key per flow of the guide, by name."""
    bodies = {
        # Restrict Model Access: on the key
        "gpt-3.5-and-4": {"models": ["gpt-3.5-turbo", "gpt-4"]},
        # Restrict Model Access: on the team (the key itself is unrestricted)
        "litellm-dev": {"team_id": teams["litellm-dev"]["team_id"]},
        # Model Access Groups: on the key, on the team, and a key narrower than its team
        "beta-models": {"models": ["beta-models"]},
        "beta-team": {"team_id": teams["beta-team"]["team_id"]},
        "beta-team-gpt-4": {"team_id": teams["beta-team"]["team_id"], "models": ["gpt-4"]},
        # Model Access Groups on wildcard routes, both directions
        "default-models": {"models": ["default-models"]},
        "restricted-models": {"models": ["restricted-models"]},
    }
    made = {}
    for name, body in bodies.items():
        response = gateway.admin("/key/generate", body)
        assert response.status_code == 200, response.text
        made[name] = response.json()["key"]
        assert made[name].startswith("sk-") and len(made[name]) >= 25
    return made


@pytest.fixture(autouse=True)
def upstream(e2e_upstream):
    e2e_upstream.reset()
    return e2e_upstream


def _key(keys: dict[str, str], name: str) -> str:
    return E2E_MASTER_KEY if name == "master" else keys[name]


def all_secrets(keys: dict[str, str]) -> list[str]:
    return [*keys.values(), E2E_MASTER_KEY]


# (key, requested model, upstream path, provider model sent upstream, auth header, its value)
ALLOWED = [
    ("gpt-3.5-and-4", "gpt-4", OPENAI_PATH, "fake", "authorization", "Bearer fake-key"),
    ("gpt-3.5-and-4", "gpt-3.5-turbo", OPENAI_PATH, "gpt-3.5-turbo", "authorization", "Bearer sk-provider-secret-xyz"),
    ("litellm-dev", "azure-gpt-3.5", AZURE_PATH, "chatgpt-v-2", "api-key", "azure-secret"),
    ("beta-models", "gpt-4", OPENAI_PATH, "fake", "authorization", "Bearer fake-key"),
    ("beta-models", FIREWORKS, OPENAI_PATH, FIREWORKS_UPSTREAM, "authorization", "Bearer fw-secret-from-env"),
    ("beta-team", "gpt-4", OPENAI_PATH, "fake", "authorization", "Bearer fake-key"),
    ("beta-team", FIREWORKS, OPENAI_PATH, FIREWORKS_UPSTREAM, "authorization", "Bearer fw-secret-from-env"),
    ("beta-team-gpt-4", "gpt-4", OPENAI_PATH, "fake", "authorization", "Bearer fake-key"),
    ("default-models", "openai/gpt-4", OPENAI_PATH, "gpt-4", "authorization", "Bearer sk-provider-secret-xyz"),
    ("restricted-models", "openai/o1-mini", OPENAI_PATH, "o1-mini", "authorization", "Bearer sk-provider-secret-xyz"),
    # the master key may use everything
    ("master", "gpt-4o", OPENAI_PATH, "gpt-4o", "authorization", "Bearer sk-provider-secret-xyz"),
    ("master", "openai/o1-mini", OPENAI_PATH, "o1-mini", "authorization", "Bearer sk-provider-secret-xyz"),
]

# (key, requested model, denying layer's error type, what that layer allows, as listed in the message)
DENIED = [
    ("gpt-3.5-and-4", "gpt-4o", KEY_DENIED, ["gpt-3.5-turbo", "gpt-4"]),
    # a restricted key learns nothing about which models exist: 403, not 404 (SPEC §2.5)
    ("gpt-3.5-and-4", "BEDROCK_GROUP", KEY_DENIED, ["gpt-3.5-turbo", "gpt-4"]),
    ("litellm-dev", "BEDROCK_GROUP", TEAM_DENIED, ["azure-gpt-3.5"]),
    ("litellm-dev", "gpt-4", TEAM_DENIED, ["azure-gpt-3.5"]),
    ("beta-models", "gpt-4o", KEY_DENIED, ["gpt-4", FIREWORKS]),
    ("beta-team", "gpt-4o", TEAM_DENIED, ["gpt-4", FIREWORKS]),
    ("beta-team-gpt-4", FIREWORKS, KEY_DENIED, ["gpt-4"]),
    # a group on `openai/*` does not grant what the more specific `openai/o1-*` serves, and the other way round
    ("default-models", "openai/o1-mini", KEY_DENIED, ["openai/*"]),
    ("restricted-models", "openai/gpt-4", KEY_DENIED, ["openai/o1-*"]),
]


TEAM_OF = {"litellm-dev": "litellm-dev", "beta-team": "beta-team", "beta-team-gpt-4": "beta-team"}


def _ids(rows):
    return [f"{row[0]}->{row[1]}" for row in rows]


def check_upstream_call(upstream, keys, path, upstream_model, auth_header, auth_value):
    """Exactly one upstream call, to the deployment's endpoint with its key and provider model; no virtual key."""
    assert len(upstream.requests) == 1, upstream.requests
    sent = upstream.last
    assert sent["path"] == path
    assert sent["body"]["model"] == upstream_model
    assert sent["body"]["messages"] == [{"role": "user", "content": "hello"}]
    headers = headers_of(sent)
    assert headers[auth_header] == auth_value
    if auth_header == "api-key":
        assert "authorization" not in headers  # azure authenticates with api-key only
    else:
        assert "api-key" not in headers and "x-api-key" not in headers
    assert upstream_leaks(upstream, all_secrets(keys)) == []


def check_denial(error: dict, keys: dict, key_name: str, model: str, type_: str, allowed: list[str], teams: dict):
    message = error["message"]
    assert keys[key_name] not in message
    assert f"model '{model}'" in message
    assert f"may use: {', '.join(allowed)}." in message
    assert "GET /v1/models" in message
    if type_ == TEAM_DENIED:
        team = teams[TEAM_OF[key_name]]
        assert message.startswith(f"Team '{team['team_alias']}' may not use model '{model}'.")
    else:
        assert message.startswith(f"Key 'sk-...{keys[key_name][-4:]}' may not use model '{model}'.")


# --- allowed calls ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key_name", "model", "path", "upstream_model", "auth_header", "auth_value"), ALLOWED, ids=_ids(ALLOWED)
)
def test_allowed_model_answers_through_the_sdk(
    gateway, keys, upstream, key_name, model, path, upstream_model, auth_header, auth_value
):
    reply = sdk(gateway.url, _key(keys, key_name)).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.usage.prompt_tokens == 12
    check_upstream_call(upstream, keys, path, upstream_model, auth_header, auth_value)


@pytest.mark.parametrize("http_path", HTTP_PATHS)
@pytest.mark.parametrize(
    ("key_name", "model", "path", "upstream_model", "auth_header", "auth_value"), ALLOWED, ids=_ids(ALLOWED)
)
def test_allowed_model_answers_over_http(
    gateway, keys, upstream, http_path, key_name, model, path, upstream_model, auth_header, auth_value
):
    response = post_chat(gateway.url, _key(keys, key_name), chat_body(model), path=http_path)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello"}
    check_upstream_call(upstream, keys, path, upstream_model, auth_header, auth_value)


# --- denied calls -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key_name", "model", "type_", "allowed"), DENIED, ids=_ids(DENIED))
def test_denied_model_is_refused_through_the_sdk(gateway, keys, teams, upstream, key_name, model, type_, allowed):
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk(gateway.url, keys[key_name]).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
    error = assert_sdk_error(info.value, openai.PermissionDeniedError, 403, type_, "model_not_allowed", "model")
    check_denial(error, keys, key_name, model, type_, allowed, teams)
    assert upstream.requests == []


@pytest.mark.parametrize("http_path", HTTP_PATHS)
@pytest.mark.parametrize(("key_name", "model", "type_", "allowed"), DENIED, ids=_ids(DENIED))
def test_denied_model_is_refused_over_http(gateway, keys, teams, upstream, http_path, key_name, model, type_, allowed):
    response = post_chat(gateway.url, keys[key_name], chat_body(model), path=http_path)
    error = assert_error(response, 403, type_, "model_not_allowed", "model")
    check_denial(error, keys, key_name, model, type_, allowed, teams)
    assert upstream.requests == []


def test_team_denial_message_is_the_one_spec_gives(gateway, keys):
    response = post_chat(gateway.url, keys["litellm-dev"], chat_body("BEDROCK_GROUP"))
    error = assert_error(response, 403, TEAM_DENIED, "model_not_allowed", "model")
    assert error["message"] == (
        "Team 'litellm-dev' may not use model 'BEDROCK_GROUP'. This team may use: azure-gpt-3.5. "
        "See GET /v1/models for what your key can call."
    )


# --- /v1/models ---------------------------------------------------------------------------------------------------
ALL_EXACT = ["gpt-3.5-turbo", "gpt-4", "gpt-4o", "azure-gpt-3.5", FIREWORKS, "mock-gpt"]

# (key, exact routes it may call = key layer ∩ team layer, wildcard patterns it may call)
LISTINGS = [
    ("gpt-3.5-and-4", ["gpt-3.5-turbo", "gpt-4"], []),
    ("litellm-dev", ["azure-gpt-3.5"], []),
    ("beta-models", ["gpt-4", FIREWORKS], []),
    ("beta-team", ["gpt-4", FIREWORKS], []),
    ("beta-team-gpt-4", ["gpt-4"], []),
    ("default-models", [], ["openai/*"]),
    ("restricted-models", [], ["openai/o1-*"]),
    ("master", ALL_EXACT, ["openai/*", "openai/o1-*"]),
]


@pytest.mark.parametrize(("key_name", "exact", "patterns"), LISTINGS, ids=[row[0] for row in LISTINGS])
def test_models_list_shows_exactly_what_the_key_may_call(gateway, keys, key_name, exact, patterns):
    client = sdk(gateway.url, _key(keys, key_name))
    listed = [model.id for model in client.models.list()]
    assert sorted(listed) == sorted(exact)
    assert len(listed) == len(set(listed))

    with_patterns = client.models.list(extra_query={"return_wildcard_routes": "true"})
    wildcards = {model.id: (model.model_extra or {}).get("wildcard") for model in with_patterns}
    assert sorted(wildcards) == sorted(exact + patterns)
    assert {name for name, flag in wildcards.items() if flag} == set(patterns)


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
@pytest.mark.parametrize(("key_name", "exact", "patterns"), LISTINGS, ids=[row[0] for row in LISTINGS])
def test_models_list_over_http(gateway, keys, path, key_name, exact, patterns):
    headers = {"Authorization": f"Bearer {_key(keys, key_name)}"}
    response = requests.get(gateway.url + path, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"
    assert sorted(m["id"] for m in response.json()["data"]) == sorted(exact)

    response = requests.get(gateway.url + path, params={"return_wildcard_routes": "true"}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert sorted(m["id"] for m in data) == sorted(exact + patterns)
    assert sorted(m["id"] for m in data if m.get("wildcard") is True) == sorted(patterns)
    # a group name or a special value is never listed
    assert not {m["id"] for m in data} & {"beta-models", "default-models", "restricted-models", "all-proxy-models"}


def test_models_list_refuses_an_unknown_key(gateway):
    response = requests.get(gateway.url + "/v1/models", headers={"Authorization": "Bearer sk-nope-000"}, timeout=10)
    assert_error(response, 401, "authentication_error", "invalid_api_key")


# --- what reaches the upstream ------------------------------------------------------------------------------------
def test_the_upstream_never_sees_a_virtual_key_or_the_master_key(gateway, keys, upstream):
    for key_name, model, *_ in ALLOWED:
        assert post_chat(gateway.url, _key(keys, key_name), chat_body(model)).status_code == 200
        client = sdk(gateway.url, _key(keys, key_name))
        assert client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hello "
    assert post_chat(gateway.url, E2E_MASTER_KEY, chat_body("gpt-4")).status_code == 200
    assert len(upstream.requests) == 3 * len(ALLOWED) + 1
    assert upstream_leaks(upstream, all_secrets(keys)) == []
    # the check can fail: the provider key it looks for in the same places is there
    assert upstream_leaks(upstream, ["fake-key"]) != []


def test_gateway_only_fields_are_not_relayed(gateway, keys, upstream):
    body = chat_body("gpt-4", api_key="sk-client-chosen", api_base="http://evil.invalid", metadata={"a": 1})
    response = post_chat(gateway.url, keys["gpt-3.5-and-4"], body)
    assert response.status_code == 200, response.text
    sent = upstream.last
    assert sent["body"]["model"] == "fake"
    assert not {"api_key", "api_base", "metadata"} & set(sent["body"])
    assert headers_of(sent)["authorization"] == "Bearer fake-key"


# --- the management API: the guide's bodies, and only the master key -------------------------------------------------
GUIDE_KEY_BODY = """{"models": ["beta-models"], # 👈 Model Access Group
			"max_budget": 0,}"""

GUIDE_TEAM_BODY = """{
  "team_alias": "guide-team-from-virtual-key",
  "models": ["azure-gpt-3.5"]
}"""


def test_key_generate_accepts_the_guides_body_with_a_comment_and_trailing_comma(gateway, upstream):
    response = requests.post(
        gateway.url + "/key/generate",
        data=GUIDE_KEY_BODY.encode("utf-8"),
        headers={"Authorization": f"Bearer {E2E_MASTER_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["models"] == ["beta-models"]
    assert created["max_budget"] == 0
    key = created["key"]

    info = gateway.admin("/key/info", method="GET", key=key)
    assert info.status_code == 200, info.text
    assert info.json()["info"]["models"] == ["beta-models"]

    # the group grants gpt-4 and fireworks, nothing else (the access check comes before any budget check)
    denied = post_chat(gateway.url, key, chat_body("gpt-4o"))
    assert_error(denied, 403, KEY_DENIED, "model_not_allowed", "model")
    listed = requests.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert sorted(m["id"] for m in listed.json()["data"]) == sorted(["gpt-4", FIREWORKS])
    assert upstream.requests == []


def test_a_body_that_is_still_not_json_is_refused(gateway):
    response = requests.post(
        gateway.url + "/key/generate",
        data=b'{"models": ["beta-models"] "max_budget": 0}',
        headers={"Authorization": f"Bearer {E2E_MASTER_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert_error(response, 400, "invalid_request_error", "invalid_json")


@pytest.mark.parametrize(
    ("path", "body"),
    [("/team/new", GUIDE_TEAM_BODY), ("/key/generate", '{"models": ["gpt-4"]}'), ("/key/block", '{"key": "x"}')],
)
def test_management_with_a_virtual_key_is_admin_only(gateway, keys, path, body):
    """The guide calls /team/new with a virtual key; SPEC §6 wins: only the master key manages."""
    response = requests.post(
        gateway.url + path,
        data=body,
        headers={"Authorization": f"Bearer {keys['gpt-3.5-and-4']}", "Content-Type": "application/json"},
        timeout=10,
    )
    error = assert_error(response, 403, "permission_error", "admin_only")
    assert keys["gpt-3.5-and-4"] not in error["message"]
    teams = gateway.admin("/team/list", method="GET").json()
    assert "guide-team-from-virtual-key" not in {team["team_alias"] for team in teams}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-unknown-0000000000000000000000"}])
def test_management_without_a_valid_key_is_unauthenticated(gateway, headers):
    response = requests.post(
        gateway.url + "/team/new",
        data=GUIDE_TEAM_BODY,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_key_generate_refuses_a_model_its_team_may_not_use(gateway, teams):
    body = {"team_id": teams["litellm-dev"]["team_id"], "models": ["gpt-4"]}
    response = gateway.admin("/key/generate", body)
    error = assert_error(response, 400, "invalid_request_error", "invalid_field", "models")
    assert "gpt-4" in error["message"]


def test_key_generate_accepts_a_group_its_team_lists(gateway, teams, upstream):
    response = gateway.admin("/key/generate", {"team_id": teams["beta-team"]["team_id"], "models": ["beta-models"]})
    assert response.status_code == 200, response.text
    key = response.json()["key"]
    assert post_chat(gateway.url, key, chat_body("gpt-4")).status_code == 200
    assert_error(post_chat(gateway.url, key, chat_body("gpt-4o")), 403, KEY_DENIED, "model_not_allowed", "model")


def test_key_generate_refuses_a_team_id_that_does_not_exist(gateway):
    response = gateway.admin("/key/generate", {"team_id": "no-such-team", "models": ["gpt-4"]})
    assert_error(response, 400, "invalid_request_error", "invalid_field", "team_id")
