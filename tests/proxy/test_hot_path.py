"""The relay's lean path: chat completions skip the console's middleware (but not the Host check), and the
upstream adapter keeps no cookies and works out each URL's pool key once."""

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


def test_each_url_gets_its_pool_key_once_and_reuses_its_connection(make_key, guide_upstream_routes):
    upstream._session = None  # a fresh session for this test
    deployment = current_routes().resolve("gpt-4").route.deployments[0]
    connections_before = guide_upstream_routes.connections
    for _ in range(3):
        response = upstream.send(deployment, b'{"model": "gpt-4", "messages": []}', "gpt-4", stream=False)
        assert response.status_code == 200
        response.content  # noqa: B018  (read it, so the connection goes back to the pool)
    adapter = upstream.session().get_adapter("http://")
    assert isinstance(adapter, upstream.RelayAdapter)
    assert len(adapter._pool_keys) == 1
    assert guide_upstream_routes.connections - connections_before == 1
