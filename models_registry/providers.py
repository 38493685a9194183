"""Providers modelgate relays to, and how a LiteLLM `model` string names one.

Every provider here speaks OpenAI's chat-completions API; each has its public default `api_base`. A prefix not listed
here works too when the deployment gives an `api_base` (it is then treated as OpenAI-compatible).
"""

from __future__ import annotations

from dataclasses import dataclass

# Public OpenAI-compatible endpoints (None: the deployment must give api_base).
DEFAULT_API_BASES: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "text-completion-openai": "https://api.openai.com/v1",
    "custom_openai": None,
    "openai_like": None,
    "azure": None,
    "azure_ai": None,
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "together_ai": "https://api.together.xyz/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "perplexity": "https://api.perplexity.ai",
    "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "cerebras": "https://api.cerebras.ai/v1",
    "nvidia_nim": "https://integrate.api.nvidia.com/v1",
    "sambanova": "https://api.sambanova.ai/v1",
    "anyscale": "https://api.endpoints.anyscale.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "anthropic": "https://api.anthropic.com/v1",
    "hosted_vllm": "http://localhost:8000/v1",
    "vllm": "http://localhost:8000/v1",
    "ollama": "http://localhost:11434/v1",
    "ollama_chat": "http://localhost:11434/v1",
    "lm_studio": "http://localhost:1234/v1",
    "llamafile": "http://localhost:8080/v1",
}

# Providers whose APIs are not OpenAI's: their deployments load (with a warning) and answer 501 when called.
UNSUPPORTED_PROVIDERS = frozenset(
    {
        "bedrock",
        "bedrock_converse",
        "vertex_ai",
        "vertex_ai_beta",
        "sagemaker",
        "cohere",
        "replicate",
        "huggingface",
        "watsonx",
        "cloudflare",
        "databricks",
        "predibase",
        "ai21",
        "aleph_alpha",
        "palm",
        "petals",
        "baseten",
    }
)

# Providers known to honour `stream_options.include_usage` (usage in the last streamed chunk). For the others the
# relay counts what was streamed instead.
STREAM_USAGE_PROVIDERS = frozenset(
    {
        "openai",
        "azure",
        "fireworks_ai",
        "together_ai",
        "groq",
        "deepseek",
        "hosted_vllm",
        "vllm",
        "xai",
        "openrouter",
        "deepinfra",
        "cerebras",
        "ollama",
        "ollama_chat",
        "lm_studio",
        "custom_openai",
        "openai_like",
    }
)

MOCK = "mock"
AZURE = "azure"
AZURE_DEFAULT_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class ProviderModel:
    provider: str
    model: str  # the name sent upstream (may still hold `*` for a wildcard deployment)


def split_provider(model: str) -> ProviderModel:
    """`openai/gpt-4` -> (openai, gpt-4); `gpt-4` -> (openai, gpt-4); `hosted_vllm/org/m` -> (hosted_vllm, org/m)."""
    prefix, sep, rest = model.partition("/")
    if not sep:
        return ProviderModel("openai", model)
    return ProviderModel(prefix, rest)


def is_known(provider: str) -> bool:
    return provider in DEFAULT_API_BASES or provider in UNSUPPORTED_PROVIDERS or provider == MOCK
