"""The hot path's in-process cache: expiry, invalidation, and one load at a time per key."""

from __future__ import annotations

import threading
import time

from gateway.ttlcache import TTLCache


def test_it_serves_from_memory_until_the_ttl_runs_out():
    calls = []
    cache = TTLCache(lambda: 0.2)
    assert cache.get_or_load("k", lambda: calls.append(1) or "v1") == "v1"
    assert cache.get_or_load("k", lambda: calls.append(1) or "v2") == "v1"
    time.sleep(0.25)
    assert cache.get_or_load("k", lambda: calls.append(1) or "v3") == "v3"
    assert len(calls) == 2


def test_invalidate_drops_everything_at_once():
    cache = TTLCache(lambda: 60)
    cache.get_or_load("k", lambda: "old")
    cache.invalidate()
    assert cache.get_or_load("k", lambda: "new") == "new"


def test_concurrent_misses_load_once():
    """When an entry expires under load, one request loads it and the others wait for that load."""
    cache = TTLCache(lambda: 60)
    loads = []

    def slow_load():
        loads.append(1)
        time.sleep(0.2)
        return "value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("k", slow_load))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["value"] * 20
    assert len(loads) == 1


def test_a_change_during_a_load_is_not_cached():
    cache = TTLCache(lambda: 60)

    def load_then_change():
        cache.invalidate()  # another request committed a change while this one read the database
        return "stale"

    assert cache.get_or_load("k", load_then_change) == "stale"
    assert cache.get_or_load("k", lambda: "fresh") == "fresh"
