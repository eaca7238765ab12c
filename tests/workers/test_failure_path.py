"""A failure the store cannot record is retried, never acknowledged unrecorded (semantics 9)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import DataError

from handlers.store import Store
from tests.builders import envelope
from workers import tasks


class RefusingStore(Store):
    """A real SQLite store whose dead letters are refused (not transiently) ``times`` times."""

    def __init__(self, url: str, times: int) -> None:
        super().__init__(url)
        self.times = times
        self.refused = 0

    def dead_letter(self, **kwargs):
        if self.refused < self.times:
            self.refused += 1
            raise DataError("INSERT INTO events ...", {}, Exception("refused"))
        return super().dead_letter(**kwargs)


@pytest.fixture
def refusing_store(tmp_path, worker_store, monkeypatch):
    monkeypatch.setattr(tasks, "retry_countdown", lambda retries: 0)

    def build(times: int) -> RefusingStore:
        return worker_store(RefusingStore(f"sqlite:///{tmp_path / 'store.sqlite3'}", times))

    return build


def test_an_invalid_event_whose_dead_letter_is_refused_is_retried_until_recorded(refusing_store):
    # The processing path and the task's own fallback are refused twice each: two attempts.
    store = refusing_store(times=4)
    raw = json.dumps({"id": "e-refused", "entity": "Appointment", "data": {}})
    assert tasks.process_webhook.apply(args=[raw]).get() == "dead_lettered:invalid"
    assert store.refused == 4
    assert store.get_event("e-refused")["state"] == "dead_lettered"


def test_a_valid_event_whose_handler_failure_cannot_be_recorded_is_retried(
    refusing_store, monkeypatch
):
    import handlers

    def broken(event, tx):
        raise RuntimeError("bug")

    monkeypatch.setitem(handlers.HANDLERS, "CREATE", broken)
    store = refusing_store(times=2)
    raw = json.dumps(envelope(event_id="e-bug"))
    assert tasks.process_webhook.apply(args=[raw]).get().startswith("dead_lettered")
    assert store.get_event("e-bug")["state"] == "dead_lettered"
