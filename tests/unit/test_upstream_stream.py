"""Reading a streamed upstream body (gateway.upstream.iter_stream): what arrived together goes on together, nothing
waits for what has not come, the chunk framing is decoded whatever way it was cut, the connection is reused after a
clean end and dropped after anything else, and a broken stream ends with an OpenAI-shaped error event.

The upstream here is a real TCP server that sends scripted bytes, so the framing and the pauses are exactly as given.
"""

from __future__ import annotations

import gzip
import json
import queue
import socket
import threading
import time

import pytest

from gateway import upstream
from models_registry.routing import DeploymentSpec

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(n: int) -> bytes:
    return b'data: {"choices": [{"delta": {"content": "word %d "}}]}\n\n' % n


class ScriptedUpstream:
    """Answers each request with the next script: a list of byte strings to send, where a threading.Event in the
    list means "wait until it is set" and the string "close" means "close the connection here"."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.scripts: queue.Queue[list] = queue.Queue()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            received = b""
            while True:
                while b"\r\n\r\n" not in received:
                    data = conn.recv(65536)
                    if not data:
                        return
                    received += data
                head, _, rest = received.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                received = rest[length:]
                for step in self.scripts.get(timeout=5):
                    if step == "close":
                        return
                    if isinstance(step, threading.Event):
                        step.wait(5)
                    else:
                        conn.sendall(step)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server():
    scripted = ScriptedUpstream()
    yield scripted
    scripted.close()


def deployment(server: ScriptedUpstream, timeout: float = 5.0) -> DeploymentSpec:
    return DeploymentSpec(id="d1", model_name="m", model="openai/m", api_base=server.url, api_key="k", timeout=timeout)


def open_stream(server: ScriptedUpstream, script: list, timeout: float = 5.0):
    server.scripts.put(script)
    spec = deployment(server, timeout)
    response = upstream.send(spec, b'{"model": "m", "stream": true}', "m", stream=True)
    return upstream.iter_stream(spec, response)


def error_of(piece: bytes) -> dict:
    assert piece.startswith(b"data: ") and piece.endswith(b"\n\n"), piece
    return json.loads(piece[len(b"data: ") :])["error"]


def test_events_that_arrived_together_go_on_together_and_nothing_waits_for_the_rest(server):
    gate = threading.Event()
    pieces = open_stream(server, [HEAD + chunk(event(1)) + chunk(event(2)), gate, chunk(event(3)) + END])
    first = next(pieces)  # would block (and then time out into an error event) if it waited for event 3
    gate.set()
    assert first == event(1) + event(2)
    assert list(pieces) == [event(3)]


def test_the_connection_carries_the_next_stream_after_a_clean_end(server):
    for _ in range(3):
        assert b"".join(open_stream(server, [HEAD + chunk(event(1)) + chunk(event(2)) + END])) == event(1) + event(2)
    assert server.connections == 1


def test_trailer_fields_and_chunk_extensions_are_read_past(server):
    body = b"5;name=value\r\nhello\r\n" + chunk(b" world\n\n") + b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    assert b"".join(open_stream(server, [HEAD + body])) == b"hello world\n\n"
    assert b"".join(open_stream(server, [HEAD + chunk(event(1)) + END])) == event(1)
    assert server.connections == 1


def test_bytes_after_the_end_of_the_body_keep_the_connection_out_of_the_pool(server):
    assert b"".join(open_stream(server, [HEAD + chunk(event(1)) + END + b"junk"])) == event(1)
    assert b"".join(open_stream(server, [HEAD + chunk(event(2)) + END])) == event(2)
    assert server.connections == 2


def test_a_stream_cut_off_inside_a_chunk_ends_at_the_last_whole_chunk_with_an_error_event(server):
    cut = chunk(event(2))[:20]
    pieces = list(open_stream(server, [HEAD + chunk(event(1)) + cut, "close"]))
    assert b"".join(pieces[:-1]) == event(1)  # nothing of the cut-off chunk
    error = error_of(pieces[-1])
    assert error["code"] == "upstream_unreachable"
    assert "broke off the stream" in error["message"]
    # the broken connection is not reused
    assert b"".join(open_stream(server, [HEAD + chunk(event(3)) + END])) == event(3)
    assert server.connections == 2


def test_a_stream_that_closes_between_chunks_ends_with_an_error_event(server):
    pieces = list(open_stream(server, [HEAD + chunk(event(1)), "close"]))
    assert pieces[0] == event(1)
    assert error_of(pieces[-1])["code"] == "upstream_unreachable"


@pytest.mark.parametrize(
    ("bad", "before"),
    [
        (b"zz\r\n", b""),
        (b"-5\r\n", b""),
        (b"5\r\nhelloXX", b"hello"),  # the chunk's data is whole; what should be its CRLF is not
        (b"1" * (upstream.MAX_LINE + 10), b""),
    ],
)
def test_broken_framing_ends_the_stream_with_an_error_event(server, bad, before):
    pieces = list(open_stream(server, [HEAD + chunk(event(1)) + bad, "close"]))
    assert b"".join(pieces[:-1]) == event(1) + before
    assert error_of(pieces[-1])["code"] == "upstream_unreachable"


def test_an_upstream_silent_past_the_timeout_ends_the_stream_with_a_timeout_event(server):
    gate = threading.Event()
    started = time.monotonic()
    pieces = list(open_stream(server, [HEAD + chunk(event(1)), gate], timeout=0.3))
    gate.set()
    assert pieces[0] == event(1)
    assert error_of(pieces[-1])["code"] == "upstream_timeout"
    assert time.monotonic() - started < 3


def test_a_body_with_a_content_length_is_passed_on_as_it_arrives(server):
    body = event(1) + event(2) + event(3)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
    gate = threading.Event()
    pieces = open_stream(server, [head + body[:10], gate, body[10:]])
    first = next(pieces)
    gate.set()
    assert first == body[:10]
    assert first + b"".join(pieces) == body
    assert b"".join(open_stream(server, [head + body])) == body
    assert server.connections == 1


def test_a_gzip_encoded_stream_is_decoded(server):
    body = event(1) + event(2)
    packed = gzip.compress(body)
    head = HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    assert b"".join(open_stream(server, [head + chunk(packed[:15]) + chunk(packed[15:]) + END])) == body


class Pieces:
    """A connection file whose read1 returns the given pieces one after another (then end of file)."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = list(pieces)

    def read1(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


class Released:
    """What _dechunk touches on urllib3's response at the end: the http.client response and the pool."""

    def __init__(self):
        self.closed = self.released = 0
        self._fp = self

    def close(self):
        self.closed += 1

    def release_conn(self):
        self.released += 1


WIRE = chunk(event(1)) + b"7;ext=1\r\ndata: x\r\n" + chunk(b"\n\n") + chunk(event(2)) + b"0\r\nTrailer: t\r\n\r\n"
PAYLOAD = event(1) + b"data: x\n\n" + event(2)


def cuts():
    yield [WIRE]
    yield [WIRE[i : i + 1] for i in range(len(WIRE))]
    for i in range(1, len(WIRE)):
        yield [WIRE[:i], WIRE[i:]]


def test_every_way_of_cutting_the_wire_gives_the_same_payload_in_whole_chunks():
    whole_chunks = {event(1), b"data: x", b"\n\n", event(2)}
    for pieces in cuts():
        raw = Released()
        out = list(upstream._dechunk(Pieces(pieces), raw))
        assert b"".join(out) == PAYLOAD, pieces
        assert raw.closed == raw.released == 1, pieces
        # a piece handed on is one or more whole chunks, never part of one
        for piece in out:
            rest = piece
            while rest:
                head = next(c for c in whole_chunks if rest.startswith(c))
                rest = rest[len(head) :]


def test_the_wire_cut_short_anywhere_is_a_broken_stream_and_the_connection_is_not_released():
    for i in range(len(WIRE) - 1):
        raw = Released()
        with pytest.raises(upstream.BrokenStreamError):
            list(upstream._dechunk(Pieces([WIRE[:i]] if i else []), raw))
        assert raw.released == 0


def test_a_pooled_connection_the_upstream_closed_is_replaced_not_used(server):
    assert b"".join(open_stream(server, [HEAD + chunk(event(1)) + END, "close"])) == event(1)
    time.sleep(0.1)  # the upstream's close reaches the pooled socket
    assert b"".join(open_stream(server, [HEAD + chunk(event(2)) + END])) == event(2)
    assert server.connections == 2


# --- a non-streamed answer: read_body ------------------------------------------------------------------------------


def answer(server: ScriptedUpstream, script: list, timeout: float = 5.0) -> bytes:
    server.scripts.put(script)
    spec = deployment(server, timeout)
    return upstream.read_body(spec, upstream.send(spec, b'{"model": "m"}', "m", stream=False))


def json_head(length: int, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (length, extra)


def test_an_answer_is_read_whole_and_its_connection_reused(server):
    body = b'{"id": "x", "choices": []}'
    gate = threading.Event()
    server.scripts.put([json_head(len(body)) + body[:5], gate, body[5:]])
    spec = deployment(server)
    response = upstream.send(spec, b"{}", "m", stream=False)
    gate.set()
    assert upstream.read_body(spec, response) == body
    assert answer(server, [json_head(len(body)) + body]) == body
    assert server.connections == 1


def test_a_gzip_encoded_answer_is_decoded(server):
    body = b'{"id": "x", "choices": []}'
    packed = gzip.compress(body)
    assert answer(server, [json_head(len(packed), b"Content-Encoding: gzip\r\n") + packed]) == body


def test_an_answer_cut_short_is_a_502_and_a_silent_one_a_504(server):
    with pytest.raises(upstream.UpstreamUnavailableError) as cut:
        answer(server, [json_head(100) + b'{"id": ', "close"])
    assert cut.value.status == 502 and "broke off its answer" in cut.value.message
    gate = threading.Event()
    with pytest.raises(upstream.UpstreamTimeoutError) as silent:
        answer(server, [json_head(100) + b'{"id": ', gate], timeout=0.3)
    gate.set()
    assert silent.value.status == 504
