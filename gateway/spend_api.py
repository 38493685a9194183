"""GET /spend/logs: the request log for scripts (master key), filtered like LiteLLM's endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.response import Response

from accounts.auth import hash_key
from gateway.api import MasterKeyApi
from gateway.errors import InvalidRequestError
from gateway.models import RequestLog

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def log_as_dict(row: RequestLog) -> dict:
    return {
        "request_id": row.request_id,
        "startTime": row.created_at.isoformat(),
        "api_key": row.key_hash,
        "key_name": row.key_name,
        "team_id": row.team_id or None,
        "model": row.requested_model,
        "route": row.route,
        "model_id": row.deployment,
        "upstream_model": row.upstream_model,
        "stream": row.stream,
        "status": row.status,
        "error_code": row.error_code or None,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "usage_source": row.usage_source or None,
        "spend": row.cost,
        "latency_ms": row.latency_ms,
        "upstream_latency_ms": row.upstream_latency_ms,
        "request_body": row.request_body,
        "response_body": row.response_body,
    }


def _moment(value: str, name: str, *, end: bool) -> datetime:
    """`2026-11-28` (a whole day: its start, or for end_date its end) or an ISO datetime."""
    # A plain date first: parse_datetime would read it as its midnight. Both raise ValueError for what looks like a
    # date but is none (2026-02-30).
    try:
        day = parse_date(value)
        moment = parse_datetime(value) if day is None else None
    except ValueError:
        day = moment = None
    if day is not None:
        try:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
        except OverflowError:  # end_date=9999-12-31: no upper bound
            moment = datetime.max
    elif moment is None:
        raise InvalidRequestError(f"'{name}' must be a date (YYYY-MM-DD) or an ISO datetime.", param=name)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def _page(request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise InvalidRequestError(f"'{name}' must be a whole number from 1 to {high}.", param=name)
    return int(raw)


class SpendLogsApi(MasterKeyApi):
    def get(self, request):
        params = request.query_params
        rows = RequestLog.objects.all()
        if params.get("api_key"):
            key = params["api_key"]
            rows = rows.filter(key_hash=hash_key(key) if key.startswith("sk-") else key.lower())
        for param, column in (("team_id", "team_id"), ("request_id", "request_id"), ("model", "requested_model")):
            if params.get(param):
                rows = rows.filter(**{column: params[param]})
        if params.get("start_date"):
            rows = rows.filter(created_at__gte=_moment(params["start_date"], "start_date", end=False))
        if params.get("end_date"):
            rows = rows.filter(created_at__lt=_moment(params["end_date"], "end_date", end=True))
        page = _page(request, "page", 1, 10**9)
        size = _page(request, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        chunk = rows.order_by("-created_at", "-id")[(page - 1) * size : page * size]
        return Response([log_as_dict(row) for row in chunk])
