"""The hook registrations table on each backend: one upsert per worker, read by eventType."""

from __future__ import annotations

from datetime import timedelta

from handlers import hook_registrations
from handlers.models import utcnow


def test_recording_is_an_upsert_and_reads_back_by_event_type_and_age(store):
    old = utcnow() - hook_registrations.REGISTRATION_TTL - timedelta(minutes=1)
    hooks = {"crm:sync": ("CANCEL", "COMPLETE"), "mail:notify": ("CANCEL",)}
    assert hook_registrations.record(store.engine, hooks, now=old) == 3
    with store.engine.connect() as conn:
        assert hook_registrations.registered_names(conn, "CANCEL", utcnow()) == []
    hook_registrations.record(store.engine, {"crm:sync": ("CANCEL", "COMPLETE")})
    with store.engine.connect() as conn:
        assert hook_registrations.registered_names(conn, "CANCEL", utcnow()) == ["crm:sync"]
        assert hook_registrations.registered_names(conn, "COMPLETE", utcnow()) == ["crm:sync"]
        assert hook_registrations.registered_names(conn, "CREATE", utcnow()) == []


def test_a_worker_without_hooks_records_nothing(store):
    assert hook_registrations.record(store.engine, {}) == 0
