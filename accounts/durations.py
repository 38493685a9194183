"""LiteLLM's duration strings: `30s`, `15m`, `2h`, `1d`, `1w`, `1mo` (SPEC §4)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DURATION_HELP = "a number and a unit: 30s, 15m, 2h, 1d, 1w or 1mo"


def is_duration(value: str) -> bool:
    return bool(_DURATION.match(value))


def add_duration(start: datetime, value: str) -> datetime:
    """`start` plus the duration; ValueError when `value` does not parse."""
    found = _DURATION.match(value)
    if not found:
        raise ValueError(f"'{value}' is not a duration; use {DURATION_HELP}")
    amount, unit = int(found.group(1)), found.group(2)
    if unit == "mo":
        return _add_months(start, amount)
    return start + timedelta(**{_UNITS[unit]: amount})


def _add_months(start: datetime, months: int) -> datetime:
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, _days_in_month(year, month))
    return start.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (datetime(year, month + 1, 1) - datetime(year, month, 1)).days


def fixed_length(value: str) -> timedelta | None:
    """The duration as a timedelta, or None for calendar months (their length varies)."""
    found = _DURATION.match(value)
    if not found:
        raise ValueError(f"'{value}' is not a duration; use {DURATION_HELP}")
    amount, unit = int(found.group(1)), found.group(2)
    if unit == "mo":
        return None
    return timedelta(**{_UNITS[unit]: amount})
