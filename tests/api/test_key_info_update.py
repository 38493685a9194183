"""GET /key/info and POST /key/update (SPEC §3, §4)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import VirtualKey
from tests.api.helpers import assert_chat_works, assert_error, chat

pytestmark = pytest.mark.django_db


# --- /key/info ----------------------------------------------------------------------------------------------------
def test_info_by_plaintext(api, make_team, make_key):
    make_team(team_id="ml")
    row, plaintext = make_key(team_id="ml", key_alias="info-me", models=["gpt-4"], max_budget=3.0)
    response = api.get("/key/info", {"key": plaintext})
    assert response.status_code == 200, response.content
    assert response.data["key"] == row.key_hash
    info = response.data["info"]
    assert info["token"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert (info["key_alias"], info["team_id"], info["models"], info["max_budget"]) == ("info-me", "ml", ["gpt-4"], 3.0)
    assert info["key_name"] == "sk-..." + plaintext[-4:]
    assert plaintext[3:] not in response.content.decode()


def test_info_by_token(api, make_key):
    row, plaintext = make_key(key_alias="by-token")
    response = api.get("/key/info", {"key": row.key_hash})
    assert response.status_code == 200, response.content
    assert response.data["info"]["key_alias"] == "by-token"
    assert plaintext[3:] not in response.content.decode()


@pytest.mark.parametrize("key", ["sk-no-such-key-000000000000", "0" * 64, "not-a-key"])
def test_info_of_an_unknown_key_is_not_found(api, make_key, key):
    make_key()
    error = assert_error(api.get("/key/info", {"key": key}), 404, "not_found", param="key")
    assert key not in error["message"]


def test_info_with_the_master_key_needs_a_key_parameter(api):
    assert_error(api.get("/key/info"), 400, "invalid_field", param="key")


def test_a_virtual_key_gets_its_own_info_without_a_key_parameter(anon, make_key):
    row, plaintext = make_key(key_alias="me", models=["gpt-4o"])
    make_key(key_alias="someone-else")
    response = anon.get("/key/info", key=plaintext)
    assert response.status_code == 200, response.content
    assert response.data["key"] == row.key_hash
    assert response.data["info"]["key_alias"] == "me"
    assert response.data["info"]["models"] == ["gpt-4o"]
    assert plaintext[3:] not in response.content.decode()


def test_a_virtual_key_may_not_read_another_keys_info(anon, make_key):
    _, mine = make_key(key_alias="me")
    other, other_plaintext = make_key(key_alias="other-teams-bot", models=["gpt-4o"])
    for identifier in (other_plaintext, other.key_hash):
        response = anon.get("/key/info", {"key": identifier}, key=mine)
        assert_error(response, 403, "admin_only")
        assert "other-teams-bot" not in response.content.decode()


def test_a_blocked_virtual_key_cannot_read_its_own_info(api, anon, make_key):
    _, plaintext = make_key(blocked=True)
    assert_error(anon.get("/key/info", key=plaintext), 401, "blocked_key")


# --- /key/update --------------------------------------------------------------------------------------------------
def _update(api, body):
    return api.post("/key/update", body)


def test_update_changes_models_alias_and_budget(api, make_key):
    row, plaintext = make_key(key_alias="old", models=["gpt-4"], max_budget=1.0)
    response = _update(
        api, {"key": plaintext, "key_alias": "new", "models": ["gpt-4o", "beta-models"], "max_budget": 9.5}
    )
    assert response.status_code == 200, response.content
    assert (response.data["key_alias"], response.data["models"], response.data["max_budget"]) == (
        "new",
        ["gpt-4o", "beta-models"],
        9.5,
    )
    assert "key" not in response.data
    row.refresh_from_db()
    assert (row.key_alias, row.models, row.max_budget) == ("new", ["gpt-4o", "beta-models"], 9.5)


def test_update_by_token(api, make_key):
    row, _ = make_key(rpm_limit=10)
    response = _update(api, {"key": row.key_hash, "rpm_limit": 20, "metadata": {"env": "prod"}})
    assert response.status_code == 200, response.content
    row.refresh_from_db()
    assert (row.rpm_limit, row.metadata) == (20, {"env": "prod"})


def test_update_leaves_unmentioned_fields_alone(api, make_team, make_key):
    make_team(team_id="ml")
    row, plaintext = make_key(team_id="ml", key_alias="keep", models=["gpt-4"], max_budget=2.0, duration="1d")
    expires = row.expires
    assert _update(api, {"key": plaintext, "rpm_limit": 5}).status_code == 200
    row.refresh_from_db()
    assert (row.team_id, row.key_alias, row.models, row.max_budget, row.expires) == (
        "ml",
        "keep",
        ["gpt-4"],
        2.0,
        expires,
    )


def test_model_changes_take_effect_on_the_relay_at_once(api, guide_routes, make_key):
    _, plaintext = make_key(models=["mock-gpt"])
    assert_chat_works(api, plaintext)  # the key's grant is now cached
    assert _update(api, {"key": plaintext, "models": ["gpt-4"]}).status_code == 200
    error = assert_error(chat(api, plaintext), 403, "model_not_allowed", type="key_model_access_denied")
    assert "mock-gpt" in error["message"]
    assert _update(api, {"key": plaintext, "models": []}).status_code == 200
    assert_chat_works(api, plaintext)


def test_update_moves_a_key_to_another_team(api, make_team, make_key):
    make_team(team_id="a", models=[])
    make_team(team_id="b", models=["gpt-4", "gpt-4o"])
    row, plaintext = make_key(team_id="a", models=["gpt-4"])
    response = _update(api, {"key": plaintext, "team_id": "b"})
    assert response.status_code == 200, response.content
    assert response.data["team_id"] == "b"
    row.refresh_from_db()
    assert row.team_id == "b"


def test_update_validates_models_against_the_new_team(api, guide_routes, make_team, make_key):
    make_team(team_id="open", models=[])
    make_team(team_id="narrow", models=["azure-gpt-3.5"])
    row, plaintext = make_key(team_id="open", models=["gpt-4o"])
    error = assert_error(_update(api, {"key": plaintext, "team_id": "narrow"}), 400, "invalid_field", param="models")
    assert "gpt-4o" in error["message"]
    row.refresh_from_db()
    assert (row.team_id, row.models) == ("open", ["gpt-4o"])
    # models and team changed together are checked together
    response = _update(api, {"key": plaintext, "team_id": "narrow", "models": ["azure-gpt-3.5"]})
    assert response.status_code == 200, response.content
    row.refresh_from_db()
    assert (row.team_id, row.models) == ("narrow", ["azure-gpt-3.5"])


def test_update_validates_new_models_against_the_current_team(api, guide_routes, make_team, make_key):
    make_team(team_id="narrow", models=["beta-models"])
    row, plaintext = make_key(team_id="narrow", models=["gpt-4"])
    assert_error(_update(api, {"key": plaintext, "models": ["gpt-4o"]}), 400, "invalid_field", param="models")
    row.refresh_from_db()
    assert row.models == ["gpt-4"]


def test_update_takes_a_key_out_of_its_team(api, make_team, make_key):
    make_team(team_id="ml")
    row, plaintext = make_key(team_id="ml")
    response = _update(api, {"key": plaintext, "team_id": None})
    assert response.status_code == 200, response.content
    assert response.data["team_id"] is None
    row.refresh_from_db()
    assert row.team_id is None


def test_update_rejects_an_unknown_team_id(api, make_key):
    row, plaintext = make_key()
    assert_error(_update(api, {"key": plaintext, "team_id": "ghost"}), 400, "invalid_field", param="team_id")
    row.refresh_from_db()
    assert row.team_id is None


def test_update_refuses_an_alias_another_key_has(api, make_key):
    make_key(key_alias="taken")
    row, plaintext = make_key(key_alias="mine")
    assert_error(_update(api, {"key": plaintext, "key_alias": "taken"}), 400, "invalid_field", param="key_alias")
    row.refresh_from_db()
    assert row.key_alias == "mine"
    assert _update(api, {"key": plaintext, "key_alias": "mine"}).status_code == 200  # its own alias is fine


def test_duration_restarts_expiry_from_now(api, make_key):
    row, plaintext = make_key(duration="1h")
    first_expiry = row.expires
    before = timezone.now()
    response = _update(api, {"key": plaintext, "duration": "2d"})
    assert response.status_code == 200, response.content
    expires = parse_datetime(response.data["expires"])
    assert before + timedelta(days=2) <= expires <= timezone.now() + timedelta(days=2)
    assert expires > first_expiry
    row.refresh_from_db()
    assert row.expires == expires


def test_null_duration_removes_expiry(api, make_key):
    row, plaintext = make_key(duration="1h")
    response = _update(api, {"key": plaintext, "duration": None})
    assert response.status_code == 200, response.content
    assert response.data["expires"] is None
    row.refresh_from_db()
    assert row.expires is None


def test_a_new_duration_revives_an_expired_key(api, guide_routes, make_key):
    row, plaintext = make_key()
    VirtualKey.objects.filter(pk=row.pk).update(expires=timezone.now() - timedelta(minutes=1))
    assert_error(chat(api, plaintext), 401, "expired_key")
    assert _update(api, {"key": plaintext, "duration": "1h"}).status_code == 200
    assert_chat_works(api, plaintext)


@pytest.mark.parametrize("value", ["1y", "forever", "-1d", "99999999999999d"])
@pytest.mark.parametrize("field", ["duration", "budget_duration"])
def test_update_rejects_bad_durations(api, make_key, field, value):
    row, plaintext = make_key(duration="1h", budget_duration="1d")
    assert_error(_update(api, {"key": plaintext, field: value}), 400, "invalid_field", param=field)
    before = (row.expires, row.budget_duration)
    row.refresh_from_db()
    assert (row.expires, row.budget_duration) == before


def test_update_of_an_unknown_key_is_not_found(api, make_key):
    make_key()
    assert_error(_update(api, {"key": "sk-no-such-key-000000000000", "models": []}), 404, "not_found", param="key")


def test_update_needs_the_key(api):
    assert_error(_update(api, {"models": ["gpt-4"]}), 400, "invalid_field", param="key")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": "gpt-4"}, "models"),
        ({"max_budget": "10"}, "max_budget"),
        ({"max_budget": -1}, "max_budget"),
        ({"rpm_limit": 1.5}, "rpm_limit"),
        ({"tpm_limit": -3}, "tpm_limit"),
        ({"blocked": "yes"}, "blocked"),
        ({"metadata": ["x"]}, "metadata"),
        ({"key_alias": 1}, "key_alias"),
        ({"team_id": 1}, "team_id"),
        ({"expires": "2030-01-01"}, "expires"),
        ({"spend": 0}, "spend"),
    ],
)
def test_update_rejects_wrong_types_and_unknown_fields(api, make_key, body, param):
    row, plaintext = make_key(key_alias="same", models=["gpt-4"], max_budget=1.0)
    assert_error(_update(api, {"key": plaintext, **body}), 400, "invalid_field", param=param)
    row.refresh_from_db()
    assert (row.key_alias, row.models, row.max_budget, row.blocked, row.metadata) == ("same", ["gpt-4"], 1.0, False, {})


def test_update_rejects_a_key_of_the_wrong_type(api):
    assert_error(_update(api, {"key": 12345}), 400, "invalid_field", param="key")


def test_a_virtual_key_may_name_itself_in_key_info(anon, make_key):
    row, plaintext = make_key(key_alias="self-reader")
    for identifier in (plaintext, row.key_hash):
        response = anon.get("/key/info", {"key": identifier}, key=plaintext)
        assert response.status_code == 200, response.content
        assert response.data["info"]["key_alias"] == "self-reader"
