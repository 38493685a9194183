"""Rate limits (issue 3 item 4) on both counter stores: rpm, tpm and parallel requests of keys and teams, rpm/tpm of
deployments, OpenAI's Retry-After and x-ratelimit-* headers, and SPEC §3's order: budgets before rate limits.

Windows are fixed clock minutes, so every test that fills one starts with at least 5 s left (`fresh_window`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accounts.access import KeyGrant
from accounts.budgets import Limits
from gateway import accounting, counters, limits
from gateway.models import RequestLog
from gateway.pricing import Prices
from models_registry.routing import DeploymentSpec
from tests.limits.support import (
    PRICED_COST,
    RATE_HEADERS,
    TOKENS,
    assert_budget_exceeded,
    assert_rate_limited,
    chat,
    read_stream,
    stream_request,
)


def reset_seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


# --- requests per minute ----------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("rpm", [0, 1, 3])
def test_rpm_limit_admits_exactly_that_many_requests_a_minute(
    anon, make_key, limits_routes, counter_store, fresh_window, rpm
):
    _, key = make_key(key_alias="bot", rpm_limit=rpm)
    for used in range(1, rpm + 1):
        response = chat(anon, key)
        assert response.status_code == 200, response.content
        assert response["x-ratelimit-limit-requests"] == str(rpm)
        assert response["x-ratelimit-remaining-requests"] == str(rpm - used)
        assert 0 <= reset_seconds(response["x-ratelimit-reset-requests"]) <= 60
    refused = chat(anon, key)
    message = assert_rate_limited(refused)
    assert "Key 'bot'" in message and f"{rpm} requests per minute" in message
    assert refused["x-ratelimit-limit-requests"] == str(rpm)
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert abs(reset_seconds(refused["x-ratelimit-reset-requests"]) - int(refused["Retry-After"])) <= 1
    assert len(limits_routes.requests) == rpm  # refusals never reach the upstream


@pytest.mark.django_db
def test_a_large_limit_is_written_in_whole_numbers(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(rpm_limit=100_000_000, tpm_limit=25_000_000)
    response = chat(anon, key)
    assert response["x-ratelimit-limit-requests"] == "100000000"  # not 1e+08
    assert response["x-ratelimit-remaining-requests"] == "99999999"
    assert response["x-ratelimit-limit-tokens"] == "25000000"


@pytest.mark.django_db
def test_retry_after_points_at_the_next_minute(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(rpm_limit=0)
    response = chat(anon, key)
    assert_rate_limited(response)
    expected = 60 - datetime.now(UTC).timestamp() % 60
    assert abs(int(response["Retry-After"]) - expected) <= 2


@pytest.mark.django_db
def test_a_new_minute_admits_again(anon, make_key, limits_routes, counter_store, fresh_window, monkeypatch):
    _, key = make_key(rpm_limit=1)
    assert chat(anon, key).status_code == 200
    assert_rate_limited(chat(anon, key))
    real_now = timezone.now
    monkeypatch.setattr("gateway.proxy.timezone", SimpleNamespace(now=lambda: real_now() + timedelta(seconds=60)))
    response = chat(anon, key)
    assert response.status_code == 200, response.content
    assert response["x-ratelimit-remaining-requests"] == "0"
    assert_rate_limited(chat(anon, key))


@pytest.mark.django_db
def test_a_key_without_limits_gets_no_rate_limit_headers(anon, make_key, limits_routes, counter_store):
    _, key = make_key()
    response = chat(anon, key)
    assert response.status_code == 200
    assert not any(name in response for name in RATE_HEADERS)


@pytest.mark.django_db
def test_a_streamed_response_carries_the_rate_limit_headers(
    client, make_key, limits_routes, counter_store, fresh_window
):
    _, key = make_key(rpm_limit=2)
    response = stream_request(client, key)
    assert (response["x-ratelimit-limit-requests"], response["x-ratelimit-remaining-requests"]) == ("2", "1")
    read_stream(response)


@pytest.mark.django_db
def test_a_changed_rpm_limit_takes_effect_at_once(api, anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(rpm_limit=1)
    assert chat(anon, key).status_code == 200
    assert_rate_limited(chat(anon, key))
    assert api.post("/key/update", {"key": key, "rpm_limit": 2}).status_code == 200
    assert chat(anon, key).status_code == 200  # the minute's first request still counts
    assert_rate_limited(chat(anon, key))


# --- tokens per minute ------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_tpm_limit_refuses_once_the_minutes_tokens_reach_it(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(key_alias="tok", tpm_limit=2 * TOKENS)
    first = chat(anon, key)
    assert first.status_code == 200
    assert (first["x-ratelimit-limit-tokens"], first["x-ratelimit-remaining-tokens"]) == (str(2 * TOKENS),) * 2
    second = chat(anon, key)  # TOKENS used < limit
    assert second.status_code == 200
    assert second["x-ratelimit-remaining-tokens"] == str(TOKENS)
    refused = chat(anon, key)  # 2 * TOKENS used: the limit is reached
    message = assert_rate_limited(refused)
    assert f"{2 * TOKENS} tokens per minute" in message
    assert refused["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= reset_seconds(refused["x-ratelimit-reset-tokens"]) <= 60


@pytest.mark.django_db
def test_streamed_tokens_count_against_tpm(client, anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(tpm_limit=TOKENS)
    read_stream(stream_request(client, key))
    assert_rate_limited(chat(anon, key))


# --- requests in flight -----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_max_parallel_requests_gives_the_slot_back_after_each_request(anon, make_key, limits_routes, counter_store):
    _, key = make_key(max_parallel_requests=1)
    for _ in range(4):
        response = chat(anon, key)
        assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_max_parallel_requests_refuses_while_the_slots_are_in_flight(
    client, anon, make_key, limits_routes, counter_store
):
    _, key = make_key(key_alias="par", max_parallel_requests=1)
    in_flight = stream_request(client, key, "mock-priced")  # not read yet: still being sent
    refused = chat(anon, key, "mock-priced")
    assert "1 requests in flight" in assert_rate_limited(refused)
    assert refused["Retry-After"] == "1"
    read_stream(in_flight)  # the stream ends: its slot is given back
    assert chat(anon, key, "mock-priced").status_code == 200


@pytest.mark.django_db
def test_a_failed_upstream_call_gives_its_parallel_slot_back(anon, make_key, limits_routes, counter_store):
    _, key = make_key(max_parallel_requests=1)
    assert chat(anon, key, "broken").status_code == 500
    assert chat(anon, key).status_code == 200


# --- teams ------------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("team_fields", "phrase"),
    [({"rpm_limit": 2}, "2 requests per minute"), ({"tpm_limit": TOKENS}, f"{TOKENS} tokens per minute")],
)
def test_team_limits_apply_across_the_teams_keys(
    anon, make_team, make_key, limits_routes, counter_store, fresh_window, team_fields, phrase
):
    team = make_team(team_id="ml", team_alias="ml", **team_fields)
    _, first = make_key(team_id=team.team_id)
    _, second = make_key(team_id=team.team_id)
    _, outsider = make_key()
    admitted = 2 if "rpm_limit" in team_fields else 1
    for index in range(admitted):
        assert chat(anon, (first, second)[index % 2]).status_code == 200
    for key in (first, second):
        message = assert_rate_limited(chat(anon, key))
        assert "Team 'ml'" in message and phrase in message
    assert chat(anon, outsider).status_code == 200


@pytest.mark.django_db
def test_team_max_parallel_requests_counts_every_key(client, anon, make_team, make_key, limits_routes, counter_store):
    team = make_team(team_id="par-team", max_parallel_requests=1)
    _, first = make_key(team_id=team.team_id)
    _, second = make_key(team_id=team.team_id)
    in_flight = stream_request(client, first, "mock-priced")
    assert_rate_limited(chat(anon, second, "mock-priced"))
    read_stream(in_flight)
    assert chat(anon, second, "mock-priced").status_code == 200


@pytest.mark.django_db
def test_a_request_refused_by_the_team_uses_none_of_the_keys_allowance(
    anon, make_team, make_key, limits_routes, counter_store, fresh_window
):
    team = make_team(team_id="narrow", rpm_limit=1)
    row, key = make_key(team_id=team.team_id, rpm_limit=5)
    _, teammate = make_key(team_id=team.team_id)
    assert chat(anon, teammate).status_code == 200
    refused = chat(anon, key)
    assert_rate_limited(refused)
    assert refused["x-ratelimit-remaining-requests"] == "5"
    minute = int(datetime.now(UTC).timestamp() // 60)
    assert counters.store().get([f"rpm:k{row.pk}:{minute}"]) == [0.0]


# --- deployments ------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_deployment_at_its_rpm_makes_way_for_the_next_one(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key()
    for _ in range(2):
        response = chat(anon, key, "pool")
        assert response.status_code == 200, response.content
    assert {r["body"]["model"] for r in limits_routes.requests} == {"pool-a", "pool-b"}
    accounting.flush()
    assert set(RequestLog.objects.values_list("deployment", flat=True)) == {"pool-a", "pool-b"}


@pytest.mark.django_db
def test_a_route_whose_deployments_are_all_full_is_refused_naming_the_model(
    anon, make_key, limits_routes, counter_store, fresh_window
):
    _, key = make_key()
    assert chat(anon, key, "pool").status_code == 200
    assert chat(anon, key, "pool").status_code == 200
    message = assert_rate_limited(chat(anon, key, "pool"))
    assert "Model 'pool'" in message and "1 requests per minute" in message
    assert len(limits_routes.requests) == 2


@pytest.mark.django_db
def test_a_deployment_tpm_refuses_once_reached(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key()
    assert chat(anon, key, "capped").status_code == 200  # uses all 14 tokens of the minute
    assert "Model 'capped'" in assert_rate_limited(chat(anon, key, "capped"))


# --- order of checks --------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_budgets_are_checked_before_rate_limits(anon, make_key, limits_routes, counter_store, fresh_window):
    _, key = make_key(max_budget=PRICED_COST, rpm_limit=1)
    assert chat(anon, key).status_code == 200  # now over budget AND at its rpm
    assert_budget_exceeded(chat(anon, key))


@pytest.mark.django_db
def test_a_team_budget_is_checked_before_a_key_rate_limit(
    anon, make_team, make_key, limits_routes, counter_store, fresh_window
):
    team = make_team(team_id="broke", max_budget=0)
    _, key = make_key(team_id=team.team_id, rpm_limit=0)
    assert "Team 'broke'" in assert_budget_exceeded(chat(anon, key))


@pytest.mark.django_db
def test_a_free_route_skips_the_budget_but_not_the_rate_limit(
    anon, make_key, limits_routes, counter_store, fresh_window
):
    _, key = make_key(max_budget=0, rpm_limit=1)
    assert chat(anon, key, "free").status_code == 200
    assert_rate_limited(chat(anon, key, "free"))


@pytest.mark.django_db
def test_the_master_key_skips_key_and_team_limits(anon, master_key, make_key, limits_routes, counter_store):
    _, key = make_key(rpm_limit=0)
    assert_rate_limited(chat(anon, key))
    for _ in range(3):
        response = chat(anon, master_key)
        assert response.status_code == 200, response.content
        assert not any(name in response for name in RATE_HEADERS)


# --- the plan (pure) --------------------------------------------------------------------------------------------------
NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
DEPLOYMENT = DeploymentSpec(id="d1", model_name="m", model="openai/m", rpm=10)
LIMITED = Limits(owner="k1", label="Key 'k'", max_budget=5.0, rpm=1, tpm=100, parallel=2)
TEAM = Limits(owner="tml", label="Team 'ml'", max_budget=50.0, rpm=10)


def test_the_plan_checks_budgets_first_then_key_team_and_deployment_rates():
    grant = KeyGrant(key_hash="h", key_preview="sk-...abcd", key_id=1, key_limits=LIMITED, team_limits=TEAM)
    plan = limits.plan_for(grant, DEPLOYMENT, Prices(1.0, 1.0), NOW)
    assert [(i.kind, i.scope) for i in plan.info] == [
        ("budget", "key"),
        ("budget", "team"),
        ("rpm", "key"),
        ("tpm", "key"),
        ("parallel", "key"),
        ("rpm", "team"),
        ("rpm", "deployment"),
    ]
    minute = int(NOW.timestamp() // 60)
    assert plan.checks[2].name == f"rpm:k1:{minute}"
    assert plan.window_end == (minute + 1) * 60


def test_a_free_route_plans_no_budget_check():
    grant = KeyGrant(key_hash="h", key_preview="p", key_id=1, key_limits=LIMITED)
    plan = limits.plan_for(grant, DEPLOYMENT, Prices(0.0, 0.0), NOW)
    assert "budget" not in [i.kind for i in plan.info]


def test_the_master_key_plans_no_key_or_team_check():
    master = KeyGrant(key_hash="", key_preview="master key", is_master=True, key_limits=LIMITED, team_limits=TEAM)
    plan = limits.plan_for(master, DeploymentSpec(id="d", model_name="m", model="openai/m"), Prices(1, 1), NOW)
    assert not plan


@pytest.mark.parametrize(
    ("later", "same_window"),
    [(timedelta(seconds=29), True), (timedelta(seconds=30), False), (timedelta(seconds=90), False)],
)
def test_rate_windows_are_whole_clock_minutes(later, same_window):
    grant = KeyGrant(key_hash="h", key_preview="p", key_id=1, key_limits=LIMITED)
    name = limits.plan_for(grant, DEPLOYMENT, Prices(1, 1), NOW).checks[1].name
    assert (limits.plan_for(grant, DEPLOYMENT, Prices(1, 1), NOW + later).checks[1].name == name) is same_window
