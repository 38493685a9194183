"""The relay's lean path: chat completions skip the console's middleware (but not the Host check), and the
upstream adapter keeps no cookies and looks up each URL's connection pool once."""

from __future__ import annotations

import pytest

from gateway import upstream
from models_registry.registry import current_routes

pytestmark = pytest.mark.django_db

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_a_host_not_allowed_is_refused_on_the_fast_path(anon, make_key, guide_upstream_routes, settings, path):
    settings.ALLOWED_HOSTS = ["gateway.example"]
    _, key = make_key()
    response = anon.post(path, CHAT, key=key, HTTP_HOST="evil.example")
    assert response.status_code == 400, response.content
    assert set(response.data["error"]) == {"message", "type", "code", "param"}
    assert guide_upstream_routes.requests == []  # refused before anything was relayed
    assert anon.post(path, CHAT, key=key, HTTP_HOST="gateway.example").status_code == 200


def test_chat_completions_skip_the_console_middleware_and_other_paths_keep_it(anon, make_key, guide_upstream_routes):
    _, key = make_key()
    relayed = anon.post("/v1/chat/completions", CHAT, key=key)
    assert relayed.status_code == 200, relayed.content
    assert "X-Frame-Options" not in relayed.headers  # clickjacking and session middleware never ran
    listed = anon.get("/v1/models", key=key)
    assert listed.status_code == 200
    assert listed.headers["X-Frame-Options"] == "DENY"  # the whole chain, for every other path


def test_upstream_cookies_are_neither_collected_nor_passed_on(anon, make_key, guide_upstream_routes):
    _, key = make_key()
    relayed = anon.post("/v1/chat/completions", CHAT, key=key)
    assert relayed.status_code == 200
    assert "Set-Cookie" not in relayed.headers and not relayed.cookies
    match = current_routes().resolve("gpt-4")
    deployment = match.route.deployments[0]
    response = upstream.send(deployment, b'{"model": "gpt-4", "messages": []}', "gpt-4", stream=False)
    assert response.headers["Set-Cookie"].startswith("upstream-session=")  # the upstream did send one
    assert len(response.cookies) == 0


def test_each_url_gets_its_pool_once_and_reuses_its_connection(make_key, guide_upstream_routes, monkeypatch):
    upstream._session = None  # a fresh session for this test
    deployment = current_routes().resolve("gpt-4").route.deployments[0]
    adapter = upstream.session().get_adapter("http://")
    assert isinstance(adapter, upstream.RelayAdapter)
    lookups = []
    lookup = adapter.poolmanager.connection_from_host
    monkeypatch.setattr(
        adapter.poolmanager, "connection_from_host", lambda *a, **kw: lookups.append(a) or lookup(*a, **kw)
    )

    def call(deployment=deployment, model="gpt-4") -> None:
        response = upstream.send(deployment, b'{"model": "gpt-4", "messages": []}', model, stream=False)
        assert response.status_code == 200
        response.content  # noqa: B018  (read it, so the connection goes back to the pool)

    connections_before = guide_upstream_routes.connections
    for _ in range(3):
        call()
    # Another path on the same upstream (an Azure deployment's URL names its model) shares the pool.
    azure = current_routes().resolve("azure-gpt-3.5").route.deployments[0]
    call(azure, "gpt-35-turbo")
    assert guide_upstream_routes.requests[-1]["path"].startswith("/v1/openai/deployments/gpt-35-turbo/")
    assert len(lookups) == 1
    assert guide_upstream_routes.connections - connections_before == 1

    # Closing the adapter closes its pools (and their connections); the next call starts a new one.
    adapter.close()
    call()
    call()
    assert len(lookups) == 2
    assert guide_upstream_routes.connections - connections_before == 2
