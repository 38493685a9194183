"""A faster `http.client.parse_headers` for the upstream responses the relay reads.

The standard library hands every response's header block to the `email` package's feed parser, which is built for
mail: 3-4 % of a relayed request's CPU went there. Header blocks of the plain shape
(`Name: value` lines, no folded continuation lines, no stray carriage returns) are turned into the very same
`HTTPMessage` here, line by line; anything else goes to the standard parser, so the result is always what the
standard library would have built. `install()` is called once, when gateway.upstream is imported.
"""

from __future__ import annotations

import email.parser
import http.client
import re

# The header-name characters the email parser accepts (its headerRE: \041-\071 and \073-\176, i.e. no ':').
_NAME = re.compile(r"[!-9;-~]+")
_standard_parse_headers = http.client.parse_headers


def parse_headers(fp, _class=http.client.HTTPMessage):
    lines = http.client._read_headers(fp)
    message = _parse_plain(lines, _class)
    if message is None:
        message = email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
    return message


def _parse_plain(lines: list[bytes], message_class) -> http.client.HTTPMessage | None:
    """The message for a block of plain `Name: value` lines, or None when the block needs the full parser."""
    message = message_class()
    for line in lines[:-1]:  # the last line is the empty one that ends the block
        text = line.decode("iso-8859-1").removesuffix("\n").removesuffix("\r")
        if "\r" in text:
            return None  # the email parser splits lines at a bare CR too
        name, colon, value = text.partition(":")
        if not colon or not _NAME.fullmatch(name):
            return None  # a continuation line, a line without a name, a mail "From " line
        message[name] = value.lstrip(" \t")
    message.set_payload("")
    return message


def install() -> None:
    http.client.parse_headers = parse_headers
