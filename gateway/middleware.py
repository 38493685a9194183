"""The relay's own entries into Django: chat completions skip what was built for the operator console.

Two entries, one path through them (`_relay`): `RelayEntry` wraps the WSGI application `modelgate serve` runs and
takes chat completions before Django's request cycle; `RelayFastPathMiddleware`, first in MIDDLEWARE, does the same
for requests that reach Django's handler some other way (Django's test client, another WSGI server pointed at
Django's own application).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from gateway.errors import RequestTooLargeError, error_response


def _relay_views() -> dict[str, Callable[[HttpRequest], HttpResponse]]:
    from gateway import proxy

    return {"/v1/chat/completions": proxy.chat_completions, "/chat/completions": proxy.chat_completions}


def _relay(view: Callable[[HttpRequest], HttpResponse], request: HttpRequest) -> HttpResponse:
    """What the relay keeps of the console's chain: the Host header is validated against ALLOWED_HOSTS
    (DisallowedHost: the same OpenAI-shaped 400 as on every other path), and a whole (not streamed) answer gets its
    Content-Length, as CommonMiddleware would (without it the server sends the answer in chunked framing, in three
    writes instead of one or two)."""
    request.get_host()
    response = view(request)
    if not response.streaming and not response.has_header("Content-Length"):
        response.headers["Content-Length"] = str(len(response.content))
    return response


class RelayFastPathMiddleware:
    """First in MIDDLEWARE: a chat-completions request goes straight to its view.

    The relay needs none of what the rest of the chain does for the admin (sessions, users, messages, CSRF, frame
    and content-type headers, static files) and no URL resolution for its two fixed paths; that work was a tenth of
    a relayed request's CPU. Every other path takes the whole chain.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.views = _relay_views()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        return _relay(view, request)


class RelayEntry:
    """The WSGI application `modelgate serve` runs: chat completions go to the relay without Django's request
    cycle; every other request goes to Django's handler (`django_app`) as usual.

    What the request cycle does around a view is mostly for the console: URL resolution, the middleware chain, and
    the request_started and request_finished signals, whose receivers close the database connections and caches a
    request opened, first at its start and again at its end. Under gevent that is a tenth of a relayed request's
    instructions: each receiver walks every configured connection or cache through a greenlet-local lookup, for a
    warm key's request that opens none. Here a relayed request's database connections (a cold key's lookup) are
    closed once, when its response is closed, as Django would; the relay uses no Django cache. Exceptions become
    responses as in Django (DisallowedHost a 400, anything unexpected a logged 500, both OpenAI-shaped through the
    handlers in gateway.urls).
    """

    def __init__(self, django_app: Callable[[dict, Callable], Iterable[bytes]]):
        self.django_app = django_app
        self.views = {
            path: convert_exception_to_response(lambda request, view=view: _relay(view, request))
            for path, view in _relay_views().items()
        }

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if "CONTENT_LENGTH" not in environ and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            refusal = _take_chunked_body(environ)
            if refusal is not None:
                start_response(f"{refusal.status_code} {refusal.reason_phrase}", [*refusal.items()])
                return [refusal.content]
        handle = self.views.get(environ.get("PATH_INFO"))
        if handle is None:
            return self.django_app(environ, start_response)
        response = handle(WSGIRequest(environ))
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())],
        )
        return _Sent(response)


def _take_chunked_body(environ: dict) -> HttpResponse | None:
    """A body sent in chunked framing (no Content-Length; curl with `-T -`, some HTTP clients) is read here, through
    the server's decoding of the framing, and handed on as a body with a length: Django reads a request's body only
    as far as its Content-Length says, and would see an empty one. A body over MODELGATE_MAX_BODY_BYTES is refused
    with the 413 a declared length over the limit gets."""
    limit = settings.MODELGATE_MAX_BODY_BYTES
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        return error_response(
            RequestTooLargeError(f"Request body is larger than the limit of {limit} bytes. Send a smaller request.")
        )
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return None


class _Sent:
    """A relayed response as the WSGI server sends it; closing it closes the response (which runs the relay's
    accounting) and then the request's database connections, without Django's request_finished signal."""

    __slots__ = ("response",)

    def __init__(self, response: HttpResponse):
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.response)

    def close(self) -> None:
        close = getattr(self.response, "close_without_signal", None)
        if close is None:
            self.response.close()  # an error answer: Django's own close, whose signal closes the connections
            return
        try:
            close()
        finally:
            close_old_connections()
