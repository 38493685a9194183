"""What survives a restart, what is (not) stored, and how fast operator changes reach the hot path's caches.

Two `modelgate serve` processes (A and B, one worker each, MODELGATE_AUTH_CACHE_TTL=2) share one fresh database. The
master key comes from the config as `os.environ/...`, as does the fireworks deployment's key.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.conftest import guide_config
from tests.e2e.conftest import E2E_MASTER_KEY, GatewayProcess
from tests.e2e.support import assert_error, chat_body, headers_of, poll, post_chat

pytestmark = pytest.mark.e2e

TTL = 2.0
MASTER_FROM_CONFIG = """
general_settings:
  master_key: os.environ/E2E_CONFIG_MASTER_KEY
"""


@pytest.fixture(scope="module")
def config_path(e2e_dir, e2e_upstream):
    path = e2e_dir / "persistence-config.yaml"
    path.write_text(guide_config(e2e_upstream.url) + MASTER_FROM_CONFIG)
    return path


def _process(e2e_db, e2e_dir, config_path) -> GatewayProcess:
    env = {
        "MODELGATE_MASTER_KEY": "",  # so the config's general_settings.master_key is the one in force
        "E2E_CONFIG_MASTER_KEY": E2E_MASTER_KEY,
        "FIREWORKS": "fw-secret-from-env",
        "MODELGATE_AUTH_CACHE_TTL": str(TTL),
    }
    return GatewayProcess(database_url=e2e_db.url, config_path=config_path, data_dir=e2e_dir, env=env, workers=1)


@pytest.fixture(scope="module")
def gateway_a(e2e_db, e2e_dir, config_path):
    process = _process(e2e_db, e2e_dir, config_path).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gateway_b(e2e_db, e2e_dir, config_path, gateway_a):
    process = _process(e2e_db, e2e_dir, config_path).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def upstream(e2e_upstream):
    e2e_upstream.reset()
    return e2e_upstream


def new_key(gateway: GatewayProcess, **body) -> str:
    response = gateway.admin("/key/generate", body)
    assert response.status_code == 200, response.text
    return response.json()["key"]


def new_team(gateway: GatewayProcess, **body) -> dict:
    response = gateway.admin("/team/new", body)
    assert response.status_code == 200, response.text
    return response.json()


# --- restarts and storage -----------------------------------------------------------------------------------------
LOADED = re.compile(r"modelgate: loaded .*: (\d+) created, (\d+) updated, (\d+) removed, (\d+) unchanged")


def test_a_key_survives_a_restart_and_reloading_the_config_changes_nothing(gateway_a, upstream):
    key = new_key(gateway_a, models=["gpt-4"], key_alias="survivor")
    assert post_chat(gateway_a.url, key, chat_body("gpt-4")).status_code == 200
    routes_before = gateway_a.admin("/model/info", method="GET").json()["data"]
    assert len(routes_before) == 8

    gateway_a.restart()

    response = post_chat(gateway_a.url, key, chat_body("gpt-4"))
    assert response.status_code == 200, response.text
    assert upstream.last["body"]["model"] == "fake"
    assert_error(
        post_chat(gateway_a.url, key, chat_body("gpt-4o")), 403, "key_model_access_denied", "model_not_allowed"
    )
    info = gateway_a.admin("/key/info", method="GET", key=key)
    assert info.status_code == 200 and info.json()["info"]["key_alias"] == "survivor"

    assert gateway_a.admin("/model/info", method="GET").json()["data"] == routes_before
    loads = LOADED.findall(gateway_a.log())
    assert len(loads) == 2, gateway_a.log()
    assert loads[0] == ("8", "0", "0", "0")  # first start: the fresh database gets every deployment
    assert loads[1] == ("0", "0", "0", "8")  # the same file again: nothing to do


def test_the_database_holds_neither_the_plaintext_key_nor_resolved_secrets(gateway_a, e2e_db, upstream):
    key = new_key(gateway_a, models=["beta-models"])
    response = post_chat(gateway_a.url, key, chat_body("fireworks-llama-v3-70b-instruct"))
    assert response.status_code == 200, response.text
    assert headers_of(upstream.last)["authorization"] == "Bearer fw-secret-from-env"  # resolved when called

    dump = e2e_db.all_text()
    assert hashlib.sha256(key.encode()).hexdigest() in dump
    assert key not in dump
    assert key[3:] not in dump  # not even without its prefix
    assert E2E_MASTER_KEY not in dump
    assert "fw-secret-from-env" not in dump
    assert "os.environ/FIREWORKS" in dump  # what the config said is stored, not what it resolved to


def test_the_master_key_from_the_config_is_the_one_in_force(gateway_a):
    assert gateway_a.admin("/team/list", method="GET").status_code == 200
    response = post_chat(gateway_a.url, "os.environ/E2E_CONFIG_MASTER_KEY", chat_body("gpt-4"))
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_a_second_process_on_the_same_database_loads_nothing_new(gateway_b):
    loads = LOADED.findall(gateway_b.log())
    assert loads == [("0", "0", "0", "8")], gateway_b.log()
    assert len(gateway_b.admin("/model/info", method="GET").json()["data"]) == 8


# --- operator changes and the caches ------------------------------------------------------------------------------
def _setup(change: str, gateway: GatewayProcess) -> tuple[str, dict | None]:
    """A key that may call mock-gpt, and for the team change the team it belongs to."""
    if change == "team models":
        team = new_team(gateway, models=["gpt-4", "mock-gpt"])
        return new_key(gateway, team_id=team["team_id"]), team
    return new_key(gateway, models=["mock-gpt"]), None


def _apply(change: str, gateway: GatewayProcess, key: str, team: dict | None) -> None:
    if change == "block":
        response = gateway.admin("/key/block", {"key": key})
    elif change == "delete":
        response = gateway.admin("/key/delete", {"keys": [key]})
    else:
        response = gateway.admin("/team/update", {"team_id": team["team_id"], "models": ["gpt-4"]})
    assert response.status_code == 200, response.text


# change -> (status, type, code) of the refusal once the change is seen
REFUSALS = {
    "block": (401, "authentication_error", "blocked_key"),
    "delete": (401, "authentication_error", "invalid_api_key"),
    "team models": (403, "team_model_access_denied", "model_not_allowed"),
}


@pytest.mark.parametrize("change", REFUSALS)
def test_a_change_takes_effect_on_the_next_request_in_the_same_process(gateway_a, change):
    key, team = _setup(change, gateway_a)
    for _ in range(3):  # warm this process's cache
        assert post_chat(gateway_a.url, key, chat_body("mock-gpt")).status_code == 200
    _apply(change, gateway_a, key, team)
    assert_error(post_chat(gateway_a.url, key, chat_body("mock-gpt")), *REFUSALS[change])


def test_unblocking_takes_effect_on_the_next_request_in_the_same_process(gateway_a):
    key = new_key(gateway_a, models=["mock-gpt"], blocked=True)
    assert_error(post_chat(gateway_a.url, key, chat_body("mock-gpt")), *REFUSALS["block"])
    assert gateway_a.admin("/key/unblock", {"key": key}).status_code == 200
    assert post_chat(gateway_a.url, key, chat_body("mock-gpt")).status_code == 200


@pytest.mark.parametrize("change", REFUSALS)
def test_a_change_made_on_another_process_takes_effect_within_the_ttl(gateway_a, gateway_b, change):
    key, team = _setup(change, gateway_a)
    for _ in range(3):  # warm B's cache
        assert post_chat(gateway_b.url, key, chat_body("mock-gpt")).status_code == 200
    _apply(change, gateway_a, key, team)
    status, type_, code = REFUSALS[change]
    # A made the change, so A refuses at once; B may still serve the key from its cache, but only until the TTL
    assert_error(post_chat(gateway_a.url, key, chat_body("mock-gpt")), status, type_, code)

    def refused_by_b() -> bool:
        response = post_chat(gateway_b.url, key, chat_body("mock-gpt"))
        if response.status_code == 200:
            return False
        assert_error(response, status, type_, code)
        return True

    took = poll(refused_by_b, seconds=TTL + 1)
    assert took is not None, f"B still served the key {TTL + 1} s after the change"
