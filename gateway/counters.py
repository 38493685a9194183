"""Shared counters for budgets and rate limits: Redis when REDIS_URL is set, the database otherwise.

Both stores offer the same operations:
- `admit(checks)`: atomically, either every check passes and the increments of all of them are applied, or none is
  applied and the first failing check is named. A check with `inc > 0` fails when `current + inc > limit` (requests,
  parallel slots); a check with `inc == 0` fails when `current >= limit` (spend against a budget, tokens per minute).
- `add(updates)`: add amounts (spend, tokens, a released parallel slot as -1) after a request finished.
- `apply(updates, admissions)`: the updates, then each admission in turn, as one call.
- `post(updates)`: `add`, applied before any later call of the process, without waiting for the store (Redis).
Redis runs one Lua script per call; the database runs short transactions of atomic upserts (`value = value + x`, row
locks held until commit), so several processes on one PostgreSQL or SQLite agree.

The relay admits and adds through `admit_together` and `add_together`: the request that finds no batch in flight
sends its own call; the admissions and updates of requests that come meanwhile go as the next batch (updates first,
amounts for the same counter summed, then the admissions in order, each all-or-nothing), so a busy process makes one
round trip for many requests; each request still waits for its own admission. Updates alone are posted (`post`):
with Redis, written to the process's own connection without waiting for the answer, which is read before the next
call's; Redis runs one connection's commands in order, so every later admission of the process counts them.
"""

from __future__ import annotations

import logging
import os
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
    # One script for a batch: the updates first, then each admission in turn, each all-or-nothing (a failing check
    # leaves its admission's increments undone). KEYS: the updates' counters, then every admission's. ARGV: the
    # number of updates, (amount, ttl) per update, the number of admissions, then per admission its number of checks
    # and (limit, inc, ttl, floor) per check. Returns per admission {index of the failing check or 0, the values
    # before it, up to the failing check}.
    _BATCH = """
local k, a = 0, 1
local updates = tonumber(ARGV[a])
a = a + 1
for i = 1, updates do
  k = k + 1
  redis.call('INCRBYFLOAT', KEYS[k], ARGV[a])
  redis.call('EXPIRE', KEYS[k], ARGV[a+1])
  a = a + 2
end
local admissions = tonumber(ARGV[a])
a = a + 1
local results = {}
for j = 1, admissions do
  local n = tonumber(ARGV[a])
  a = a + 1
  local values, failed = {}, 0
  for i = 1, n do
    local at = a + 4*(i-1)
    local cur = tonumber(redis.call('GET', KEYS[k+i]) or '0')
    local limit, inc, floor = tonumber(ARGV[at]), tonumber(ARGV[at+1]), tonumber(ARGV[at+3])
    if floor > cur then cur = floor end
    values[i] = tostring(cur)
    if (inc > 0 and cur + inc > limit) or (inc <= 0 and cur >= limit) then
      failed = i
      break
    end
  end
  if failed == 0 then
    for i = 1, n do
      local at = a + 4*(i-1)
      if tonumber(ARGV[at+1]) > 0 then
        local floor = tonumber(ARGV[at+3])
        local cur = tonumber(redis.call('GET', KEYS[k+i]) or '0')
        if floor > cur then redis.call('SET', KEYS[k+i], ARGV[at+3]) end
        redis.call('INCRBYFLOAT', KEYS[k+i], ARGV[at+1])
        redis.call('EXPIRE', KEYS[k+i], ARGV[at+2])
      end
    end
  end
  results[j] = {failed, values}
  k = k + n
  a = a + 4*n
end
return results
"""

    def __init__(self, url: str, prefix: str):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
        self._prefix = prefix
        self._pipe = _Pipe(client.connection_pool, self._BATCH, client.register_script(self._BATCH).sha)

    def _batch_args(self, updates: list[Update], admissions: list[list[Check]]) -> tuple[list[str], list]:
        prefix = self._prefix
        keys = [prefix + u.name for u in updates]
        args: list[str | int] = [len(updates)]
        for u in updates:
            args += [repr(float(u.amount)), int(u.ttl)]
        args.append(len(admissions))
        for checks in admissions:
            args.append(len(checks))
            for c in checks:
                keys.append(prefix + c.name)
                args += [repr(float(c.limit)), repr(float(c.inc)), int(c.ttl), repr(float(c.floor))]
        return keys, args

    def apply(self, updates: list[Update], admissions: list[list[Check]]) -> list[Admission]:
        """Add the updates, then admit each list of checks in turn: one round trip, one atomic script."""
        keys, args = self._batch_args(updates, admissions)
        results = self._pipe.call(self._pipe.script(keys, args))
        return [Admission(failed=int(failed) - 1, values=tuple(float(v) for v in values)) for failed, values in results]

    def post(self, updates: list[Update]) -> None:
        """Add the updates without waiting for Redis to answer: every later call of this process is applied after
        them (one connection, in order); a failure is logged when its answer is read."""
        if updates:
            self._pipe.post(self._pipe.script(*self._batch_args(updates, [])))

    def admit(self, checks: list[Check]) -> Admission:
        return self.apply([], [checks])[0]

    def add(self, updates: list[Update]) -> None:
        if updates:
            self.apply(updates, [])

    def get(self, names: list[str]) -> list[float]:
        values = self._pipe.call(("MGET", *[self._prefix + n for n in names]))
        return [float(v or 0) for v in values]


class _Pipe:
    """The process's own connection to Redis for its counters, apart from the client's pool: calls go out in
    order, and a posted call's answer is read before the next call's, so that a finished request's update costs a
    write to the socket and no wait. Used by one caller at a time (the lock; the relay's Sender has one leader).

    A posted script that Redis no longer knows (SCRIPT FLUSH, a restart on the same connection) is loaded and sent
    again when its answer is read; other failures of a posted call are logged, the update is lost (as a failed
    round trip would lose it). A fork makes a new connection."""

    NAME = "modelgate-counters"  # as CLIENT LIST shows it
    MAX_OWED = 64  # answers left unread at most; reading them costs no wait, they are in the socket's buffer

    def __init__(self, pool, script: str, sha: str) -> None:
        self._pool = pool
        self._source = script
        self._sha = sha
        self._lock = threading.Lock()
        self._conn = None
        self._pid = 0
        self._owed: deque[tuple] = deque()  # posted commands whose answers are still to be read
        self._idle_after = 0.0

    def script(self, keys: list[str], args: list) -> tuple:
        return ("EVALSHA", self._sha, len(keys), *keys, *args)

    def _connection(self):
        if self._conn is None or self._pid != os.getpid():
            kwargs = {**self._pool.connection_kwargs, "client_name": self.NAME}
            self._conn = self._pool.connection_class(**kwargs)
            self._pid = os.getpid()
            self._owed.clear()
        return self._conn

    def call(self, command: tuple):
        """Send the command and return its answer (after reading every answer owed before it)."""
        from redis.exceptions import ConnectionError

        with self._lock:
            conn = self._connection()
            self._settle(conn)
            try:
                return self._round_trip(conn, command)
            except ConnectionError:
                # Most likely closed while idle (Redis restarted, or its client timeout), before Redis read the
                # command: once more on a new connection, as redis-py's own client retries. Not after a timeout,
                # where the command may have run.
                conn.disconnect()
                return self._round_trip(conn, command)

    def post(self, command: tuple) -> None:
        """Send the command; its answer is read by a later call."""
        with self._lock:
            conn = self._connection()
            if len(self._owed) >= self.MAX_OWED or (self._owed and time.monotonic() > self._idle_after):
                self._settle(conn)
            # The health check (a PING after 30 s idle) reads an answer: only when none is owed.
            conn.send_packed_command(conn.pack_command(*command), check_health=not self._owed)
            self._owed.append(command)
            self._idle_after = time.monotonic() + 30

    def _round_trip(self, conn, command: tuple):
        from redis.exceptions import NoScriptError

        try:
            conn.send_packed_command(conn.pack_command(*command))
            return conn.read_response()
        except NoScriptError:
            conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", self._source))
            conn.read_response()
            conn.send_packed_command(conn.pack_command(*command))
            return conn.read_response()

    def _settle(self, conn) -> None:
        """Read the answers owed. A script Redis did not know is loaded and sent again; other failures are logged
        (a dropped connection loses every update still owed)."""
        from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

        again = []
        try:
            while self._owed:
                command = self._owed.popleft()
                try:
                    conn.read_response()
                except NoScriptError:
                    again.append(command)
                except ResponseError as exc:
                    log_store_failure(exc)
            for command in again:
                try:
                    self._round_trip(conn, command)
                except ResponseError as exc:
                    log_store_failure(exc)
        except (ConnectionError, TimeoutError) as exc:
            self._owed.clear()  # read_response closed the connection: the next call opens a new one
            log_store_failure(exc)


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

    def apply(self, updates: list[Update], admissions: list[list[Check]]) -> list[Admission]:
        """The updates, then each admission in turn (each in a transaction of its own)."""
        if updates:
            self.add(updates)
        return [self.admit(checks) for checks in admissions]

    post = add  # no answer to leave unread: the transaction is the round trip

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
    """A request's place in the sender: woken when its batch is in (with its admission, when it asked for one), or
    to send the next batch itself (`lead`)."""

    __slots__ = ("done", "lead", "checks", "admission", "error")

    def __init__(self, checks: list[Check] | None = None) -> None:
        self.done: threading.Event | None = None  # made when the request queues: a leader never waits
        self.lead = False
        self.checks = checks
        self.admission: Admission | None = None
        self.error: Exception | None = None


class Sender:
    """Sends the relay's admissions and counter updates, sharing one round trip among the requests that need one at
    the same time.

    A finished request hands its updates over and returns once they are sent ahead of every later call of its
    process (posted, see RedisCounters.post; committed, on the database): a client's next request on the same
    connection is admitted against them, which is what bounds a budget's overspend to the requests in flight
    (docs/spend-and-limits.md). An arriving request hands its checks over and waits for its admission.

    No thread of its own: a request that finds no batch in flight sends its own call, in its own thread or greenlet,
    and is the leader; requests that come while the leader waits for the store queue theirs. When the batch is in,
    the leader wakes the requests it carried and hands the lead to the first of those that queued since, which sends
    everything queued as one call: the updates first (amounts per counter summed), then the admissions in the order
    they came, each all-or-nothing as on its own. A batch of updates alone is posted, not waited for. An idle
    process makes one round trip per admission, a write per update, and no thread switch; a busy one a round trip
    per batch."""

    WAIT = 5.0  # seconds a queued request waits at most (the Redis client gives up after 2)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Update] = []
        self._admissions: list[_Turn] = []  # requests whose checks are still to be sent, in order
        self._queued: deque[_Turn] = deque()  # requests waiting for a batch, in order
        self._sending = False

    def submit(self, updates: list[Update]) -> None:
        """Add the updates; returns once they are in the store (or the store failed, which is logged)."""
        self._take_part(_Turn(), updates)

    def admit(self, checks: list[Check]) -> Admission:
        """Admit the checks as `store().admit` would; raises what the store raised, or TimeoutError after WAIT."""
        turn = _Turn(checks)
        self._take_part(turn, ())
        if turn.error is not None:
            raise turn.error
        if turn.admission is None:
            raise TimeoutError("no admission from the counter store in time")
        return turn.admission

    def _take_part(self, turn: _Turn, updates: Iterable[Update]) -> None:
        with self._lock:
            self._pending.extend(updates)
            if turn.checks is not None:
                self._admissions.append(turn)
            lead = not self._sending
            if lead:
                self._sending = True
            else:
                turn.done = threading.Event()
                self._queued.append(turn)
        if not lead and not self._wait(turn):
            return
        self._lead()

    def _wait(self, turn: _Turn) -> bool:
        """Until this request's batch is in (False) or it is to send the next batch (True)."""
        turn.done.wait(self.WAIT)
        with self._lock:
            if turn.lead:
                return True
            if not turn.done.is_set() and turn in self._queued:
                # Given up on: its updates go with the next batch sent; its checks are not sent at all.
                self._queued.remove(turn)
                if turn in self._admissions:
                    self._admissions.remove(turn)
        return False

    def _lead(self) -> None:
        """Send what is queued, wake the requests it carried, and pass the lead on."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                admissions, self._admissions = self._admissions, []
                carried, self._queued = self._queued, deque()
            again = False
            try:
                results = _apply(merged(batch), [turn.checks for turn in admissions])
                for turn, admission in zip(admissions, results, strict=True):
                    turn.admission = admission
            except Exception as exc:
                for turn in admissions:
                    turn.error = exc
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


def _apply(updates: list[Update], admissions: list[list[Check]]) -> list[Admission]:
    """One call to the store. A failure is logged and raised to the admissions it carried (which then go unmetered);
    updates that fail are lost, as a plain `add` would lose them."""
    if not updates and not admissions:
        return []
    try:
        if not admissions:
            store().post(updates)
            return []
        return store().apply(updates, admissions)
    except Exception as exc:
        log_store_failure(exc)
        raise


sender = Sender()


def add_together(updates: list[Update]) -> None:
    """The relay's way to add its amounts after a request: in a round trip shared with the requests that need one
    at the same time (see Sender)."""
    if updates:
        sender.submit(updates)


def admit_together(checks: list[Check]) -> Admission:
    """The relay's admission: in a round trip shared with the requests that need one at the same time."""
    return sender.admit(checks)


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
