"""A JSON parser for the management API that forgives what LiteLLM's docs put in their curl bodies.

The "Control Model Access" guide sends bodies such as `{"models": ["beta-models"], # comment\n "max_budget": 0,}`.
Strict JSON refuses them; LiteLLM users copy them. Outside strings we drop `#` comments and trailing commas, then
parse strictly. Anything still not JSON is a 400 `invalid_json`.
"""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def relax_json(text: str) -> str:
    """Remove `#` comments and trailing commas that stand outside JSON strings."""
    out: list[str] = []
    in_string = escaped = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif ch in "}]":
            # drop a comma that only whitespace separates from this closing bracket
            j = len(out) - 1
            while j >= 0 and out[j].isspace():
                j -= 1
            if j >= 0 and out[j] == ",":
                del out[j]
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _refuse_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON does not, and the database cannot store them.
    raise ValueError(f"{name} is not valid JSON")


def loads_lenient(raw: bytes) -> object:
    text = raw.decode("utf-8")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return json.loads(relax_json(text), parse_constant=_refuse_constant)


class LenientJSONParser(JSONParser):
    # curl's -d sends application/x-www-form-urlencoded unless told otherwise; LiteLLM reads JSON anyway, so do we.
    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            return loads_lenient(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(str(exc)) from exc
