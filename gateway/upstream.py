"""Every outbound call modelgate makes goes through this module.

One pooled `requests.Session` for the process; the deployment's key is resolved when the call is made (so
`os.environ/NAME` follows the environment) and never leaves this module except in the upstream's own headers.
`requests` exceptions become UpstreamUnavailableError (502) and UpstreamTimeoutError (504); an upstream error answer
becomes UpstreamError with the upstream's status, type and code (SPEC §6).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import sys
from collections.abc import Iterator

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from gateway import httpheaders
from gateway.errors import (
    DeploymentMisconfiguredError,
    ProviderNotSupportedError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_body,
)
from gateway.sockets import send_all
from models_registry import providers
from models_registry.routing import DeploymentSpec

logger = logging.getLogger("modelgate.upstream")

ENV_PREFIX = "os.environ/"

httpheaders.install()  # upstream response headers without the email parser (same result)


class _DropCheck:
    """urllib3 asks before reusing a pooled connection whether the server has closed it: a zero-timeout poll of the
    socket. It polls through `select.poll`, which under gevent is an emulation that sets up and tears down a watcher
    (~12 µs a check); a poll that never waits needs no cooperation, so the operating system's own poll answers the
    same question here, in one system call (~2 µs)."""

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = _os_poll()()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)


class _OneWrite:
    """The request's head goes out with its body, in one write: urllib3 sends the head, then the body, two system
    calls and two wake-ups of the server where one does (each ~10 % of a relayed request's own CPU on loopback).
    http.client hands the head to `_send_output`; it is held there and sent with the body's first part, or alone
    when the body is large or there is none."""

    HOLD_UP_TO = 64 * 1024  # a larger body goes in a write of its own rather than being copied behind the head

    _held: bytes | None = None

    def _send_output(self, message_body=None, encode_chunked=False):
        if message_body is not None or self._held is not None:
            self._flush_held()
            super()._send_output(message_body, encode_chunked)
            return
        self._buffer.extend((b"", b""))
        self._held = b"\r\n".join(self._buffer)
        del self._buffer[:]

    def send(self, data):
        if self._held is not None and isinstance(data, bytes) and len(data) <= self.HOLD_UP_TO:
            data, self._held = self._held + data, None
        self._flush_held()
        self._send(data)

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._send(held)

    def _send(self, data) -> None:
        """http.client's send; bytes through `send_all` (no getsockopt before every write)."""
        if self.sock is None or not isinstance(data, bytes | bytearray):
            super().send(data)  # connects first, or reads a file-like body
            return
        sys.audit("http.client.send", self, data)
        send_all(self.sock, data)

    def getresponse(self, *args, **kwargs):
        self._flush_held()  # a request without a body
        return super().getresponse(*args, **kwargs)

    def close(self) -> None:
        self._held = None
        super().close()


class _KnownHeaders:
    """A header line already sent once is sent again as it went, without http.client checking and encoding it anew
    (two regular expressions and an encode per header, ~3 % of a relayed request's CPU): an upstream call's headers
    are the same few name-value pairs call after call. The first time, http.client checks the pair as always, and
    refuses a bad one (a key with a line break in it) before anything is kept. Content-Length, which changes with
    every body, is never kept."""

    KEEP_UP_TO = 256  # pairs; more (a config with many keys, many hosts) start the memory afresh

    _lines: dict[tuple[str, str], bytes] = {}

    def putheader(self, header, *values):
        if len(values) != 1 or header == "Content-Length" or values[0] == urllib3.util.SKIP_HEADER:
            super().putheader(header, *values)
            return
        key = (header, values[0])
        line = self._lines.get(key)
        if line is not None:
            self._buffer.append(line)
            return
        before = len(self._buffer)
        super().putheader(header, *values)
        if len(self._buffer) == before + 1 and isinstance(header, str) and isinstance(values[0], str):
            lines = _KnownHeaders._lines
            if len(lines) >= self.KEEP_UP_TO:
                lines.clear()
            lines[key] = self._buffer[-1]


class _HTTPConnection(_DropCheck, _KnownHeaders, _OneWrite, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_DropCheck, _KnownHeaders, _OneWrite, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


@functools.cache
def _os_poll():
    """select.poll as the OS provides it: first asked for by a request, i.e. after gevent's patching, if any."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll") if monkey is not None else select.poll


class RelayAdapter(HTTPAdapter):
    """requests' pooled adapter, minus what a relay never uses.

    - Upstream cookies are not collected: no caller reads them, and a relay must not carry one caller's cookies to
      another.
    - An upstream's connection pool is looked up in the pool manager once and kept for the adapter's life, instead
      of re-parsing the URL and building its pool key (scheme, host, port, TLS settings) on every call. The adapter
      holds one pool per upstream origin (scheme://host:port), however many there are; the manager alone would keep
      `pool_connections` of them and drop the least recently used beyond that, with their idle connections.
    - A pooled connection's check for a server-side close is one system call (`_DropCheck`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def close(self) -> None:
        super().close()
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

    def build_response(self, req: PreparedRequest, resp) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url
        response.request = req
        response.connection = self
        return response

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        url = request.url
        path = url.find("/", url.find("//") + 2)
        key = (url if path < 0 else url[:path], verify, cert)  # the origin: what the pool depends on
        pool = self._pools.get(key)
        if pool is None:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
            pool = self._pools[key] = self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
        return pool


def _new_session() -> requests.Session:
    session = requests.Session()
    size = settings.MODELGATE_UPSTREAM_POOL_SIZE
    adapter = RelayAdapter(pool_connections=16, pool_maxsize=size, max_retries=0, pool_block=False)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxy or netrc surprises; the deployment says where to go
    return session


_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = _new_session()
    return _session


def resolve_setting(value: str, *, deployment: DeploymentSpec, field: str) -> str:
    """`os.environ/NAME` -> the variable's value, read now; a missing variable names itself (never its value)."""
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :]
    resolved = os.environ.get(name)
    if resolved is None:
        raise DeploymentMisconfiguredError(
            f"Model '{deployment.model_name}' cannot be called: its {field} reads environment variable {name}, "
            "which is not set on the gateway. Ask your admin to set it."
        )
    return resolved


def endpoint(deployment: DeploymentSpec, upstream_model: str) -> tuple[str, dict[str, str]]:
    """The URL and headers for a chat-completions call to this deployment."""
    provider = deployment.provider
    if provider in providers.UNSUPPORTED_PROVIDERS:
        raise ProviderNotSupportedError(
            f"Model '{deployment.model_name}' uses provider '{provider}', which modelgate does not relay yet "
            "(it relays OpenAI-compatible APIs). Ask your admin to point it at an OpenAI-compatible endpoint."
        )
    api_base = resolve_setting(deployment.api_base, deployment=deployment, field="api_base")
    if not api_base:
        api_base = providers.DEFAULT_API_BASES.get(provider) or ""
    if not api_base:
        raise DeploymentMisconfiguredError(
            f"Model '{deployment.model_name}' has no api_base and provider '{provider}' has no default. "
            "Ask your admin to set litellm_params.api_base."
        )
    api_key = resolve_setting(deployment.api_key, deployment=deployment, field="api_key")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    base = api_base.rstrip("/")
    if provider == providers.AZURE:
        version = resolve_setting(deployment.api_version, deployment=deployment, field="api_version")
        url = (
            f"{base}/openai/deployments/{upstream_model}/chat/completions"
            f"?api-version={version or providers.AZURE_DEFAULT_API_VERSION}"
        )
        if api_key:
            headers["api-key"] = api_key
    else:
        url = f"{base}/chat/completions"
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
    return url, headers


_urls: dict[str, str] = {}


def _prepared(url: str, headers: dict[str, str], body: bytes) -> PreparedRequest:
    """A request ready for the pooled adapter, without `Session.request`'s per-call work.

    The session would merge environment settings, cookies and hooks on every call (a tenth of a relayed request's
    CPU), follow redirects, and keep upstream cookies in a jar shared by every caller; a relay wants none of that.
    The URL is parsed and checked once per distinct URL."""
    prepared_url = _urls.get(url)
    if prepared_url is None:
        if len(_urls) >= 1024:  # an Azure wildcard route makes a URL per model name asked for: keep it bounded
            _urls.clear()
        prepared_url = _urls[url] = requests.Request("POST", url).prepare().url
    request = PreparedRequest()
    request.method = "POST"
    request.url = prepared_url
    request.headers = CaseInsensitiveDict(headers)
    request.headers["Content-Length"] = str(len(body))
    request.body = body
    return request


def _timeout(deployment: DeploymentSpec) -> tuple[float, float]:
    read = deployment.timeout or settings.MODELGATE_UPSTREAM_TIMEOUT
    return (min(settings.MODELGATE_UPSTREAM_CONNECT_TIMEOUT, read), read)


def send(deployment: DeploymentSpec, body: bytes, upstream_model: str, *, stream: bool) -> requests.Response:
    """POST the body upstream. Returns a 2xx response (streaming: not yet read); raises a GatewayError otherwise."""
    url, headers = endpoint(deployment, upstream_model)
    if stream:
        headers["Accept"] = "text/event-stream"
    try:
        response = (
            session().get_adapter(url).send(_prepared(url, headers, body), stream=stream, timeout=_timeout(deployment))
        )
    except requests.Timeout as exc:
        raise UpstreamTimeoutError(
            f"The upstream for model '{deployment.model_name}' did not answer within {_timeout(deployment)[1]:g}s. "
            "Try again, or ask your admin to raise the deployment's timeout."
        ) from exc
    except requests.RequestException as exc:
        logger.warning("upstream %s for %s unreachable: %s", deployment.id, deployment.model_name, type(exc).__name__)
        raise UpstreamUnavailableError(
            f"Could not reach the upstream for model '{deployment.model_name}'. Try again later; "
            "if it persists, ask your admin to check the deployment's api_base."
        ) from exc
    if response.status_code >= 400:
        raise upstream_error(deployment, response)
    return response


def upstream_error(deployment: DeploymentSpec, response: requests.Response) -> UpstreamError:
    """Keep the upstream's status, type and code; prefix its message with the route (SPEC §6)."""
    try:
        raw = response.content
    except requests.RequestException:
        raw = b""
    finally:
        response.close()
    status = response.status_code
    message, type_, code, param = None, None, None, None
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict):
        err = payload.get("error", payload)
        if isinstance(err, dict):
            message = err.get("message")
            type_ = err.get("type")
            code = err.get("code")
            param = err.get("param")
        elif isinstance(err, str):
            message = err
    if not isinstance(message, str) or not message:
        text = raw.decode("utf-8", "replace").strip()[:500]
        message = text or f"HTTP {status}"
    message = _scrub(message, deployment)
    return UpstreamError(
        f"{deployment.model_name}: {message}",
        status=status,
        type=type_ if isinstance(type_, str) else ("upstream_error" if status >= 500 else "invalid_request_error"),
        code="upstream_error" if code is None else str(code),  # SPEC §6: code is always a string
        param=param if isinstance(param, str) else None,
    )


def _scrub(message: str, deployment: DeploymentSpec) -> str:
    """Never let the deployment's own key come back in an upstream's error text."""
    try:
        key = resolve_setting(deployment.api_key, deployment=deployment, field="api_key")
    except DeploymentMisconfiguredError:
        return message
    if key and len(key) >= 6 and key in message:
        message = message.replace(key, "***")
    return message


READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)  # what reading a body can raise


def read_body(deployment: DeploymentSpec, response: requests.Response) -> bytes:
    """A non-streamed answer's whole body, in one read through urllib3 (`response.content` reads it 10 KB at a time
    through two generators: 2 % of a relayed request's instructions). An upstream that breaks off its answer is a
    502 (a 504 when it went silent), never an error of the gateway's own."""
    try:
        if isinstance(response.raw, urllib3.HTTPResponse):
            return response.raw.read(decode_content=True)
        return response.content
    except READ_ERRORS as exc:
        response.close()
        raise _broke_off(deployment, exc, "its answer") from exc


def _broke_off(deployment: DeploymentSpec, exc: Exception, what: str) -> UpstreamUnavailableError:
    logger.warning("upstream %s broke off %s: %s", deployment.id, what, type(exc).__name__)
    timeout = isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError))
    error = UpstreamTimeoutError if timeout else UpstreamUnavailableError
    return error(f"The upstream for model '{deployment.model_name}' broke off {what}. Try again.")


def iter_stream(deployment: DeploymentSpec, response: requests.Response) -> Iterator[bytes]:
    """Pass SSE bytes through as they arrive. A failure mid-stream ends it with an OpenAI-shaped error event."""
    try:
        yield from _as_it_arrives(response)
    except (*READ_ERRORS, BrokenStreamError) as exc:
        yield b"data: " + json.dumps(error_body(_broke_off(deployment, exc, "the stream"))).encode() + b"\n\n"
    finally:
        response.close()


# --- reading a streamed body ----------------------------------------------------------------------------------------
READ_SIZE = 65536
MAX_LINE = 65536  # a chunk-size or trailer line longer than this is not HTTP


class BrokenStreamError(Exception):
    """The upstream's chunk framing is broken, or its body ended before the last chunk."""


def _as_it_arrives(response: requests.Response) -> Iterator[bytes]:
    """The body in the pieces it arrives in: at each step, everything the connection has received so far.

    urllib3 hands a chunked body on one HTTP chunk at a time, and upstreams send one chunk per SSE event. Relayed
    like that, every event costs a write to the client (a send system call, gunicorn's framing, a wake-up of the
    client), although by the time the relay reads, several events have often arrived together. Here each read takes
    what the connection has buffered, or what one recv brings when nothing is (`read1`), so nothing waits for data
    that has not come, and what came together goes on together. A body without chunk framing is read the same way
    through urllib3's `read1`; a chunked body with a content encoding is left to urllib3, which decodes it."""
    raw = response.raw
    if not isinstance(raw, urllib3.HTTPResponse):
        yield from response.iter_content(chunk_size=None)
        return
    if not raw.chunked:
        while data := raw.read1(READ_SIZE, decode_content=True):
            yield data
        return
    connection_file = getattr(raw._fp, "fp", None)  # http.client's buffered reader of the socket
    encoded = raw.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    if connection_file is None or encoded or raw.chunk_left is not None:
        yield from response.iter_content(chunk_size=None)
        return
    yield from _dechunk(connection_file, raw)


def _dechunk(connection_file, raw: urllib3.HTTPResponse) -> Iterator[bytes]:
    """Decode chunked transfer coding (RFC 9112 7.1) from what `read1` returns, handing on every chunk whose data
    is all there (as urllib3 does: a stream cut off inside a chunk ends at a chunk's edge, where the error event that
    follows can start an event of its own). After the last chunk and its trailer section, the connection goes back
    to the pool as urllib3 would have put it there."""
    buf, pos = b"", 0  # framing bytes read but not yet parsed
    partial: list[bytes] = []  # the current chunk's data so far
    left = 0  # data bytes of the current chunk not yet read
    after_data = False  # the CRLF that ends a chunk's data comes next
    last = False  # the zero-size chunk was read: trailer lines, then an empty line, end the body
    while True:
        data = connection_file.read1(READ_SIZE)
        if not data:
            raise BrokenStreamError("the upstream closed the connection before the end of the stream")
        buf, pos = (buf[pos:] + data if pos < len(buf) else data), 0
        end = len(buf)
        out: list[bytes] = []
        try:
            while pos < end:
                if left:
                    take = min(left, end - pos)
                    partial.append(buf[pos : pos + take])
                    pos += take
                    left -= take
                    if not left:
                        out += partial
                        partial.clear()
                        after_data = True
                elif after_data:
                    if end - pos < 2:
                        break
                    if buf[pos : pos + 2] != b"\r\n":
                        raise BrokenStreamError("a chunk's data is not followed by CRLF")
                    pos += 2
                    after_data = False
                else:
                    eol = buf.find(b"\n", pos)
                    if eol < 0:
                        if end - pos > MAX_LINE:
                            raise BrokenStreamError("a chunk-size or trailer line is too long")
                        break
                    line, pos = buf[pos:eol], eol + 1
                    if last:
                        if line.strip():
                            continue  # a trailer field: nothing a relay passes on
                        raw._fp.close()  # http.client's response, closed as urllib3 closes it after the last chunk
                        if pos == end:  # nothing after the body: the connection can carry the next request
                            raw.release_conn()
                        if out:
                            yield b"".join(out)
                        return
                    try:
                        size = int(line.split(b";", 1)[0], 16)
                    except ValueError:
                        raise BrokenStreamError(f"bad chunk-size line {line[:40]!r}") from None
                    if size < 0:
                        raise BrokenStreamError(f"bad chunk-size line {line[:40]!r}")
                    left, last = size, size == 0
        except BrokenStreamError:
            if out:  # the whole chunks before the break still go on
                yield b"".join(out)
            raise
        if out:
            yield out[0] if len(out) == 1 else b"".join(out)
