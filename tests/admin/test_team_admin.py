"""Teams in the operator console: made and changed through the services; deleting a team with keys follows SPEC §4
(refused unless its keys go with it) and says so."""

from __future__ import annotations

import json
import uuid

import pytest

from accounts import services
from accounts.models import Team, VirtualKey
from tests.admin.conftest import key, team

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/accounts/team/add/"
LIST_URL = "/admin/accounts/team/"


def team_form(**overrides) -> dict:
    data = {
        "team_alias": "new-team",
        "team_id": "",
        "models_0": [],
        "models_1": "",
        "max_budget": "",
        "budget_duration": "",
        "rpm_limit": "",
        "tpm_limit": "",
        "max_parallel_requests": "",
        "metadata": "{}",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def with_inline(team_row: Team, data: dict) -> dict:
    count = team_row.keys.count()
    data.update(
        {
            "keys-TOTAL_FORMS": str(count),
            "keys-INITIAL_FORMS": str(count),
            "keys-MIN_NUM_FORMS": "0",
            "keys-MAX_NUM_FORMS": "0",
        }
    )
    for index, row in enumerate(team_row.keys.order_by("created_at")):
        data[f"keys-{index}-id"] = str(row.pk)
        data[f"keys-{index}-team"] = team_row.pk
    return data


def test_add_team_through_the_service(admin_client, seeded, monkeypatch):
    calls = []
    original = services.team_create
    monkeypatch.setattr(services, "team_create", lambda **kw: calls.append(kw) or original(**kw))
    response = admin_client.post(ADD_URL, team_form(models_0=["beta-models", "gpt-4o"], max_budget="25"))
    assert response.status_code == 302
    made = team("new-team")
    assert (made.models, made.max_budget) == (["beta-models", "gpt-4o"], 25.0)
    uuid.UUID(made.team_id)  # the default team_id is a UUID
    assert calls and calls[0]["team_alias"] == "new-team"


def test_add_team_with_a_chosen_id(admin_client, seeded):
    admin_client.post(ADD_URL, team_form(team_id="team-ops"))
    assert Team.objects.get(team_id="team-ops").team_alias == "new-team"
    response = admin_client.post(ADD_URL, team_form(team_alias="other", team_id="team-ops"))
    assert "already exists" in response.context["adminform"].form.errors["team_id"][0]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"team_alias": "ml-research"}, "team_alias", "already exists"),
        ({"models_0": ["all-team-models"]}, "models", "is for keys"),
        ({"budget_duration": "monthly"}, "budget_duration", "must be a number and a unit"),
    ],
)
def test_add_team_refuses_bad_values_on_their_fields(admin_client, seeded, overrides, field, message):
    response = admin_client.post(ADD_URL, team_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors


def test_narrowing_a_team_warns_about_its_keys(admin_client, seeded):
    research = team("ml-research")
    data = with_inline(research, team_form(team_alias="ml-research", models_0=["beta-models"], max_budget="500"))
    response = admin_client.post(f"/admin/accounts/team/{research.pk}/change/", data, follow=True)
    assert response.status_code == 200
    assert team("ml-research").models == ["beta-models"]
    html = response.content.decode()
    assert "eval-harness" in html and "no longer allows" in html  # it lists gpt-4o and default-models
    assert "research-ci</a> lists a model" not in html  # beta-models is still allowed


def test_delete_team_without_keys(admin_client, seeded):
    lonely = services.team_create(team_alias="lonely")
    page = admin_client.get(f"/admin/accounts/team/{lonely.pk}/delete/").content.decode()
    assert "Are you sure" in page
    admin_client.post(f"/admin/accounts/team/{lonely.pk}/delete/", {"post": "yes"})
    assert not Team.objects.filter(pk=lonely.pk).exists()


def test_delete_team_with_keys_is_refused_unless_keys_go_too(admin_client, client, seeded):
    bots = team("support-bots")
    helpdesk, plaintext = services.key_generate(key_alias="helpdesk-2", team_id=bots.team_id, models=["mock-gpt"])
    url = f"/admin/accounts/team/{bots.pk}/delete/"
    admin_client.post(url, {"post": "yes"})  # Django's plain confirmation: refused, keys are protected
    assert Team.objects.filter(pk=bots.pk).exists()

    response = admin_client.post(url, {"post": "yes", "delete_keys": "yes"}, follow=True)
    assert "Deleted team(s) support-bots and their 3 key(s)." in response.content.decode()
    assert not Team.objects.filter(pk=bots.pk).exists()
    assert not VirtualKey.objects.filter(key_alias__in=["helpdesk-bot", "faq-summarizer", "helpdesk-2"]).exists()
    answer = client.post(
        "/v1/chat/completions",
        json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plaintext}",
    )
    assert answer.status_code == 401


def test_bulk_delete_with_keys_action(admin_client, seeded):
    doomed = [team("litellm-dev").pk, team("contractors").pk]
    confirm = admin_client.post(LIST_URL, {"action": "delete_with_keys", "_selected_action": doomed})
    html = confirm.content.decode()
    assert "Delete 2 teams and 2 keys" in html.replace("Yes, delete", "Delete")
    assert "dev-sandbox" in html and "contractor-acme" in html
    assert Team.objects.filter(pk__in=doomed).count() == 2
    admin_client.post(LIST_URL, {"action": "delete_with_keys", "_selected_action": doomed, "confirm": "yes"})
    assert not Team.objects.filter(pk__in=doomed).exists()
    assert not VirtualKey.objects.filter(key_alias__in=["dev-sandbox", "contractor-acme"]).exists()
    assert key("helpdesk-bot")  # other teams' keys untouched


def test_plain_bulk_delete_of_a_team_with_keys_is_refused(admin_client, seeded):
    research = team("ml-research")
    response = admin_client.post(
        LIST_URL, {"action": "delete_selected", "_selected_action": [research.pk], "post": "yes"}
    )
    assert response.status_code == 200  # Django's page listing the protected keys
    assert Team.objects.filter(pk=research.pk).exists()
