"""`engagehook serve`: web and workers together, supervised, with recovery before they start.

Each role runs as a child process exactly as `engagehook web`, `engagehook worker
--events-only` and `engagehook worker --hooks-only` would run it (gunicorn, and one Celery
worker per role: user hooks never share the events' pool). Plain `engagehook worker` uses
the same supervisor for its two roles. The children die with the supervisor even on
SIGKILL (PR_SET_PDEATHSIG), so a restart never finds the port still taken.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

from core.config import Settings

logger = logging.getLogger("engagehook.serve")

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 60
# A worker role that exits with an error this soon after starting is refusing to start.
STARTUP_SECONDS = 30


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: children outlive a SIGKILLed supervisor
        pass


def prepare(settings: Settings) -> None:
    """Create the data dir, migrate the store and give back what a dead run left held."""
    from handlers.store import Store

    settings.ensure_dirs()
    Store(settings.store_url).migrate()
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
        ],
        **worker_commands(concurrency, hook_concurrency),
    }
    logger.info(
        "engagehook serving on http://%s:%d (%s)",
        host,
        port,
        "embedded broker and store" if settings.embedded else "Redis",
    )
    return supervise(commands)


def supervise(commands: dict[str, list[str]], *, give_up_at_start: bool = False) -> int:
    """Run each command as a child, restart one that dies, stop all on SIGTERM/SIGINT.

    With ``give_up_at_start``, a child that exits with an error within STARTUP_SECONDS (a
    worker refusing to start: unloadable hooks, bad configuration) stops everything with its
    exit code instead of being restarted in a loop.
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

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for role in commands:
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
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status
