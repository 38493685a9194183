"""POST /key/generate (SPEC §4): what it returns, what it stores, and what it refuses."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import VirtualKey
from tests.api.helpers import assert_chat_works, assert_error

pytestmark = pytest.mark.django_db

GUIDE_LENIENT_BODY = '{"models": ["beta-models"], # 👈 Model Access Group\n\t\t\t"max_budget": 0,}'


def _generate(api, body=None, **kwargs):
    return api.post("/key/generate", body if body is not None else {}, **kwargs)


# --- the key and how it is stored ---------------------------------------------------------------------------------
def test_it_returns_a_fresh_plaintext_key(api):
    response = _generate(api)
    assert response.status_code == 200, response.content
    plaintext = response.data["key"]
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{22,}", plaintext)
    assert response.data["token"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert response.data["key_name"] == "sk-..." + plaintext[-4:]
    assert _generate(api).data["key"] != plaintext


def test_it_stores_only_the_hash_and_a_preview(api):
    plaintext = _generate(api, {"key_alias": "stored"}).data["key"]
    row = VirtualKey.objects.get(key_alias="stored")
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.key_preview == f"sk-...{plaintext[-4:]}"
    secret_part = plaintext[3:]
    for field in VirtualKey._meta.concrete_fields:
        stored = json.dumps(field.value_from_object(row), default=str)
        assert secret_part not in stored, field.name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {VirtualKey._meta.db_table}")
        raw_rows = repr(cursor.fetchall())
    assert secret_part not in raw_rows


def test_the_plaintext_is_shown_only_once(api, make_team):
    team = make_team(team_id="t1")
    response = _generate(api, {"team_id": team.team_id})
    plaintext, token = response.data["key"], response.data["token"]
    secret_part = plaintext[3:]
    for later in (
        api.get("/key/info", {"key": plaintext}),
        api.get("/key/info", {"key": token}),
        api.get("/key/list", {"return_full_object": "true"}),
        api.get("/key/list"),
        api.get("/team/info", {"team_id": "t1"}),
    ):
        assert later.status_code == 200, later.content
        assert secret_part not in later.content.decode()
        assert "key" not in (later.data.get("info") or {})


def test_the_new_key_works_on_the_relay(api, guide_routes):
    plaintext = _generate(api, {"models": ["mock-gpt"]}).data["key"]
    assert_chat_works(api, plaintext)


def test_it_returns_the_fields_it_was_given(api, make_team):
    make_team(team_id="ml", models=[])
    body = {
        "models": ["gpt-4", "gpt-4o"],
        "team_id": "ml",
        "key_alias": "ci-bot",
        "max_budget": 12.5,
        "budget_duration": "1mo",
        "metadata": {"owner": "ci"},
        "rpm_limit": 60,
        "tpm_limit": 10000,
        "max_parallel_requests": 4,
        "blocked": True,
    }
    response = _generate(api, body)
    assert response.status_code == 200, response.content
    for field, value in body.items():
        assert response.data[field] == value, field
    assert response.data["spend"] == 0
    assert response.data["expires"] is None
    row = VirtualKey.objects.get(key_alias="ci-bot")
    assert (row.team_id, row.models, row.max_budget, row.rpm_limit, row.blocked) == (
        "ml",
        ["gpt-4", "gpt-4o"],
        12.5,
        60,
        True,
    )


# --- custom keys --------------------------------------------------------------------------------------------------
def test_it_accepts_a_custom_key_starting_with_sk(api, guide_routes):
    response = _generate(api, {"key": "sk-my-own-key-0001"})
    assert response.status_code == 200, response.content
    assert response.data["key"] == "sk-my-own-key-0001"
    assert response.data["token"] == hashlib.sha256(b"sk-my-own-key-0001").hexdigest()
    assert response.data["key_name"] == "sk-...0001"
    assert_chat_works(api, "sk-my-own-key-0001")


@pytest.mark.parametrize(
    "key", ["my-own-key-0001", "SK-my-own-key-0001", "pk-my-own-key-0001", "sk-", "sk-has space-0001"]
)
def test_it_refuses_a_custom_key_not_starting_with_sk(api, key):
    error = assert_error(_generate(api, {"key": key}), 400, "invalid_field", param="key")
    assert key == "sk-" or key not in error["message"]  # never echo a would-be key
    assert VirtualKey.objects.count() == 0


def test_it_refuses_a_custom_key_that_already_exists(api, make_key):
    make_key(key="sk-taken-key-0001")
    error = assert_error(_generate(api, {"key": "sk-taken-key-0001"}), 400, "invalid_field", param="key")
    assert "sk-taken-key-0001" not in error["message"]
    assert VirtualKey.objects.count() == 1


# --- aliases and teams --------------------------------------------------------------------------------------------
def test_it_refuses_a_duplicate_key_alias(api, make_key):
    make_key(key_alias="prod-bot")
    assert_error(_generate(api, {"key_alias": "prod-bot"}), 400, "invalid_field", param="key_alias")
    assert VirtualKey.objects.filter(key_alias="prod-bot").count() == 1


def test_it_rejects_unknown_team_id(api):
    error = assert_error(_generate(api, {"team_id": "no-such-team"}), 400, "invalid_field", param="team_id")
    assert "no-such-team" in error["message"]
    assert VirtualKey.objects.count() == 0


def test_it_refuses_a_model_outside_the_team_models(api, guide_routes, make_team):
    make_team(team_id="litellm-dev", models=["azure-gpt-3.5"])
    error = assert_error(
        _generate(api, {"team_id": "litellm-dev", "models": ["gpt-4o"]}), 400, "invalid_field", param="models"
    )
    assert "gpt-4o" in error["message"] and "azure-gpt-3.5" in error["message"]
    assert VirtualKey.objects.count() == 0


# (team models, key models, accepted?)  SPEC §3/§4: an entry passes when the team layer would allow it
TEAM_KEY_MODELS = [
    ([], ["beta-models"], True),
    (["beta-models"], ["beta-models"], True),
    (["gpt-4o"], ["beta-models"], False),
    (["beta-models"], ["gpt-4"], True),
    (["beta-models"], ["fireworks-llama-v3-70b-instruct"], True),
    (["beta-models"], ["gpt-4o"], False),
    (["gpt-4o"], ["all-team-models"], True),
    (["beta-models"], ["all-team-models"], True),
    ([], ["all-team-models"], True),
    (["gpt-4o"], ["all-proxy-models"], False),
    ([], ["all-proxy-models"], True),
    (["all-proxy-models"], ["gpt-4", "beta-models"], True),
    (["openai/*"], ["openai/gpt-4"], True),
    (["default-models"], ["openai/gpt-4"], True),
    (["default-models"], ["openai/o1-mini"], False),
    (["restricted-models"], ["openai/o1-mini"], True),
    (["gpt-4o"], ["gpt-4o", "gpt-4"], False),
]


@pytest.mark.parametrize(("team_models", "key_models", "accepted"), TEAM_KEY_MODELS)
def test_key_models_must_be_allowed_by_the_team(api, guide_routes, make_team, team_models, key_models, accepted):
    make_team(team_id="team", models=team_models)
    response = _generate(api, {"team_id": "team", "models": key_models})
    if accepted:
        assert response.status_code == 200, response.content
        assert response.data["models"] == key_models
    else:
        assert_error(response, 400, "invalid_field", param="models")
        assert VirtualKey.objects.count() == 0


def test_a_key_without_team_may_list_any_models(api, guide_routes):
    response = _generate(api, {"models": ["beta-models", "openai/*", "all-team-models"]})
    assert response.status_code == 200, response.content
    assert response.data["team_id"] is None


# --- strict fields ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["modles", "user_id", "team", "spend"])
def test_it_rejects_unknown_fields_naming_them(api, field):
    error = assert_error(_generate(api, {field: "x"}), 400, "invalid_field", param=field)
    assert field in error["message"]
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": "gpt-4"}, "models"),
        ({"models": {"gpt-4": True}}, "models"),
        ({"models": [1]}, "models"),
        ({"models": [None]}, "models"),
        ({"models": [""]}, "models"),
        ({"max_budget": "10"}, "max_budget"),
        ({"max_budget": True}, "max_budget"),
        ({"rpm_limit": 1.5}, "rpm_limit"),
        ({"rpm_limit": "60"}, "rpm_limit"),
        ({"tpm_limit": 2.0}, "tpm_limit"),
        ({"max_parallel_requests": False}, "max_parallel_requests"),
        ({"blocked": "yes"}, "blocked"),
        ({"blocked": 1}, "blocked"),
        ({"blocked": None}, "blocked"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "a"}, "metadata"),
        ({"key_alias": 5}, "key_alias"),
        ({"key_alias": ""}, "key_alias"),
        ({"team_id": 7}, "team_id"),
        ({"duration": 30}, "duration"),
        ({"budget_duration": ["1d"]}, "budget_duration"),
        ({"key": 1234567890}, "key"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_it_rejects_wrong_types_naming_the_field(api, body, param):
    error = assert_error(_generate(api, body), 400, "invalid_field")
    assert error["param"] == param or error["param"].startswith(param + "."), error
    assert param in error["message"]
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize("field", ["max_budget", "rpm_limit", "tpm_limit", "max_parallel_requests"])
def test_it_rejects_negative_budgets_and_limits(api, field):
    assert_error(_generate(api, {field: -1}), 400, "invalid_field", param=field)
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit", "max_parallel_requests"])
def test_it_rejects_limits_too_large_to_store(api, field):
    assert_error(_generate(api, {field: 2**40}), 400, "invalid_field", param=field)
    assert VirtualKey.objects.count() == 0


def test_zero_budget_and_limits_are_accepted(api):
    response = _generate(api, {"max_budget": 0, "rpm_limit": 0, "tpm_limit": 0, "max_parallel_requests": 0})
    assert response.status_code == 200, response.content
    assert (response.data["max_budget"], response.data["rpm_limit"]) == (0, 0)


def test_null_optional_fields_are_accepted(api):
    body = {"team_id": None, "key_alias": None, "max_budget": None, "duration": None, "metadata": None, "key": None}
    response = _generate(api, body)
    assert response.status_code == 200, response.content
    assert response.data["metadata"] == {}
    assert response.data["expires"] is None
    assert response.data["key"].startswith("sk-")


# --- durations ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("duration", "delta"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_duration_sets_expires(api, duration, delta):
    before = timezone.now()
    response = _generate(api, {"duration": duration})
    after = timezone.now()
    assert response.status_code == 200, response.content
    expires = parse_datetime(response.data["expires"])
    assert before + delta <= expires <= after + delta
    assert VirtualKey.objects.get().expires == expires


def test_a_month_duration_sets_expires_a_calendar_month_ahead(api):
    before = timezone.now()
    expires = parse_datetime(_generate(api, {"duration": "1mo"}).data["expires"])
    assert timedelta(days=28) <= expires - before <= timedelta(days=31, seconds=5)
    assert expires.month == before.month % 12 + 1
    assert expires.day == before.day or (before.day > 28 and expires.day < before.day)  # clamped to the month's end


@pytest.mark.parametrize("value", ["30s", "15m", "2h", "1d", "1w", "1mo"])
def test_budget_duration_accepts_litellm_durations(api, value):
    response = _generate(api, {"budget_duration": value})
    assert response.status_code == 200, response.content
    assert response.data["budget_duration"] == value
    assert response.data["expires"] is None


BAD_DURATIONS = ["30", "1y", "abc", "-1d", "1.5h", "d1", "1 month", "1dd", "30S", "99999999999999d", "999999mo"]


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize("field", ["duration", "budget_duration"])
def test_it_rejects_durations_that_do_not_parse(api, field, value):
    error = assert_error(_generate(api, {field: value}), 400, "invalid_field", param=field)
    assert "30s" in error["message"] or "blank" in error["message"]
    assert VirtualKey.objects.count() == 0


def test_it_rejects_an_overlong_budget_duration(api):
    """A duration that parses but cannot be stored (budget_duration is 20 characters) is still a 400, not a 500."""
    assert_error(_generate(api, {"budget_duration": "0" * 30 + "1d"}), 400, "invalid_field", param="budget_duration")


# --- bodies -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["not json", "{", '{"models": }', "{'models': []}", "\xff"])
def test_it_rejects_a_body_that_is_not_json(api, raw):
    assert_error(_generate(api, raw=raw), 400, "invalid_json", param=None)
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize("raw", ["[1, 2]", '"sk-key"', "42", "null"])
def test_it_rejects_a_json_body_that_is_not_an_object(api, raw):
    assert_error(_generate(api, raw=raw), 400, "invalid_json", param=None)
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"max_budget": NaN}', '{"max_budget": Infinity}', '{"metadata": {"x": -Infinity}}'])
def test_it_rejects_non_finite_numbers(api, raw):
    assert_error(_generate(api, raw=raw), 400, "invalid_json", param=None)
    assert VirtualKey.objects.count() == 0


def test_it_accepts_the_guides_body_with_comments_and_trailing_commas(api):
    response = _generate(api, raw=GUIDE_LENIENT_BODY)
    assert response.status_code == 200, response.content
    assert response.data["models"] == ["beta-models"]
    assert response.data["max_budget"] == 0
    assert VirtualKey.objects.get().models == ["beta-models"]


def test_a_hash_inside_a_string_is_not_a_comment(api):
    response = _generate(api, raw='{"key_alias": "team#1, ok", # a comment\n "metadata": {"note": "a # b",},\n}')
    assert response.status_code == 200, response.content
    assert response.data["key_alias"] == "team#1, ok"
    assert response.data["metadata"] == {"note": "a # b"}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_it_parses_json_sent_without_a_json_content_type(client, master_key, content_type):
    response = client.generic(
        "POST",
        "/key/generate",
        '{"key_alias": "curl-d", "models": ["gpt-4"]}',
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {master_key}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["key_alias"] == "curl-d"
    assert VirtualKey.objects.get().models == ["gpt-4"]


def test_an_empty_body_generates_an_unrestricted_key(api):
    response = _generate(api, raw="")
    assert response.status_code == 200, response.content
    assert response.data["models"] == [] and response.data["team_id"] is None


def test_a_race_for_the_same_alias_is_a_400_not_a_500(api, make_key, monkeypatch):
    """Two requests racing past the pre-check meet the unique constraint: still a 400 naming the field."""
    from accounts import services

    make_key(key_alias="taken")
    monkeypatch.setattr(services, "_check_alias_free", lambda *args, **kwargs: None)
    response = api.post("/key/generate", {"key_alias": "taken"})
    assert response.status_code == 400, response.content
    assert response.data["error"]["code"] == "invalid_field"
    assert response.data["error"]["param"] == "key_alias"
