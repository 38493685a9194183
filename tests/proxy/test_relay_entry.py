"""The WSGI application `modelgate serve` runs (gateway.wsgi.application = RelayEntry): chat completions go to the
relay without Django's request cycle, every other path through Django; called here as a WSGI server calls it, with
a real database (in autocommit, as served) and the real fake upstream."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core import signals
from django.db import connection

from gateway import accounting, middleware
from gateway.models import RequestLog
from gateway.wsgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}


def call(path: str, body: dict | None = None, *, key: str = "", method: str = "POST", host: str = "127.0.0.1"):
    """One request through the WSGI application; (status, headers, body bytes), the body closed as a server would."""
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    started = []
    result = application(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        content = b"".join(result)
    finally:
        result.close()
    status, headers = started[0]
    return int(status.split()[0]), dict(headers), content


@pytest.fixture
def request_signals():
    sent = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield sent
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


def test_a_relayed_request_skips_djangos_request_cycle_and_other_paths_keep_it(
    request_signals, make_key, guide_upstream_routes
):
    _, key = make_key()
    status, headers, content = call("/v1/chat/completions", CHAT, key=key)
    assert status == 200, content
    assert headers["Content-Length"] == str(len(content))
    assert json.loads(content)["object"] == "chat.completion"
    assert "X-Frame-Options" not in headers  # no console middleware
    assert request_signals == []

    status, headers, content = call("/v1/models", key=key, method="GET")
    assert status == 200, content
    assert headers["X-Frame-Options"] == "DENY"
    assert request_signals == ["started", "finished"]


def test_closing_a_relayed_response_runs_its_accounting(make_key, guide_upstream_routes):
    row, key = make_key()
    for body in (CHAT, {**CHAT, "stream": True}):
        status, _, content = call("/v1/chat/completions", body, key=key)
        assert status == 200, content
    accounting.flush()
    logs = RequestLog.objects.filter(key_hash=row.key_hash)
    assert sorted(log.stream for log in logs) == [False, True]
    assert all(log.status == 200 and log.prompt_tokens > 0 for log in logs)


def test_the_database_connections_a_request_opened_are_closed_when_its_response_is(
    make_key, guide_upstream_routes, monkeypatch
):
    closes = []
    monkeypatch.setattr(middleware, "close_old_connections", lambda: closes.append(connection.connection))
    _, key = make_key()
    status, _, content = call("/v1/chat/completions", CHAT, key=key)  # a cold key: looked up in the database
    assert status == 200, content
    assert len(closes) == 1 and closes[0] is not None  # called once, at the end, with the connection open
    monkeypatch.undo()

    connection.close()
    status, _, _ = call("/v1/chat/completions", {**CHAT, "model": "gpt-3.5-turbo"}, key=key)
    assert status == 200
    if connection.vendor == "postgresql":  # served from a pool (CONN_MAX_AGE = 0): the connection went back to it
        assert connection.connection is None


def test_a_host_not_allowed_and_an_unexpected_failure_are_openai_shaped(
    make_key, guide_upstream_routes, settings, monkeypatch, caplog
):
    _, key = make_key()
    settings.ALLOWED_HOSTS = ["gateway.example"]
    status, headers, content = call("/v1/chat/completions", CHAT, key=key, host="evil.example")
    assert status == 400
    assert set(json.loads(content)["error"]) == {"message", "type", "code", "param"}
    assert guide_upstream_routes.requests == []

    def broken():
        raise RuntimeError("registry exploded")

    monkeypatch.setattr("gateway.proxy.current_routes", broken)
    status, headers, content = call("/chat/completions", CHAT, key=key, host="gateway.example")
    assert status == 500
    error = json.loads(content)["error"]
    assert error["type"] and "registry exploded" not in error["message"]
    assert headers["Content-Type"] == "application/json"
    assert any("registry exploded" in str(record.exc_info) for record in caplog.records if record.exc_info)
