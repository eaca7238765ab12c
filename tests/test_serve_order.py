"""`serve`'s supervisor: web starts first and stops last, so restarts refuse as little as possible.

The roles here are small Python scripts that note when they start, are told to stop and exit,
run under the real ``engagehook.serve.supervise`` in a process of its own (it installs signal
handlers).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.processes import wait_until

ROLE = textwrap.dedent(
    """
    import signal, sys, time
    role, notes, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def note(what):
        with open(notes, "a") as f:
            f.write(f"{role} {what} {time.time()}\\n")

    def stop(*_):
        note("term")
        time.sleep(linger)  # a worker finishing its tasks
        note("exit")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    note("start")
    while True:
        time.sleep(0.05)
    """
)

SUPERVISOR = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from engagehook import serve

    role_script, notes, ready_file = sys.argv[1:4]
    commands = {
        role: [sys.executable, role_script, role, notes, linger]
        for role, linger in (("web", "0"), ("events", "1.5"), ("hooks", "1.5"))
    }
    sys.exit(serve.supervise(commands, first=("web", Path(ready_file).exists)))
    """
)


def notes_of(path: Path) -> dict[tuple[str, str], float]:
    if not path.exists():
        return {}
    lines = [line.split() for line in path.read_text().splitlines()]
    return {(role, what): float(at) for role, what, at in lines}


def test_workers_start_after_web_is_ready_and_web_stops_after_them(tmp_path):
    role_script = tmp_path / "role.py"
    role_script.write_text(ROLE)
    notes, ready_file = tmp_path / "notes", tmp_path / "web-ready"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(role_script), str(notes), str(ready_file)]
    )
    try:
        wait_until(lambda: ("web", "start") in notes_of(notes), timeout=60)
        time.sleep(1.0)
        assert set(notes_of(notes)) == {("web", "start")}  # the workers wait for web
        ready_at = time.time()
        ready_file.touch()
        wait_until(lambda: len(notes_of(notes)) == 3, timeout=60)
        assert min(notes_of(notes)[(role, "start")] for role in ("events", "hooks")) >= ready_at

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    seen = notes_of(notes)
    workers_gone = max(seen[(role, "exit")] for role in ("events", "hooks"))
    # Web took webhooks while the workers finished, and was told to stop only after them.
    assert seen[("web", "term")] >= workers_gone
