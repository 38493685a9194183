"""The `modelgate` command: `modelgate serve --config PATH` migrates, loads the config and serves with gunicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    import django

    django.setup()


def _prepare(config: str | None) -> None:
    """Migrate the database and load the config; exit with a clear message on a bad config."""
    if config:
        path = Path(config).resolve()
        if not path.is_file():
            sys.exit(f"modelgate: config file {config} does not exist.")
        os.environ["MODELGATE_CONFIG"] = str(path)
    _setup_django()
    from django.core.management import call_command

    from accounts.auth import master_key
    from models_registry.config import ConfigError, load_config

    call_command("migrate", interactive=False, verbosity=0)
    if config:
        try:
            report = load_config(os.environ["MODELGATE_CONFIG"])
            key = master_key()
        except ConfigError as exc:
            sys.exit(f"modelgate: {exc}")
        print(f"modelgate: loaded {config}: {report.summary()}", flush=True)
        for warning in report.warnings:
            print(f"modelgate: warning: {warning}", flush=True)
    else:
        key = master_key()
    if not key:
        print(
            "modelgate: warning: no master key (set MODELGATE_MASTER_KEY or general_settings.master_key); "
            "the management API will refuse every call.",
            flush=True,
        )


# --worker-class: gunicorn's worker for each choice. "gevent" is gunicorn's gevent worker with gevent's HTTP server
# (gateway.worker); "gevent-gunicorn" the same with gunicorn's own HTTP code, kept for comparison (docs/performance.md).
WORKER_CLASSES = {"gevent": "gateway.worker.GeventWorker", "gevent-gunicorn": "gevent", "gthread": "gthread"}


def serve(args: argparse.Namespace) -> None:
    _prepare(args.config)
    _console_hint(f"http://{args.host}:{args.port}/admin/")
    command = [
        sys.executable, "-m", "gunicorn", "gateway.wsgi:application",
        "--bind", f"{args.host}:{args.port}",
        "--workers", str(args.workers),
        "--worker-class", WORKER_CLASSES[args.worker_class],
        "--threads", str(args.threads),
        "--worker-connections", str(args.worker_connections),
        "--keep-alive", str(args.keep_alive),
        "--graceful-timeout", "30",
        "--config", "python:gateway.gunicorn_conf",
    ]  # fmt: skip
    if args.access_log:
        command += ["--access-logfile", "-"]
    gthread = args.worker_class == "gthread"  # the others are gevent workers
    in_flight = args.threads if gthread else args.worker_connections
    per_worker = f"{in_flight} {'threads' if gthread else 'connections'}"
    # Keep as many upstream connections per worker as it can have calls in flight: with a smaller pool, every call
    # beyond it opens a new connection and throws it away afterwards.
    os.environ.setdefault("MODELGATE_UPSTREAM_POOL_SIZE", str(in_flight))
    print(
        f"modelgate: serving on http://{args.host}:{args.port} ({args.workers} {args.worker_class} workers x "
        f"{per_worker})",
        flush=True,
    )
    os.execv(sys.executable, command)


def load_config_command(args: argparse.Namespace) -> None:
    _setup_django()
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("migrate", interactive=False, verbosity=0)
    try:
        call_command("load_config", args.path)
    except CommandError as exc:
        sys.exit(f"modelgate: {exc}")


def _console_hint(url: str) -> None:
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(is_superuser=True, is_active=True).exists():
        print(f"modelgate: operator console at {url}; create a login first: modelgate createadmin", flush=True)


def createadmin(args: argparse.Namespace) -> None:
    _setup_django()
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("migrate", interactive=False, verbosity=0)
    options = {"interactive": not args.noinput, "email": args.email}
    for name in ("username", "password"):
        if getattr(args, name):
            options[name] = getattr(args, name)
    try:
        call_command("createadmin", **options)
    except CommandError as exc:
        sys.exit(f"modelgate: {exc}")


def manage(args: argparse.Namespace) -> None:
    _setup_django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["modelgate manage", *args.rest])


def _env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """A whole-number default from the environment; a value that is not one stops the command, naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(
            f"modelgate: environment variable {name} must be a whole number of at least {minimum}, not {raw!r}."
        )
    return int(raw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modelgate", description="An LLM gateway that speaks LiteLLM's dialect.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="migrate, load the config and serve with gunicorn")
    p.add_argument("--config", help="LiteLLM-style config.yaml to load before serving")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--workers", type=int, default=_env_int("MODELGATE_WORKERS", os.cpu_count() or 1))
    p.add_argument("--threads", type=int, default=_env_int("MODELGATE_THREADS", 64))
    p.add_argument(
        "--worker-class",
        choices=tuple(WORKER_CLASSES),
        default=os.environ.get("MODELGATE_WORKER_CLASS", "gevent"),
        help="gunicorn worker type (docs/performance.md compares them)",
    )
    p.add_argument(
        "--worker-connections",
        type=int,
        default=_env_int("MODELGATE_WORKER_CONNECTIONS", 2000),
        help="simultaneous connections per gevent worker",
    )
    p.add_argument(
        "--keep-alive",
        type=int,
        default=_env_int("MODELGATE_KEEP_ALIVE", 75, minimum=0),
        help="seconds an idle client connection stays open (gevent: also how long a client may leave a request "
        "unfinished or a response unread)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request to stdout")
    p.set_defaults(func=serve)

    p = sub.add_parser("load-config", help="load a config.yaml into the database and exit")
    p.add_argument("path")
    p.set_defaults(func=load_config_command)

    p = sub.add_parser("createadmin", help="create an operator login for the admin console at /admin/")
    p.add_argument("--username", help="login name (asked when omitted; 'admin' with --noinput)")
    p.add_argument("--email", default="")
    p.add_argument("--password", help="prefer the MODELGATE_ADMIN_PASSWORD environment variable")
    p.add_argument("--noinput", action="store_true", help="never prompt (needs MODELGATE_ADMIN_PASSWORD)")
    p.set_defaults(func=createadmin)

    p = sub.add_parser("manage", help="run a Django management command (migrate, createsuperuser, ...)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=manage)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
