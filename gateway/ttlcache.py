"""A tiny in-process cache with a time-to-live and race-free invalidation.

Used for the hot path's snapshots (resolved keys, the route table). A process drops its entries at once when it
changes the data itself (signals and services call `invalidate`), and every other process sees changes within the
TTL (SPEC §3, `MODELGATE_AUTH_CACHE_TTL`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[V]):
    def __init__(self, ttl: Callable[[], float], max_entries: int = 100_000):
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._generation = 0
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key, _MISSING)
        if hit is not _MISSING and hit[0] > now:
            return hit[1]
        # One load per key at a time: when an entry expires under load, hundreds of requests (threads or
        # greenlets) would otherwise query the database at once and queue for its connection pool.
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            now = time.monotonic()
            hit = self._entries.get(key, _MISSING)
            if hit is not _MISSING and hit[0] > now:
                return hit[1]  # loaded by the request we waited for
            generation = self._generation
            value = load()
            with self._lock:
                # A change committed while we were loading makes what we read stale: serve it, but do not keep it.
                if generation == self._generation:
                    if len(self._entries) >= self._max_entries:
                        self._entries.clear()
                        self._loading.clear()
                    self._entries[key] = (now + self._ttl(), value)
            return value

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
