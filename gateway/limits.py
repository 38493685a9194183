"""Budgets and rate limits for one request (SPEC §3 order: budgets, then rate limits).

`plan_for` turns the caller's snapshot and the chosen deployment into counter checks (pure); the counter store
admits or refuses them atomically; `refusal` turns a refused check into the 429 the client sees, `after` into the
updates made once the request finished (spend, tokens, a parallel slot given back).

Windows: requests and tokens per minute are counted in fixed 60-second windows aligned to the clock (a new window
starts at every whole minute). Budgets: spend within the current budget period (see accounts.budgets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from accounts.access import KeyGrant
from accounts.budgets import Limits, period_end, period_id
from gateway.counters import Admission, Check, Update
from gateway.errors import BudgetExceededError, GatewayError, RateLimitError
from gateway.pricing import Prices
from models_registry.routing import DeploymentSpec

WINDOW = 60
WINDOW_TTL = 2 * WINDOW
PARALLEL_TTL = 600  # a slot a crashed process never gave back frees itself after this long
FOREVER_TTL = 400 * 86400


@dataclass(frozen=True, slots=True)
class CheckInfo:
    kind: str  # budget | rpm | tpm | parallel
    label: str  # "Key 'x'" / "Team 'y'" / "Model 'gpt-4' (deployment d1)"
    limit: float
    scope: str  # key | team | deployment
    resets_at: datetime | None = None


@dataclass(slots=True)
class Plan:
    checks: list[Check] = field(default_factory=list)
    info: list[CheckInfo] = field(default_factory=list)
    spend: list[Update] = field(default_factory=list)  # amounts filled in after the request
    tokens: list[Update] = field(default_factory=list)
    parallel: list[Update] = field(default_factory=list)
    window_end: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.checks)

    def add(self, check: Check, info: CheckInfo) -> None:
        self.checks.append(check)
        self.info.append(info)


def _budget(plan: Plan, limits: Limits, scope: str, prices: Prices, now: datetime) -> None:
    if limits.max_budget is None or prices.free:
        return
    end = period_end(limits.budget_reset_at, limits.budget_duration, now)
    name = f"spend:{limits.owner}:{period_id(end)}"
    ttl = int((end - now).total_seconds()) + 86400 if end else FOREVER_TTL
    # The snapshot's spend is a floor for the counter (e.g. after Redis lost it), but only within its own period.
    same_period = limits.budget_reset_at is None or now < limits.budget_reset_at
    plan.add(
        Check(name, limit=limits.max_budget, inc=0, ttl=ttl, floor=limits.spend if same_period else 0.0),
        CheckInfo("budget", limits.label, limits.max_budget, scope, end),
    )
    plan.spend.append(Update(name, 0.0, ttl))


def _rates(plan: Plan, owner: str, label: str, scope: str, rpm, tpm, parallel, minute: int) -> None:
    if rpm is not None:
        plan.add(Check(f"rpm:{owner}:{minute}", limit=rpm, inc=1, ttl=WINDOW_TTL), CheckInfo("rpm", label, rpm, scope))
    if tpm is not None:
        name = f"tpm:{owner}:{minute}"
        plan.add(Check(name, limit=tpm, inc=0, ttl=WINDOW_TTL), CheckInfo("tpm", label, tpm, scope))
        plan.tokens.append(Update(name, 0.0, WINDOW_TTL))
    if parallel is not None:
        name = f"par:{owner}"
        plan.add(Check(name, limit=parallel, inc=1, ttl=PARALLEL_TTL), CheckInfo("parallel", label, parallel, scope))
        plan.parallel.append(Update(name, -1.0, PARALLEL_TTL))


def plan_for(grant: KeyGrant, deployment: DeploymentSpec, prices: Prices, now: datetime) -> Plan:
    """Every check this request must pass, budgets first. The master key skips all of them (SPEC §3)."""
    plan = Plan()
    epoch = now.timestamp()
    minute = int(epoch // WINDOW)
    plan.window_end = (minute + 1) * WINDOW
    if not grant.is_master:
        layers = [(grant.key_limits, "key"), (grant.team_limits, "team")]
        for limits, scope in layers:
            if limits is not None:
                _budget(plan, limits, scope, prices, now)
        for limits, scope in layers:
            if limits is not None:
                _rates(plan, limits.owner, limits.label, scope, limits.rpm, limits.tpm, limits.parallel, minute)
    if deployment.rpm is not None or deployment.tpm is not None:
        label = f"Model '{deployment.model_name}' (deployment {deployment.id})"
        _rates(plan, f"d{deployment.id}", label, "deployment", deployment.rpm, deployment.tpm, None, minute)
    return plan


def _number(value: float) -> str:
    """A count as OpenAI writes it: 100000000, not 1e+08."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _seconds(value: float) -> str:
    return f"{max(0, math.ceil(value))}s"


def refusal(plan: Plan, admission: Admission, now: datetime) -> GatewayError:
    info = plan.info[admission.failed]
    current = admission.values[admission.failed]
    if info.kind == "budget":
        when = f"It resets at {info.resets_at.isoformat()}." if info.resets_at else "It does not reset."
        return BudgetExceededError(
            f"{info.label} has spent ${current:.6f} of its ${info.limit:.6f} budget. {when} "
            "Ask your admin to raise max_budget.",
        )
    retry = 1 if info.kind == "parallel" else max(1, math.ceil(plan.window_end - now.timestamp()))
    what = {
        "rpm": f"its limit of {_number(info.limit)} requests per minute",
        "tpm": f"its limit of {_number(info.limit)} tokens per minute",
        "parallel": f"its limit of {_number(info.limit)} requests in flight at once",
    }[info.kind]
    headers = {"Retry-After": str(retry)}
    headers.update(_rate_headers(plan, admission, now, refused=True))
    return RateLimitError(f"{info.label} reached {what}. Retry after {retry} s.", headers=headers)


def _rate_headers(plan: Plan, admission: Admission, now: datetime, *, refused: bool = False) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the key's own request and token limits."""
    headers: dict[str, str] = {}
    reset = _seconds(plan.window_end - now.timestamp())
    for index, info in enumerate(plan.info):
        if info.scope != "key" or info.kind not in ("rpm", "tpm"):
            continue
        used = admission.values[index] + (0 if refused else plan.checks[index].inc)
        kind = "requests" if info.kind == "rpm" else "tokens"
        headers[f"x-ratelimit-limit-{kind}"] = _number(info.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = _number(max(0, info.limit - used))
        headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


def success_headers(plan: Plan, admission: Admission, now: datetime) -> dict[str, str]:
    return _rate_headers(plan, admission, now)


def after(plan: Plan, *, cost: float, tokens: int) -> list[Update]:
    """The counter updates once the request finished."""
    updates = [Update(u.name, cost, u.ttl) for u in plan.spend if cost]
    updates += [Update(u.name, float(tokens), u.ttl) for u in plan.tokens if tokens]
    updates += plan.parallel
    return updates
