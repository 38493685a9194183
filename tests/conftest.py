"""Shared fixtures: the master key, cache hygiene, factories for teams, keys and deployments, an API client."""

from __future__ import annotations

import json
import os

import pytest

from accounts import services
from accounts.auth import invalidate_grants
from gateway import accounting
from models_registry.config import apply_config, parse_config
from models_registry.registry import invalidate_routes

MASTER_KEY = "sk-master-test-0123456789"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A PostgreSQL test database of this run's own (test_<name>_<pid>), so that runs side by side on one server
    (developers, CI, xdist workers) never drop each other's database."""
    from django.conf import settings

    for config in settings.DATABASES.values():
        if config["ENGINE"] == "django.db.backends.postgresql":
            config.setdefault("TEST", {})["NAME"] = f"test_{config['NAME']}_{os.getpid()}"


@pytest.fixture(autouse=True)
def _master_key_and_fresh_caches(settings):
    """Every test sees the same master key and starts with empty hot-path caches (a rolled-back test
    transaction sends no signals, so a cache could otherwise outlive the rows it was built from)."""
    settings.MODELGATE_MASTER_KEY = MASTER_KEY
    settings.MODELGATE_CONFIG = ""
    settings.MODELGATE_ACCOUNTING = "manual"  # log rows wait for accounting.flush() instead of a thread
    settings.REDIS_URL = ""
    invalidate_grants()
    invalidate_routes()
    accounting.writer.discard()
    yield
    invalidate_grants()
    invalidate_routes()
    accounting.writer.discard()


@pytest.fixture
def master_key() -> str:
    return MASTER_KEY


class Api:
    """Django test client calls with a bearer key and JSON bodies; responses get `.data` (parsed JSON)."""

    def __init__(self, client, key: str | None):
        self.client = client
        self.key = key

    def _headers(self, key):
        key = self.key if key is ... else key
        return {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}

    def post(self, path: str, body=None, *, key=..., raw: bytes | str | None = None, **extra):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        response = self.client.post(path, data=data, content_type="application/json", **self._headers(key), **extra)
        return _with_data(response)

    def get(self, path: str, params: dict | None = None, *, key=..., **extra):
        return _with_data(self.client.get(path, params or {}, **self._headers(key), **extra))


def _with_data(response):
    try:
        response.data = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
    except ValueError:
        response.data = None
    return response


@pytest.fixture
def api(client) -> Api:
    """Calls with the master key."""
    return Api(client, MASTER_KEY)


@pytest.fixture
def anon(client) -> Api:
    """Calls without any key (pass key=... per call)."""
    return Api(client, None)


@pytest.fixture
def load_config_text(db):
    """Load a config.yaml given as text, as `modelgate serve --config` would."""

    def load(text: str):
        return apply_config(parse_config(text, source="test-config.yaml"))

    return load


@pytest.fixture
def make_team(db):
    def make(**fields):
        return services.team_create(**fields)

    return make


@pytest.fixture
def make_key(db):
    """make_key(models=[...], team_id=...) -> (VirtualKey row, plaintext)."""

    def make(**fields):
        return services.key_generate(**fields)

    return make


GUIDE_CONFIG = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params: {model: openai/gpt-3.5-turbo, api_key: sk-provider-secret-xyz, api_base: "{base}"}
  - model_name: gpt-4
    litellm_params: {model: openai/fake, api_key: fake-key, api_base: "{base}"}
    model_info: {access_groups: ["beta-models"]}
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: sk-provider-secret-xyz, api_base: "{base}"}
  - model_name: azure-gpt-3.5
    litellm_params: {model: azure/chatgpt-v-2, api_key: azure-secret, api_base: "{base}", api_version: "2024-10-21"}
  - model_name: fireworks-llama-v3-70b-instruct
    litellm_params:
      model: fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct
      api_key: os.environ/FIREWORKS
      api_base: "{base}"
    model_info: {access_groups: ["beta-models"]}
  - model_name: openai/*
    litellm_params: {model: openai/*, api_key: sk-provider-secret-xyz, api_base: "{base}"}
    model_info: {access_groups: ["default-models"]}
  - model_name: openai/o1-*
    litellm_params: {model: openai/o1-*, api_key: sk-provider-secret-xyz, api_base: "{base}"}
    model_info: {access_groups: ["restricted-models"]}
  - model_name: mock-gpt
    litellm_params: {model: mock/mock-gpt}
"""


def guide_config(base: str = "http://127.0.0.1:9/v1") -> str:
    """The models of LiteLLM's "Control Model Access" guide, all pointed at `base`, plus an offline mock model."""
    return GUIDE_CONFIG.replace("{base}", base)


@pytest.fixture
def guide_routes(load_config_text):
    """The guide's models loaded into the database (upstream unreachable: port 9)."""
    return load_config_text(guide_config())


@pytest.fixture(scope="session")
def upstream():
    """A real local fake OpenAI upstream (tests/fake_upstream.py), shared by the session; reset per test."""
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fake_upstream(upstream):
    upstream.reset()
    upstream.slow_seconds = 3.0
    upstream.chunk_delay = 0.0
    return upstream


@pytest.fixture
def guide_upstream_routes(load_config_text, fake_upstream, monkeypatch):
    """The guide's models pointed at the running fake upstream."""
    monkeypatch.setenv("FIREWORKS", "fw-secret-from-env")
    load_config_text(guide_config(fake_upstream.url))
    return fake_upstream
