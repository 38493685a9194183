"""Spend at a glance, for the admin index: totals from the request log and a small server-rendered SVG chart.

`{% spend_at_a_glance %}` (templates/admin/index.html) renders templates/admin/modelgate/spend_at_a_glance.html.
Everything is computed from RequestLog with a handful of aggregate queries; no JavaScript, no CDN.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django import template
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from accounts.models import VirtualKey
from gateway.models import RequestLog

register = template.Library()

CHART_DAYS = 14
TOP = 5


def _totals(rows) -> dict:
    found = rows.aggregate(
        requests=Count("id"),
        errors=Count("id", filter=Q(status__gte=400)),
        spend=Sum("cost"),
        tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
    )
    return {k: v or 0 for k, v in found.items()}


def daily_series(now: datetime, days: int = CHART_DAYS) -> list[dict]:
    """One entry per day (oldest first, today last): requests, errors, spend; days without traffic count as 0."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        RequestLog.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(requests=Count("id"), errors=Count("id", filter=Q(status__gte=400)), spend=Sum("cost"))
    )
    by_day = {row["day"]: row for row in rows}
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        series.append(
            {
                "day": day,
                "requests": row.get("requests") or 0,
                "errors": row.get("errors") or 0,
                "spend": row.get("spend") or 0.0,
            }
        )
    return series


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _money(value: float) -> str:
    return f"${value:.4f}" if 0 < value < 1 else f"${value:,.2f}"


def chart_svg(series: list[dict], *, width: int = 680, height: int = 200) -> SafeString:
    """Stacked bars (successful and failed requests per day) with the day's spend as a line on the right axis."""
    left, right, top, bottom = 40, 56, 14, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(series), 1)
    bar_w = slot * 0.62
    max_requests = _nice_max(max((d["requests"] for d in series), default=0))
    max_spend = _nice_max(max((d["spend"] for d in series), default=0.0))

    def y_for(value: float, maximum: float) -> float:
        return top + plot_h - (value / maximum) * plot_h

    parts = [
        f'<svg class="mg-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Requests and spend per day, last '
        f'{len(series)} days">'
    ]
    for fraction in (0, 0.5, 1):  # grid and axis labels
        y = top + plot_h - fraction * plot_h
        parts.append(f'<line class="mg-grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(f'<text class="mg-axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{max_requests * fraction:g}</text>")  # fmt: skip
        parts.append(f'<text class="mg-axis mg-axis-spend" x="{left + plot_w + 6}" y="{y + 4:.1f}">'
                     f"{escape(_money(max_spend * fraction))}</text>")  # fmt: skip
    points = []
    for index, day in enumerate(series):
        x = left + index * slot + (slot - bar_w) / 2
        ok = day["requests"] - day["errors"]
        y_ok = y_for(ok, max_requests)
        y_all = y_for(day["requests"], max_requests)
        label = f"{day['day'].isoformat()}: {day['requests']} requests, {day['errors']} errors, {_money(day['spend'])}"
        parts.append(f"<g><title>{escape(label)}</title>")
        parts.append(
            f'<rect class="mg-bar-ok" x="{x:.1f}" y="{y_ok:.1f}" width="{bar_w:.1f}" '
            f'height="{top + plot_h - y_ok:.1f}"/>'
        )
        if day["errors"]:
            parts.append(
                f'<rect class="mg-bar-err" x="{x:.1f}" y="{y_all:.1f}" width="{bar_w:.1f}" '
                f'height="{y_ok - y_all:.1f}"/>'
            )
        parts.append("</g>")
        points.append(f"{x + bar_w / 2:.1f},{y_for(day['spend'], max_spend):.1f}")
        if index % 2 == (len(series) - 1) % 2:  # label every other day, always today
            parts.append(
                f'<text class="mg-axis" x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{escape(_day_label(day['day']))}</text>"
            )
    parts.append(f'<polyline class="mg-line-spend" points="{" ".join(points)}"/>')
    for point in points:
        cx, cy = point.split(",")
        parts.append(f'<circle class="mg-dot-spend" cx="{cx}" cy="{cy}" r="2.5"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above; the rest are numbers


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def spend_summary(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    local = timezone.localtime(now)
    today_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = today_start.replace(day=1)
    month = RequestLog.objects.filter(created_at__gte=month_start)

    top_keys = list(
        month.values("key_hash", "key_name")
        .annotate(requests=Count("id"), spend=Sum("cost"), errors=Count("id", filter=Q(status__gte=400)))
        .order_by("-spend", "-requests")[:TOP]
    )
    hashes = [k["key_hash"] for k in top_keys]
    links = dict(VirtualKey.objects.filter(key_hash__in=hashes).values_list("key_hash", "pk"))
    for entry in top_keys:
        pk = links.get(entry["key_hash"])
        entry["url"] = reverse("admin:accounts_virtualkey_change", args=[pk]) if pk else ""
        entry["spend"] = entry["spend"] or 0.0
    top_models = list(
        month.values("requested_model")
        .annotate(
            requests=Count("id"),
            spend=Sum("cost"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
            errors=Count("id", filter=Q(status__gte=400)),
        )
        .order_by("-requests", "requested_model")[:TOP]
    )
    log_url = reverse("admin:gateway_requestlog_changelist")
    errors = list(
        month.filter(status__gte=400)
        .values("status", "error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "status")[:TOP]
    )
    for entry in errors:
        entry["url"] = f"{log_url}?status={entry['status']}" + (
            f"&error_code={entry['error_code']}" if entry["error_code"] else ""
        )
    series = daily_series(now)
    return {
        "today": _totals(RequestLog.objects.filter(created_at__gte=today_start)),
        "month": _totals(month),
        "month_label": f"{local:%B %Y}",
        "top_keys": top_keys,
        "top_models": top_models,
        "errors": errors,
        "chart": chart_svg(series),
        "chart_days": len(series),
        "chart_total": sum(d["requests"] for d in series),
        "log_url": log_url,
        "error_log_url": f"{log_url}?status__gte=400",
    }


@register.inclusion_tag("admin/modelgate/spend_at_a_glance.html")
def spend_at_a_glance() -> dict:
    return spend_summary()


@register.filter
def usd(value) -> str:
    return _money(float(value or 0))
