"""The `engagehook` command line: run the roles, inspect the store, replay dead letters."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import sys
from datetime import timedelta
from pathlib import Path

from engagehook.config import ConfigError
from engagehook.config import Settings

DEFAULT_PORT = 8000
WORKER_QUEUES = "engagehook,engagehook.hooks"
# Flower keeps task history in memory; its default of 100,000 tasks grows without need.
FLOWER_MAX_TASKS = 10_000

logger = logging.getLogger("engagehook.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"engagehook: configuration error: {exc}") from None


def _warn_if_open(settings: Settings) -> None:
    if not settings.webhook_token and not settings.webhook_hmac_secrets:
        logger.warning(
            "neither WEBHOOK_TOKEN nor WEBHOOK_HMAC_SECRET is set; "
            "anyone who can reach /webhooks can post events"
        )


def _start_role(role: str, settings: Settings) -> None:
    """Log JSON lines from here on and give the role's processes a metrics directory."""
    from engagehook import logs

    logs.configure(role, settings.log_level)
    _prepare_metrics_dir(settings, role)


def _prepare_metrics_dir(settings: Settings, role: str) -> None:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run, unless `serve` or the operator set one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    base = settings.data_dir / "metrics"
    base.mkdir(parents=True, exist_ok=True)
    # Host name in the name: replicas may share the data dir, and in containers every PID is 1.
    host = socket.gethostname()
    for old in base.glob(f"*-{host}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)  # samples of a run that is over
    path = base / f"{role}-{host}-{os.getpid()}"  # exec keeps the PID: gunicorn/celery own it
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worst_case_retry_seconds() -> float:
    """The longest an event can spend in retry countdowns before it is dead-lettered."""
    from workers.tasks import EVENT_MAX_RETRIES
    from workers.tasks import RETRY_BACKOFF_FACTOR
    from workers.tasks import RETRY_BACKOFF_MAX

    return float(
        sum(
            min(RETRY_BACKOFF_MAX, RETRY_BACKOFF_FACTOR * 2 ** (n + 1))
            for n in range(EVENT_MAX_RETRIES)
        )
    )


def _check_visibility_timeout(settings: Settings) -> None:
    worst = worst_case_retry_seconds()
    if settings.visibility_timeout <= worst:
        logger.warning(
            "VISIBILITY_TIMEOUT=%d does not exceed the worst-case retry schedule (%d s): a "
            "retrying message may be delivered twice (harmless, the store takes each event id "
            "once, but wasteful); set it to at least %d",
            settings.visibility_timeout,
            worst,
            worst + 60,
        )


def _migrate_unless_done(settings: Settings) -> None:
    if os.environ.get("ENGAGEHOOK_SKIP_MIGRATE") != "1":
        from handlers.store import Store

        settings.ensure_dirs()
        Store(settings.store_url).migrate()


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _store(settings: Settings):
    from handlers.store import Store

    settings.ensure_dirs()
    store = Store(settings.store_url)
    store.migrate()
    return store


# -- roles -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from engagehook import serve

    settings = _settings()
    _start_role("serve", settings)  # web and worker inherit one metrics directory: one /metrics
    _warn_if_open(settings)
    _check_visibility_timeout(settings)
    return serve.run(settings, args.host, args.port, args.workers, args.concurrency)


def cmd_web(args: argparse.Namespace) -> int:
    settings = _settings()
    settings.ensure_dirs()
    _start_role("web", settings)
    _warn_if_open(settings)
    # Timeouts, JSON logging and the metrics hook live in the gunicorn config module.
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:ingest.gunicorn_conf",
        "ingest.app:create_app()",
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        str(args.workers),
        "--log-level",
        settings.log_level.lower(),
    ]
    if args.threads:
        # One connection per thread, as in the config module: a busy worker stops accepting.
        argv += ["--threads", str(args.threads), "--worker-connections", str(args.threads)]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    if args.metrics_port is not None:
        os.environ["WORKER_METRICS_PORT"] = str(args.metrics_port)
    settings = _settings()
    _start_role("worker", settings)
    _warn_if_open(settings)  # the operator of a worker-only host should hear it too
    _check_visibility_timeout(settings)
    _migrate_unless_done(settings)
    # --quiet: no banner, so every line the worker writes is a JSON log line.
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "--quiet",
        "worker",
        "--queues",
        WORKER_QUEUES,
        "--loglevel",
        args.loglevel or settings.log_level,
        "--task-events",
    ]
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    os.execv(sys.executable, argv)
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    settings = _settings()
    from engagehook import logs

    logs.configure("flower", settings.log_level)
    if settings.embedded:
        logger.warning("Flower needs REDIS_URL: the embedded broker is local to `serve`")
    if not settings.flower_basic_auth:
        logger.warning("FLOWER_BASIC_AUTH is not set: Flower's pages and API have no login")
    # Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never shows
    # up in the process list.
    # `celery flower`, with JSON logging installed first: tornado then adds no handler of its own.
    boot = (
        "import sys; from engagehook import logs; logs.configure('flower', sys.argv.pop(1)); "
        "from celery.__main__ import main; sys.exit(main())"
    )
    argv = [
        sys.executable,
        "-c",
        boot,
        settings.log_level,
        "-A",
        "workers.celery_app",
        "flower",
        f"--port={args.port}",
        f"--address={args.host}",
        f"--max-tasks={args.max_tasks}",
    ]
    if args.persistent:
        # Task history survives a Flower restart (it is in memory only otherwise).
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += [
            "--persistent=True",
            f"--db={(settings.data_dir / 'flower').resolve()}",
            "--state-save-interval=60000",
        ]
    os.execv(sys.executable, argv)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    _store(_settings())
    print("store is at the newest schema")
    return 0


# -- inspection ------------------------------------------------------------------------------


def _print_record(kind: str, lookup: str, record_id: str) -> int:
    """Print one stored record as JSON; exit 1 with a message when there is none."""
    store = _store(_settings())
    try:
        found = getattr(store, lookup)(record_id)
    finally:
        store.engine.dispose()  # close connections now, not whenever the GC gets to them
    if found is None:
        print(f"engagehook: no {kind} {record_id!r}", file=sys.stderr)
        return 1
    _print_json(found)
    return 0


def cmd_appointment(args: argparse.Namespace) -> int:
    return _print_record("appointment", "get_appointment", args.id)


def cmd_event(args: argparse.Namespace) -> int:
    return _print_record("event", "get_event", args.id)


def cmd_validate(args: argparse.Namespace) -> int:
    from workers.validation import InvalidPayload
    from workers.validation import parse_event

    mode = _settings().validation_mode
    failed = False
    for name in args.files:
        try:
            parse_event(Path(name).read_bytes(), mode=mode)
        except OSError as exc:
            failed = True
            print(f"{name}: cannot read: {exc.strerror}")
        except InvalidPayload as exc:
            failed = True
            print(f"{name}: {exc.reason}")
            print(json.dumps(exc.errors, indent=2, ensure_ascii=False))
        else:
            print(f"{name}: ok")
    return 1 if failed else 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    settings = _settings()
    store = _store(settings)
    if args.action == "list":
        _print_json(store.dead_letters())
        return 0
    if args.action == "show":
        if not args.id:
            raise SystemExit("engagehook: dead-letters show needs an event ID")
        found = store.get_event(args.id)
        if found is None or found["state"] != "dead_lettered":
            print(f"engagehook: {args.id!r} is not a dead letter", file=sys.stderr)
            return 1
        _print_json(found)
        return 0
    # replay
    from workers.celery_app import PROCESS_WEBHOOK
    from workers.celery_app import app as celery_app

    if args.all:
        ids = [record["id"] for record in store.dead_letters(limit=1_000_000)]
    elif args.id:
        ids = [args.id]
    else:
        raise SystemExit("engagehook: dead-letters replay needs an event ID or --all")
    status = 0
    for event_id in ids:
        body = store.requeue(event_id)
        if body is None:
            print(f"engagehook: {event_id!r} is not a dead letter", file=sys.stderr)
            status = 1
            continue
        celery_app.send_task(
            PROCESS_WEBHOOK, args=[body], argsrepr=f"(event_id={event_id!r}, replay)"
        )
        print(f"{event_id}: replayed")
    return status


def cmd_config(args: argparse.Namespace) -> int:
    _print_json(_settings().masked())
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    match = re.fullmatch(r"(\d+)([dhm])", args.older_than)
    if not match:
        raise SystemExit("engagehook: --older-than takes a number and a unit: 30d, 12h or 90m")
    amount, unit = int(match[1]), match[2]
    units = {"d": "days", "h": "hours", "m": "minutes"}
    delta = timedelta(**{units[unit]: amount})
    removed = _store(_settings()).prune(delta)
    print(f"removed {removed} finished event records older than {args.older_than}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from engagehook.sender import main as send_main

    return send_main(args)


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; one sub-command per role or inspection."""
    parser = argparse.ArgumentParser(prog="engagehook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def web_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")

    p = sub.add_parser("serve", help="web and worker together (embedded default without REDIS_URL)")
    web_options(p)
    p.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("web", help="the ingest endpoint under gunicorn")
    web_options(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per gunicorn worker, one connection each (default 64)",
    )
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="a Celery worker")
    p.add_argument("--concurrency", type=int, default=0, help="processes (default: one per core)")
    p.add_argument("--loglevel", default=None, help="default: LOG_LEVEL")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the worker's Prometheus metrics here (default: WORKER_METRICS_PORT)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("flower", help="Flower on the same broker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument(
        "--max-tasks", type=int, default=FLOWER_MAX_TASKS, help="task history kept in memory"
    )
    p.add_argument(
        "--persistent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep task history in the data dir across restarts",
    )
    p.set_defaults(func=cmd_flower)

    sub.add_parser("migrate", help="apply the store's migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("config", help="print the effective configuration, secrets masked").set_defaults(
        func=cmd_config
    )

    p = sub.add_parser("validate", help="validate payload files offline")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("send", help="post payloads the way the sender does")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}/webhooks")
    p.add_argument("--token")
    p.add_argument("--hmac-secret")
    p.add_argument(
        "--timeout",
        type=float,
        default=4.0,
        help="seconds to wait for each answer (the sender waits 3-5 s)",
    )
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("appointment", help="print a stored appointment as JSON")
    p.add_argument("id")
    p.set_defaults(func=cmd_appointment)

    p = sub.add_parser("event", help="print an event's processing record as JSON")
    p.add_argument("id")
    p.set_defaults(func=cmd_event)

    p = sub.add_parser("dead-letters", help="list, show and replay dead-lettered events")
    p.add_argument("action", choices=["list", "show", "replay"])
    p.add_argument("id", nargs="?")
    p.add_argument("--all", action="store_true", help="with replay: every dead letter")
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("prune", help="delete finished event records older than a cutoff")
    p.add_argument("--older-than", required=True, help="e.g. 30d, 12h, 90m")
    p.set_defaults(func=cmd_prune)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `engagehook` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
