"""gateway.httpheaders: the fast header parser builds exactly the message the standard library's would."""

from __future__ import annotations

import http.client
import io
import random

import pytest

from gateway import httpheaders


def _both(block: bytes):
    return httpheaders._standard_parse_headers(io.BytesIO(block)), httpheaders.parse_headers(io.BytesIO(block))


def _state(message) -> dict:
    state = dict(vars(message))
    state["defects"] = [type(defect) for defect in state["defects"]]  # defect objects do not compare equal
    return state


SAMPLES = [
    b"content-type: application/json\r\ncontent-length: 431\r\nx-request-id: abc\r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nx-a:  padded \t\r\n\r\n",  # repeats kept, only leading blanks go
    b"\r\n",
    b"a:\r\nb:\tvalue\r\n\n",
    b"x: \xe9t\xe9\r\n\r\n",  # latin-1, as the standard library decodes it
    b"x: y\n\n",
    b"a: b\r\nfolded: one\r\n two\r\n\r\n",  # continuation line: the full parser
    b"a: b\r\nno colon here\r\nc: d\r\n\r\n",  # the rest becomes the payload, with a defect
    b":no-name: x\r\n\r\n",
    b"From someone\r\na: b\r\n\r\n",
    b"a: b\rc: d\r\n\r\n",  # a bare CR splits lines for the email parser
    b"bad name: x\r\n\r\n",
]


@pytest.mark.parametrize("block", SAMPLES)
def test_same_message_as_the_standard_library(block):
    standard, fast = _both(block)
    assert type(fast) is type(standard) is http.client.HTTPMessage
    assert _state(fast) == _state(standard)


def test_same_message_for_random_header_blocks():
    rng = random.Random(20261128)
    alphabet = [b"a", b"Z", b"-", b":", b" ", b"\t", b"\r", b"\n", b"\xe9", b"(", b"1", b"x"]
    for _ in range(3000):
        lines = []
        for _ in range(rng.randint(0, 5)):
            name = b"".join(rng.choice(alphabet[:6] + alphabet[8:]) for _ in range(rng.randint(0, 6)))
            value = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            lines.append(name + b":" + value + rng.choice([b"\r\n", b"\n"]))
        block = b"".join(lines) + b"\r\n"
        standard, fast = _both(block)
        assert _state(fast) == _state(standard), block


def test_installed_for_the_relay():
    import gateway.upstream  # noqa: F401  (installs it)

    assert http.client.parse_headers is httpheaders.parse_headers
