"""The `mock/` provider: answers locally, with realistic `usage`, so the example config works offline (SPEC §7)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_tokens(text: str) -> int:
    """A rough count (about four characters a token), enough for realistic usage figures."""
    return max(1, (len(text) + 3) // 4) if text else 0


def reply_text(body: dict, mock_response: str | None) -> str:
    if mock_response is not None:
        return mock_response
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def usage_for(body: dict, text: str) -> dict:
    prompt = sum(4 + count_tokens(_text_of(m.get("content"))) for m in body.get("messages", [])) + 3
    completion = count_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(body: dict, model: str, mock_response: str | None) -> dict:
    text = reply_text(body, mock_response)
    return {
        "id": f"chatcmpl-mock-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": usage_for(body, text),
    }


def stream(body: dict, model: str, mock_response: str | None) -> Iterator[bytes]:
    text = reply_text(body, mock_response)
    base = {
        "id": f"chatcmpl-mock-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def event(choices: list, **extra) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    words = text.split(" ")
    for index, word in enumerate(words):
        piece = word if index == len(words) - 1 else word + " "
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield event([], usage=usage_for(body, text))
    yield b"data: [DONE]\n\n"
