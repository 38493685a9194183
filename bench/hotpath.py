#!/usr/bin/env python3
"""CPU per relayed request inside one process: the WSGI application called directly (no gunicorn, no socket to the
client), against the fake upstream on :8901 and Redis, with a warm virtual key carrying a budget and an rpm limit.

    bench/hotpath.py [--requests N] [--stream] [--rounds R]

Prints the median over rounds of CPU microseconds per request (process time: less sensitive to other load than
wall-clock figures, but still noisy on a shared VM). For exact comparisons count instructions instead, e.g. with
MODELGATE_ACCOUNTING=manual (no background threads, so the count repeats to within 0.5 %):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null bench/hotpath.py --warm 50 --rounds 1 --requests 301
    (minus the same with --requests 1, divided by 300)

A tool for comparing two versions of the hot path, not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm", type=int, default=200, help="requests before measuring")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--upstream", default="http://127.0.0.1:8901/v1")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modelgate-hotpath."))
    config = work / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {args.upstream}\n      api_key: sk-fake-upstream-key\n"
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'db.sqlite3'}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["MODELGATE_REDIS_PREFIX"] = f"hotpath-{os.getpid()}-{time.time():.0f}:"
    os.environ["MODELGATE_DATA_DIR"] = str(work)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_config", str(config), verbosity=0)
    from accounts import services
    from gateway.wsgi import application

    _, key = services.key_generate(models=["gpt-4o-mini"], max_budget=1_000_000, rpm_limit=100_000_000)
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 32,
            "stream": args.stream,
        }
    ).encode()

    def call() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/v1/chat/completions",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "4000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:4000",
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status = []
        result = application(environ, lambda s, h, exc_info=None: status.append(s))
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        if not status[0].startswith("200"):
            raise SystemExit(f"request failed: {status[0]}")

    for _ in range(args.warm):  # warm: the key, the routes, the upstream connection, the counter script
        call()
    per_request = []
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(args.requests):
            call()
        per_request.append((time.process_time() - started) / args.requests * 1e6)
    print(
        f"{'stream' if args.stream else 'plain'}: {statistics.median(per_request):.0f} µs CPU per request "
        f"(median of {args.rounds} rounds of {args.requests}; all: {', '.join(f'{v:.0f}' for v in per_request)})"
    )


if __name__ == "__main__":
    main()
