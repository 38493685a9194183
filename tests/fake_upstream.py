"""A real local HTTP server that speaks OpenAI's chat-completions API, for tests (never patched `requests`).

Behaviour by requested model name:
  anything            -> chat.completion echoing the last user message ("echo: ..."), usage 12 + n
  "...error-<NNN>..." -> HTTP NNN with an OpenAI-shaped error body (type "upstream_test_error", code "test_code")
  "...slow..."        -> waits `slow_seconds` before answering
  "...html..."        -> HTTP 502 with a non-JSON body
  "...truncated..."   -> HTTP 200 whose body stops after 29 of its 1000 bytes (the connection is closed)
stream=true answers with SSE chunks (one per word, `chunk_delay` apart), a usage chunk when
stream_options.include_usage is true, then `data: [DONE]`.
Every request is recorded (path, headers, parsed body) in `requests`; `connections` counts TCP connections accepted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeUpstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.requests: list[dict] = []
        self.connections = 0
        self.slow_seconds = 3.0
        self.chunk_delay = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.connections = 0

    def process_request(self, request, client_address):
        with self._lock:
            self.connections += 1
        super().process_request(request, client_address)

    def record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    @property
    def last(self) -> dict:
        return self.requests[-1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeUpstream

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send_json(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Set-Cookie", "upstream-session=s3cr3t; Path=/")  # never collected, never passed on
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": []})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.server.record({"path": self.path, "headers": dict(self.headers.items()), "body": body, "raw": raw})
        if not self.path.split("?")[0].endswith("/chat/completions") or not isinstance(body, dict):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        model = str(body.get("model", ""))
        if "slow" in model:
            time.sleep(self.server.slow_seconds)
        failure = re.search(r"error-(\d{3})", model)
        if failure:
            status = int(failure.group(1))
            self._send_json(
                status,
                {
                    "error": {
                        "message": f"Upstream refused model {model}",
                        "type": "upstream_test_error",
                        "code": "test_code",
                        "param": None,
                    }
                },
            )
            return
        if "truncated" in model:  # promises more body than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"id": "chatcmpl-fake", "choi')
            self.wfile.flush()
            self.close_connection = True
            return
        if "html" in model:
            raw = b"<html>bad gateway</html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        text = "echo: " + _last_user_text(body)
        usage = {"prompt_tokens": 12, "completion_tokens": len(text.split()), "total_tokens": 12 + len(text.split())}
        if body.get("stream"):
            self._stream(body, model, text, usage)
            return
        self._send_json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            },
        )

    def _stream(self, body: dict, model: str, text: str, usage: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def send(payload) -> None:
            data = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        for word in text.split(" "):
            if self.server.chunk_delay:
                time.sleep(self.server.chunk_delay)
            send({**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
        send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            send({**base, "choices": [], "usage": usage})
        send(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""
