"""Shared counters for budgets and rate limits: Redis when REDIS_URL is set, the database otherwise.

Both stores offer the same two operations:
- `admit(checks)`: atomically, either every check passes and the increments of all of them are applied, or none is
  applied and the first failing check is named. A check with `inc > 0` fails when `current + inc > limit` (requests,
  parallel slots); a check with `inc == 0` fails when `current >= limit` (spend against a budget, tokens per minute).
- `add(updates)`: add amounts (spend, tokens, a released parallel slot as -1) after a request finished.
Redis runs one Lua script per admission and one per batch of updates; the database runs one short transaction of
atomic upserts (`value = value + x`, row locks held until commit), so several processes on one PostgreSQL or SQLite
agree.

The relay adds its updates through `add_together`: the request that finds no batch in flight sends its own; the
updates of requests that finish meanwhile go as the next batch (amounts for the same counter summed), so a busy
process makes one round trip for many finished requests; each request still waits until its own updates are in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger("modelgate.counters")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    limit: float
    inc: float = 0.0
    ttl: int = 120  # seconds the counter lives after its last increment
    floor: float = 0.0  # a lower bound known from elsewhere (the database's spend when Redis lost its counter)

    def fails(self, current: float) -> bool:
        current = max(current, self.floor)
        if self.inc > 0:
            return current + self.inc > self.limit
        return current >= self.limit


@dataclass(frozen=True, slots=True)
class Admission:
    failed: int  # index of the first failing check, -1 when admitted
    values: tuple[float, ...]  # each counter's value before this admission

    @property
    def admitted(self) -> bool:
        return self.failed < 0


@dataclass(frozen=True, slots=True)
class Update:
    name: str
    amount: float
    ttl: int = 120


class RedisCounters:
    _ADMIT = """
local n = #KEYS
local values = {}
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local limit = tonumber(ARGV[4*i-3])
  local inc = tonumber(ARGV[4*i-2])
  local floor = tonumber(ARGV[4*i])
  if floor > cur then cur = floor end
  values[i] = tostring(cur)
  if (inc > 0 and cur + inc > limit) or (inc <= 0 and cur >= limit) then
    return {i, values}
  end
end
for i = 1, n do
  local inc = tonumber(ARGV[4*i-2])
  if inc > 0 then
    local floor = tonumber(ARGV[4*i])
    local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
    if floor > cur then redis.call('SET', KEYS[i], ARGV[4*i]) end
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[4*i-2])
    redis.call('EXPIRE', KEYS[i], ARGV[4*i-1])
  end
end
return {0, values}
"""

    _ADD = """
for i = 1, #KEYS do
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[2*i-1])
  redis.call('EXPIRE', KEYS[i], ARGV[2*i])
end
return #KEYS
"""

    def __init__(self, url: str, prefix: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
        self._prefix = prefix
        self._admit = self._client.register_script(self._ADMIT)
        self._add = self._client.register_script(self._ADD)

    def admit(self, checks: list[Check]) -> Admission:
        keys = [self._prefix + c.name for c in checks]
        args: list[float | int] = []
        for c in checks:
            args += [repr(float(c.limit)), repr(float(c.inc)), int(c.ttl), repr(float(c.floor))]
        failed, values = self._admit(keys=keys, args=args)
        return Admission(failed=int(failed) - 1, values=tuple(float(v) for v in values))

    def add(self, updates: list[Update]) -> None:
        if not updates:
            return
        args: list[str | int] = []
        for u in updates:
            args += [repr(float(u.amount)), int(u.ttl)]
        self._add(keys=[self._prefix + u.name for u in updates], args=args)

    def get(self, names: list[str]) -> list[float]:
        return [float(v or 0) for v in self._client.mget([self._prefix + n for n in names])]


def _floored(values: list[float], checks: list[Check]) -> tuple[float, ...]:
    return tuple(max(value, check.floor) for value, check in zip(values, checks, strict=True))


class DatabaseCounters:
    """Counters in the `gateway_counter` table, for deployments without Redis (the SQLite quick start included)."""

    _UPSERT = (
        "INSERT INTO gateway_counter (name, value, expires_at) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET "
        "value = CASE WHEN gateway_counter.expires_at < %s THEN excluded.value "
        "ELSE gateway_counter.value + excluded.value END, expires_at = excluded.expires_at "
        "RETURNING value"
    )

    def _params(self, name: str, amount: float, ttl: int, now):
        adapt = connection.ops.adapt_datetimefield_value
        return [name, amount, adapt(now + timedelta(seconds=ttl)), adapt(now)]

    def _read(self, cursor, names: list[str], now) -> dict[str, float]:
        if not names:
            return {}
        marks = ", ".join(["%s"] * len(names))
        cursor.execute(
            f"SELECT name, value FROM gateway_counter WHERE name IN ({marks}) AND expires_at >= %s",
            [*names, connection.ops.adapt_datetimefield_value(now)],
        )
        return dict(cursor.fetchall())

    def admit(self, checks: list[Check]) -> Admission:
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            before: list[float] = []
            current = self._read(cursor, [c.name for c in checks if c.inc <= 0], now)
            for check in checks:
                if check.inc > 0:
                    cursor.execute(self._UPSERT, self._params(check.name, check.inc, check.ttl, now))
                    before.append(cursor.fetchone()[0] - check.inc)
                else:
                    before.append(current.get(check.name, 0.0))
            for index, check in enumerate(checks):
                if check.fails(before[index]):
                    transaction.set_rollback(True)  # none of the increments happened
                    return Admission(
                        failed=index, values=tuple(max(v, c.floor) for v, c in zip(before, checks, strict=True))
                    )
        return Admission(failed=-1, values=tuple(max(v, c.floor) for v, c in zip(before, checks, strict=True)))

    def add(self, updates: list[Update]) -> None:
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            for u in updates:
                cursor.execute(self._UPSERT, self._params(u.name, u.amount, u.ttl, now))

    def get(self, names: list[str]) -> list[float]:
        with connection.cursor() as cursor:
            found = self._read(cursor, names, timezone.now())
        return [found.get(n, 0.0) for n in names]

    def sweep(self) -> int:
        """Drop expired counters (called from the background writer)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM gateway_counter WHERE expires_at < %s",
                [connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(seconds=60))],
            )
            return cursor.rowcount


def merged(updates: Iterable[Update]) -> list[Update]:
    """One update per counter: amounts summed, the longest ttl kept."""
    by_name: dict[str, Update] = {}
    for u in updates:
        seen = by_name.get(u.name)
        by_name[u.name] = u if seen is None else Update(u.name, seen.amount + u.amount, max(seen.ttl, u.ttl))
    return list(by_name.values())


class _Turn:
    """A queued request's wait: woken when its updates are in, or to send the next batch itself (`lead`)."""

    __slots__ = ("done", "lead")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lead = False


class Sender:
    """Adds the relay's counter updates, sharing one round trip among the requests that finish together.

    A finished request hands its updates over and waits until they are in the store, as a plain `add` would: a
    client's next request on the same connection is admitted against them, which is what bounds a budget's overspend
    to the requests in flight (docs/spend-and-limits.md).

    No thread of its own: a request that finishes while no batch is in flight sends its updates itself, in its own
    thread or greenlet, and is the leader; requests that finish while the leader waits for the store queue theirs.
    When the batch is in, the leader wakes the requests it carried and hands the lead to the first of those that
    queued since, which sends everything queued as one call with the amounts per counter summed. An idle process
    makes one round trip per request and no thread switch; a busy one a round trip per batch."""

    WAIT = 5.0  # seconds a queued request waits at most (the Redis client gives up after 2)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Update] = []
        self._queued: deque[_Turn] = deque()  # requests whose updates are in _pending, in order
        self._sending = False

    def submit(self, updates: list[Update]) -> None:
        turn = None
        with self._lock:
            self._pending.extend(updates)
            if self._sending:
                turn = _Turn()
                self._queued.append(turn)
            else:
                self._sending = True
        if turn is not None and not self._wait(turn):
            return
        self._lead()

    def _wait(self, turn: _Turn) -> bool:
        """Until this request's updates are in (False) or it is to send the next batch (True)."""
        turn.done.wait(self.WAIT)
        with self._lock:
            if turn.lead:
                return True
            if not turn.done.is_set() and turn in self._queued:
                self._queued.remove(turn)  # given up on; its updates go with the next batch sent
        return False

    def _lead(self) -> None:
        """Send what is queued, wake the requests it carried, and pass the lead on."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                carried, self._queued = self._queued, deque()
            again = False
            try:
                _apply(merged(batch))
            finally:
                with self._lock:
                    following = self._queued.popleft() if self._queued else None
                    if following is not None:
                        following.lead = True
                    elif self._pending:  # updates of requests that gave up waiting: sent by this loop
                        again = True
                    else:
                        self._sending = False
                for turn in carried:
                    turn.done.set()
                if following is not None:
                    following.done.set()
            if not again:
                return


def _apply(updates: list[Update]) -> None:
    try:
        store().add(updates)
    except Exception as exc:
        log_store_failure(exc)


sender = Sender()


def add_together(updates: list[Update]) -> None:
    """The relay's way to add its amounts after a request: in a round trip shared with the requests that finish
    at the same time (see Sender)."""
    if updates:
        sender.submit(updates)


_store = None
_store_key = None
_lock = threading.Lock()
_last_failure_log = 0.0


def store() -> RedisCounters | DatabaseCounters:
    """The process's counter store, chosen by REDIS_URL (rebuilt when the setting changes, as in tests)."""
    global _store, _store_key
    key = (settings.REDIS_URL, settings.MODELGATE_REDIS_PREFIX)
    if _store is None or _store_key != key:
        with _lock:
            if settings.REDIS_URL:
                _store = RedisCounters(settings.REDIS_URL, settings.MODELGATE_REDIS_PREFIX)
            else:
                _store = DatabaseCounters()
            _store_key = key
    return _store


def log_store_failure(exc: Exception) -> None:
    """A counter store that is down must not take the gateway with it: limits fail open, loudly."""
    global _last_failure_log
    if time.monotonic() - _last_failure_log > 10:
        _last_failure_log = time.monotonic()
        logger.error("counter store unavailable, budgets and rate limits not enforced: %s", type(exc).__name__)
