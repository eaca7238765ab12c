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

from core.config import ConfigError
from core.config import Settings

DEFAULT_PORT = 8000
# Flower keeps task history in memory; its default of 100,000 tasks grows without need.
FLOWER_MAX_TASKS = 10_000

logger = logging.getLogger("engagehook.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"engagehook: configuration error: {exc}") from None


def _warn_if_open(settings: Settings) -> None:
    if not settings.webhook_tokens and not settings.webhook_hmac_secrets:
        logger.warning(
            "neither WEBHOOK_TOKEN nor WEBHOOK_HMAC_SECRET is set; "
            "anyone who can reach /webhooks can post events"
        )


def _start_role(role: str, settings: Settings) -> None:
    """Log JSON lines from here on and give the role's processes a metrics directory."""
    from core import logs

    logs.configure(role, settings.log_level)
    _prepare_metrics_dir(settings, role)


def _prepare_metrics_dir(settings: Settings, role: str) -> None:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run, unless `serve` or the operator set one.

    Under ``settings.metrics_base()``, never under the data dir: the files are memory-mapped,
    and a spool that fills its disk must answer 503, not kill the process with SIGBUS.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    base = settings.metrics_base()
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


def _require_shared_store(settings: Settings) -> None:
    try:
        settings.require_shared_store()
    except ConfigError as exc:
        raise SystemExit(f"engagehook: configuration error: {exc}") from None


def _require_current_schema(settings: Settings, role: str, *, absent_ok: bool = False) -> None:
    """Refuse to start a role against a store whose schema is behind (only `migrate` upgrades).

    ``absent_ok``: a store with no schema yet is only warned about (ingest needs no store to
    accept webhooks). A store that cannot be reached now is left to the role's own retries:
    ingest keeps accepting webhooks, and workers retry, through a database outage.
    """
    from handlers.migrate import schema_state
    from handlers.store import make_engine

    absent = "there is no store yet: run `engagehook migrate` first"
    if _sqlite_file_missing(settings.store_url):
        if absent_ok:
            logger.warning("%s", absent)
            return
        raise SystemExit(f"engagehook {role}: {absent}")
    engine = make_engine(settings.store_url)
    try:
        state = schema_state(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable now is not a reason to refuse
        logger.warning(
            "cannot read the store's schema revision (%s); starting anyway",
            exc.__class__.__name__,
        )
        return
    finally:
        engine.dispose()
    if state.current is None and absent_ok:
        logger.warning("%s", state.advice())
    elif not state.up_to_date:
        raise SystemExit(f"engagehook {role}: {state.advice()}")


def _sqlite_file_missing(url: str) -> bool:
    """True for a SQLite file URL whose file does not exist (opening it would create it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).exists()


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _store(settings: Settings):
    """The existing store at the current schema; exit with what to do otherwise.

    Never migrates and never creates a file: inspection commands must not change a store
    (nor leave a ./var behind when pointed at the wrong place).
    """
    from handlers.migrate import schema_state
    from handlers.store import Store

    if _sqlite_file_missing(settings.store_url):
        print(
            f"engagehook: there is no store at {settings.store_url} "
            "(set DATABASE_URL or ENGAGEHOOK_DATA_DIR, or run `engagehook migrate`)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    store = Store(settings.store_url)
    try:
        state = schema_state(store.engine)
    except Exception as exc:  # noqa: BLE001 - the driver's text may carry the password
        store.engine.dispose()
        print(f"engagehook: cannot open the store: {exc.__class__.__name__}", file=sys.stderr)
        raise SystemExit(1) from None
    if not state.up_to_date:
        store.engine.dispose()
        print(f"engagehook: {state.advice()}", file=sys.stderr)
        raise SystemExit(2)
    return store


def _migrated_store(settings: Settings):
    """The store brought to the newest schema (`engagehook migrate` only)."""
    from handlers.store import Store

    settings.ensure_dirs()
    store = Store(settings.store_url)
    store.migrate()
    return store


# -- roles -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from engagehook import serve

    settings = _settings()
    _require_shared_store(settings)
    _start_role("serve", settings)  # web and worker inherit one metrics directory: one /metrics
    _warn_if_open(settings)
    return serve.run(
        settings, args.host, args.port, args.workers, args.concurrency, args.hook_concurrency
    )


WEB_APP = "ingest.app:create_app()"


def gunicorn_argv(app: str, bind: str, *, workers: int, log_level: str) -> list[str]:
    """The gunicorn command `web` runs (the benchmark runs it too, with other apps).

    Timeouts, JSON logging and the metrics hook live in the gunicorn config module.
    """
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:ingest.gunicorn_conf",
        app,
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--log-level",
        log_level.lower(),
    ]


def cmd_web(args: argparse.Namespace) -> int:
    settings = _settings()
    _require_shared_store(settings)
    _start_role("web", settings)
    if os.environ.get("ENGAGEHOOK_SKIP_MIGRATE") != "1":  # serve checked and migrated already
        _require_current_schema(settings, "web", absent_ok=True)
    settings.ensure_dirs()
    _warn_if_open(settings)
    argv = gunicorn_argv(
        WEB_APP, f"{args.host}:{args.port}", workers=args.workers, log_level=settings.log_level
    )
    if args.threads:
        # One connection per thread, as in the config module: a busy worker stops accepting.
        argv += ["--threads", str(args.threads), "--worker-connections", str(args.threads)]
    if args.graceful_timeout is not None:
        argv += ["--graceful-timeout", str(args.graceful_timeout)]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    if args.metrics_port is not None:
        os.environ["WORKER_METRICS_PORT"] = str(args.metrics_port)
    settings = _settings()
    _require_shared_store(settings)
    if os.environ.get("ENGAGEHOOK_SKIP_MIGRATE") != "1":  # serve checked and migrated already
        _require_current_schema(settings, "worker")
    role = "events" if args.events_only else "hooks" if args.hooks_only else None
    _start_role("worker" if role is None else f"worker-{role}", settings)
    _warn_if_open(settings)  # the operator of a worker-only host should hear it too
    if role is None:
        # Both roles, each a Celery worker with its own pool: a hung hook holds a hooks
        # process, never an events one.
        from engagehook import serve

        os.environ.pop("WORKER_METRICS_PORT", None)  # passed to the events role only
        os.environ["ENGAGEHOOK_SKIP_MIGRATE"] = "1"  # checked once here for both roles
        hook_concurrency = args.hook_concurrency or args.concurrency
        commands = serve.worker_commands(
            args.concurrency, hook_concurrency, settings.worker_metrics_port
        )
        return serve.supervise(commands, give_up_at_start=True)
    from core.names import WORKER_ROLES

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
        ",".join(WORKER_ROLES[role]),
        # Two roles on one host need two node names (Celery warns about duplicates otherwise).
        "--hostname",
        f"{role}@%h",
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
    from core import logs

    logs.configure("flower", settings.log_level)
    if settings.embedded:
        logger.warning("Flower needs REDIS_URL: the embedded broker is local to `serve`")
    if not settings.flower_basic_auth:
        logger.warning("FLOWER_BASIC_AUTH is not set: Flower's pages and API have no login")
    # Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never shows
    # up in the process list.
    # `celery flower`, with JSON logging installed first: tornado then adds no handler of its own.
    boot = (
        "import sys; from core import logs; logs.configure('flower', sys.argv.pop(1)); "
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
    _migrated_store(_settings())
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


def _filters(args: argparse.Namespace, *, dead_letters: bool = False):
    """The event filter the options name, refused with the same messages as the admin API."""
    from handlers.queries import InvalidQuery
    from handlers.queries import parse_event_filter

    params = {
        "state": getattr(args, "state", None),
        "event_type": args.type,
        "appointment_id": getattr(args, "appointment", None),
        "reason": getattr(args, "reason", None),
        "since": args.since,
        "until": args.until,
    }
    try:
        return parse_event_filter(params, dead_letters=dead_letters)
    except InvalidQuery as exc:
        raise _refused(exc) from None


# Filter names of the shared query functions, as this command line spells them.
_OPTION_OF = {"event_type": "type", "appointment_id": "appointment"}


def _refused(exc) -> SystemExit:
    """The exit for a filter, limit or cursor the query functions refused."""
    return SystemExit(
        f"engagehook: --{_OPTION_OF.get(exc.parameter, exc.parameter)}: {exc.message}"
    )


def _print_page(page) -> int:
    """Print a page's items as a JSON list; say on stderr how to get the next page."""
    _print_json(page.items)
    if page.next:
        print(f"engagehook: more records: add --cursor {page.next}", file=sys.stderr)
    return 0


def _limit(args: argparse.Namespace) -> int:
    from handlers.queries import InvalidQuery
    from handlers.queries import parse_limit

    try:
        return parse_limit(args.limit)
    except InvalidQuery as exc:
        raise _refused(exc) from None


def _listing(read) -> int:
    """Run one listing, a bad cursor refused like a bad filter."""
    from handlers.queries import InvalidQuery

    try:
        return _print_page(read())
    except InvalidQuery as exc:
        raise _refused(exc) from None


def _broker_queue(settings: Settings):
    """The broker ingest publishes webhooks to (without the spool): replays go there too."""
    from ingest.queue import CeleryQueue
    from workers.celery_app import create_celery_app

    return CeleryQueue(create_celery_app(settings))


def _report_replay(report, verb: str) -> int:
    """One line per id; failures on stderr and exit 1 (the records stay as they were)."""
    for replayed in report.replayed:
        print(f"{replayed}: {'would be replayed' if report.dry_run else verb}")
    for failed in report.failed:
        print(f"engagehook: {failed['id']}: {failed['error']}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_events(args: argparse.Namespace) -> int:
    from handlers.queries import list_events

    filters = _filters(args)
    store = _store(_settings())
    try:
        return _listing(lambda: list_events(store, filters, limit=_limit(args), cursor=args.cursor))
    finally:
        store.engine.dispose()


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from handlers import queries
    from handlers import replay

    settings = _settings()
    if args.action == "show":
        if len(args.ids) != 1:
            raise SystemExit("engagehook: dead-letters show needs one event ID")
        store = _store(settings)
        found = store.get_event(args.ids[0])
        if found is None or found["state"] != "dead_lettered":
            print(f"engagehook: {args.ids[0]!r} is not a dead letter", file=sys.stderr)
            return 1
        _print_json(found)
        return 0
    filters = _filters(args, dead_letters=True)
    store = _store(settings)
    if args.action == "list":
        return _listing(
            lambda: queries.list_dead_letters(
                store, filters, limit=_limit(args), cursor=args.cursor
            )
        )
    # replay: the ids given, or with --all every dead letter matching the filters
    if args.all == bool(args.ids):
        raise SystemExit("engagehook: dead-letters replay needs event IDs or --all (not both)")
    ids = args.ids or queries.matching_dead_letter_ids(store, filters)
    if not ids:
        print("engagehook: no dead letters match", file=sys.stderr)
        return 0
    report = replay.replay_dead_letters(
        store, _broker_queue(settings).enqueue, ids, dry_run=args.dry_run
    )
    return _report_replay(report, "replayed")


def cmd_hooks(args: argparse.Namespace) -> int:
    from handlers import queries
    from handlers import replay

    settings = _settings()
    store = _store(settings)
    if args.action == "list":
        try:
            state = queries.parse_hook_state(args.state)
        except queries.InvalidQuery as exc:
            raise _refused(exc) from None
        return _listing(
            lambda: queries.list_hook_runs(
                store, state=state, limit=_limit(args), cursor=args.cursor
            )
        )
    if args.all_dead == (args.id is not None):
        raise SystemExit("engagehook: hooks replay needs a hook run ID or --all-dead (not both)")
    run_ids = [args.id] if args.id is not None else replay.dead_hook_run_ids(store)
    if not run_ids:
        print("engagehook: no dead-lettered hook runs", file=sys.stderr)
        return 0
    report = replay.replay_hook_runs(
        store, _broker_queue(settings).run_hook, run_ids, dry_run=args.dry_run
    )
    return _report_replay(report, "re-run")


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
    p.add_argument("--concurrency", type=int, default=2, help="event worker processes")
    p.add_argument(
        "--hook-concurrency", type=int, default=2, help="user hook processes (their own pool)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("web", help="the ingest endpoint under gunicorn")
    web_options(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per gunicorn worker, one connection each (default 64)",
    )
    p.add_argument(
        "--graceful-timeout",
        type=int,
        default=None,
        help="seconds a stopping worker waits for requests in flight (default 30)",
    )
    p.set_defaults(func=cmd_web)

    p = sub.add_parser(
        "worker",
        help="Celery workers: events and user hooks, each with its own pool (or one role)",
    )
    roles = p.add_mutually_exclusive_group()
    roles.add_argument(
        "--events-only",
        action="store_true",
        help="consume webhook events only (queue engagehook)",
    )
    roles.add_argument(
        "--hooks-only",
        action="store_true",
        help="run user hooks only (queue engagehook.hooks)",
    )
    p.add_argument("--concurrency", type=int, default=0, help="processes (default: one per core)")
    p.add_argument(
        "--hook-concurrency",
        type=int,
        default=0,
        help="without a role flag: processes of the hooks pool (default: --concurrency)",
    )
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

    p = sub.add_parser(
        "send",
        help="post payloads the way Pexip Engage does (3 s, then 5 s after 2 s, 30 s after 10 s)",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}/webhooks")
    p.add_argument("--token", help="put ?token=TOKEN in the URL, as a Pexip webhook URL holds it")
    p.add_argument(
        "--hmac-secret", help="add X-Webhook-Signature, as a signing relay in front would"
    )
    p.add_argument(
        "--bearer", metavar="TOKEN", help="add Authorization: Bearer, as a relay in front would"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for every answer (default: the sender's 3, 5 and 30 s)",
    )
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("appointment", help="print a stored appointment as JSON")
    p.add_argument("id")
    p.set_defaults(func=cmd_appointment)

    p = sub.add_parser("event", help="print an event's processing record as JSON")
    p.add_argument("id")
    p.set_defaults(func=cmd_event)

    def listing_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", default=None, help="records per page (default 50, at most 500)")
        p.add_argument("--cursor", default=None, help="the page after this cursor")

    def time_options(p: argparse.ArgumentParser) -> None:
        times = "ISO 8601 (Z or an offset; UTC without), a date, or a duration ago: 90m, 12h, 7d"
        p.add_argument("--since", help=f"received at or after: {times}")
        p.add_argument("--until", help=f"received before: {times}")

    p = sub.add_parser("events", help="list event records, newest first")
    p.add_argument("action", choices=["list"])
    p.add_argument("--state", help="queued, processed, duplicate, stale, retrying, dead_lettered")
    p.add_argument("--type", help="eventType, e.g. RESCHEDULE")
    p.add_argument("--appointment", help="appointment id")
    time_options(p)
    listing_options(p)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("dead-letters", help="list, show and replay dead-lettered events")
    p.add_argument("action", choices=["list", "show", "replay"])
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true", help="with replay: every dead letter matching")
    p.add_argument("--reason", help="a part of the reason (case-insensitive)")
    p.add_argument("--type", help="eventType")
    time_options(p)
    p.add_argument("--dry-run", action="store_true", help="with replay: only list what would be")
    listing_options(p)
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("hooks", help="list and re-run user hook runs")
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("id", nargs="?", type=int, metavar="ID")
    p.add_argument("--state", help="with list: pending, running, done, dead_lettered")
    p.add_argument("--all-dead", action="store_true", help="with replay: every dead-lettered run")
    p.add_argument("--dry-run", action="store_true", help="with replay: only list what would be")
    listing_options(p)
    p.set_defaults(func=cmd_hooks)

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
