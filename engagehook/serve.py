"""`engagehook serve`: web and worker together, supervised, with recovery before they start.

Both roles run as child processes (gunicorn and a Celery worker) exactly as `engagehook web`
and `engagehook worker` would run them. The children die with the supervisor even on
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

from engagehook.config import Settings

logger = logging.getLogger("engagehook.serve")

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 60


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


def run(settings: Settings, host: str, port: int, web_workers: int, concurrency: int) -> int:
    """Start both roles, restart one that dies, stop both gracefully on SIGTERM/SIGINT."""
    prepare(settings)
    env = {**os.environ, "ENGAGEHOOK_SKIP_MIGRATE": "1"}
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
        "worker": [
            sys.executable,
            "-m",
            "engagehook.cli",
            "worker",
            "--concurrency",
            str(concurrency),
        ],
    }
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def start(role: str) -> None:
        # Each role gets its own session: a SIGTERM sent to serve's whole process group (a
        # terminal, `kill -- -PGID`, systemd's control-group mode) reaches only serve, which
        # stops each role through its master. Celery's pool children signalled directly
        # would die under a warm shutdown that then waits for them forever.
        children[role] = subprocess.Popen(
            commands[role], env=env, preexec_fn=_die_with_parent, start_new_session=True
        )

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
    logger.info(
        "engagehook serving on http://%s:%d (%s)",
        host,
        port,
        "embedded broker and store" if settings.embedded else "Redis",
    )
    while not stopping:
        time.sleep(0.5)
        for role, child in list(children.items()):
            if child.poll() is not None and not stopping:
                logger.error("%s exited with %s; restarting it", role, child.returncode)
                time.sleep(RESTART_BACKOFF_SECONDS)
                start(role)
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
