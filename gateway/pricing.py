"""What a request costs: usage tokens times per-token prices (SPEC §5).

A deployment's own prices (config `input_cost_per_token` / `output_cost_per_token`, editable in admin) win; otherwise
the built-in table below prices well-known models by the name sent upstream. USD per token.
"""

from __future__ import annotations

from dataclasses import dataclass

from models_registry.routing import DeploymentSpec

_M = 1_000_000

# (input, output) USD per token, from the providers' public price lists.
BUILT_IN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5 / _M, 10 / _M),
    "gpt-4o-2024-08-06": (2.5 / _M, 10 / _M),
    "gpt-4o-2024-11-20": (2.5 / _M, 10 / _M),
    "gpt-4o-mini": (0.15 / _M, 0.6 / _M),
    "gpt-4o-mini-2024-07-18": (0.15 / _M, 0.6 / _M),
    "gpt-4.1": (2 / _M, 8 / _M),
    "gpt-4.1-mini": (0.4 / _M, 1.6 / _M),
    "gpt-4.1-nano": (0.1 / _M, 0.4 / _M),
    "gpt-4-turbo": (10 / _M, 30 / _M),
    "gpt-4": (30 / _M, 60 / _M),
    "gpt-4-32k": (60 / _M, 120 / _M),
    "gpt-3.5-turbo": (0.5 / _M, 1.5 / _M),
    "gpt-3.5-turbo-0125": (0.5 / _M, 1.5 / _M),
    "o1": (15 / _M, 60 / _M),
    "o1-mini": (1.1 / _M, 4.4 / _M),
    "o3": (2 / _M, 8 / _M),
    "o3-mini": (1.1 / _M, 4.4 / _M),
    "o4-mini": (1.1 / _M, 4.4 / _M),
    "deepseek-chat": (0.27 / _M, 1.1 / _M),
    "deepseek-reasoner": (0.55 / _M, 2.19 / _M),
    "mistral-large-latest": (2 / _M, 6 / _M),
    "mistral-small-latest": (0.2 / _M, 0.6 / _M),
    "open-mistral-nemo": (0.15 / _M, 0.15 / _M),
    "llama-3.1-8b-instant": (0.05 / _M, 0.08 / _M),
    "llama-3.3-70b-versatile": (0.59 / _M, 0.79 / _M),
    "accounts/fireworks/models/llama-v3-70b-instruct": (0.9 / _M, 0.9 / _M),
    "accounts/fireworks/models/llama-v3p1-8b-instruct": (0.2 / _M, 0.2 / _M),
    "meta-llama/Llama-3.3-70B-Instruct-Turbo": (0.88 / _M, 0.88 / _M),
}


@dataclass(frozen=True, slots=True)
class Prices:
    input: float | None
    output: float | None

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    @property
    def free(self) -> bool:
        """Both prices set to 0: never refused for budget (SPEC §5)."""
        return self.input == 0 and self.output == 0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * (self.input or 0.0) + completion_tokens * (self.output or 0.0)


def prices_for(deployment: DeploymentSpec, upstream_model: str) -> Prices:
    built_in = BUILT_IN_PRICES.get(upstream_model, (None, None))
    return Prices(
        deployment.input_cost_per_token if deployment.input_cost_per_token is not None else built_in[0],
        deployment.output_cost_per_token if deployment.output_cost_per_token is not None else built_in[1],
    )
