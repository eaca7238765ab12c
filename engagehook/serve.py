"""`engagehook serve`: web and workers together, supervised, with recovery before they start.

Each role runs as a child process exactly as `engagehook web`, `engagehook worker
--events-only` and `engagehook worker --hooks-only` would run it (gunicorn, and one Celery
worker per role: user hooks never share the events' pool). Plain `engagehook worker` uses
the same supervisor for its two roles. The children die with the supervisor even on
SIGKILL (PR_SET_PDEATHSIG), so a restart never finds the port still taken.

Web starts first and the workers only once it answers /readyz: what the sender posts is
acknowledged once it is in the broker, so on a small host the seconds the two Celery workers
take to boot are not seconds of refused deliveries.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from core.config import Settings

logger = logging.getLogger("engagehook.serve")

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 60
# A worker role that exits with an error this soon after starting is refusing to start.
STARTUP_SECONDS = 30
# Under serve, web waits at most this long for a request in flight when it stops: the sender
# gives up after 3 s and retries (gunicorn's own default, for `engagehook web`, stays 30 s).
SERVE_WEB_GRACEFUL_SECONDS = 5
# How long the workers wait for web to answer /readyz before they start anyway.
WEB_READY_WAIT_SECONDS = 60


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: children outlive a SIGKILLed supervisor
        pass


def prepare(settings: Settings) -> None:
    """Create the data dir, migrate the store and give back what a dead run left held."""
    from handlers.migrate import schema_state
    from handlers.store import Store

    settings.ensure_dirs()
    store = Store(settings.store_url)
    try:
        # A restart finds the schema current: reading its revision is all it needs to do.
        if not schema_state(store.engine).up_to_date:
            store.migrate()
    finally:
        store.engine.dispose()
    if settings.embedded:
        from workers.embedded_broker import restore_orphans

        restored = restore_orphans(settings.broker_url, held_longer_than=0)
        if restored:
            logger.warning("recovered %d messages held by a previous run", restored)


def worker_commands(
    concurrency: int, hook_concurrency: int, metrics_port: int | None = None
) -> dict[str, list[str]]:
    """The two worker roles as `engagehook worker --events-only` / `--hooks-only` commands."""
    events = [sys.executable, "-m", "engagehook.cli", "worker", "--events-only"]
    hooks = [sys.executable, "-m", "engagehook.cli", "worker", "--hooks-only"]
    if concurrency:
        events += ["--concurrency", str(concurrency)]
    if hook_concurrency:
        hooks += ["--concurrency", str(hook_concurrency)]
    if metrics_port is not None:
        events += ["--metrics-port", str(metrics_port)]  # one port per host: the events role's
    return {"events": events, "hooks": hooks}


def run(
    settings: Settings,
    host: str,
    port: int,
    web_workers: int,
    concurrency: int,
    hook_concurrency: int = 2,
) -> int:
    """Start web and both worker roles, restart one that dies, stop all on SIGTERM/SIGINT."""
    prepare(settings)
    commands = {
        "web": [
            sys.executable,
            "-m",
            "engagehook.cli",
            "web",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(web_workers),
            "--graceful-timeout",
            str(SERVE_WEB_GRACEFUL_SECONDS),
        ],
        **worker_commands(concurrency, hook_concurrency),
    }
    logger.info(
        "engagehook serving on http://%s:%d (%s)",
        host,
        port,
        "embedded broker and store" if settings.embedded else "Redis",
    )
    return supervise(commands, first=("web", lambda: _answers_ready(host, port)))


def _answers_ready(host: str, port: int) -> bool:
    """Whether web on ``host:port`` answers /readyz with 200 (it can take webhooks)."""
    import urllib.error
    import urllib.request

    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=1) as answer:
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def supervise(
    commands: dict[str, list[str]],
    *,
    give_up_at_start: bool = False,
    first: tuple[str, Callable[[], bool]] | None = None,
) -> int:
    """Run each command as a child, restart one that dies, stop all on SIGTERM/SIGINT.

    With ``give_up_at_start``, a child that exits with an error within STARTUP_SECONDS (a
    worker refusing to start: unloadable hooks, bad configuration) stops everything with its
    exit code instead of being restarted in a loop. With ``first`` (a role and a readiness
    check), that role starts alone and the others once the check passes (or after
    WEB_READY_WAIT_SECONDS), so they do not compete with it for the CPU while it boots.
    """
    env = {**os.environ, "ENGAGEHOOK_SKIP_MIGRATE": "1"}
    children: dict[str, subprocess.Popen] = {}
    started_at: dict[str, float] = {}
    stopping = False
    status = 0

    def start(role: str) -> None:
        # Each role gets its own session: a SIGTERM sent to serve's whole process group (a
        # terminal, `kill -- -PGID`, systemd's control-group mode) reaches only serve, which
        # stops each role through its master. Celery's pool children signalled directly
        # would die under a warm shutdown that then waits for them forever.
        children[role] = subprocess.Popen(
            commands[role], env=env, preexec_fn=_die_with_parent, start_new_session=True
        )
        started_at[role] = time.monotonic()

    last = first[0] if first is not None else None
    signalled: set[str] = set()

    def terminate(role: str) -> None:
        if role not in signalled and children[role].poll() is None:
            children[role].send_signal(signal.SIGTERM)
        signalled.add(role)

    def stop(signum: int, _frame: object) -> None:
        # The first role (web) stops last: while the workers finish their tasks it goes on
        # acknowledging webhooks into the broker, so a restart refuses deliveries only for
        # the moments web itself is down. A second signal stops it at once too.
        nonlocal stopping
        again, stopping = stopping, True
        for role in list(children):
            if again or role != last:
                terminate(role)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if first is not None:
        role, ready = first
        start(role)
        deadline = time.monotonic() + WEB_READY_WAIT_SECONDS
        while not stopping and children[role].poll() is None and not ready():
            if time.monotonic() > deadline:
                logger.warning("%s is not ready yet; starting the other roles anyway", role)
                break
            time.sleep(0.1)
    for role in commands:
        if role not in children and not stopping:
            start(role)
    while not stopping:
        time.sleep(0.5)
        for role, child in list(children.items()):
            if child.poll() is not None and not stopping:
                early = time.monotonic() - started_at[role] < STARTUP_SECONDS
                if give_up_at_start and early and child.returncode != 0:
                    logger.error("%s could not start (exit %s); stopping", role, child.returncode)
                    status = child.returncode or 1
                    stop(signal.SIGTERM, None)
                    break
                logger.error("%s exited with %s; restarting it", role, child.returncode)
                time.sleep(RESTART_BACKOFF_SECONDS)
                start(role)
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    # A role whose start the signal interrupted (Popen had not returned) was not in
    # ``children`` for the handler: it is told now.
    for role in sorted(children, key=lambda role: role == last):  # the last role last
        terminate(role)
        child = children[role]
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status
