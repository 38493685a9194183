"""One chat-completions call after routing: admission (budgets, rate limits), the relay itself, and the
accounting once the response has been sent (counter updates, the request-log row).

The client never waits on accounting: it runs in the response's `close()`, which the WSGI server calls after the
last byte went out, and the log row itself is written by the background writer.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from accounts.access import KeyGrant
from gateway import accounting, counters, limits, mock, upstream
from gateway.chat import ChatRequest
from gateway.errors import GatewayError
from gateway.pricing import Prices, prices_for
from models_registry import providers
from models_registry.routing import DeploymentSpec, RouteMatch

logger = logging.getLogger("modelgate.relay")


class _ClosingMixin:
    """Run a callback once the WSGI server has finished sending the response."""

    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        super().close()
        self._closed()

    def close_without_signal(self) -> None:
        """close() minus Django's request_finished signal, for the relay's WSGI entry (gateway.middleware.RelayEntry),
        which runs no request cycle and closes what the request opened itself. What else HttpResponseBase.close()
        does is done here: the closers of what the response holds (a streamed answer's generator, whose close
        releases the upstream connection), then the callback."""
        for closer in self._resource_closers:
            try:
                closer()
            except Exception:
                logger.exception("closing a relayed response failed")
        self._resource_closers.clear()
        self.closed = True
        self._closed()

    def _closed(self) -> None:
        callback, self.on_close = self.on_close, None
        if callback is not None:
            try:
                callback()
            except Exception:  # accounting must never break a response that was already sent
                logger.exception("accounting after a response failed")


class AccountedResponse(_ClosingMixin, HttpResponse):
    pass


class AccountedJsonResponse(_ClosingMixin, JsonResponse):
    pass


class AccountedStreamingResponse(_ClosingMixin, StreamingHttpResponse):
    pass


@dataclass(slots=True)
class Call:
    grant: KeyGrant
    started: float
    now: datetime
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex}")
    chat: ChatRequest | None = None
    match: RouteMatch | None = None
    deployment: DeploymentSpec | None = None
    upstream_model: str = ""
    prices: Prices | None = None
    plan: limits.Plan | None = None
    upstream_latency: float | None = None
    finished: bool = False

    # --- admission ------------------------------------------------------------------------------------------------
    def admit(self, match: RouteMatch) -> dict[str, str]:
        """Pick a deployment of the route that every budget and limit admits; returns x-ratelimit-* headers.

        A refusal by the key's or team's counters is final; a deployment at its own rpm/tpm makes way for the next
        deployment of the route, and only when all are full is the request refused."""
        self.match = match
        candidates = list(match.route.deployments)
        if len(candidates) > 1:
            weights = [max(d.weight, 0.0) or 1e-9 for d in candidates]
            first = random.choices(candidates, weights=weights, k=1)[0]
            candidates.remove(first)
            random.shuffle(candidates)
            candidates.insert(0, first)
        refused: GatewayError | None = None
        for deployment in candidates:
            model = deployment.upstream_model(match.captures)
            prices = prices_for(deployment, model)
            plan = limits.plan_for(self.grant, deployment, prices, self.now)
            self.deployment, self.upstream_model, self.prices = deployment, model, prices
            if not plan:
                return {}
            try:
                admission = counters.admit_together(plan.checks)
            except Exception as exc:  # counters down: serve unmetered rather than not at all
                counters.log_store_failure(exc)
                return {}
            if admission.admitted:
                self.plan = plan
                return limits.success_headers(plan, admission, self.now)
            refused = limits.refusal(plan, admission, self.now)
            if plan.info[admission.failed].scope != "deployment":
                break
        raise refused

    # --- accounting -----------------------------------------------------------------------------------------------
    def finish(
        self,
        *,
        status: int,
        error_code: str = "",
        usage: dict | None = None,
        usage_source: str = "",
        response_body: dict | None = None,
    ) -> None:
        """Give back what admission took, add spend and tokens, and queue the log row. Runs once."""
        if self.finished:
            return
        self.finished = True
        latency_ms = (time.perf_counter() - self.started) * 1000  # what the client saw, not the accounting after
        prompt = completion = 0
        if isinstance(usage, dict):
            prompt = _count(usage.get("prompt_tokens"))
            completion = _count(usage.get("completion_tokens"))
        cost = self.prices.cost(prompt, completion) if self.prices is not None else 0.0
        if self.plan is not None:
            counters.add_together(limits.after(self.plan, cost=cost, tokens=prompt + completion))
        grant = self.grant
        keep_bodies = settings.MODELGATE_LOG_BODIES
        accounting.record(
            accounting.LogEntry(
                request_id=self.request_id,
                created_at=self.now,
                requested_model=self.chat.model if self.chat else "",
                status=status,
                key_id=grant.key_id,
                key_hash=grant.key_hash if not grant.is_master else "",
                key_name=grant.key_label,
                team_id=grant.team_id or "",
                route=self.match.route.model_name if self.match else "",
                deployment=self.deployment.id if self.deployment else "",
                upstream_model=self.upstream_model,
                stream=bool(self.chat and self.chat.stream),
                error_code=error_code,
                prompt_tokens=prompt,
                completion_tokens=completion,
                usage_source=usage_source if (prompt or completion) else "",
                cost=cost,
                latency_ms=latency_ms,
                upstream_latency_ms=None if self.upstream_latency is None else self.upstream_latency * 1000,
                request_body=self.chat.body if keep_bodies and self.chat else None,
                response_body=response_body if keep_bodies else None,
            )
        )

    def fail(self, exc: GatewayError) -> None:
        self.finish(status=exc.status, error_code=exc.code or "")

    # --- relaying -------------------------------------------------------------------------------------------------
    def relay(self, headers: dict[str, str]) -> HttpResponse:
        chat, deployment = self.chat, self.deployment
        if deployment.provider == providers.MOCK or deployment.mock_response is not None:
            return self._mock(headers)
        ask_usage = chat.stream and not chat.wants_usage and deployment.provider in providers.STREAM_USAGE_PROVIDERS
        body = chat.for_upstream(self.upstream_model, ask_usage=ask_usage)
        sent = time.perf_counter()
        response = upstream.send(deployment, body, self.upstream_model, stream=chat.stream)
        if chat.stream:
            self.upstream_latency = time.perf_counter() - sent  # until the headers; the stream's pace is the model's
            meter = StreamMeter(chat, drop_usage=ask_usage)
            out = AccountedStreamingResponse(
                meter.relay(upstream.iter_stream(deployment, response)), content_type="text/event-stream"
            )
            out.on_close = lambda: self.finish(status=200, usage=meter.usage(), usage_source=meter.source)
            return _sse_headers(out, headers)
        raw = upstream.read_body(deployment, response)
        self.upstream_latency = time.perf_counter() - sent
        parsed = _json_or_none(raw)
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        out = AccountedResponse(
            raw, status=response.status_code, content_type=response.headers.get("Content-Type", "application/json")
        )
        out.on_close = lambda: self.finish(
            status=response.status_code,
            usage=usage,
            usage_source="upstream",
            response_body=parsed if isinstance(parsed, dict) else None,
        )
        return _with_headers(out, headers)

    def _mock(self, headers: dict[str, str]) -> HttpResponse:
        chat, deployment = self.chat, self.deployment
        if chat.stream:
            meter = StreamMeter(chat, drop_usage=False)
            out = AccountedStreamingResponse(
                meter.relay(mock.stream(chat.body, self.upstream_model, deployment.mock_response)),
                content_type="text/event-stream",
            )
            out.on_close = lambda: self.finish(status=200, usage=meter.usage(), usage_source=meter.source)
            return _sse_headers(out, headers)
        payload = mock.completion(chat.body, self.upstream_model, deployment.mock_response)
        out = AccountedJsonResponse(payload)
        out.on_close = lambda: self.finish(
            status=200, usage=payload["usage"], usage_source="upstream", response_body=payload
        )
        return _with_headers(out, headers)


class StreamMeter:
    """Passes SSE events through as they come and learns the stream's usage on the way.

    Usage comes from the upstream's usage chunk when there is one (asked for by the client, or by us: then that
    chunk is not passed on, so the client gets exactly the stream it asked for). Without one, the streamed text is
    counted (about four characters a token) and the source is recorded as "counted".
    """

    def __init__(self, chat: ChatRequest, *, drop_usage: bool):
        self.chat = chat
        self.drop_usage = drop_usage
        self.counting = not (drop_usage or chat.wants_usage)  # no usage chunk is coming: count the streamed text
        self._usage: dict | None = None
        self._text: list[str] = []
        self.source = "upstream"

    def relay(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        pending = b""
        for chunk in chunks:
            # Not counting text, a chunk of whole events: only the events that mention usage are looked at.
            if not pending and not self.counting and chunk.endswith(b"\n\n"):
                if out := self._without_dropped(chunk):
                    yield out
                continue
            pending += chunk
            if b"\n\n" not in pending:
                continue
            *events, pending = pending.split(b"\n\n")
            out = [event for event in events if self._keep(event)]
            if out:
                yield b"\n\n".join(out) + b"\n\n"
        if pending:
            yield pending

    def _without_dropped(self, chunk: bytes) -> bytes:
        """A chunk of whole events, minus those `_keep` drops, looking only at the events that mention usage: the
        others pass as they came (not counting text, `_keep` keeps them and learns nothing from them). A usage chunk
        usually arrives with the stream's last events, and splitting them all apart cost a stream ~5 % of its CPU."""
        kept: list[bytes] = []
        start = scan = 0  # start: where the bytes not yet copied to `kept` begin
        while (found := chunk.find(b'"usage"', scan)) >= 0:
            event_start = chunk.rfind(b"\n\n", 0, found)
            event_start = 0 if event_start < 0 else event_start + 2
            event_end = chunk.find(b"\n\n", found)  # the chunk ends with one
            if not self._keep(chunk[event_start:event_end]):
                kept.append(chunk[start:event_start])
                start = event_end + 2
            scan = event_end + 2
        if not start:
            return chunk
        kept.append(chunk[start:])
        return b"".join(kept)

    def _keep(self, event: bytes) -> bool:
        data = event.strip()
        if not data.startswith(b"data:") or data.endswith(b"[DONE]"):
            return True
        has_usage = b'"usage"' in data
        if not has_usage and self._usage is None:
            self._collect_text(data)
            return True
        payload = _json_or_none(data[5:])
        if not isinstance(payload, dict):
            return True
        if isinstance(payload.get("usage"), dict):
            self._usage = payload["usage"]
            if self.drop_usage and not payload.get("choices"):
                return False
        else:
            self._collect_text(data, payload)
        return True

    def _collect_text(self, data: bytes, payload: dict | None = None) -> None:
        if not self.counting:
            return
        payload = payload if payload is not None else _json_or_none(data[5:])
        if isinstance(payload, dict):
            for choice in payload.get("choices") or ():
                content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
                if isinstance(content, str):
                    self._text.append(content)

    def usage(self) -> dict | None:
        if self._usage is not None:
            return self._usage
        self.source = "counted"
        return mock.usage_for(self.chat.body, "".join(self._text))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _json_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _with_headers(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response


def _sse_headers(response: StreamingHttpResponse, headers: dict[str, str]) -> StreamingHttpResponse:
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass chunks through as they come
    return _with_headers(response, headers)
