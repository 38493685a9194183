"""A relayed request's head and body go out in one write, to the upstream and to the client (each write on loopback
is a system call and a wake-up of the other side). Real sockets, each write counted where it leaves our code."""

from __future__ import annotations

import http.client
import queue
import socket
import threading
from types import SimpleNamespace

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from gateway import sockets
from gateway import upstream as upstream_module
from gateway import worker as worker_module
from gateway.upstream import _HTTPConnection, _KnownHeaders, _OneWrite
from gateway.worker import _Handler

# --- to the upstream ------------------------------------------------------------------------------------------------


@pytest.fixture
def upstream():
    """A server that answers every request on a connection with an empty 200, and the bytes it received."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            buffer = b""
            while chunk := conn.recv(1 << 20):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, rest = buffer.split(b"\r\n\r\n", 1)
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    if len(rest) < length:
                        break
                    received.append(head + b"\r\n\r\n" + rest[:length])
                    buffer = rest[length:]
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received
    listener.close()


def recorded_writes(monkeypatch, module) -> list[bytes]:
    """Every write the module makes, where it leaves our code (`send_all`), which then puts it on a real socket."""
    writes: list[bytes] = []

    def send_all(sock, data) -> None:
        writes.append(bytes(data))
        sockets.send_all(sock, data)

    monkeypatch.setattr(module, "send_all", send_all)
    return writes


def counted_connection(port: int, monkeypatch) -> tuple[_HTTPConnection, list[bytes]]:
    writes = recorded_writes(monkeypatch, upstream_module)
    conn = _HTTPConnection("127.0.0.1", port)
    conn.connect()
    return conn, writes


def test_the_request_head_goes_out_with_its_body(upstream, monkeypatch):
    port, received = upstream
    conn, writes = counted_connection(port, monkeypatch)
    body = b'{"model": "m", "messages": []}'
    for _ in range(2):  # and again on the same connection
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        assert conn.getresponse().read() == b""
    assert len(writes) == 2
    assert writes[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and writes[0].endswith(b"\r\n\r\n" + body)
    assert received == writes
    conn.close()


def test_a_large_body_and_no_body_are_written_as_they_come(upstream, monkeypatch):
    port, received = upstream
    conn, writes = counted_connection(port, monkeypatch)
    large = b"x" * (_OneWrite.HOLD_UP_TO + 1)
    conn.request("POST", "/big", body=large)
    conn.getresponse().read()
    assert [len(w) for w in writes[1:]] == [len(large)]  # the head alone, then the body: not copied behind it
    conn.request("GET", "/models")  # no body: the head goes when the response is asked for
    conn.getresponse().read()
    assert writes[-1].startswith(b"GET /models HTTP/1.1\r\n") and writes[-1].endswith(b"\r\n\r\n")
    assert len(writes) == 3 and received[0].endswith(large)
    conn.close()


def test_a_header_sent_before_goes_out_the_same_and_a_bad_one_is_refused_every_time(upstream, monkeypatch):
    port, received = upstream
    conn, _ = counted_connection(port, monkeypatch)
    headers = {"Authorization": "Bearer sk-upstream-key-1", "Content-Type": "application/json"}
    for size in (2, 3, 2):  # the third call's headers all come from what the first two sent
        conn.request("POST", "/v1/chat/completions", body=b"x" * size, headers=headers)
        conn.getresponse().read()
    assert (
        _KnownHeaders._lines[("Authorization", "Bearer sk-upstream-key-1")]
        == b"Authorization: Bearer sk-upstream-key-1"
    )
    assert ("Content-Length", "2") not in _KnownHeaders._lines  # changes with every body: never kept
    assert received[2] == received[0]  # byte for byte what http.client wrote the first time
    assert b"\r\nContent-Length: 3\r\n" in received[1]
    for _ in range(2):  # a value that would split the head is refused, and not learnt
        with pytest.raises(ValueError, match="Invalid header value"):
            conn.request("POST", "/v1/chat/completions", body=b"x", headers={"Authorization": "Bearer k\r\nX-Evil: 1"})
        conn.close()
        conn, _ = counted_connection(port, monkeypatch)
    assert not any(b"X-Evil" in request for request in received)
    conn.close()


# --- to the client --------------------------------------------------------------------------------------------------

SMALL = b'{"id": "chatcmpl-1", "choices": []}'
LARGE = b"y" * (_Handler.HOLD_UP_TO + 1)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return iter([b"data: 1\n\n", b"data: 2\n\n"])
    if path == "/empty":
        start_response("204 No Content", [])
        return [b""]
    body = LARGE if path == "/large" else SMALL
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def served(monkeypatch):
    """The worker's handler in gevent's server, on a thread of its own; the writes it made to client sockets."""
    writes = recorded_writes(monkeypatch, worker_module)
    worker = SimpleNamespace(cfg=SimpleNamespace(keepalive=5), access_log=False, count_request=lambda: None)
    handler = type("Handler", (_Handler,), {"worker": worker})
    ports: queue.Queue[int] = queue.Queue()
    done = threading.Event()

    def run() -> None:
        server = WSGIServer(("127.0.0.1", 0), app, handler_class=handler, log=None, error_log=None)
        server.start()
        ports.put(server.server_port)
        while not done.is_set():
            gevent.sleep(0.02)
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield ports.get(timeout=10), writes
    done.set()
    thread.join(10)


def test_the_response_head_goes_out_with_its_body(served):
    port, writes = served
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("POST", "/v1/chat/completions", body=b"{}")
    response = client.getresponse()
    assert (response.status, response.read()) == (200, SMALL)
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(SMALL)

    client.request("GET", "/stream")
    response = client.getresponse()
    assert response.read() == b"data: 1\n\ndata: 2\n\n"
    head_and_first = writes[1]  # chunked: the first chunk rides with the head
    assert head_and_first.startswith(b"HTTP/1.1 200 OK\r\n") and head_and_first.endswith(b"9\r\ndata: 1\n\n\r\n")
    client.close()


def test_a_large_or_empty_body_is_written_as_it_comes(served):
    port, writes = served
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("GET", "/large")
    assert client.getresponse().read() == LARGE
    assert [w.startswith(b"HTTP/1.1 200") for w in writes] == [True, False] and writes[1] == LARGE
    client.request("GET", "/empty")
    response = client.getresponse()
    assert (response.status, response.read()) == (204, b"")
    assert writes[2].startswith(b"HTTP/1.1 204") and len(writes) == 3
    client.close()


# --- send_all -------------------------------------------------------------------------------------------------------


class _Calls:
    """A real socket whose send, sendall and getsockopt calls are recorded."""

    def __init__(self, sock: socket.socket):
        self._sock, self.calls = sock, []

    def __getattr__(self, name):
        attribute = getattr(self._sock, name)
        if name not in ("send", "sendall", "getsockopt"):
            return attribute

        def recorded(*args):
            self.calls.append(name)
            return attribute(*args)

        return recorded


def test_send_all_writes_what_fits_in_one_send_and_the_rest_with_sendall():
    left, right = socket.socketpair()
    left.settimeout(10)  # as every socket of a served worker has: a send then takes only what fits
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    recorded = _Calls(left)
    sockets.send_all(recorded, b"x" * 1000)
    assert recorded.calls == ["send"] and right.recv(2000) == b"x" * 1000

    big = bytes(range(256)) * 40_000  # 10 MB: more than the socket takes at once
    received = bytearray()
    reader = threading.Thread(target=lambda: [received.extend(c) for c in iter(lambda: right.recv(1 << 16), b"")])
    reader.start()
    recorded.calls.clear()
    sockets.send_all(recorded, big)
    left.close()
    reader.join(10)
    assert recorded.calls[:2] == ["send", "sendall"] and bytes(received) == big
    right.close()
