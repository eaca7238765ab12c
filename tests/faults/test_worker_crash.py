"""Fault (b): workers SIGKILLed again and again during a stream: nothing lost, nothing twice.

Real processes: `engagehook web` and two `engagehook worker`s on a private Redis and
PostgreSQL, with
VISIBILITY_TIMEOUT=10 so a message held by a dead worker comes back within seconds. The
killer alternates between SIGKILLing pool processes (mid-task: Celery rejects their message
back to the queue) and SIGKILLing a whole worker (its unacked messages wait in Redis until
the visibility timeout, and a message it had taken off the queue but not yet recorded as
unacked is republished from the in-flight registry by the survivors' sweeper); a supervisor thread restarts workers that are gone, as systemd or
a container runtime would. At the end one worker is killed for good while the other keeps
running: its messages must be restored by the survivor, not by a restart.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading

import pytest

from tests.faults.deployment import Deployment
from tests.faults.harness import SOAK
from tests.faults.harness import Stream
from tests.faults.harness import scale
from tests.processes import children
from tests.processes import wait_until

pytestmark = pytest.mark.slow

EVENTS = int(scale(400, 3000))
RATE = scale(40, 50)
KILL_EVERY_SECONDS = scale(1.0, 1.5)
VISIBILITY_TIMEOUT = 10  # the smallest accepted: retry waits must fit in half of it


class WorkerPool:
    """Named `engagehook worker` processes of a deployment that can be killed and restarted."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.processes: dict[str, subprocess.Popen] = {}
        self.kills = {"pool process": 0, "whole worker": 0}
        self.restarts = 0
        self.retired: set[str] = set()

    def start(self, name: str) -> None:
        self.processes[name] = self.deployment.start_worker(concurrency=2, log=f"{name}.log")

    def supervise(self) -> None:
        """Restart workers that exited, as systemd or a container runtime would.

        Celery exits by itself when a pool process dies before the pool is up
        ("Could not start worker processes"): it relies on a supervisor for that.
        """
        for name, process in list(self.processes.items()):
            if process.poll() is not None and name not in self.retired:
                self.start(name)
                self.restarts += 1

    def kill_pool_process(self, name: str) -> None:
        pool = children(self.processes[name].pid)
        if pool:
            os.kill(random.choice(pool), signal.SIGKILL)
            self.kills["pool process"] += 1

    def kill_whole(self, name: str, *, for_good: bool = False) -> None:
        if for_good:
            self.retired.add(name)
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
        self.kills["whole worker"] += 1


@pytest.fixture
def deployment(tmp_path, postgres_url):
    # A Redis of the test's own: no other test run can consume (or flush) these messages.
    with Deployment(tmp_path, postgres_url, visibility_timeout=VISIBILITY_TIMEOUT) as deployment:
        workers = WorkerPool(deployment)
        workers.start("a")
        workers.start("b")
        deployment.start_web()
        wait_until(lambda: all(children(p.pid) for p in workers.processes.values()), timeout=60)
        yield deployment.webhooks, workers, deployment.ledger


# "whole-workers" alternates whole-worker and pool-process kills, so it covers both kinds;
# the soak also runs a stream with pool-process kills alone.
KILL_SCHEDULES = ["pool-processes", "whole-workers"] if SOAK else ["whole-workers"]


@pytest.mark.parametrize("kills", KILL_SCHEDULES)
def test_sigkilled_workers_lose_nothing_and_apply_nothing_twice(deployment, kills):
    url, workers, ledger = deployment
    stream = Stream(url, prefix=f"crash-{kills}", rate=RATE).start(EVENTS)
    done = threading.Event()

    def killer() -> None:
        rounds = 0
        while not done.wait(KILL_EVERY_SECONDS):
            rounds += 1
            name = random.choice(["a", "b"])
            if kills == "whole-workers" and rounds % 2 == 0:
                workers.kill_whole(name)  # the supervisor thread starts it again
            else:
                workers.kill_pool_process(name)

    def supervisor() -> None:
        while not supervised.wait(0.5):
            workers.supervise()

    supervised = threading.Event()
    threads = [
        threading.Thread(target=killer, daemon=True),
        threading.Thread(target=supervisor, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        stream.wait()
        done.set()
        threads[0].join()
        if kills == "whole-workers":
            # Last, a worker dies for good while work is still queued: the survivor must
            # restore what it held (kombu's periodic restore), not a restart of the dead one.
            workers.kill_whole("a", for_good=True)

        assert len(stream.acked) == EVENTS
        assert workers.kills["pool process"] > 0
        assert (workers.kills["whole worker"] > 0) == (kills == "whole-workers")
        ledger.assert_exactly_once(stream.acked, timeout=scale(90, 300))
    finally:
        supervised.set()
        threads[1].join()
