"""The shared counters behind budgets and rate limits, on both stores: `admit` is all-or-nothing, `add` adds,
expired windows start fresh, and concurrent admissions never let more through than the limit."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from contextlib import closing

import pytest
from django.db import connection, connections

from gateway import counters
from gateway.counters import Check, DatabaseCounters, RedisCounters, Update
from tests.limits.support import chat


def fresh(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(counter_store, db):
    chosen = counters.store()
    assert isinstance(chosen, RedisCounters if counter_store == "redis" else DatabaseCounters)
    return chosen


def test_store_follows_redis_url(settings, counter_store):
    expected = RedisCounters if settings.REDIS_URL else DatabaseCounters
    assert isinstance(counters.store(), expected)


def test_admit_applies_every_increment_when_all_checks_pass(store):
    rpm, par, spend = fresh("rpm"), fresh("par"), fresh("spend")
    admission = store.admit([Check(spend, limit=5.0), Check(rpm, limit=3, inc=1), Check(par, limit=2, inc=1)])
    assert admission.admitted
    assert admission.values == (0.0, 0.0, 0.0)  # the values before this admission
    assert store.get([spend, rpm, par]) == [0.0, 1.0, 1.0]  # a check with inc 0 only reads


def test_admit_is_all_or_nothing(store):
    first, full, last = fresh("rpm"), fresh("rpm"), fresh("rpm")
    assert store.admit([Check(full, limit=1, inc=1)]).admitted
    admission = store.admit([Check(first, limit=10, inc=1), Check(full, limit=1, inc=1), Check(last, limit=10, inc=1)])
    assert (admission.admitted, admission.failed) == (False, 1)
    assert admission.values[1] == 1.0
    assert store.get([first, full, last]) == [0.0, 1.0, 0.0]  # the passing checks left nothing behind


@pytest.mark.parametrize(
    ("current", "limit", "inc", "admitted"),
    [
        (0, 0, 1, False),  # a request limit of 0 admits nothing
        (2, 3, 1, True),
        (3, 3, 1, False),  # requests: current + inc > limit fails
        (2.5, 3.0, 0, True),
        (3.0, 3.0, 0, False),  # spend and tokens: current >= limit fails
        (3.5, 3.0, 0, False),
    ],
)
def test_admit_refuses_requests_past_the_limit_and_spend_at_it(store, current, limit, inc, admitted):
    name = fresh("c")
    if current:
        store.add([Update(name, current)])
    assert store.admit([Check(name, limit=limit, inc=inc)]).admitted is admitted


def test_a_floor_counts_when_the_counter_knows_less(store):
    name = fresh("spend")
    store.add([Update(name, 1.0)])
    refused = store.admit([Check(name, limit=5.0, floor=5.0)])  # e.g. spend the database recorded
    assert (refused.admitted, refused.values) == (False, (5.0,))
    assert store.admit([Check(name, limit=5.0, floor=4.0)]).admitted


def test_add_increments_and_may_give_back(store):
    spend, par = fresh("spend"), fresh("par")
    store.add([Update(spend, 1.25), Update(spend, 2.5)])
    store.add([Update(spend, 0.25)])
    assert store.admit([Check(par, limit=2, inc=1)]).admitted
    store.add([Update(par, -1.0)])  # a parallel slot given back
    assert store.get([spend, par]) == [4.0, 0.0]


def test_an_expired_window_starts_fresh(store):
    rpm, tokens = fresh("rpm"), fresh("tpm")
    assert store.admit([Check(rpm, limit=1, inc=1, ttl=1)]).admitted
    assert not store.admit([Check(rpm, limit=1, inc=1, ttl=1)]).admitted
    store.add([Update(tokens, 10.0, ttl=1)])
    time.sleep(1.3)
    assert store.get([rpm, tokens]) == [0.0, 0.0]
    assert store.admit([Check(rpm, limit=1, inc=1, ttl=1)]).admitted
    store.add([Update(tokens, 3.0, ttl=1)])
    assert store.get([rpm, tokens]) == [1.0, 3.0]


def test_database_counters_are_rows_of_gateway_counter(settings, db):
    settings.REDIS_URL = ""
    name = fresh("rpm")
    counters.store().add([Update(name, 2.0)])
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM gateway_counter WHERE name = %s", [name])
        assert cursor.fetchone()[0] == 2.0


@pytest.mark.django_db
def test_a_counter_store_that_is_down_does_not_take_the_gateway_down(anon, settings, make_key, limits_routes, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    _, key = make_key(rpm_limit=0, max_budget=0)
    with caplog.at_level("ERROR", logger="modelgate.counters"):
        response = chat(anon, key)
    assert response.status_code == 200, response.content  # limits fail open ...
    assert "budgets and rate limits not enforced" in caplog.text  # ... loudly


@pytest.fixture
def worker_database(counter_store, transactional_db, tmp_path):
    """Where the worker threads' database connections go.

    PostgreSQL: the test database. SQLite: the test database is an in-memory shared cache, whose table locks fail at
    once ("database table is locked") instead of waiting as a database file does; the SQLite quick start uses a file
    (WAL, BEGIN IMMEDIATE, a busy timeout), so new connections are pointed at a file with the same gateway_counter
    table for the length of the test. The main thread keeps its open in-memory connection.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'gateway_counter' AND sql IS NOT NULL")
        schema = [row[0] for row in cursor.fetchall()]
    path = tmp_path / "counters.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")  # persistent, as after `migrate` on the quick start's database
        for statement in schema:
            db.execute(statement)
        db.commit()
    shared = connections.settings["default"]  # the dict every new connection of any thread is built from
    in_memory = shared["NAME"]
    shared["NAME"] = str(path)
    try:
        yield
    finally:
        shared["NAME"] = in_memory


def on_threads(count: int, work) -> list:
    """Run `work()` on `count` threads released together; each closes its database connection at its end."""
    barrier = threading.Barrier(count)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(work())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=run) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len(results) == count
    return results


def test_concurrent_admissions_admit_exactly_the_limit(counter_store, worker_database):
    store = counters.store()
    rpm, other = fresh("rpm"), fresh("rpm")
    # the generous check first: its increment must be undone whenever the rpm check refuses
    checks = [Check(other, limit=100, inc=1), Check(rpm, limit=7, inc=1)]
    admitted = on_threads(20, lambda: store.admit(checks).admitted)
    assert (admitted.count(True), admitted.count(False)) == (7, 13)
    assert on_threads(1, lambda: store.get([rpm, other])) == [[7.0, 7.0]]


def test_concurrent_adds_lose_nothing(counter_store, worker_database):
    store = counters.store()
    spend = fresh("spend")
    on_threads(20, lambda: store.add([Update(spend, 0.5, ttl=600)]))
    assert on_threads(1, lambda: store.get([spend])) == [[10.0]]


# --- the relay's sender: updates off the request, batched ---------------------------------------------------------


def test_merged_sums_the_amounts_of_each_counter():
    updates = [Update("a", 1.0, 60), Update("b", 2.0, 60), Update("a", 0.5, 120), Update("b", -1.0, 30)]
    assert counters.merged(updates) == [Update("a", 1.5, 120), Update("b", 1.0, 60)]


def test_a_lone_update_is_sent_by_the_request_itself(store):
    name = fresh("spend")
    counters.Sender().submit([Update(name, 2.0), Update(name, 0.5)])
    assert store.get([name]) == [2.5]


def test_the_sender_shares_round_trips_and_each_submit_returns_once_its_update_is_in(counter_store, worker_database):
    """20 requests finishing together while the store is slow: fewer round trips than requests, amounts summed,
    and no request goes on before its own update is in (a client's next request is admitted against it)."""
    sender, store, name = counters.Sender(), counters.store(), fresh("spend")
    applied: list[list[Update]] = []
    lock = threading.Lock()
    real_apply = counters._apply

    def slow_apply(updates: list[Update], admissions: list) -> list:
        time.sleep(0.05)
        results = real_apply(updates, admissions)
        with lock:
            applied.append(updates)
        return results

    def submit_and_check(i: int) -> bool:
        sender.submit([Update(name, 0.5, ttl=600), Update(fresh("tokens"), i, ttl=600)])
        with lock:  # this request's own update is in a batch already applied
            return any(u.name != name and u.amount == i for batch in applied for u in batch)

    counters._apply = slow_apply
    try:
        ids = iter(range(1, 21))
        results = on_threads(20, lambda: submit_and_check(next(ids)))
    finally:
        counters._apply = real_apply
    assert results == [True] * 20
    assert on_threads(1, lambda: store.get([name])) == [[10.0]]
    assert 1 < len(applied) < 20  # shared: the first request's own call, then batches of those that queued
    assert all(sum(u.name == name for u in batch) == 1 for batch in applied)  # one update per counter a batch


def hold_the_store(monkeypatch) -> threading.Event:
    """Every call to the store waits until the returned event is set: a leader stuck on a slow store."""
    real_apply, release = counters._apply, threading.Event()

    def held(updates: list[Update], admissions: list) -> list:
        release.wait(5)
        return real_apply(updates, admissions)

    monkeypatch.setattr(counters, "_apply", held)
    return release


def in_thread(work) -> threading.Thread:
    thread = threading.Thread(target=lambda: (work(), connections.close_all()))
    thread.start()
    return thread


def test_a_request_that_gives_up_waiting_leaves_no_update_behind_and_blocks_no_one(
    counter_store, worker_database, monkeypatch
):
    """A leader stuck longer than WAIT: the request queued behind it stops waiting; its update still goes with the
    next batch, and later requests are not held up by a lead that no one takes."""
    sender, store, name = counters.Sender(), counters.store(), fresh("spend")
    monkeypatch.setattr(counters.Sender, "WAIT", 0.05)
    release = hold_the_store(monkeypatch)
    leader = in_thread(lambda: sender.submit([Update(name, 1.0)]))
    time.sleep(0.02)
    started = time.monotonic()
    on_threads(1, lambda: sender.submit([Update(name, 2.0)]))  # queued behind the stuck leader: gives up
    assert time.monotonic() - started < 1
    release.set()
    leader.join(5)
    assert not leader.is_alive()
    assert on_threads(1, lambda: store.get([name])) == [[3.0]]  # the leader sent the abandoned update too
    on_threads(1, lambda: sender.submit([Update(name, 4.0)]))  # the sender is free again: sent at once
    assert on_threads(1, lambda: store.get([name])) == [[7.0]]


def test_admissions_that_come_together_share_round_trips_and_admit_exactly_the_limit(
    counter_store, worker_database, monkeypatch
):
    """20 requests arriving while the store is slow: fewer calls than requests, and the limit holds exactly, each
    admission all-or-nothing (the generous check's increment is undone whenever the rpm check refuses)."""
    sender = counters.Sender()
    rpm, other = fresh("rpm"), fresh("rpm")
    calls: list[int] = []
    real_apply = counters._apply

    def slow_apply(updates: list[Update], admissions: list) -> list:
        time.sleep(0.05)
        calls.append(len(admissions))
        return real_apply(updates, admissions)

    monkeypatch.setattr(counters, "_apply", slow_apply)
    checks = [Check(other, limit=100, inc=1), Check(rpm, limit=7, inc=1)]
    admitted = on_threads(20, lambda: sender.admit(checks).admitted)
    assert (admitted.count(True), admitted.count(False)) == (7, 13)
    assert on_threads(1, lambda: counters.store().get([rpm, other])) == [[7.0, 7.0]]
    assert sum(calls) == 20
    assert 1 < len(calls) < 20


def test_updates_handed_over_before_an_admission_are_in_before_it(counter_store, worker_database, monkeypatch):
    """A request's spend, queued behind a batch in flight, and the next request's budget check queued after it go
    out together: the spend is added first, so the check refuses."""
    sender, spend = counters.Sender(), fresh("spend")
    real_apply, release = counters._apply, threading.Event()
    batches: list[tuple[list, list]] = []

    def held_apply(updates: list[Update], admissions: list) -> list:
        batches.append((updates, admissions))
        if len(batches) == 1:
            release.wait(5)
        return real_apply(updates, admissions)

    monkeypatch.setattr(counters, "_apply", held_apply)
    leader = in_thread(lambda: sender.submit([Update(fresh("tokens"), 1.0)]))
    time.sleep(0.02)
    finisher = in_thread(lambda: sender.submit([Update(spend, 5.0)]))
    time.sleep(0.02)
    result: list = []
    arriving = in_thread(lambda: result.append(sender.admit([Check(spend, limit=5.0)])))
    time.sleep(0.02)
    release.set()
    for thread in (leader, finisher, arriving):
        thread.join(5)
    assert [len(admissions) for _, admissions in batches] == [0, 1]  # the spend and the check in one call
    assert [u.name for u in batches[1][0]] == [spend]
    assert not result[0].admitted and result[0].values == (5.0,)


def test_an_admission_that_gives_up_waiting_is_never_sent(counter_store, worker_database, monkeypatch):
    sender, rpm = counters.Sender(), fresh("rpm")
    monkeypatch.setattr(counters.Sender, "WAIT", 0.05)
    release = hold_the_store(monkeypatch)
    leader = in_thread(lambda: sender.submit([Update(fresh("tokens"), 1.0)]))
    time.sleep(0.02)

    def admit_or_give_up() -> str:
        try:
            sender.admit([Check(rpm, limit=10, inc=1)])
        except TimeoutError:
            return "gave up"
        return "admitted"

    assert on_threads(1, admit_or_give_up) == ["gave up"]
    release.set()
    leader.join(5)
    assert on_threads(1, lambda: sender.admit([Check(rpm, limit=10, inc=1)]).values) == [(0.0,)]  # never counted


def test_a_store_failure_reaches_every_admission_of_the_batch(monkeypatch):
    sender = counters.Sender()

    def broken(updates: list[Update], admissions: list) -> list:
        raise ConnectionError("store down")

    monkeypatch.setattr(counters.Sender, "WAIT", 1)
    monkeypatch.setattr(counters, "_apply", broken)
    with pytest.raises(ConnectionError):
        sender.admit([Check("x", limit=1, inc=1)])
    sender.submit([Update("x", 1.0)])  # an update's failure is logged, not raised
    with pytest.raises(ConnectionError):
        sender.admit([Check("x", limit=1, inc=1)])  # and the sender is free again


# --- posted updates: written, answered later ----------------------------------------------------------------------


def test_a_posted_update_is_in_before_any_later_call(store):
    spend = fresh("spend")
    store.post([Update(spend, 2.0), Update(spend, 0.5)])
    assert not store.admit([Check(spend, limit=2.5)]).admitted
    assert store.get([spend]) == [2.5]


@pytest.fixture
def redis_store(counter_store, db, settings):
    """The Redis store, and a client of its own to pause Redis, flush its scripts or drop connections (tests marked
    `on_redis`)."""
    import redis

    admin = redis.Redis.from_url(settings.REDIS_URL)
    yield counters.store(), admin
    admin.client_unpause()
    admin.close()


on_redis = pytest.mark.parametrize("counter_store", ["redis"], indirect=True)


@on_redis
def test_posting_an_update_does_not_wait_for_redis(redis_store):
    """While Redis holds every script (CLIENT PAUSE WRITE), a post returns at once; the next call waits for it."""
    store, admin = redis_store
    spend = fresh("spend")
    store.get([spend])  # connected
    admin.client_pause(1000, all=False)
    started = time.monotonic()
    store.post([Update(spend, 3.0)])
    assert time.monotonic() - started < 0.5
    assert store.get([spend]) == [3.0]
    assert time.monotonic() - started > 0.5  # get read the post's answer first, after the pause


@on_redis
def test_a_lone_update_of_the_sender_does_not_wait_for_redis(redis_store):
    store, admin = redis_store
    sender, spend = counters.Sender(), fresh("spend")
    store.get([spend])
    admin.client_pause(1000, all=False)
    started = time.monotonic()
    sender.submit([Update(spend, 1.5)])
    assert time.monotonic() - started < 0.5
    assert not sender.admit([Check(spend, limit=1.5)]).admitted  # the next request is admitted against it


@on_redis
def test_a_posted_update_is_sent_again_when_redis_forgot_the_script(redis_store):
    store, admin = redis_store
    spend = fresh("spend")
    store.post([Update(spend, 1.0)])
    admin.script_flush()
    store.post([Update(spend, 2.0)])  # NOSCRIPT, read later: the script is loaded and the update sent again
    store.post([Update(spend, 4.0)])
    assert store.get([spend]) == [7.0]
    admin.script_flush()
    assert store.admit([Check(spend, limit=8.0)]).admitted  # a call's own NOSCRIPT is handled the same way


@on_redis
def test_a_dropped_connection_is_replaced(redis_store, caplog, monkeypatch):
    """Redis closes the store's connection (a restart, its idle timeout): the next call goes out on a new one, and
    an update whose answer was still owed is logged as lost."""
    store, admin = redis_store
    spend = fresh("spend")
    store.post([Update(spend, 1.0)])
    admin.client_kill_filter(_id=store._pipe.call(("CLIENT", "ID")))
    assert store.get([spend]) == [1.0]
    mine = store._pipe.call(("CLIENT", "ID"))
    admin.client_pause(5000, all=False)  # holds the next update in Redis, unread
    store.post([Update(spend, 1.0)])
    admin.client_kill_filter(_id=mine)
    admin.client_unpause()
    monkeypatch.setattr(counters, "_last_failure_log", 0.0)  # not held back by an earlier test's failure
    with caplog.at_level("ERROR", logger="modelgate.counters"):
        assert store.admit([Check(spend, limit=10.0)]).admitted
    assert "ConnectionError" in caplog.text
    assert store.get([spend]) == [1.0]
