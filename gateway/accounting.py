"""After a request: its request-log row and its spend, written off the request path.

`record(entry)` puts a finished request on an in-process queue; a background thread writes queued rows in batches
(one transaction: the log rows, by COPY on PostgreSQL, then one atomic `F()` spend increment per key and per team)
and every few seconds resets budgets whose period ended and sweeps expired counters. On a normal shutdown (SIGTERM to
gunicorn, interpreter exit) the queue is flushed before the process ends, so no row is lost.

MODELGATE_ACCOUNTING = "manual" (the test suite) keeps the queue but no thread: `flush()` writes it on demand.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from accounts.budgets import period_end
from accounts.models import Team, VirtualKey
from gateway.models import RequestLog

logger = logging.getLogger("modelgate.accounting")

BATCH_SIZE = 500
STATEMENT_ROWS = 100  # rows per INSERT on PostgreSQL (see _insert_rows)
FLUSH_INTERVAL = 0.5
MAINTENANCE_INTERVAL = 5.0


@dataclass(slots=True)
class LogEntry:
    request_id: str
    created_at: datetime
    requested_model: str
    status: int
    key_id: int | None = None
    key_hash: str = ""
    key_name: str = ""
    team_id: str = ""
    route: str = ""
    deployment: str = ""
    upstream_model: str = ""
    stream: bool = False
    error_code: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_source: str = ""
    cost: float = 0.0
    latency_ms: float = 0.0
    upstream_latency_ms: float | None = None
    request_body: dict | None = None
    response_body: dict | None = field(default=None)

    def values(self, adapt_time, adapt_json) -> tuple:
        """The row as the INSERT's parameters, in COLUMNS order."""
        return (
            self.request_id,
            adapt_time(self.created_at),
            self.key_hash,
            self.key_name[:200],
            self.team_id,
            self.requested_model[:255],
            self.route[:255],
            self.deployment[:255],
            self.upstream_model[:255],
            self.stream,
            self.status,
            (self.error_code or "")[:64],
            self.prompt_tokens,
            self.completion_tokens,
            self.usage_source,
            self.cost,
            round(self.latency_ms, 3),
            None if self.upstream_latency_ms is None else round(self.upstream_latency_ms, 3),
            None if self.request_body is None else adapt_json("request_body", self.request_body),
            None if self.response_body is None else adapt_json("response_body", self.response_body),
        )


COLUMNS = (
    "request_id", "created_at", "key_hash", "key_name", "team_id", "requested_model", "route", "deployment",
    "upstream_model", "stream", "status", "error_code", "prompt_tokens", "completion_tokens", "usage_source", "cost",
    "latency_ms", "upstream_latency_ms", "request_body", "response_body",
)  # fmt: skip


def _insert_rows(entries: list[LogEntry], *, fresh: bool) -> set[str] | None:
    """The batch's rows through the cursor, never the ORM: bulk_create costs ~100 µs of CPU a row, which a busy
    worker pays in GIL time its requests then wait for.

    PostgreSQL, a batch never tried before (`fresh`): `COPY ... FROM STDIN`, its rows formatted by psycopg's C code;
    about a third less CPU than the INSERT below, in the worker and in the database. A row already there (a request
    id used twice) fails the whole COPY with an IntegrityError: write_batch then writes the batch the other way.

    PostgreSQL, a batch tried again (an earlier try may have committed although its connection then failed):
    `INSERT ... SELECT FROM unnest(column arrays) ON CONFLICT DO NOTHING`, one round trip per STATEMENT_ROWS rows,
    the arrays as binary parameters on a server-side-binding cursor (Django's client-side cursor would quote every
    element into the SQL text). Returns the request ids of the rows it inserted: a row already there is skipped, and
    so is its spend. SQLite: `executemany ... ON CONFLICT DO NOTHING`, which it runs in-process (None: all rows
    count)."""
    # The connection looked up once: every attribute read through the `connection` proxy finds this thread's
    # connection in a thread-local (a greenlet-local under gevent, ~2 µs), and per row that was 40 % of a batch's CPU.
    db = connections[DEFAULT_DB_ALIAS]
    ops = db.ops
    table = ops.quote_name(RequestLog._meta.db_table)
    fields = {name: RequestLog._meta.get_field(name) for name in COLUMNS}

    def adapt_json(name, value):
        return fields[name].get_db_prep_save(value, db)

    adapt_time = ops.adapt_datetimefield_value
    rows = [entry.values(adapt_time, adapt_json) for entry in entries]
    # wrap_database_errors: psycopg's own cursors raise Django's exceptions too (IntegrityError, OperationalError)
    with db.cursor() as cursor, db.wrap_database_errors:
        if db.vendor == "postgresql":
            if fresh:
                with psycopg.Cursor(cursor.connection) as raw:
                    with raw.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                return None
            arrays = ", ".join(f"%b::{fields[name].db_type(db)}[]" for name in COLUMNS)
            sql = (
                f"INSERT INTO {table} ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays}) "
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
            )
            inserted: set[str] = set()
            with psycopg.Cursor(cursor.connection) as binding:
                for start in range(0, len(rows), STATEMENT_ROWS):
                    chunk = rows[start : start + STATEMENT_ROWS]
                    binding.execute(sql, [list(column) for column in zip(*chunk, strict=True)])
                    inserted.update(request_id for (request_id,) in binding.fetchall())
            return inserted
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
            "ON CONFLICT (request_id) DO NOTHING",
            rows,
        )
    return None


def write_batch(entries: list[LogEntry], *, fresh: bool = True) -> None:
    """One transaction: the log rows, then the summed spend per key and per team as atomic increments. A fresh
    batch with a row already written goes again as one tried before (see _insert_rows)."""
    if not entries:
        return
    if fresh and connection.vendor == "postgresql":
        try:
            _write(entries, fresh=True)
            return
        except IntegrityError:
            pass
    _write(entries, fresh=False)


def _write(entries: list[LogEntry], *, fresh: bool) -> None:
    with transaction.atomic():
        inserted = _insert_rows(entries, fresh=fresh)
        key_spend: dict[int, float] = defaultdict(float)
        key_last_used: dict[int, datetime] = {}
        team_spend: dict[str, float] = defaultdict(float)
        for entry in entries:
            if inserted is not None and entry.request_id not in inserted:
                continue
            if entry.key_id is not None:
                key_spend[entry.key_id] += entry.cost
                last = key_last_used.get(entry.key_id, entry.created_at)
                key_last_used[entry.key_id] = max(entry.created_at, last)
            if entry.team_id and entry.cost:
                team_spend[entry.team_id] += entry.cost
        # Rows are locked in one order (keys by id, then teams by id) by every process, so two writers whose
        # batches share keys cannot deadlock each other.
        for key_id in sorted(key_spend):
            VirtualKey.objects.filter(pk=key_id).update(
                spend=F("spend") + key_spend[key_id], last_used_at=key_last_used[key_id]
            )
        for team_id in sorted(team_spend):
            Team.objects.filter(pk=team_id).update(spend=F("spend") + team_spend[team_id])


def _write_with_retry(batch: list[LogEntry], attempts: int = 3) -> None:
    """A batch that lost a deadlock or a connection is written again, not dropped (skipping rows an earlier try
    wrote, when it committed before its connection broke)."""
    for attempt in range(1, attempts + 1):
        try:
            write_batch(batch, fresh=attempt == 1)
            return
        except (OperationalError, InterfaceError) as exc:  # deadlock victim, serialization failure, dropped link
            if attempt == attempts:
                raise
            logger.warning("request-log write failed (%s), retrying", type(exc).__name__)
            close_old_connections()
            time.sleep(0.05 * attempt)


def reset_due_budgets(now: datetime | None = None) -> int:
    """Set spend to 0 for keys and teams whose budget period ended. The update is conditional on the old
    `budget_reset_at`, so when several processes race only one resets each row."""
    now = now or timezone.now()
    count = 0
    for model in (VirtualKey, Team):
        due = model.objects.filter(budget_reset_at__lte=now).exclude(budget_duration=None)
        for pk, reset_at, duration in due.values_list("pk", "budget_reset_at", "budget_duration"):
            try:
                next_reset = period_end(reset_at, duration, now)
            except ValueError:
                continue
            count += model.objects.filter(pk=pk, budget_reset_at=reset_at).update(spend=0.0, budget_reset_at=next_reset)
    return count


class Writer:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[LogEntry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._last_maintenance = 0.0

    def submit(self, entry: LogEntry) -> None:
        self.queue.put(entry)
        if settings.MODELGATE_ACCOUNTING == "thread" and self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="modelgate-accounting", daemon=True)
                self._thread.start()
                atexit.register(self.stop)

    def _drain(self, block: bool) -> tuple[list[LogEntry], bool]:
        """Up to BATCH_SIZE queued entries. Blocking: wait for the first one, then let FLUSH_INTERVAL pass so that
        a busy process writes one batch per interval rather than one transaction per request."""
        batch: list[LogEntry] = []
        stop = False
        try:
            if block:
                item = self.queue.get()
                if item is not None:
                    time.sleep(FLUSH_INTERVAL)
            else:
                item = self.queue.get_nowait()
            while True:
                if item is None:
                    stop = True
                else:
                    batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    break
                item = self.queue.get_nowait()
        except queue.Empty:
            pass
        return batch, stop

    def flush(self) -> int:
        """Write everything queued now, in the calling thread."""
        written = 0
        while True:
            batch, _ = self._drain(block=False)
            if not batch:
                return written
            write_batch(batch)
            written += len(batch)

    def discard(self) -> int:
        """Drop everything queued without writing it (tests start clean)."""
        dropped = 0
        while True:
            batch, _ = self._drain(block=False)
            if not batch:
                return dropped
            dropped += len(batch)

    def _run(self) -> None:
        while True:
            batch, stop = self._drain(block=True)
            try:
                if batch:
                    _write_with_retry(batch)
                if time.monotonic() - self._last_maintenance > MAINTENANCE_INTERVAL:
                    self._last_maintenance = time.monotonic()
                    maintenance()
            except Exception:  # the writer must survive a database hiccup; the rows of this batch are lost
                logger.exception("could not write %d request-log rows", len(batch))
                close_old_connections()
            if stop:
                break
        self.flush()
        connection.close()

    def stop(self) -> None:
        """Flush and end the thread (atexit, gunicorn's worker_exit)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            self.queue.put(None)
            thread.join(timeout=30)
        else:
            self.flush()


def maintenance() -> None:
    from gateway.counters import DatabaseCounters, store

    reset_due_budgets()
    counters = store()
    if isinstance(counters, DatabaseCounters):
        counters.sweep()


writer = Writer()


def record(entry: LogEntry) -> None:
    writer.submit(entry)


def flush() -> int:
    return writer.flush()
