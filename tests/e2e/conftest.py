"""End-to-end fixtures: the gateway as a real server (`modelgate serve`, gunicorn) on its own database, a real local
fake upstream, and the official openai SDK as the client. Nothing is patched."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import guide_config

E2E_MASTER_KEY = "sk-e2e-master-key-5f2a9c"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """`modelgate serve --config ...` in a subprocess; start, stop, restart on the same database."""

    def __init__(
        self,
        *,
        database_url: str,
        config_path: Path,
        data_dir: Path,
        env: dict | None = None,
        workers: int = 2,
        port: int | None = None,
        args: tuple[str, ...] = (),
    ):
        self.database_url = database_url
        self.config_path = config_path
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.workers = workers
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
        env.update(
            DATABASE_URL=self.database_url,
            MODELGATE_DATA_DIR=str(self.data_dir),
            MODELGATE_MASTER_KEY=E2E_MASTER_KEY,
            # Gateways on one database share their Redis counters too (as on one deployment); others never do.
            MODELGATE_REDIS_PREFIX=f"mg-e2e-{hashlib.sha256(self.database_url.encode()).hexdigest()[:12]}:",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the process's life)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--threads",
                "16",
                *self.args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health/readiness", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gateway did not become ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> GatewayProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin(self, path: str, body: dict | None = None, method: str = "POST", **params) -> requests.Response:
        """A management API call with the master key."""
        headers = {"Authorization": f"Bearer {E2E_MASTER_KEY}"}
        if method == "GET":
            return requests.get(self.url + path, params=params, headers=headers, timeout=10)
        return requests.post(self.url + path, json=body or {}, params=params, headers=headers, timeout=10)


class E2EDatabase:
    """A fresh database for the gateway under test: a new PostgreSQL database when DATABASE_URL points at
    PostgreSQL (as in CI), else a new SQLite file. Dropped afterwards."""

    def __init__(self, tmp_path: Path):
        base = os.environ.get("DATABASE_URL", "")
        self.kind = "postgres" if base.startswith(("postgres://", "postgresql://", "pgsql://")) else "sqlite"
        if self.kind == "postgres":
            import psycopg

            self._admin_url = base
            self.name = f"modelgate_e2e_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            head, _, _ = base.rpartition("/")
            self.url = f"{head}/{self.name}"
        else:
            self.path = tmp_path / "gateway.sqlite3"
            self.url = f"sqlite:///{self.path}"

    def all_text(self) -> str:
        """Every value in every table, as text: to look for things that must not be stored."""
        chunks = []
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.url) as conn:
                tables = [
                    r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
                ]
                for table in tables:
                    for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                        chunks.append(repr(row))
        else:
            import sqlite3

            with sqlite3.connect(self.path) as conn:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                for table in tables:
                    for row in conn.execute(f'SELECT * FROM "{table}"'):
                        chunks.append(repr(row))
        return "\n".join(chunks)

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self._admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def e2e_upstream():
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def e2e_db(e2e_dir):
    database = E2EDatabase(e2e_dir)
    yield database
    database.drop()


@pytest.fixture(scope="module")
def e2e_config(e2e_dir, e2e_upstream) -> Path:
    path = e2e_dir / "config.yaml"
    path.write_text(guide_config(e2e_upstream.url))
    return path


@pytest.fixture(scope="module")
def gateway(e2e_db, e2e_config, e2e_dir):
    """The gateway serving the guide's config (every model pointed at the fake upstream), 2 workers."""
    process = GatewayProcess(
        database_url=e2e_db.url, config_path=e2e_config, data_dir=e2e_dir, env={"FIREWORKS": "fw-secret-from-env"}
    ).start()
    yield process
    process.stop()
