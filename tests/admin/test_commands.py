"""`createadmin` (manage.py and `modelgate createadmin`) and `seed_demo`."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.auth import hash_key
from accounts.models import Team, VirtualKey
from gateway.models import RequestLog
from models_registry.models import Deployment

ROOT = Path(__file__).resolve().parents[2]


def run(command: str, *args, **options) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_createadmin_non_interactive_creates_then_resets(monkeypatch):
    monkeypatch.setenv("MODELGATE_ADMIN_PASSWORD", "first-pass-123")
    assert "Created operator 'ops'" in run("createadmin", username="ops", interactive=False)
    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff and user.check_password("first-pass-123")
    out = run("createadmin", username="ops", password="second-pass-456", interactive=False)
    assert "password reset" in out
    user.refresh_from_db()
    assert user.check_password("second-pass-456")
    assert get_user_model().objects.count() == 1


@pytest.mark.django_db
def test_createadmin_noinput_needs_a_password(monkeypatch):
    monkeypatch.delenv("MODELGATE_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="MODELGATE_ADMIN_PASSWORD"):
        run("createadmin", username="ops", interactive=False)
    assert not get_user_model().objects.exists()


def test_modelgate_createadmin_cli_on_a_fresh_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        MODELGATE_DATA_DIR=str(tmp_path),
        MODELGATE_ADMIN_PASSWORD="cli-pass-789",
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "createadmin", "--username", "operator", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Created operator 'operator'" in result.stdout and "/admin/" in result.stdout
    with sqlite3.connect(tmp_path / "cli.sqlite3") as conn:
        rows = conn.execute("SELECT username, is_superuser, is_staff FROM auth_user").fetchall()
    assert rows == [("operator", 1, 1)]
    env.pop("MODELGATE_ADMIN_PASSWORD")
    refused = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "createadmin", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 1 and "MODELGATE_ADMIN_PASSWORD" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.django_db
def test_serve_preparation_hints_at_createadmin_until_an_operator_exists(capsys, monkeypatch):
    from gateway.cli import _console_hint

    _console_hint("http://127.0.0.1:4000/admin/")
    assert "create a login first: modelgate createadmin" in capsys.readouterr().out
    monkeypatch.setenv("MODELGATE_ADMIN_PASSWORD", "hint-pass-123")
    run("createadmin", username="ops", interactive=False)
    _console_hint("http://127.0.0.1:4000/admin/")
    assert capsys.readouterr().out == ""


@pytest.mark.django_db
def test_seed_demo_fills_every_table_and_prints_working_keys():
    out = run("seed_demo", requests=250, days=14, seed=11)
    assert Team.objects.count() == 5 and VirtualKey.objects.count() == 12
    assert RequestLog.objects.count() == 250
    assert Deployment.objects.filter(source=Deployment.SOURCE_CONFIG).count() == 8
    assert Deployment.objects.filter(source=Deployment.SOURCE_ADMIN, model_name="local-llama").exists()
    statuses = set(RequestLog.objects.values_list("status", flat=True))
    assert 200 in statuses and statuses & {429, 403, 502, 504}
    assert VirtualKey.objects.get(key_alias="old-prototype").blocked
    assert VirtualKey.objects.get(key_alias="demo-laptop").is_expired
    ci = VirtualKey.objects.get(key_alias="research-ci")
    assert ci.spend >= ci.max_budget > 0  # over budget on purpose
    assert VirtualKey.objects.exclude(last_used_at=None).count() >= 10
    printed = dict(line.split() for line in out.splitlines() if line.startswith("  "))
    assert VirtualKey.objects.get(key_alias="helpdesk-bot").key_hash == hash_key(printed["helpdesk-bot"])


@pytest.mark.django_db
def test_seed_demo_refuses_to_seed_twice_unless_reset():
    run("seed_demo", requests=20, seed=1)
    with pytest.raises(CommandError, match="--reset"):
        run("seed_demo", requests=20, seed=1)
    run("seed_demo", requests=30, seed=2, reset=True)
    assert (Team.objects.count(), VirtualKey.objects.count(), RequestLog.objects.count()) == (5, 12, 30)
    assert Deployment.objects.filter(model_name="local-llama").count() == 1
