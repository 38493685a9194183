"""Deployments and access groups in the operator console: a provider key is never put into a page; who can reach a
route is asked of accounts.access, per key."""

from __future__ import annotations

import json

import pytest

from accounts import services
from models_registry.models import AccessGroup, Deployment
from tests.admin.conftest import deployment

pytestmark = pytest.mark.django_db

SECRET = "sk-provider-literal-secret-9f8e7d6c"


def deployment_form(row: Deployment, **overrides) -> dict:
    data = {
        "model_name": row.model_name,
        "litellm_model": row.litellm_model,
        "api_base": row.api_base,
        "api_key": "",
        "api_version": row.api_version,
        "access_groups": [g.pk for g in row.access_groups.all()] if row.pk else [],
        "timeout": row.timeout or "",
        "weight": row.weight,
        "rpm": row.rpm or "",
        "tpm": row.tpm or "",
        "input_cost_per_token": row.input_cost_per_token if row.input_cost_per_token is not None else "",
        "output_cost_per_token": row.output_cost_per_token if row.output_cost_per_token is not None else "",
        "mock_response": row.mock_response or "",
        "model_info": "{}",
        "position": row.position,
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.fixture
def literal(seeded) -> Deployment:
    row = Deployment.objects.create(
        model_name="partner-llm", litellm_model="openai/partner-llm", api_base="https://llm.partner.example/v1",
        api_key=SECRET,
    )  # fmt: skip
    row.access_groups.add(AccessGroup.objects.get(name="beta-models"))
    return row


def test_a_literal_provider_key_is_never_rendered(admin_client, literal):
    for url in ("/admin/models_registry/deployment/", f"/admin/models_registry/deployment/{literal.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert SECRET not in html
        assert SECRET[3:-2] not in html  # not even between the mask's ends
        assert "sk-...6c" in html  # models_registry.api.masked_secret


def test_leaving_the_key_empty_keeps_it_typing_replaces_it_and_clearing_removes_it(admin_client, literal):
    url = f"/admin/models_registry/deployment/{literal.pk}/change/"
    assert admin_client.post(url, deployment_form(literal, weight="2")).status_code == 302
    literal.refresh_from_db()
    assert (literal.api_key, literal.weight) == (SECRET, 2.0)
    admin_client.post(url, deployment_form(literal, api_key="os.environ/PARTNER_KEY"))
    literal.refresh_from_db()
    assert literal.api_key == "os.environ/PARTNER_KEY"
    html = admin_client.get(url).content.decode()
    assert 'value="os.environ/PARTNER_KEY"' in html  # a variable name is not a secret
    assert 'name="clear_api_key"' not in html
    admin_client.post(url, deployment_form(literal, api_key="sk-another-literal-key-000"))
    admin_client.post(url, deployment_form(literal, clear_api_key="on"))
    literal.refresh_from_db()
    assert literal.api_key == ""


def test_provider_key_resolution_follows_the_environment(admin_client, seeded, monkeypatch):
    url = f"/admin/models_registry/deployment/{deployment('fireworks-llama-v3-70b-instruct').pk}/change/"
    monkeypatch.delenv("FIREWORKS", raising=False)
    assert 'os.environ/FIREWORKS</code> <span class="mg-bad">not set</span>' in admin_client.get(url).content.decode()
    monkeypatch.setenv("FIREWORKS", "fw-real-secret")
    html = admin_client.get(url).content.decode()
    assert 'os.environ/FIREWORKS</code> <span class="mg-quiet">set</span>' in html
    assert "fw-real-secret" not in html


def test_who_can_reach_a_wildcard_route_uses_the_most_specific_route(admin_client, seeded):
    services.key_generate(key_alias="defaults-only", models=["default-models"])
    services.key_generate(key_alias="o1-only", models=["restricted-models"])
    wildcard = admin_client.get(f"/admin/models_registry/deployment/{deployment('openai/*').pk}/change/")
    keys = [row.key_alias for row, _, _ in wildcard.context["reach"]["keys"]]
    assert "defaults-only" in keys and "o1-only" not in keys
    o1 = admin_client.get(f"/admin/models_registry/deployment/{deployment('openai/o1-*').pk}/change/")
    keys = [row.key_alias for row, _, _ in o1.context["reach"]["keys"]]
    assert "o1-only" in keys and "defaults-only" not in keys
    assert "o1-experiments" in keys and "platform-tools" in keys  # restricted-models; an unrestricted team's key


def test_deployment_added_in_the_admin_is_routable_at_once(admin_client, client, seeded):
    data = deployment_form(
        Deployment(model_name="canned", litellm_model="mock/canned", mock_response="canned answer"),
        access_groups=[AccessGroup.objects.get(name="beta-models").pk],
    )
    assert admin_client.post("/admin/models_registry/deployment/add/", data).status_code == 302
    made = Deployment.objects.get(model_name="canned")
    assert made.source == Deployment.SOURCE_ADMIN
    _, plaintext = services.key_generate(models=["beta-models"])
    answer = client.post(
        "/v1/chat/completions",
        json.dumps({"model": "canned", "messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plaintext}",
    )
    assert answer.status_code == 200
    assert json.loads(answer.content)["choices"][0]["message"]["content"] == "canned answer"
