"""A PostgreSQL lock held by a stuck transaction becomes a retry, never an endless wait."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text

import handlers.engine as engine_module
from handlers import HANDLERS
from handlers.errors import TransientError
from handlers.store import Store
from tests.builders import body
from tests.builders import envelope
from workers.validation import parse_event


@pytest.mark.real
def test_lock_held_elsewhere_times_out_as_transient_error(postgres_url, monkeypatch):
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_SECONDS", 1)
    store = Store(postgres_url)
    store.migrate()
    raw = body(envelope("CREATE", event_id="e-locked", appointment_id="a-locked"))
    event = parse_event(raw)
    holder = create_engine(postgres_url)
    try:
        with holder.begin() as conn:
            # A stuck writer of the same appointment holds its lock for the whole block.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": "appointment:a-locked"},
            )
            with pytest.raises(TransientError):
                store.apply(event, raw, HANDLERS["CREATE"])
        # Once the holder is gone the same delivery goes through.
        assert store.apply(event, raw, HANDLERS["CREATE"]).outcome == "processed"
    finally:
        holder.dispose()
        store.engine.dispose()
