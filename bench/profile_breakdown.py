#!/usr/bin/env python3
"""Bucket a py-spy raw profile (`py-spy record --gil -f raw`) of a modelgate worker into the parts of a request.

profile_breakdown.py PROFILE.raw [...]
"""

from __future__ import annotations

import sys

# (bucket, frame marker): a sample goes to the first bucket whose marker is on its stack, in this order.
BUCKETS = [
    ("request-log writer (background)", "Writer._run"),
    ("budget/rate-limit counters (Redis or SQL)", ("RedisCounters.", "DatabaseCounters.")),
    ("urllib3 / http.client: the upstream exchange", "HTTPAdapter.send"),
    ("requests: Session.request bookkeeping", "Session.request"),
    ("Django: request signals (request_started, request_finished)", "Signal.send (django"),
    (
        "modelgate's own code (auth, access, routing, JSON, streaming, accounting)",
        ("chat_completions", "_ClosingMixin."),
    ),
    (
        "Django: the rest of the request cycle (middleware, URL resolution), request and response objects",
        ("WSGIHandler.__call__ (django", "RelayEntry.__call__", "_Sent."),
    ),
    ("HTTP server (gunicorn, gevent's pywsgi): reading requests, writing responses", ("handle_request", "handle")),
]


def breakdown(path: str) -> dict[str, float]:
    counts: dict[str, int] = {}
    total = 0
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        for name, marker in BUCKETS:
            markers = marker if isinstance(marker, tuple) else (marker,)
            if any(m in stack for m in markers):
                counts[name] = counts.get(name, 0) + int(n)
                break
        else:
            counts["other (worker loop, idle bookkeeping)"] = counts.get(
                "other (worker loop, idle bookkeeping)", 0
            ) + int(n)
    return {name: count / total * 100 for name, count in counts.items()}


def main() -> None:
    results = [breakdown(p) for p in sys.argv[1:]]
    names = [b[0] for b in BUCKETS] + ["other (worker loop, idle bookkeeping)"]
    print("| part | " + " | ".join(sys.argv[1:]) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r.get(name, 0):.0f} %" for r in results) + " |")


if __name__ == "__main__":
    main()
