"""POST /team/new, GET /team/info, POST /team/update, POST /team/delete, GET /team/list (SPEC §3, §4)."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import Team, VirtualKey
from tests.api.helpers import assert_chat_works, assert_error, chat

pytestmark = pytest.mark.django_db


# --- /team/new ----------------------------------------------------------------------------------------------------
def test_new_team_gets_a_generated_uuid(api):
    response = api.post("/team/new", {})
    assert response.status_code == 200, response.content
    team_id = response.data["team_id"]
    assert str(uuid.UUID(team_id)) == team_id
    assert response.data["models"] == [] and response.data["blocked"] is False
    assert Team.objects.filter(team_id=team_id).exists()
    assert api.post("/team/new", {}).data["team_id"] != team_id


def test_new_team_with_custom_id_and_fields(api):
    body = {
        "team_id": "litellm-dev",
        "team_alias": "LiteLLM dev",
        "models": ["azure-gpt-3.5", "beta-models"],
        "max_budget": 100.0,
        "budget_duration": "30d",
        "rpm_limit": 100,
        "tpm_limit": 50000,
        "max_parallel_requests": 8,
        "blocked": False,
        "metadata": {"cost_center": "42"},
    }
    response = api.post("/team/new", body)
    assert response.status_code == 200, response.content
    for field, value in body.items():
        assert response.data[field] == value, field
    assert response.data["spend"] == 0
    team = Team.objects.get(team_id="litellm-dev")
    assert (team.team_alias, team.models, team.max_budget) == ("LiteLLM dev", ["azure-gpt-3.5", "beta-models"], 100.0)


def test_new_team_refuses_a_duplicate_team_id(api, make_team):
    make_team(team_id="dup", team_alias="first")
    error = assert_error(
        api.post("/team/new", {"team_id": "dup", "team_alias": "second"}), 400, "invalid_field", param="team_id"
    )
    assert "dup" in error["message"]
    assert Team.objects.get(team_id="dup").team_alias == "first"
    assert Team.objects.count() == 1


def test_new_team_refuses_a_duplicate_alias(api, make_team):
    make_team(team_alias="ml")
    assert_error(api.post("/team/new", {"team_alias": "ml"}), 400, "invalid_field", param="team_alias")
    assert Team.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"team_id": ""}, "team_id"),
        ({"team_id": 5}, "team_id"),
        ({"team_id": "x" * 129}, "team_id"),
        ({"team_alias": 5}, "team_alias"),
        ({"models": "gpt-4"}, "models"),
        ({"max_budget": "100"}, "max_budget"),
        ({"max_budget": -1}, "max_budget"),
        ({"rpm_limit": 2.5}, "rpm_limit"),
        ({"tpm_limit": -1}, "tpm_limit"),
        ({"max_parallel_requests": 2**40}, "max_parallel_requests"),
        ({"blocked": "no"}, "blocked"),
        ({"metadata": []}, "metadata"),
        ({"budget_duration": "monthly"}, "budget_duration"),
        ({"budget_duration": "99999999999999d"}, "budget_duration"),
        ({"team_name": "x"}, "team_name"),
        ({"members": []}, "members"),
    ],
)
def test_new_team_rejects_wrong_types_bad_values_and_unknown_fields(api, body, param):
    error = assert_error(api.post("/team/new", body), 400, "invalid_field")
    assert error["param"] == param or error["param"].startswith(param + "."), error
    assert Team.objects.count() == 0


def test_new_team_rejects_a_body_that_is_not_an_object(api):
    assert_error(api.post("/team/new", raw='["team"]'), 400, "invalid_json", param=None)
    assert_error(api.post("/team/new", raw="team please"), 400, "invalid_json", param=None)
    assert Team.objects.count() == 0


# --- /team/info ---------------------------------------------------------------------------------------------------
def test_team_info_shows_the_team_and_its_keys(api, make_team, make_key):
    make_team(team_id="ml", team_alias="Machine learning", models=["gpt-4"])
    first, first_plaintext = make_key(team_id="ml", key_alias="a")
    second, second_plaintext = make_key(team_id="ml", key_alias="b")
    make_key(key_alias="teamless")
    response = api.get("/team/info", {"team_id": "ml"})
    assert response.status_code == 200, response.content
    assert response.data["team_id"] == "ml"
    assert response.data["team_info"]["team_alias"] == "Machine learning"
    assert response.data["team_info"]["models"] == ["gpt-4"]
    assert [key["token"] for key in response.data["keys"]] == [first.key_hash, second.key_hash]
    assert [key["key_alias"] for key in response.data["keys"]] == ["a", "b"]
    body = response.content.decode()
    assert first_plaintext[3:] not in body and second_plaintext[3:] not in body


def test_team_info_of_a_team_without_keys(api, make_team):
    make_team(team_id="empty")
    response = api.get("/team/info", {"team_id": "empty"})
    assert response.status_code == 200, response.content
    assert response.data["keys"] == []


def test_team_info_of_an_unknown_team_is_not_found(api, make_team):
    make_team(team_id="real")
    assert_error(api.get("/team/info", {"team_id": "ghost"}), 404, "not_found", param="team_id")


def test_team_info_needs_a_team_id(api):
    assert_error(api.get("/team/info"), 400, "invalid_field", param="team_id")


# --- /team/update -------------------------------------------------------------------------------------------------
def test_team_update_changes_fields(api, make_team):
    make_team(team_id="ml", team_alias="old", models=["gpt-4"], max_budget=1.0)
    body = {"team_id": "ml", "team_alias": "new", "models": ["gpt-4o"], "max_budget": 5.0, "metadata": {"a": "b"}}
    response = api.post("/team/update", body)
    assert response.status_code == 200, response.content
    for field, value in body.items():
        assert response.data[field] == value, field
    team = Team.objects.get(team_id="ml")
    assert (team.team_alias, team.models, team.max_budget, team.metadata) == ("new", ["gpt-4o"], 5.0, {"a": "b"})


def test_team_model_changes_take_effect_on_the_relay_at_once(api, guide_routes, make_team, make_key):
    make_team(team_id="litellm-dev", models=["mock-gpt"])
    _, plaintext = make_key(team_id="litellm-dev", models=["all-team-models"])
    assert_chat_works(api, plaintext)  # the grant (with the team's models) is now cached

    assert api.post("/team/update", {"team_id": "litellm-dev", "models": ["azure-gpt-3.5"]}).status_code == 200
    error = assert_error(chat(api, plaintext), 403, "model_not_allowed", type="team_model_access_denied")
    assert "litellm-dev" in error["message"] and "azure-gpt-3.5" in error["message"]

    assert (
        api.post("/team/update", {"team_id": "litellm-dev", "models": ["azure-gpt-3.5", "mock-gpt"]}).status_code == 200
    )
    assert_chat_works(api, plaintext)


def test_blocking_a_team_stops_its_keys_at_once(api, guide_routes, make_team, make_key):
    make_team(team_id="ml")
    row, plaintext = make_key(team_id="ml")
    _, outsider = make_key()
    assert_chat_works(api, plaintext)

    response = api.post("/team/update", {"team_id": "ml", "blocked": True})
    assert response.status_code == 200, response.content
    assert response.data["blocked"] is True
    assert_error(chat(api, plaintext), 401, "blocked_team")
    assert_chat_works(api, outsider)
    row.refresh_from_db()
    assert row.blocked is False  # the key itself is not blocked

    assert api.post("/team/update", {"team_id": "ml", "blocked": False}).status_code == 200
    assert_chat_works(api, plaintext)


def test_team_update_refuses_an_alias_another_team_has(api, make_team):
    make_team(team_id="a", team_alias="alpha")
    make_team(team_id="b", team_alias="beta")
    assert_error(
        api.post("/team/update", {"team_id": "b", "team_alias": "alpha"}), 400, "invalid_field", param="team_alias"
    )
    assert Team.objects.get(team_id="b").team_alias == "beta"
    assert api.post("/team/update", {"team_id": "b", "team_alias": "beta"}).status_code == 200


def test_team_update_of_an_unknown_team_is_not_found(api):
    assert_error(api.post("/team/update", {"team_id": "ghost", "blocked": True}), 404, "not_found", param="team_id")
    assert Team.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "team_id"),
        ({"team_id": 1}, "team_id"),
        ({"team_id": "ml", "models": [1]}, "models"),
        ({"team_id": "ml", "blocked": "true"}, "blocked"),
        ({"team_id": "ml", "max_budget": -0.5}, "max_budget"),
        ({"team_id": "ml", "budget_duration": "1y"}, "budget_duration"),
        ({"team_id": "ml", "new_team_id": "x"}, "new_team_id"),
    ],
)
def test_team_update_rejects_bad_bodies(api, make_team, body, param):
    make_team(team_id="ml", models=["gpt-4"])
    error = assert_error(api.post("/team/update", body), 400, "invalid_field")
    assert error["param"] == param or error["param"].startswith(param + "."), error
    team = Team.objects.get(team_id="ml")
    assert (team.models, team.blocked, team.max_budget, team.budget_duration) == (["gpt-4"], False, None, None)


# --- /team/delete -------------------------------------------------------------------------------------------------
def test_team_delete_is_refused_while_the_team_has_keys(api, guide_routes, make_team, make_key):
    make_team(team_id="ml")
    row, plaintext = make_key(team_id="ml")
    error = assert_error(api.post("/team/delete", {"team_ids": ["ml"]}), 400, "invalid_field", param="team_ids")
    assert "delete_keys=true" in error["message"]
    assert Team.objects.filter(team_id="ml").exists()
    assert VirtualKey.objects.filter(pk=row.pk).exists()
    assert_chat_works(api, plaintext)


def test_team_delete_with_delete_keys_removes_the_keys_too(api, guide_routes, make_team, make_key):
    make_team(team_id="ml")
    first, first_plaintext = make_key(team_id="ml")
    make_key(team_id="ml")
    _, outsider = make_key()
    assert_chat_works(api, first_plaintext)

    response = api.post("/team/delete?delete_keys=true", {"team_ids": ["ml"]})
    assert response.status_code == 200, response.content
    assert response.data == {"deleted_teams": ["ml"]}
    assert not Team.objects.filter(team_id="ml").exists()
    assert VirtualKey.objects.count() == 1
    assert_error(chat(api, first_plaintext), 401, "invalid_api_key")
    assert_chat_works(api, outsider)


def test_team_delete_of_a_team_without_keys(api, make_team):
    make_team(team_id="empty")
    make_team(team_id="kept")
    response = api.post("/team/delete", {"team_ids": ["empty"]})
    assert response.status_code == 200, response.content
    assert response.data == {"deleted_teams": ["empty"]}
    assert list(Team.objects.values_list("team_id", flat=True)) == ["kept"]
    assert [team["team_id"] for team in api.get("/team/list").data] == ["kept"]


def test_team_delete_is_all_or_nothing(api, make_team, make_key):
    make_team(team_id="empty")
    make_team(team_id="busy")
    make_key(team_id="busy")
    assert_error(api.post("/team/delete", {"team_ids": ["empty", "busy"]}), 400, "invalid_field", param="team_ids")
    assert set(Team.objects.values_list("team_id", flat=True)) == {"empty", "busy"}


def test_team_delete_of_an_unknown_team_is_not_found(api, make_team):
    make_team(team_id="real")
    assert_error(api.post("/team/delete", {"team_ids": ["real", "ghost"]}), 404, "not_found", param="team_ids")
    assert Team.objects.filter(team_id="real").exists()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "team_ids"),
        ({"team_ids": []}, "team_ids"),
        ({"team_ids": "ml"}, "team_ids"),
        ({"team_id": "ml"}, "team_id"),
    ],
)
def test_team_delete_rejects_bad_bodies(api, make_team, body, param):
    make_team(team_id="ml")
    error = assert_error(api.post("/team/delete", body), 400, "invalid_field")
    assert error["param"] == param or error["param"].startswith(param + "."), error
    assert Team.objects.filter(team_id="ml").exists()


def test_team_delete_rejects_a_bad_delete_keys_flag(api, make_team, make_key):
    make_team(team_id="ml")
    make_key(team_id="ml")
    assert_error(
        api.post("/team/delete?delete_keys=yes", {"team_ids": ["ml"]}), 400, "invalid_field", param="delete_keys"
    )
    assert VirtualKey.objects.count() == 1


# --- /team/list ---------------------------------------------------------------------------------------------------
def test_team_list_shows_every_team_in_creation_order(api, make_team):
    make_team(team_id="first", team_alias="First", models=["gpt-4"])
    make_team(team_id="second", blocked=True)
    response = api.get("/team/list")
    assert response.status_code == 200, response.content
    assert [team["team_id"] for team in response.data] == ["first", "second"]
    assert response.data[0]["team_alias"] == "First" and response.data[0]["models"] == ["gpt-4"]
    assert response.data[1]["blocked"] is True


def test_team_list_is_empty_without_teams(api, db):
    response = api.get("/team/list")
    assert response.status_code == 200, response.content
    assert response.data == []
