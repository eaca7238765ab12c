"""A local durable spool: payloads the broker could not take wait here, one file each, in order.

Layout of the spool directory (one per host, shared by every ingest process on it)::

    00001718000000000000-0012345-000001.json   one payload: a JSON header line, then the raw body
    .tmp-...                                   a payload being written (never acknowledged yet)
    .drain.lock                                flock'ed by the one process draining right now

A payload is written to a temporary name, fsync'd, renamed into place and the directory
fsync'd before ingest answers 2xx, so a power cut after the answer cannot lose it. Names sort
by arrival time (then process and sequence), which is the order the drainer publishes them in.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".drain.lock"
CORRUPT_DIR = "corrupt"
# How long a measured size of the directory is trusted before it is measured again: several
# processes write into one spool, so each re-reads the others' share about once a second.
USAGE_TTL_SECONDS = 1.0
# A temporary file this old belongs to a writer that died before answering: nobody was
# promised it, so it is removed.
STALE_TEMP_SECONDS = 600.0


class SpoolFull(Exception):
    """The spool has no room left (its byte bound or the disk); the sender must retry later."""


@dataclass(frozen=True)
class SpooledPayload:
    """One waiting payload with the identifiers the broker message shows."""

    path: Path
    body: str
    event_id: str
    event_type: str | None
    appointment_id: str | None


class Spool:
    """A directory of payloads, bounded by ``max_bytes``; safe for many processes at once."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        self._usage = 0
        self._usage_at = float("-inf")

    # -- writing ---------------------------------------------------------------------------

    def put(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> Path:
        """Store one payload durably and return its file; raise SpoolFull or OSError if not."""
        header = orjson.dumps(
            {"event_id": event_id, "event_type": event_type, "appointment_id": appointment_id}
        )
        content = header + b"\n" + body.encode("utf-8")
        with self._lock:
            if self.usage() + len(content) > self.max_bytes:
                self._usage_at = float("-inf")  # others may have drained: measure again once
                if self.usage() + len(content) > self.max_bytes:
                    raise SpoolFull(f"the spool holds {self._usage} of {self.max_bytes} bytes")
            name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._sequence):06d}"
            self._usage += len(content)
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f"{TEMP_PREFIX}{name}"
        final = self.directory / f"{name}{SUFFIX}"
        try:
            _write_durably(temp, content)
            os.rename(temp, final)
            _fsync_dir(self.directory)  # the rename itself must survive a power cut
        except OSError as exc:
            temp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFull("the disk under the spool is full") from exc
            raise
        return final

    def usage(self) -> int:
        """Bytes held by waiting payloads, measured at most USAGE_TTL_SECONDS ago."""
        now = time.monotonic()
        if now - self._usage_at > USAGE_TTL_SECONDS:
            self._usage = sum(_size(path) for path in self.pending())
            self._usage_at = now
        return self._usage

    # -- reading and draining --------------------------------------------------------------

    def pending(self) -> list[Path]:
        """Waiting payload files, oldest first."""
        try:
            names = [
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
            ]
        except FileNotFoundError:
            return []
        return [self.directory / name for name in sorted(names)]

    def __len__(self) -> int:
        return len(self.pending())

    def oldest_arrival(self) -> float | None:
        """Arrival time (epoch seconds) of the oldest waiting payload; None when empty."""
        waiting = self.pending()
        if not waiting:
            return None
        # The name starts with the arrival time in nanoseconds (see ``put``).
        stamp = waiting[0].name.split("-", 1)[0]
        return int(stamp) / 1e9 if stamp.isdigit() else _mtime_of(waiting[0])

    def read(self, path: Path) -> SpooledPayload:
        """Load one payload file; raise ValueError when it is not one this spool wrote."""
        content = path.read_bytes()
        header, newline, body = content.partition(b"\n")
        if not newline:
            raise ValueError(f"{path.name} has no header line")
        ids = orjson.loads(header)
        if not isinstance(ids, dict) or not isinstance(ids.get("event_id"), str):
            raise ValueError(f"{path.name} has no event id in its header")
        # Ingest spools only envelopes whose id it read: a body that no longer says the same is
        # damaged. Published anyway, the worker would record it under another id than the
        # in-flight entry's, which the sweeper would then republish forever.
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ValueError(f"{path.name} holds a body that is not JSON") from None
        if not isinstance(envelope, dict) or envelope.get("id") != ids["event_id"]:
            raise ValueError(f"{path.name} holds a body whose id is not its header's")
        return SpooledPayload(
            path,
            body.decode("utf-8"),
            ids["event_id"],
            ids.get("event_type"),
            ids.get("appointment_id"),
        )

    def remove(self, path: Path) -> None:
        """Forget a payload the broker has taken."""
        size = _size(path)
        path.unlink(missing_ok=True)
        with self._lock:
            self._usage = max(0, self._usage - size)

    def set_aside(self, path: Path) -> Path:
        """Move an entry that cannot be read as a payload out of the way, keeping it for a human.

        Anything under the name (a file, even a directory) is moved whole; a name already set
        aside gets a numbered suffix rather than replacing the earlier one.
        """
        target = self.directory / CORRUPT_DIR
        target.mkdir(exist_ok=True)
        destination = target / path.name
        for n in itertools.count(1):
            if not os.path.lexists(destination):
                break
            destination = target / f"{path.name}.{n}"
        os.rename(path, destination)
        with self._lock:
            self._usage_at = float("-inf")
        return destination

    def remove_stale_temporaries(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Delete half-written files left by a writer that died before it answered."""
        removed = 0
        cutoff = time.time() - older_than
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) and _mtime(entry) < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    @contextmanager
    def drain_lock(self) -> Iterator[bool]:
        """Yield True for the one process allowed to drain now; the lock dies with its holder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _write_durably(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _mtime_of(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
