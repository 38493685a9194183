"""The relay as a client sees it: streaming, the error table of SPEC §6, and upstream failures, against a real
`modelgate serve` (one worker) and a real local fake upstream."""

from __future__ import annotations

import json
import socket
import time

import openai
import pytest
import requests

from tests.conftest import guide_config
from tests.e2e.conftest import E2E_MASTER_KEY, GatewayProcess
from tests.e2e.support import assert_error, assert_no_traceback, assert_sdk_error, chat_body, post_chat, sdk

pytestmark = pytest.mark.e2e

BODY_LIMIT = 64 * 1024

# The guide's models, plus a deployment nobody listens for and one with a 1 s timeout.
EXTRA_MODELS = """
  - model_name: dead-model
    litellm_params: {model: openai/dead, api_key: sk-dead-provider-key, api_base: "http://127.0.0.1:{dead_port}/v1"}
  - model_name: slow-model
    litellm_params: {model: openai/slow-model, api_key: fake-key, api_base: "{base}", timeout: 1}
"""


@pytest.fixture(scope="module")
def dead_port():
    """A port that refuses connections: bound (so no other process can take it) but never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def relay_gateway(e2e_db, e2e_dir, e2e_upstream, dead_port):
    """One worker (so pooled upstream connections can be counted) and a 64 KiB body limit."""
    config = e2e_dir / "relay-config.yaml"
    extra = EXTRA_MODELS.replace("{dead_port}", str(dead_port)).replace("{base}", e2e_upstream.url)
    config.write_text(guide_config(e2e_upstream.url) + extra)
    env = {"FIREWORKS": "fw-secret-from-env", "MODELGATE_MAX_BODY_BYTES": str(BODY_LIMIT)}
    process = GatewayProcess(database_url=e2e_db.url, config_path=config, data_dir=e2e_dir, env=env, workers=1)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(relay_gateway) -> str:
    """A virtual key with no model restriction."""
    response = relay_gateway.admin("/key/generate", {"key_alias": "relay"})
    assert response.status_code == 200, response.text
    return response.json()["key"]


@pytest.fixture(autouse=True)
def upstream(e2e_upstream):
    e2e_upstream.reset()
    yield e2e_upstream
    e2e_upstream.chunk_delay = 0.0
    e2e_upstream.slow_seconds = 3.0


def sse_events(lines) -> list[dict | str]:
    """The `data:` payloads of an SSE stream: parsed JSON, or the raw text ("[DONE]")."""
    events = []
    for line in lines:
        line = line.decode() if isinstance(line, bytes) else line
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


# --- streaming ----------------------------------------------------------------------------------------------------
def test_streaming_through_the_sdk_yields_every_chunk_and_the_text(relay_gateway, key, upstream):
    stream = sdk(relay_gateway.url, key).chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    words = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert words == ["echo: ", "one ", "two ", "three "]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert upstream.last["body"]["stream"] is True
    assert upstream.last["body"]["model"] == "fake"


def test_streaming_over_http_ends_with_done(relay_gateway, key):
    response = requests.post(
        relay_gateway.url + "/chat/completions",
        json=chat_body("gpt-4", "hi there", stream=True),
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(response.iter_lines())
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert text == "echo: hi there "


def test_stream_passes_chunks_through_as_they_arrive(relay_gateway, key, upstream):
    upstream.chunk_delay = 0.3  # 7 words: the upstream takes about 2.1 s to send them all
    response = requests.post(
        relay_gateway.url + "/v1/chat/completions",
        json=chat_body("gpt-4", "one two three four five six", stream=True),
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200
    arrivals = []
    for line in response.iter_lines():
        events = sse_events([line])
        if events and events[0] != "[DONE]" and events[0]["choices"]:
            if events[0]["choices"][0]["delta"].get("content"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 7
    # buffered, every chunk would arrive at once at the end; relayed, they come 0.3 s apart
    assert arrivals[-1] - arrivals[0] >= 1.0, [round(t - arrivals[0], 2) for t in arrivals]


def test_stream_options_include_usage_passes_the_usage_chunk(relay_gateway, key, upstream):
    stream = sdk(relay_gateway.url, key).chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (12, 3, 15)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert upstream.last["body"]["stream_options"] == {"include_usage": True}


def test_streaming_request_to_an_upstream_error_gets_the_error_not_a_stream(relay_gateway, key):
    with pytest.raises(openai.RateLimitError) as info:
        sdk(relay_gateway.url, key).chat.completions.create(
            model="openai/error-429", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert_sdk_error(info.value, openai.RateLimitError, 429, "upstream_test_error", "test_code")


# --- authentication -----------------------------------------------------------------------------------------------
BAD_KEY_HEADERS = {
    "no key": {},
    "unknown bearer": {"Authorization": "Bearer sk-unknown-00000000000000000000000"},
    "no scheme": {"Authorization": "sk-unknown-00000000000000000000000"},
    "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "bearer without token": {"Authorization": "Bearer"},
    "two tokens": {"Authorization": "Bearer sk-a sk-b"},
    "unknown api-key": {"api-key": "sk-unknown-00000000000000000000000"},
    "unknown x-api-key": {"x-api-key": "sk-unknown-00000000000000000000000"},
}


@pytest.mark.parametrize("headers", BAD_KEY_HEADERS.values(), ids=BAD_KEY_HEADERS.keys())
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models"])
def test_a_missing_unknown_or_malformed_key_is_refused(relay_gateway, upstream, headers, path):
    if path == "/v1/models":
        response = requests.get(relay_gateway.url + path, headers=headers, timeout=10)
        assert_no_traceback(response.text)
    else:
        response = post_chat(relay_gateway.url, None, chat_body("gpt-4"), headers=headers)
    error = assert_error(response, 401, "authentication_error", "invalid_api_key", None)
    assert "sk-unknown" not in error["message"]
    assert upstream.requests == []


def test_an_unknown_key_raises_authentication_error_in_the_sdk(relay_gateway):
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(relay_gateway.url, "sk-unknown-00000000000000000000000").chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
    assert_sdk_error(info.value, openai.AuthenticationError, 401, "authentication_error", "invalid_api_key")


@pytest.mark.parametrize("header", ["api-key", "x-api-key"])
def test_the_key_is_accepted_in_api_key_headers(relay_gateway, key, upstream, header):
    response = post_chat(relay_gateway.url, None, chat_body("gpt-4"), headers={header: key})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert all(key not in value for value in upstream.last["headers"].values())


# --- request bodies -----------------------------------------------------------------------------------------------
MESSAGES = [{"role": "user", "content": "hi"}]
BAD_BODIES = {
    "not json": (b"{not json", "invalid_json", None),
    "empty": (b"", "invalid_json", None),
    "invalid utf-8": (b'{"model": "\xff\xfe"}', "invalid_json", None),
    "array": (json.dumps([{"model": "gpt-4", "messages": MESSAGES}]), "invalid_json", None),
    "missing model": (json.dumps({"messages": MESSAGES}), "invalid_field", "model"),
    "model not a string": (json.dumps({"model": 4, "messages": MESSAGES}), "invalid_field", "model"),
    "missing messages": (json.dumps({"model": "gpt-4"}), "invalid_field", "messages"),
    "messages not a list": (json.dumps({"model": "gpt-4", "messages": "hi"}), "invalid_field", "messages"),
    'stream "yes"': (json.dumps({"model": "gpt-4", "messages": MESSAGES, "stream": "yes"}), "invalid_field", "stream"),
    "temperature text": (
        json.dumps({"model": "gpt-4", "messages": MESSAGES, "temperature": "hot"}),
        "invalid_field",
        "temperature",
    ),
}


@pytest.mark.parametrize(("data", "code", "param"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("path", ["/chat/completions", "/v1/chat/completions"])
def test_a_bad_body_is_refused_naming_the_field(relay_gateway, key, upstream, path, data, code, param):
    response = post_chat(relay_gateway.url, key, data=data, path=path)
    assert_error(response, 400, "invalid_request_error", code, param)
    assert upstream.requests == []


def test_a_bad_body_raises_bad_request_in_the_sdk(relay_gateway, key):
    with pytest.raises(openai.BadRequestError) as info:
        sdk(relay_gateway.url, key).chat.completions.create(model="gpt-4", messages=MESSAGES, stream="yes")
    assert_sdk_error(info.value, openai.BadRequestError, 400, "invalid_request_error", "invalid_field", "stream")


def test_an_oversize_body_is_refused_with_413(relay_gateway, key, upstream):
    body = chat_body("gpt-4", "x" * (BODY_LIMIT + 1024))
    response = post_chat(relay_gateway.url, key, body)
    error = assert_error(response, 413, "invalid_request_error", "request_too_large")
    assert str(BODY_LIMIT) in error["message"]
    assert upstream.requests == []
    # just under the limit still goes through
    assert post_chat(relay_gateway.url, key, chat_body("gpt-4", "x" * (BODY_LIMIT - 1024))).status_code == 200


def test_the_key_is_checked_before_the_body(relay_gateway):
    response = post_chat(relay_gateway.url, "sk-unknown-00000000000000000000000", data=b"{not json")
    assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_the_body_is_checked_before_model_access(relay_gateway):
    made = relay_gateway.admin("/key/generate", {"models": ["gpt-4"]})
    assert made.status_code == 200, made.text
    restricted = made.json()["key"]
    response = post_chat(relay_gateway.url, restricted, {"model": "gpt-4o"})
    assert_error(response, 400, "invalid_request_error", "invalid_field", "messages")
    response = post_chat(relay_gateway.url, restricted, chat_body("gpt-4o"))
    assert_error(response, 403, "key_model_access_denied", "model_not_allowed", "model")


# --- routing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", ["virtual key", "master key"])
def test_an_unknown_model_is_404_model_not_found(relay_gateway, key, upstream, caller):
    token = key if caller == "virtual key" else E2E_MASTER_KEY
    response = post_chat(relay_gateway.url, token, chat_body("no-such-model"))
    error = assert_error(response, 404, "invalid_request_error", "model_not_found", "model")
    assert "no-such-model" in error["message"]
    with pytest.raises(openai.NotFoundError) as info:
        sdk(relay_gateway.url, token).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert_sdk_error(info.value, openai.NotFoundError, 404, "invalid_request_error", "model_not_found", "model")
    assert upstream.requests == []


@pytest.mark.parametrize("name", ["GPT-4", " gpt-4", "fake"])
def test_model_names_match_exactly_and_provider_names_are_no_way_in(relay_gateway, key, upstream, name):
    response = post_chat(relay_gateway.url, key, chat_body(name))
    assert_error(response, 404, "invalid_request_error", "model_not_found", "model")
    assert upstream.requests == []


# --- upstream errors ----------------------------------------------------------------------------------------------
SDK_ERRORS = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    503: openai.InternalServerError,
}


@pytest.mark.parametrize("status", SDK_ERRORS)
def test_an_upstream_error_passes_through_with_its_status_type_and_code(relay_gateway, key, upstream, status):
    model = f"openai/error-{status}"
    response = post_chat(relay_gateway.url, key, chat_body(model))
    error = assert_error(response, status, "upstream_test_error", "test_code", None)
    assert error["message"] == f"openai/*: Upstream refused model error-{status}"
    assert upstream.last["body"]["model"] == f"error-{status}"

    with pytest.raises(SDK_ERRORS[status]) as info:
        sdk(relay_gateway.url, key).chat.completions.create(model=model, messages=MESSAGES)
    body = assert_sdk_error(info.value, SDK_ERRORS[status], status, "upstream_test_error", "test_code")
    assert body["message"] == error["message"]
    assert len(upstream.requests) == 2  # no retries by the gateway


def test_a_non_json_upstream_error_keeps_its_status_with_an_openai_body(relay_gateway, key, upstream):
    response = post_chat(relay_gateway.url, key, chat_body("openai/html-page"))
    assert response.status_code == 502
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "upstream_error"
    assert error["message"].startswith("openai/*: ")
    assert "bad gateway" in error["message"]
    assert upstream.last["body"]["model"] == "html-page"


def test_a_non_json_upstream_error_has_a_string_code(relay_gateway, key):
    response = post_chat(relay_gateway.url, key, chat_body("openai/html-page"))
    assert response.status_code == 502
    assert isinstance(response.json()["error"]["code"], str)


def test_a_dead_upstream_is_502_upstream_unreachable(relay_gateway, key):
    started = time.monotonic()
    response = post_chat(relay_gateway.url, key, chat_body("dead-model"))
    error = assert_error(response, 502, "upstream_error", "upstream_unreachable")
    assert "dead-model" in error["message"]
    assert "sk-dead-provider-key" not in response.text
    assert time.monotonic() - started < 5
    with pytest.raises(openai.InternalServerError) as info:
        sdk(relay_gateway.url, key).chat.completions.create(model="dead-model", messages=MESSAGES, stream=True)
    assert_sdk_error(info.value, openai.InternalServerError, 502, "upstream_error", "upstream_unreachable")


def test_a_slow_upstream_is_504_upstream_timeout(relay_gateway, key, upstream):
    upstream.slow_seconds = 3.0
    started = time.monotonic()
    response = post_chat(relay_gateway.url, key, chat_body("slow-model"))
    elapsed = time.monotonic() - started
    error = assert_error(response, 504, "upstream_error", "upstream_timeout")
    assert "slow-model" in error["message"]
    assert 0.9 <= elapsed < 2.9  # the deployment's 1 s timeout, not the upstream's 3 s
    assert upstream.last["body"]["model"] == "slow-model"


# --- connections and odd requests ---------------------------------------------------------------------------------
def test_upstream_connections_are_pooled(relay_gateway, key, upstream):
    upstream.reset()
    for _ in range(20):
        assert post_chat(relay_gateway.url, key, chat_body("gpt-4")).status_code == 200
    assert len(upstream.requests) == 20
    assert upstream.connections <= 3, upstream.connections


ODD_REQUESTS = {
    "GET on chat completions": ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
    "POST on models": ("POST", "/v1/models", 405, "method_not_allowed"),
    "unknown path": ("POST", "/v1/embeddingz", 404, "not_found"),
}


@pytest.mark.parametrize(("method", "path", "status", "code"), ODD_REQUESTS.values(), ids=ODD_REQUESTS.keys())
def test_odd_requests_get_an_openai_error_and_never_a_traceback(relay_gateway, key, method, path, status, code):
    response = requests.request(
        method, relay_gateway.url + path, headers={"Authorization": f"Bearer {key}"}, data=b"{", timeout=10
    )
    assert_no_traceback(response.text)
    assert_error(response, status, "invalid_request_error", code)
