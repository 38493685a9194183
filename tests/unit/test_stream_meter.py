"""The stream relay's meter: whatever way the upstream's bytes are cut into chunks, the client gets the same events
and the same usage is learnt (whole events in a chunk pass through as they came; the rest is reassembled)."""

from __future__ import annotations

import json

import pytest

from gateway.chat import ChatRequest
from gateway.relay import StreamMeter

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def event(payload: dict | str) -> bytes:
    return b"data: " + (payload if isinstance(payload, str) else json.dumps(payload)).encode() + b"\n\n"


def delta(text: str) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


EVENTS = [event(delta("Hel")), event(delta("lo")), b": keep-alive comment\n\n", event(delta("!"))]
USAGE_EVENT = event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
DONE = event("[DONE]")


def cuts(data: bytes):
    """The stream whole, one byte a chunk, event by event, and cut at every position into two."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    yield [part + b"\n\n" for part in data.split(b"\n\n")[:-1]]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def relay(chunks: list[bytes], *, wants_usage: bool, drop_usage: bool) -> tuple[bytes, StreamMeter]:
    body = {"model": "m", "messages": [], "stream": True}
    if wants_usage:
        body["stream_options"] = {"include_usage": True}
    meter = StreamMeter(ChatRequest(body=body, model="m", stream=True), drop_usage=drop_usage)
    return b"".join(meter.relay(iter(chunks))), meter


@pytest.mark.parametrize(
    ("wants_usage", "drop_usage", "expected"),
    [
        (False, True, b"".join([*EVENTS, DONE])),  # asked for by the gateway: not passed on
        (True, False, b"".join([*EVENTS, USAGE_EVENT, DONE])),  # asked for by the client: kept
    ],
)
def test_the_client_gets_the_same_events_however_the_stream_is_cut(wants_usage, drop_usage, expected):
    data = b"".join([*EVENTS, USAGE_EVENT, DONE])
    for chunks in cuts(data):
        out, meter = relay(chunks, wants_usage=wants_usage, drop_usage=drop_usage)
        assert out == expected, chunks
        assert (meter.usage(), meter.source) == (USAGE, "upstream"), chunks


def test_without_a_usage_chunk_the_text_is_counted_however_the_stream_is_cut():
    data = b"".join([*EVENTS, DONE])
    for chunks in cuts(data):
        out, meter = relay(chunks, wants_usage=False, drop_usage=False)
        assert out == data, chunks
        usage = meter.usage()
        assert meter.source == "counted" and usage["completion_tokens"] >= 1, chunks


def chunk_with(usage: object, *, choices: list | None = None) -> bytes:
    return event({"object": "chat.completion.chunk", "choices": choices or [], "usage": usage})


NULL_USAGE = [  # some upstreams put "usage": null in every chunk, and the usage in the last chunk with a choice
    chunk_with(None, choices=delta("Hel")["choices"]),
    chunk_with(None, choices=delta("lo")["choices"]),
    chunk_with(USAGE, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
]


@pytest.mark.parametrize(
    ("events", "drop_usage", "expected"),
    [
        # the usage chunk the gateway asked for is dropped wherever it sits among the events of one chunk
        ([USAGE_EVENT, *EVENTS, DONE], True, [*EVENTS, DONE]),
        ([EVENTS[0], USAGE_EVENT, *EVENTS[1:], DONE], True, [*EVENTS, DONE]),
        ([*EVENTS, USAGE_EVENT], True, EVENTS),
        ([*EVENTS, USAGE_EVENT, USAGE_EVENT, DONE], True, [*EVENTS, DONE]),
        ([*EVENTS, USAGE_EVENT, DONE], False, [*EVENTS, USAGE_EVENT, DONE]),  # the client asked: kept
        # a chunk with choices is content: kept, and its usage learnt; "usage": null is nothing to learn
        ([*NULL_USAGE, DONE], True, [*NULL_USAGE, DONE]),
        # "usage" in the text, not a usage field
        ([event(delta('a "usage" b')), USAGE_EVENT, DONE], True, [event(delta('a "usage" b')), DONE]),
    ],
)
def test_a_chunk_of_whole_events_loses_only_the_dropped_usage_event(events, drop_usage, expected):
    data = b"".join(events)
    out, meter = relay([data], wants_usage=not drop_usage, drop_usage=drop_usage)
    assert out == b"".join(expected)
    assert (meter.usage(), meter.source) == (USAGE, "upstream")
    for chunks in cuts(data):  # the same however the stream is cut
        assert relay(chunks, wants_usage=not drop_usage, drop_usage=drop_usage)[0] == b"".join(expected), chunks
