"""A request body sent in chunked framing (no Content-Length) reaches the relay and the management API whole, with
either worker class `modelgate serve` offers; one over the body limit is refused with an OpenAI-shaped 413."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.e2e.conftest import E2E_MASTER_KEY, GatewayProcess
from tests.e2e.support import chat_body

pytestmark = pytest.mark.e2e

LIMIT = 4096


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def served(request, e2e_db, e2e_config, e2e_dir):
    process = GatewayProcess(
        database_url=e2e_db.url,
        config_path=e2e_config,
        data_dir=e2e_dir,
        env={"FIREWORKS": "fw-secret-from-env", "MODELGATE_MAX_BODY_BYTES": str(LIMIT)},
        workers=1,
        args=("--worker-class", request.param),
    ).start()
    yield process
    process.stop()


def post_chunked(server: GatewayProcess, path: str, parts: list[bytes]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Bearer {E2E_MASTER_KEY}", "Content-Type": "application/json"}
    conn.request("POST", path, body=iter(parts), headers=headers, encode_chunked=True)
    response = conn.getresponse()
    status, body = response.status, json.loads(response.read())
    conn.close()
    return status, body


def in_parts(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_a_chunked_chat_request_is_relayed(served):
    status, body = post_chunked(served, "/v1/chat/completions", in_parts(json.dumps(chat_body("gpt-4o")).encode()))
    assert status == 200, body
    assert body["object"] == "chat.completion"


def test_a_chunked_management_call_is_read_whole(served):
    call = {"models": ["gpt-4o"], "key_alias": f"chunked-{served.port}"}
    status, body = post_chunked(served, "/key/generate", in_parts(json.dumps(call).encode()))
    assert status == 200, body
    assert body["key"].startswith("sk-") and body["models"] == ["gpt-4o"]


def test_a_chunked_body_over_the_limit_is_refused(served):
    big = json.dumps(chat_body("gpt-4o", "x" * LIMIT)).encode()
    status, body = post_chunked(served, "/v1/chat/completions", in_parts(big, 1000))
    assert status == 413, body
    assert body["error"]["code"] == "request_too_large"
    assert str(LIMIT) in body["error"]["message"]
