"""Fixtures for spend, budgets and rate limits: routes with known prices, and both counter stores."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.limits.support import wait_for_fresh_window

LIMITS_CONFIG = """
model_list:
  - model_name: priced
    litellm_params: {model: openai/priced-model, api_key: fake-key, api_base: "{base}"}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: free
    litellm_params: {model: openai/free-model, api_key: fake-key, api_base: "{base}"}
    model_info: {input_cost_per_token: 0, output_cost_per_token: 0}
  - model_name: unpriced
    litellm_params: {model: openai/no-price-known, api_key: fake-key, api_base: "{base}"}
  - model_name: mini
    litellm_params: {model: openai/gpt-4o-mini, api_key: fake-key, api_base: "{base}"}
  - model_name: mini-own-price
    litellm_params:
      {model: openai/gpt-4o-mini, api_key: fake-key, api_base: "{base}", input_cost_per_token: 0.5,
       output_cost_per_token: 0.25}
  - model_name: mistral-x
    litellm_params: {model: mistral/x, api_key: fake-key, api_base: "{base}"}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: mock-priced
    litellm_params: {model: mock/mock-priced}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: broken
    litellm_params: {model: openai/error-500, api_key: fake-key, api_base: "{base}"}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: "wild/*"
    litellm_params: {model: "openai/*", api_key: fake-key, api_base: "{base}"}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: pool
    litellm_params: {model: openai/pool-a, api_key: fake-key, api_base: "{base}", rpm: 1}
    model_info: {id: pool-a, input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: pool
    litellm_params: {model: openai/pool-b, api_key: fake-key, api_base: "{base}", rpm: 1}
    model_info: {id: pool-b, input_cost_per_token: 1.0, output_cost_per_token: 2.0}
  - model_name: capped
    litellm_params: {model: openai/capped-model, api_key: fake-key, api_base: "{base}", tpm: 14}
    model_info: {input_cost_per_token: 1.0, output_cost_per_token: 2.0}
"""


@pytest.fixture
def limits_routes(load_config_text, fake_upstream):
    """The routes above, pointed at the running fake upstream; returns the upstream (its `.requests`, `.last`)."""
    load_config_text(LIMITS_CONFIG.replace("{base}", fake_upstream.url))
    return fake_upstream


@pytest.fixture(params=["database", "redis"])
def counter_store(request, settings):
    """Run the test once on the database counters and once on Redis (a prefix of its own, deleted afterwards)."""
    if request.param == "database":
        settings.REDIS_URL = ""
        yield "database"
        return
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"test-{uuid.uuid4().hex}:"
    settings.REDIS_URL = url
    settings.MODELGATE_REDIS_PREFIX = prefix
    yield "redis"
    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()


@pytest.fixture
def fresh_window():
    """Start the test with at least 5 seconds left in the current one-minute rate window."""
    wait_for_fresh_window()
