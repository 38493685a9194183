"""The `modelgate` command and settings, run as a user runs them: in a subprocess, on a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import E2EDatabase, GatewayProcess

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
model_list:
  - model_name: mock-gpt
    litellm_params: {model: mock/mock-gpt, mock_response: "pong"}
general_settings:
  master_key: os.environ/MY_GATEWAY_MASTER
"""


def run(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    full_env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}", MODELGATE_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_a_bad_config_naming_the_entry_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: gpt-4\n    litellm_params: {model: openai/gpt-4, rpm: lots}\n")
    result = run(["serve", "--config", str(bad), "--port", "1"], tmp_path)
    assert result.returncode == 1
    assert "model_list[0] (model_name 'gpt-4')" in result.stderr
    assert "litellm_params.rpm" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_config_file(tmp_path):
    result = run(["serve", "--config", str(tmp_path / "nope.yaml"), "--port", "1"], tmp_path)
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_serve_refuses_a_master_key_variable_that_is_not_set(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(GOOD)
    result = run(["serve", "--config", str(config), "--port", "1"], tmp_path, MODELGATE_MASTER_KEY="")
    assert result.returncode == 1
    assert "MY_GATEWAY_MASTER" in result.stderr


def test_load_config_is_idempotent_and_reports_unsupported_settings(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(GOOD + "router_settings:\n  routing_strategy: latency-based-routing\n")
    first = run(["load-config", str(config)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1 created, 0 updated, 0 removed, 0 unchanged" in first.stdout
    assert "router_settings" in first.stderr and "routing_strategy" in first.stderr
    second = run(["load-config", str(config)], tmp_path)
    assert "0 created, 0 updated, 0 removed, 1 unchanged" in second.stdout


def test_a_bad_environment_value_stops_the_start_naming_the_variable(tmp_path):
    result = run(["manage", "check"], tmp_path, DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG" in result.stderr


@pytest.mark.parametrize(("name", "value"), [("MODELGATE_KEEP_ALIVE", "75s"), ("MODELGATE_WORKERS", "0")])
def test_a_bad_number_for_serve_stops_it_naming_the_variable(tmp_path, name, value):
    result = run(["serve", "--port", "1"], tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"environment variable {name} must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_serve_takes_the_master_key_from_the_config_through_the_environment(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(GOOD)
    database = E2EDatabase(tmp_path)
    gateway = GatewayProcess(
        database_url=database.url,
        config_path=config,
        data_dir=tmp_path,
        workers=1,
        env={"MODELGATE_MASTER_KEY": "", "MY_GATEWAY_MASTER": "sk-from-the-environment"},
    )
    try:
        gateway.start()
        headers = {"Authorization": "Bearer sk-from-the-environment"}
        created = requests.post(gateway.url + "/key/generate", json={}, headers=headers, timeout=10)
        assert created.status_code == 200, created.text
        assert requests.get(gateway.url + "/health/liveliness", timeout=5).json() == {"status": "healthy"}
        denied = requests.post(
            gateway.url + "/key/generate", json={}, headers={"Authorization": "Bearer sk-1234"}, timeout=10
        )
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
        assert "sk-from-the-environment" not in database.all_text()
    finally:
        gateway.stop()
        database.drop()


@pytest.mark.e2e
def test_the_quick_start_config_answers_offline_with_the_documented_master_key(tmp_path):
    """What `make demo` serves: examples/config.yaml, SQLite, master key sk-1234, mock-gpt answering offline."""
    database = E2EDatabase(tmp_path)
    gateway = GatewayProcess(
        database_url=database.url,
        config_path=ROOT / "examples" / "config.yaml",
        data_dir=tmp_path,
        workers=1,
        env={"MODELGATE_MASTER_KEY": ""},
    )
    try:
        gateway.start()
        reply = requests.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]},
            headers={"Authorization": "Bearer sk-1234"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "Hello"
        assert "warning:" not in gateway.log()  # the example config loads without warnings
    finally:
        gateway.stop()
        database.drop()
