"""Virtual keys in the operator console: made, changed, blocked, regenerated and deleted through the services; the
plaintext shown once; "who can call" and "try it" answering exactly as the relay does."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from accounts import services
from accounts.auth import hash_key
from accounts.models import VirtualKey
from tests.admin.conftest import key, team

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/accounts/virtualkey/add/"
LIST_URL = "/admin/accounts/virtualkey/"


def add_form(**overrides) -> dict:
    data = {
        "key_alias": "new-bot",
        "team": "",
        "models_0": [],
        "models_1": "",
        "max_budget": "",
        "budget_duration": "",
        "rpm_limit": "",
        "tpm_limit": "",
        "max_parallel_requests": "",
        "duration": "",
        "metadata": "{}",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def change_form(row: VirtualKey, **overrides) -> dict:
    known = {"all-team-models", "all-proxy-models"}
    data = {
        "key_alias": row.key_alias or "",
        "team": row.team_id or "",
        "models_0": [m for m in row.models if m not in known and "*" not in m] + [m for m in row.models if m in known],
        "models_1": "",
        "max_budget": "" if row.max_budget is None else str(row.max_budget),
        "budget_duration": row.budget_duration or "",
        "rpm_limit": row.rpm_limit or "",
        "tpm_limit": row.tpm_limit or "",
        "max_parallel_requests": row.max_parallel_requests or "",
        "expires_0": row.expires.strftime("%Y-%m-%d") if row.expires else "",
        "expires_1": row.expires.strftime("%H:%M:%S") if row.expires else "",
        "metadata": json.dumps(row.metadata),
        "_save": "Save",
    }
    if row.blocked:
        data["blocked"] = "on"
    data.update(overrides)
    return data


def plaintext_in(html: str) -> list[str]:
    return re.findall(r'<code id="new-key[-\d]*" class="mg-key-text">(sk-[^<]+)</code>', html)


def model_error(response) -> str:
    return response.context["adminform"].form.errors["models"][0]


def relay(client, plaintext: str, model: str):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
    return client.post("/v1/chat/completions", json.dumps(body), content_type="application/json", **auth)


def test_add_key_shows_the_plaintext_once_and_keeps_only_its_hash(admin_client, client, seeded):
    research = team("ml-research")
    response = admin_client.post(
        ADD_URL, add_form(team=research.pk, models_0=["beta-models"], duration="30d", max_budget="12.5")
    )
    assert response.status_code == 200
    html = response.content.decode()
    [plaintext] = plaintext_in(html)
    assert plaintext.startswith("sk-") and len(plaintext) >= 25
    assert 'data-copy-target="new-key"' in html
    assert "can never be shown again" in html
    assert "no-store" in response["Cache-Control"]

    row = VirtualKey.objects.get(key_alias="new-bot")
    assert row.key_hash == hash_key(plaintext)
    assert row.key_preview == f"sk-...{plaintext[-4:]}"
    assert (row.team_id, row.models, row.max_budget) == (research.team_id, ["beta-models"], 12.5)
    assert abs((row.expires - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    rows = [*VirtualKey.objects.values(), *LogEntry.objects.values()]
    stored = json.dumps(rows, default=str)
    assert plaintext not in stored
    change = admin_client.get(f"/admin/accounts/virtualkey/{row.pk}/change/").content.decode()
    assert plaintext not in change and row.key_preview in change
    # the key works at once, within its grant
    assert relay(client, plaintext, "mock-gpt").status_code == 200
    assert relay(client, plaintext, "gpt-4o").status_code == 403


def test_add_key_refuses_a_model_outside_its_team_on_the_field(admin_client, seeded):
    response = admin_client.post(ADD_URL, add_form(team=team("litellm-dev").pk, models_0=["gpt-4o"]))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["models"]
    assert "Model 'gpt-4o' is not allowed for team 'litellm-dev'" in form.errors["models"][0]
    html = response.content.decode()
    field = html[html.index("field-models") :]
    assert field.index("errorlist") < field.index("</fieldset>")  # the message sits on the models field
    assert not VirtualKey.objects.filter(key_alias="new-bot").exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"duration": "forever"}, "duration", "'duration' must be a number and a unit"),
        ({"budget_duration": "7 days"}, "budget_duration", "'budget_duration' must be a number and a unit"),
        ({"max_budget": "-1"}, "max_budget", "cannot be negative"),
        ({"key_alias": "helpdesk-bot"}, "key_alias", "already exists"),
        ({"models_1": "gpt 4"}, "models", "cannot contain spaces"),
    ],
)
def test_add_key_refuses_bad_values_on_their_fields(admin_client, seeded, overrides, field, message):
    response = admin_client.post(ADD_URL, add_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert VirtualKey.objects.count() == 12


def test_add_key_takes_other_entries_and_specials(admin_client, seeded):
    response = admin_client.post(ADD_URL, add_form(models_0=["all-proxy-models"], models_1="openai/gpt-4*, mock-gpt"))
    assert response.status_code == 200 and plaintext_in(response.content.decode())
    assert key("new-bot").models == ["all-proxy-models", "openai/gpt-4*", "mock-gpt"]


def test_add_key_prefills_the_team_from_the_team_page(admin_client, seeded):
    research = team("ml-research")
    html = admin_client.get(f"{ADD_URL}?team={research.pk}").content.decode()
    assert f'<option value="{research.pk}" selected>ml-research</option>' in html


def test_edit_key_checks_models_against_the_team(admin_client, seeded):
    row = key("helpdesk-bot")
    url = f"/admin/accounts/virtualkey/{row.pk}/change/"
    response = admin_client.post(url, change_form(row, models_0=["mock-gpt", "gpt-4o"]))
    assert response.status_code == 200
    assert "Model 'gpt-4o' is not allowed for team 'support-bots'" in model_error(response)
    assert key("helpdesk-bot").models == ["mock-gpt"]

    response = admin_client.post(url, change_form(row, models_0=["mock-gpt", "gpt-3.5-turbo"], budget_duration="1w"))
    assert response.status_code == 302
    changed = key("helpdesk-bot")
    assert changed.models == ["mock-gpt", "gpt-3.5-turbo"]
    # key_update saw a new budget_duration and started a new period (it compares with the stored row)
    assert abs((changed.budget_reset_at - timezone.now()) - timedelta(weeks=1)) < timedelta(minutes=1)


def test_moving_a_key_to_another_team_is_checked_too(admin_client, seeded):
    row = key("helpdesk-bot")
    url = f"/admin/accounts/virtualkey/{row.pk}/change/"
    response = admin_client.post(url, change_form(row, team=team("litellm-dev").pk))
    assert "Model 'mock-gpt' is not allowed for team 'litellm-dev'" in model_error(response)
    response = admin_client.post(
        f"/admin/accounts/virtualkey/{row.pk}/change/", change_form(row, team=team("platform").pk)
    )
    assert response.status_code == 302
    assert key("helpdesk-bot").team.team_alias == "platform"


def test_block_and_unblock_actions(admin_client, client, seeded):
    row, plaintext = services.key_generate(key_alias="action-key", models=["mock-gpt"])
    assert relay(client, plaintext, "mock-gpt").status_code == 200
    response = admin_client.post(LIST_URL, {"action": "block_keys", "_selected_action": [row.pk]}, follow=True)
    assert "Blocked 1 key(s)" in response.content.decode()
    assert VirtualKey.objects.get(pk=row.pk).blocked
    denied = relay(client, plaintext, "mock-gpt")
    assert denied.status_code == 401 and json.loads(denied.content)["error"]["code"] == "blocked_key"
    admin_client.post(LIST_URL, {"action": "unblock_keys", "_selected_action": [row.pk]})
    assert not VirtualKey.objects.get(pk=row.pk).blocked
    assert relay(client, plaintext, "mock-gpt").status_code == 200


def test_regenerate_action_confirms_then_shows_new_secrets_once(admin_client, client, seeded):
    first, old_one = services.key_generate(key_alias="regen-1", models=["mock-gpt"], max_budget=3.0)
    second, old_two = services.key_generate(key_alias="regen-2")
    selected = {"action": "regenerate_keys", "_selected_action": [first.pk, second.pk]}
    confirm = admin_client.post(LIST_URL, selected)
    assert confirm.status_code == 200 and "The current secret stops working at once" in confirm.content.decode()
    assert VirtualKey.objects.get(pk=first.pk).key_hash == first.key_hash  # nothing changed yet

    response = admin_client.post(LIST_URL, {**selected, "confirm": "yes"})
    assert "no-store" in response["Cache-Control"]
    secrets = plaintext_in(response.content.decode())
    assert len(secrets) == 2 and old_one not in secrets and old_two not in secrets
    renewed = VirtualKey.objects.get(pk=first.pk)
    assert renewed.key_hash in {hash_key(s) for s in secrets}
    assert (renewed.key_alias, renewed.models, renewed.max_budget) == ("regen-1", ["mock-gpt"], 3.0)
    assert json.loads(relay(client, old_one, "mock-gpt").content)["error"]["code"] == "invalid_api_key"
    new_one = next(s for s in secrets if hash_key(s) == renewed.key_hash)
    assert relay(client, new_one, "mock-gpt").status_code == 200


def test_regenerate_button_on_the_key_page(admin_client, seeded):
    row = key("faq-summarizer")
    url = f"/admin/accounts/virtualkey/{row.pk}/regenerate/"
    assert "Yes, regenerate" in admin_client.get(url).content.decode()
    [plaintext] = plaintext_in(admin_client.post(url).content.decode())
    assert key("faq-summarizer").key_hash == hash_key(plaintext)


def test_delete_goes_through_the_service(admin_client, seeded, monkeypatch):
    calls = []
    original = services.keys_delete

    def spy(rows):
        calls.append([r.key_alias for r in rows])
        return original(rows)

    monkeypatch.setattr(services, "keys_delete", spy)
    doomed = [key("demo-laptop").pk, key("old-prototype").pk]
    response = admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": doomed, "post": "yes"})
    assert response.status_code == 302
    assert calls == [["demo-laptop", "old-prototype"]] or calls == [["old-prototype", "demo-laptop"]]
    assert not VirtualKey.objects.filter(pk__in=doomed).exists()
    single = key("o1-experiments")
    admin_client.post(f"/admin/accounts/virtualkey/{single.pk}/delete/", {"post": "yes"})
    assert calls[-1] == ["o1-experiments"]


# --- "who can call this?" and "try it": the relay's answer, word for word --------------------------------------------
@pytest.mark.parametrize(
    ("key_fields", "team_fields", "model", "expected_code"),
    [
        ({"models": ["beta-models"]}, None, "mock-gpt", None),
        ({"models": ["beta-models"]}, None, "gpt-4o", "model_not_allowed"),
        ({"models": ["all-team-models"]}, {"models": ["mock-gpt"]}, "gpt-4o", "model_not_allowed"),
        ({"models": []}, None, "no-such-model", "model_not_found"),
        ({"models": ["default-models"]}, None, "openai/o1-mini", "model_not_allowed"),
        ({"models": ["mock-gpt"], "blocked": True}, None, "mock-gpt", "blocked_key"),
        ({"models": ["mock-gpt"]}, {"models": ["mock-gpt"], "blocked": True}, "mock-gpt", "blocked_team"),
    ],
)
def test_try_it_answers_like_the_relay(admin_client, client, seeded, key_fields, team_fields, model, expected_code):
    team_id = services.team_create(team_alias="try-team", **team_fields).team_id if team_fields else None
    row, plaintext = services.key_generate(key_alias="try-key", team_id=team_id, **key_fields)
    response = admin_client.get(f"/admin/accounts/virtualkey/{row.pk}/change/", {"try_model": model})
    result = response.context["try_result"]
    answer = relay(client, plaintext, model)
    if expected_code is None:
        assert result.allowed and result.route == model
        assert answer.status_code == 200
        assert f"served by route <code>{model}</code>" in response.content.decode()
        return
    error = json.loads(answer.content)["error"]
    assert not result.allowed
    assert (result.status, result.type, result.code, result.message) == (
        answer.status_code,
        error["type"],
        error["code"],
        error["message"],
    )
    assert error["code"] == expected_code


def test_expired_key_try_it_says_expired(admin_client, seeded):
    row = key("demo-laptop")
    result = admin_client.get(f"/admin/accounts/virtualkey/{row.pk}/change/", {"try_model": "mock-gpt"}).context[
        "try_result"
    ]
    assert (result.status, result.code) == (401, "expired_key")


def test_who_can_call_expands_groups_and_wildcards_intersected_with_the_team(admin_client, seeded):
    row = key("research-notebooks")  # all-team-models in ml-research: beta-models, gpt-4o, default-models
    context = admin_client.get(f"/admin/accounts/virtualkey/{row.pk}/change/").context
    assert context["who_can_call"] == {
        "models": ["mock-gpt", "gpt-4o", "gpt-4", "fireworks-llama-v3-70b-instruct"],
        "patterns": ["openai/*"],
    }
    assert context["defers_to_team"] is True
