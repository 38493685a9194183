"""The workers' shared count of client connections (gateway.worker._Shares): when a worker holds more than its
share, and which slots count."""

from __future__ import annotations

import time

from gateway.worker import _Shares


def other_worker(shares: _Shares, slot: int, held: int, *, beat_ago: float = 0.0) -> None:
    shares._open[slot] = held
    shares._beat[slot] = time.monotonic() - beat_ago


def test_a_worker_over_the_mean_plus_the_slack_holds_back():
    shares = _Shares()
    shares.join()
    assert shares.slot == 0
    other_worker(shares, 1, 100)
    shares._open[0] = 110  # mean 105, slack max(2, 10.5): up to 115.5
    assert not shares.over_share()
    shares._open[0] = 118  # mean 109: up to 119.9
    assert not shares.over_share()
    shares._open[0] = 130  # mean 115: up to 126.5
    assert shares.over_share()


def test_with_few_connections_the_slack_is_two():
    shares = _Shares()
    shares.join()
    other_worker(shares, 1, 0)
    shares._open[0] = 3  # mean 1.5, + 2
    assert not shares.over_share()
    shares._open[0] = 4  # mean 2, + 2
    assert not shares.over_share()
    shares._open[0] = 5  # mean 2.5, + 2
    assert shares.over_share()


def test_a_worker_alone_or_among_stale_slots_never_holds_back():
    shares = _Shares()
    shares.join()
    shares._open[0] = 500
    assert not shares.over_share()  # no other worker
    other_worker(shares, 1, 0, beat_ago=_Shares.STALE + 1)  # gone without a word: its slot no longer counts
    assert not shares.over_share()
    other_worker(shares, 2, 0)
    assert shares.over_share()


def test_a_new_worker_takes_a_free_or_stale_slot_and_starts_at_zero():
    shares = _Shares()
    other_worker(shares, 0, 40)
    other_worker(shares, 1, 70, beat_ago=_Shares.STALE + 1)
    shares.join()
    assert shares.slot == 1 and shares._open[1] == 0
    shares.opened()
    shares.opened()
    shares.closed()
    assert shares._open[1] == 1


def test_without_a_slot_a_worker_counts_nothing_and_always_accepts():
    shares = _Shares()
    for slot in range(_Shares.SLOTS):
        other_worker(shares, slot, 1)
    shares.join()  # every slot taken by a live worker
    assert shares.slot is None
    shares.opened()
    assert not shares.over_share()
