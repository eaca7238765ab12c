"""Tools of the fault-injection tests: a private Redis, a cuttable TCP proxy, a sender, a ledger.

Every fault test follows one pattern: a ``Stream`` posts uniquely numbered events the way the
sender does and remembers which ones were answered 2xx; a fault is injected while it runs;
then ``Ledger.assert_exactly_once`` waits until every acknowledged event has its one outcome
in the store and checks that none was applied twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import httpx
import redis
from sqlalchemy import func
from sqlalchemy import select

from handlers.models import AppointmentChange
from handlers.models import EventRecord
from handlers.store import Store
from tests.builders import envelope
from tests.builders import instant
from tests.processes import free_port
from tests.processes import wait_until

SOAK = os.environ.get("ENGAGEHOOK_SOAK") == "1"


def scale(short: float, soak: float) -> float:
    """The CI size of a fault test, or its long size under `make soak` (ENGAGEHOOK_SOAK=1)."""
    return soak if SOAK else short


class PrivateRedis:
    """A redis-server of the test's own on a free port, durable (AOF, fsync always)."""

    def __init__(
        self,
        directory: Path,
        *,
        maxmemory: int | None = None,
        maxmemory_policy: str = "noeviction",
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.maxmemory = maxmemory  # bytes; None: no limit
        self.maxmemory_policy = maxmemory_policy

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) on the same port with the same append-only file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # What Redis acknowledged must survive its own restart: production runs it with an
        # append-only file too, and noeviction so the queue itself is never evicted.
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                self.maxmemory_policy,
                *(["--maxmemory", str(self.maxmemory)] if self.maxmemory else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=20)

    def client(self) -> redis.Redis:
        """A client of the test's own (CONFIG SET is fine here: the server is the test's)."""
        return redis.Redis(port=self.port, socket_timeout=10)

    def fill_to_maxmemory(self, headroom: int = 256 * 1024, margin: int = 128 * 1024) -> int:
        """Cap memory at a little above what Redis uses now and fill it with filler keys.

        Returns how many filler keys it wrote; afterwards every write that may grow memory
        is refused with OOM (policy noeviction) until ``set_maxmemory`` raises the cap. The
        cap ends ``margin`` below what is used, so that connections closing (or a few queued
        messages consumed) do not bring Redis back under it.
        """
        client = self.client()
        try:
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", used + headroom)
            written = 0
            try:
                while True:
                    client.set(f"test.filler.{written}", b"x" * 4096)
                    written += 1
            except redis.exceptions.OutOfMemoryError:
                used = int(client.info("memory")["used_memory"])
                client.config_set("maxmemory", used - margin)
                return written
        finally:
            client.close()

    def set_maxmemory(self, limit: int) -> None:
        """Raise (or set) the memory cap, as an operator frees memory with CONFIG SET."""
        client = self.client()
        try:
            client.config_set("maxmemory", limit)
        finally:
            client.close()

    def refuses_writes(self) -> bool:
        client = self.client()
        try:
            client.set("test.probe", b"x" * 4096)
            client.delete("test.probe")
        except redis.exceptions.OutOfMemoryError:
            return True
        finally:
            client.close()
        return False

    def kill(self) -> None:
        """SIGKILL: the broker disappears at once, connections are refused."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the broker hangs, connections are accepted but nothing is answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class TcpProxy:
    """Forwards a local port to ``target``; ``cut()`` resets every connection, new ones too."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for conn in self._connections:
                _close(conn)
            self._connections.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source)
    _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@dataclass
class Stream:
    """Posts events like the sender (4 s timeout, one attempt each) from a background thread.

    ``acked`` holds the ids answered 2xx: the promises the fault tests check.
    """

    url: str
    prefix: str
    rate: float  # events per second
    acked: list[str] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    stored: Counter = field(default_factory=Counter)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, count: int) -> Stream:
        self._thread = threading.Thread(target=self._run, args=(count,), daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float = 600) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the event stream did not finish"

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def _run(self, count: int) -> None:
        with httpx.Client(timeout=4.0) as client:
            started = time.monotonic()
            for n in range(count):
                if self._stop.is_set():
                    return
                delay = started + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                event_id = f"{self.prefix}-{n:06d}"
                raw = json.dumps(
                    envelope(
                        event_id=event_id,
                        appointment_id=f"{self.prefix}-appt-{n}",
                        updated_at=instant(n),
                    )
                )
                self.sent += 1
                try:
                    response = client.post(
                        self.url, content=raw, headers={"Content-Type": "application/json"}
                    )
                except httpx.HTTPError as exc:
                    self.refused[exc.__class__.__name__] += 1
                    continue
                if response.is_success:
                    self.acked.append(event_id)
                    self.stored[response.json().get("stored", "?")] += 1
                else:
                    self.refused[response.status_code] += 1


class Ledger:
    """What the store says became of each event."""

    def __init__(self, store_url: str) -> None:
        self.store = Store(store_url)

    def outcomes(self, ids: list[str]) -> dict[str, str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(EventRecord.id, EventRecord.state).where(EventRecord.id.in_(ids))
            ).all()
        return dict(rows)

    def applications(self, ids: list[str]) -> Counter:
        """How many history rows (applications) each event id has."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(AppointmentChange.event_id, func.count())
                .where(AppointmentChange.event_id.in_(ids))
                .group_by(AppointmentChange.event_id)
            ).all()
        return Counter(dict(rows))

    def assert_exactly_once(self, acked: list[str], timeout: float) -> None:
        """Every acknowledged event ends processed, each applied exactly once."""
        assert acked, "no event was acknowledged: the test proved nothing"

        def all_processed() -> bool:
            states = self.outcomes(acked)
            return len(states) == len(acked) and set(states.values()) == {"processed"}

        try:
            wait_until(all_processed, timeout=timeout, interval=1.0)
        except AssertionError:
            states = self.outcomes(acked)
            missing = [i for i in acked if i not in states]
            other = Counter(s for s in states.values() if s != "processed")
            raise AssertionError(
                f"{len(missing)} of {len(acked)} acknowledged events never reached "
                f"the store (first: {missing[:5]}); other states: {dict(other)}"
            ) from None
        applied = self.applications(acked)
        assert set(applied) == set(acked)
        twice = {event_id: n for event_id, n in applied.items() if n != 1}
        assert twice == {}, f"applied more than once: {twice}"

    def close(self) -> None:
        self.store.engine.dispose()
