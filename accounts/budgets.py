"""Budget periods (pure). A key or team with `budget_duration` spends within periods that end at its
`budget_reset_at`, then every `budget_duration` after; without a duration there is one period for ever."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from accounts.durations import add_duration, fixed_length

FOREVER = 0


def period_end(reset_at: datetime | None, duration: str | None, now: datetime) -> datetime | None:
    """The end of the budget period that contains `now` (None: the budget never resets)."""
    if reset_at is None or not duration:
        return None
    if now < reset_at:
        return reset_at
    step = fixed_length(duration)
    if step is not None:
        periods = int((now - reset_at) / step) + 1
        return reset_at + periods * step
    end = reset_at
    while end <= now:  # calendar months: at most a few hundred steps
        end = add_duration(end, duration)
    return end


def period_id(end: datetime | None) -> int:
    """A stable name for the period, shared by every process: its end as a Unix timestamp."""
    return FOREVER if end is None else int(end.timestamp())


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's or a team's budget and rate limits, as of the snapshot (pure data for the hot path)."""

    owner: str  # counter-name prefix: "k<pk>" or "t<team_id>"
    label: str  # for messages: "Key 'ci-bot'", "Team 'ml'"
    max_budget: float | None = None
    spend: float = 0.0
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_budget, self.rpm, self.tpm, self.parallel))
