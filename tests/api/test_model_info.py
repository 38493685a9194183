"""GET /model/info (and /v1/model/info): the deployments behind every route, never a provider secret."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error

pytestmark = pytest.mark.django_db

GUIDE_MODEL_NAMES = [
    "gpt-3.5-turbo",
    "gpt-4",
    "gpt-4o",
    "azure-gpt-3.5",
    "fireworks-llama-v3-70b-instruct",
    "openai/*",
    "openai/o1-*",
    "mock-gpt",
]


def _by_name(response) -> dict:
    return {entry["model_name"]: entry for entry in response.data["data"]}


@pytest.mark.parametrize("path", ["/model/info", "/v1/model/info"])
def test_it_lists_every_deployment_with_its_access_groups(api, guide_routes, path):
    response = api.get(path)
    assert response.status_code == 200, response.content
    assert [entry["model_name"] for entry in response.data["data"]] == GUIDE_MODEL_NAMES
    entries = _by_name(response)
    assert entries["gpt-4"]["model_info"]["access_groups"] == ["beta-models"]
    assert entries["fireworks-llama-v3-70b-instruct"]["model_info"]["access_groups"] == ["beta-models"]
    assert entries["openai/*"]["model_info"]["access_groups"] == ["default-models"]
    assert entries["openai/o1-*"]["model_info"]["access_groups"] == ["restricted-models"]
    assert entries["gpt-3.5-turbo"]["model_info"]["access_groups"] == []
    assert entries["gpt-4"]["litellm_params"]["model"] == "openai/fake"
    assert entries["azure-gpt-3.5"]["litellm_params"]["api_version"] == "2024-10-21"
    assert all(entry["model_info"]["id"] for entry in response.data["data"])


@pytest.mark.parametrize("path", ["/model/info", "/v1/model/info"])
def test_it_never_shows_a_literal_provider_key(api, guide_routes, path):
    body = api.get(path).content.decode()
    assert "sk-provider-secret-xyz" not in body
    assert "provider-secret" not in body
    assert "azure-secret" not in body
    assert '"fake-key"' not in body


def test_it_shows_an_environment_reference_as_is_and_never_its_value(api, guide_routes, monkeypatch):
    monkeypatch.setenv("FIREWORKS", "fw-secret-from-env")
    response = api.get("/model/info")
    assert response.status_code == 200, response.content
    params = _by_name(response)["fireworks-llama-v3-70b-instruct"]["litellm_params"]
    assert params["api_key"] == "os.environ/FIREWORKS"
    assert "fw-secret-from-env" not in response.content.decode()


def test_a_deployment_without_a_key_shows_none(api, guide_routes):
    assert _by_name(api.get("/model/info"))["mock-gpt"]["litellm_params"]["api_key"] is None


def test_it_filters_by_deployment_id(api, guide_routes):
    gpt4_id = _by_name(api.get("/model/info"))["gpt-4"]["model_info"]["id"]
    response = api.get("/model/info", {"litellm_model_id": gpt4_id})
    assert response.status_code == 200, response.content
    assert [entry["model_name"] for entry in response.data["data"]] == ["gpt-4"]
    assert api.get("/model/info", {"litellm_model_id": "no-such-id"}).data == {"data": []}


def test_it_is_empty_without_a_config(api, db):
    response = api.get("/model/info")
    assert response.status_code == 200, response.content
    assert response.data == {"data": []}


def test_a_virtual_key_may_not_read_model_info(anon, guide_routes, make_key):
    _, plaintext = make_key()
    response = anon.get("/model/info", key=plaintext)
    assert_error(response, 403, "admin_only")
    assert "sk-provider-secret-xyz" not in response.content.decode()
