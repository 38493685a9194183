"""Where each provider's requests go (pure: no request is sent)."""

from __future__ import annotations

import pytest

from gateway.errors import DeploymentMisconfiguredError, ProviderNotSupportedError
from gateway.upstream import endpoint
from models_registry.routing import DeploymentSpec


def spec(model: str, **fields) -> DeploymentSpec:
    return DeploymentSpec(id="d1", model_name="m", model=model, **fields)


@pytest.mark.parametrize(
    ("model", "url"),
    [
        ("openai/gpt-4o", "https://api.openai.com/v1/chat/completions"),
        ("gpt-4o", "https://api.openai.com/v1/chat/completions"),
        ("fireworks_ai/accounts/fireworks/models/x", "https://api.fireworks.ai/inference/v1/chat/completions"),
        ("together_ai/meta/llama", "https://api.together.xyz/v1/chat/completions"),
        ("groq/llama3-8b", "https://api.groq.com/openai/v1/chat/completions"),
        ("mistral/mistral-large", "https://api.mistral.ai/v1/chat/completions"),
        ("deepseek/deepseek-chat", "https://api.deepseek.com/v1/chat/completions"),
        ("hosted_vllm/org/model", "http://localhost:8000/v1/chat/completions"),
        ("ollama/llama3", "http://localhost:11434/v1/chat/completions"),
    ],
)
def test_each_openai_compatible_provider_has_its_public_default(model, url):
    assert endpoint(spec(model, api_key="k"), "x")[0] == url


def test_api_base_overrides_the_default_and_any_prefix_works_with_it():
    url, headers = endpoint(spec("my_company_llm/model-a", api_base="http://10.0.0.5:9000/v1/", api_key="k"), "model-a")
    assert url == "http://10.0.0.5:9000/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k"


def test_an_unknown_prefix_without_api_base_is_a_clear_operator_error():
    with pytest.raises(DeploymentMisconfiguredError, match="api_base"):
        endpoint(spec("my_company_llm/model-a"), "model-a")


def test_no_authorization_header_without_a_key():
    _, headers = endpoint(spec("ollama/llama3"), "llama3")
    assert "Authorization" not in headers


def test_azure_uses_its_deployment_path_version_and_api_key_header():
    url, headers = endpoint(spec("azure/gpt-35", api_base="https://r.openai.azure.com", api_key="az"), "gpt-35")
    assert url == "https://r.openai.azure.com/openai/deployments/gpt-35/chat/completions?api-version=2024-10-21"
    assert headers["api-key"] == "az"
    assert "Authorization" not in headers


def test_api_base_and_key_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_BASE", "http://127.0.0.1:7777/v1")
    monkeypatch.setenv("MY_KEY", "from-env")
    url, headers = endpoint(spec("openai/x", api_base="os.environ/MY_BASE", api_key="os.environ/MY_KEY"), "x")
    assert url == "http://127.0.0.1:7777/v1/chat/completions"
    assert headers["Authorization"] == "Bearer from-env"


def test_a_provider_that_does_not_speak_openai_answers_501():
    with pytest.raises(ProviderNotSupportedError) as raised:
        endpoint(spec("bedrock/anthropic.claude-v2"), "anthropic.claude-v2")
    assert raised.value.status == 501
