"""Behaviour-named test doubles."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from ingest.queue import EnqueueFailed


@dataclass
class RecordingQueue:
    """Takes every body and remembers it, with the identifiers ingest extracted."""

    bodies: list[str] = field(default_factory=list)
    identifiers: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    hook_runs: list[int] = field(default_factory=list)

    def enqueue(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> str:
        self.bodies.append(body)
        self.identifiers.append((event_id, event_type, appointment_id))
        return "queued"

    def run_hook(self, run_id: int) -> None:
        self.hook_runs.append(run_id)

    def ping(self) -> None:
        return None


class UnreachableQueue:
    """A broker that is down: every publish and ping fails."""

    def enqueue(self, body: str, **_ids: object) -> str:
        raise EnqueueFailed("broker did not take the message: ConnectionError")

    def run_hook(self, run_id: int) -> None:
        raise ConnectionError("broker unreachable")

    def ping(self) -> None:
        raise ConnectionError("broker unreachable")


@dataclass
class SwitchableQueue(RecordingQueue):
    """A broker that can be taken down and brought back; counts every publish attempt."""

    down: bool = False
    attempts: int = 0

    def enqueue(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> str:
        self.attempts += 1
        if self.down:
            raise EnqueueFailed("broker did not take the message: ConnectionError")
        return super().enqueue(
            body, event_id=event_id, event_type=event_type, appointment_id=appointment_id
        )

    def run_hook(self, run_id: int) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        super().run_hook(run_id)

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
