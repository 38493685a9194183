"""The relay through Django's test client, against a real local fake upstream: the error table of SPEC §6,
what reaches the upstream, and the hot path's zero-query promise."""

from __future__ import annotations

import json
import os
import time

import pytest

from accounts.models import VirtualKey
from models_registry.models import Deployment

pytestmark = pytest.mark.django_db

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}


def chat(anon, key, **overrides):
    return anon.post("/v1/chat/completions", {**CHAT, **overrides}, key=key)


def assert_error(response, status: int, code: str, type_: str | None = None, param: str | None = ...):
    assert response.status_code == status, response.content
    error = response.data["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    if type_ is not None:
        assert error["type"] == type_
    if param is not ...:
        assert error["param"] == param
    assert "Traceback" not in error["message"]


# --- authentication -----------------------------------------------------------------------------------------------
def test_it_rejects_a_request_without_a_key(anon, guide_upstream_routes):
    assert_error(chat(anon, None), 401, "invalid_api_key", "authentication_error")


def test_it_rejects_an_unknown_key_like_a_wrong_one(anon, guide_upstream_routes):
    response = chat(anon, "sk-does-not-exist-0000000000")
    assert_error(response, 401, "invalid_api_key", "authentication_error")
    assert "does-not-exist" not in response.data["error"]["message"]


def test_it_rejects_a_malformed_authorization_header(client, guide_upstream_routes):
    response = client.post(
        "/v1/chat/completions", CHAT, content_type="application/json", HTTP_AUTHORIZATION="Token sk-abc"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("header", ["HTTP_API_KEY", "HTTP_X_API_KEY"])
def test_it_reads_the_key_from_api_key_headers(client, make_key, guide_upstream_routes, header):
    _, plaintext = make_key()
    response = client.post("/v1/chat/completions", CHAT, content_type="application/json", **{header: plaintext})
    assert response.status_code == 200, response.content


def test_it_rejects_a_blocked_key(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key(blocked=True)
    assert_error(chat(anon, plaintext), 401, "blocked_key")


def test_it_rejects_a_key_of_a_blocked_team(anon, make_team, make_key, guide_upstream_routes):
    team = make_team(team_alias="frozen", blocked=True)
    _, plaintext = make_key(team_id=team.team_id)
    assert_error(chat(anon, plaintext), 401, "blocked_team")


def test_it_rejects_an_expired_key(anon, make_key, guide_upstream_routes):
    row, plaintext = make_key(duration="1d")
    VirtualKey.objects.filter(pk=row.pk).update(expires="2020-01-01T00:00:00Z")
    assert_error(chat(anon, plaintext), 401, "expired_key")


def test_blocked_key_is_reported_before_a_bad_body(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key(blocked=True)
    response = anon.post("/v1/chat/completions", raw="not json", key=plaintext)
    assert_error(response, 401, "blocked_key")


# --- bodies -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("not json", "invalid_json", None),
        ("", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "invalid_field", "model"),
        (json.dumps({"model": 5, "messages": [{"role": "user", "content": "x"}]}), "invalid_field", "model"),
        (json.dumps({"model": "gpt-4"}), "invalid_field", "messages"),
        (json.dumps({"model": "gpt-4", "messages": []}), "invalid_field", "messages"),
        (json.dumps({"model": "gpt-4", "messages": ["hi"]}), "invalid_field", "messages[0]"),
        (json.dumps({"model": "gpt-4", "messages": [{"content": "hi"}]}), "invalid_field", "messages[0].role"),
        (json.dumps({**CHAT, "stream": "yes"}), "invalid_field", "stream"),
        (json.dumps({**CHAT, "temperature": "hot"}), "invalid_field", "temperature"),
        (json.dumps({**CHAT, "max_tokens": 0}), "invalid_field", "max_tokens"),
        (json.dumps({**CHAT, "stop": [1]}), "invalid_field", "stop"),
    ],
)
def test_it_rejects_bad_bodies_naming_the_field(anon, make_key, guide_upstream_routes, raw, code, param):
    _, plaintext = make_key()
    response = anon.post("/v1/chat/completions", raw=raw, key=plaintext)
    assert_error(response, 400, code, "invalid_request_error", param)
    assert guide_upstream_routes.requests == []


def test_it_refuses_a_body_over_the_size_limit(anon, make_key, guide_upstream_routes, settings):
    settings.MODELGATE_MAX_BODY_BYTES = 1000
    _, plaintext = make_key()
    response = chat(anon, plaintext, messages=[{"role": "user", "content": "x" * 2000}])
    assert_error(response, 413, "request_too_large")


def test_get_is_not_allowed_on_chat_completions(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    assert_error(anon.get("/v1/chat/completions", key=plaintext), 405, "method_not_allowed")


# --- routing and access -------------------------------------------------------------------------------------------
def test_unknown_model_is_404_for_an_unrestricted_key(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    assert_error(chat(anon, plaintext, model="no-such-model"), 404, "model_not_found", param="model")


def test_unknown_model_is_403_for_a_restricted_key(anon, make_key, guide_upstream_routes):
    """The access check comes first, so a restricted key learns nothing about which models exist."""
    _, plaintext = make_key(models=["gpt-4"])
    assert_error(chat(anon, plaintext, model="no-such-model"), 403, "model_not_allowed", "key_model_access_denied")


def test_team_denial_names_the_team_and_its_models(anon, make_team, make_key, guide_upstream_routes):
    team = make_team(team_alias="litellm-dev", models=["azure-gpt-3.5"])
    _, plaintext = make_key(team_id=team.team_id)
    response = chat(anon, plaintext, model="BEDROCK_GROUP")
    assert_error(response, 403, "model_not_allowed", "team_model_access_denied", "model")
    assert response.data["error"]["message"] == (
        "Team 'litellm-dev' may not use model 'BEDROCK_GROUP'. This team may use: azure-gpt-3.5. "
        "See GET /v1/models for what your key can call."
    )


def test_the_upstream_gets_the_provider_model_and_the_deployment_key(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key(models=["default-models"])
    response = chat(anon, plaintext, model="openai/gpt-4", metadata={"tags": ["x"]})
    assert response.status_code == 200, response.content
    sent = guide_upstream_routes.last
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4"
    assert "metadata" not in sent["body"]
    assert sent["headers"]["Authorization"] == "Bearer sk-provider-secret-xyz"
    assert plaintext not in json.dumps(sent["headers"]) + sent["raw"].decode()


def test_a_client_cannot_redirect_the_upstream_or_supply_its_key(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    response = chat(anon, plaintext, api_base="http://evil.example", api_key="sk-mine", mock_response="free")
    assert response.status_code == 200
    body = guide_upstream_routes.last["body"]
    assert not {"api_base", "api_key", "mock_response"} & set(body)
    assert guide_upstream_routes.last["headers"]["Authorization"] == "Bearer fake-key"


def test_azure_deployments_get_azure_paths_and_headers(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    assert chat(anon, plaintext, model="azure-gpt-3.5").status_code == 200
    sent = guide_upstream_routes.last
    assert sent["path"] == "/v1/openai/deployments/chatgpt-v-2/chat/completions?api-version=2024-10-21"
    assert sent["headers"]["api-key"] == "azure-secret"
    assert "Authorization" not in sent["headers"]


def test_os_environ_keys_are_read_at_call_time(anon, make_key, guide_upstream_routes, monkeypatch):
    _, plaintext = make_key()
    monkeypatch.setenv("FIREWORKS", "rotated-secret")
    assert chat(anon, plaintext, model="fireworks-llama-v3-70b-instruct").status_code == 200
    assert guide_upstream_routes.last["headers"]["Authorization"] == "Bearer rotated-secret"
    assert guide_upstream_routes.last["body"]["model"] == "accounts/fireworks/models/llama-v3-70b-instruct"


def test_a_missing_environment_variable_is_named_but_never_a_value(anon, make_key, guide_upstream_routes, monkeypatch):
    _, plaintext = make_key()
    monkeypatch.delenv("FIREWORKS")
    response = chat(anon, plaintext, model="fireworks-llama-v3-70b-instruct")
    assert_error(response, 500, "deployment_misconfigured")
    assert "FIREWORKS" in response.data["error"]["message"]


def test_upstream_errors_keep_status_type_and_code(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    response = chat(anon, plaintext, model="openai/error-429")
    assert_error(response, 429, "test_code", "upstream_test_error")
    assert response.data["error"]["message"].startswith("openai/*: ")


def test_a_non_json_upstream_error_still_gets_an_openai_body(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    response = chat(anon, plaintext, model="openai/html")
    assert response.status_code == 502
    assert response.data["error"]["type"] == "upstream_error"
    assert "bad gateway" in response.data["error"]["message"]


def test_an_unreachable_upstream_is_502(anon, make_key, load_config_text):
    load_config_text(
        "model_list:\n  - model_name: dead\n    litellm_params: {model: openai/x, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    _, plaintext = make_key()
    assert_error(chat(anon, plaintext, model="dead"), 502, "upstream_unreachable", "upstream_error")


def test_an_upstream_that_breaks_off_its_answer_is_502(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    response = chat(anon, plaintext, model="openai/truncated")
    assert_error(response, 502, "upstream_unreachable", "upstream_error")
    assert "broke off its answer" in response.data["error"]["message"]
    assert chat(anon, plaintext, model="openai/gpt-4o").status_code == 200  # and the next call is served


def test_a_slow_upstream_is_504(anon, make_key, load_config_text, fake_upstream):
    fake_upstream.slow_seconds = 2
    load_config_text(
        f"model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/slow, api_base: '{fake_upstream.url}',"
        " timeout: 0.5}\n"
    )
    _, plaintext = make_key()
    assert_error(chat(anon, plaintext, model="slow"), 504, "upstream_timeout", "upstream_error")


def test_streaming_relays_sse_chunks(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    response = anon.client.post(
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plaintext}",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = [line for line in b"".join(response.streaming_content).split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]"
    payloads = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in payloads if c["choices"])
    assert text.strip() == "echo: Hello"
    assert payloads[-1]["usage"]["prompt_tokens"] == 12


def test_the_mock_provider_answers_offline_with_usage(anon, make_key, guide_routes):
    _, plaintext = make_key()
    response = chat(anon, plaintext, model="mock-gpt", messages=[{"role": "user", "content": "ping pong"}])
    assert response.status_code == 200
    assert response.data["choices"][0]["message"]["content"] == "ping pong"
    assert response.data["usage"]["total_tokens"] == (
        response.data["usage"]["prompt_tokens"] + response.data["usage"]["completion_tokens"]
    )


# --- the hot path -------------------------------------------------------------------------------------------------
def test_a_warm_key_costs_no_database_query(
    anon, make_team, make_key, guide_upstream_routes, django_assert_num_queries
):
    team = make_team(models=["beta-models"])
    _, plaintext = make_key(team_id=team.team_id, models=["gpt-4"])
    assert chat(anon, plaintext).status_code == 200  # warms key, team and routes
    with django_assert_num_queries(0):
        for _ in range(3):
            assert chat(anon, plaintext).status_code == 200
        assert anon.get("/v1/models", key=plaintext).status_code == 200


def test_a_change_on_this_process_takes_effect_at_once(anon, api, make_team, make_key, guide_upstream_routes):
    team = make_team(models=["gpt-4"])
    row, plaintext = make_key(team_id=team.team_id)
    assert chat(anon, plaintext).status_code == 200
    assert api.post("/team/update", {"team_id": team.team_id, "models": ["gpt-4o"]}).status_code == 200
    assert_error(chat(anon, plaintext), 403, "model_not_allowed", "team_model_access_denied")
    assert api.post("/key/block", {"key": plaintext}).status_code == 200
    assert_error(chat(anon, plaintext, model="gpt-4o"), 401, "blocked_key")


def test_a_change_from_another_process_is_seen_within_the_ttl(anon, make_key, guide_upstream_routes, settings):
    """Another process's write sends no signal here: a queryset update (no signals) stands in for it. Until the
    TTL runs out the cached snapshot serves; after it, the change holds."""
    settings.MODELGATE_AUTH_CACHE_TTL = 1.0
    row, plaintext = make_key()
    assert chat(anon, plaintext).status_code == 200
    VirtualKey.objects.filter(pk=row.pk).update(blocked=True)
    assert chat(anon, plaintext).status_code == 200
    time.sleep(1.1)
    assert_error(chat(anon, plaintext), 401, "blocked_key")


def test_a_deployment_edited_in_admin_reroutes_at_once(anon, make_key, guide_upstream_routes):
    _, plaintext = make_key()
    deployment = Deployment.objects.get(model_name="gpt-4")
    deployment.litellm_model = "openai/renamed"
    deployment.save()
    assert chat(anon, plaintext).status_code == 200
    assert guide_upstream_routes.last["body"]["model"] == "renamed"


def test_a_warm_key_with_budget_and_limits_costs_no_database_query_with_redis(
    anon, make_team, make_key, guide_upstream_routes, settings, django_assert_num_queries
):
    """With Redis counters (production), budgets and rate limits cost Redis round trips, never a database query;
    the request-log row waits in the writer's queue."""
    import uuid

    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    settings.REDIS_URL = url
    settings.MODELGATE_REDIS_PREFIX = f"test-{uuid.uuid4().hex}:"
    team = make_team(max_budget=100.0, rpm_limit=1000)
    _, plaintext = make_key(
        team_id=team.team_id, max_budget=10.0, rpm_limit=1000, tpm_limit=10**6, max_parallel_requests=50
    )
    assert chat(anon, plaintext).status_code == 200
    with django_assert_num_queries(0):
        for _ in range(3):
            response = chat(anon, plaintext)
            assert response.status_code == 200
            assert response["x-ratelimit-limit-requests"] == "1000"
    client = redis.Redis.from_url(url)
    for name in client.scan_iter(settings.MODELGATE_REDIS_PREFIX + "*"):
        client.delete(name)
