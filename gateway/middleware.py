"""The relay's own entry into Django: chat completions skip the middleware chain built for the operator console."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class RelayFastPathMiddleware:
    """First in MIDDLEWARE: a chat-completions request goes straight to its view.

    The relay needs none of what the rest of the chain does for the admin (sessions, users, messages, CSRF, frame
    and content-type headers, static files) and no URL resolution for its two fixed paths; that work was a tenth of
    a relayed request's CPU. What it does need is kept: the Host header is validated against ALLOWED_HOSTS, and a
    whole (not streamed) answer gets its Content-Length, as CommonMiddleware would (a bad Host gets the same
    OpenAI-shaped 400; without a length, the server would send the answer in chunked framing, in three writes
    instead of one or two). Every other path takes the whole chain.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        from gateway import proxy

        self.get_response = get_response
        self.views = {"/v1/chat/completions": proxy.chat_completions, "/chat/completions": proxy.chat_completions}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        request.get_host()  # DisallowedHost -> handler400, as for every other path
        response = view(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
