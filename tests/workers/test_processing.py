"""workers.processing.process: from raw body to exactly one stored outcome."""

from __future__ import annotations

import pytest

from handlers.events import EVENT_TYPES
from handlers.hooks import HookRegistry
from tests.builders import body
from tests.builders import envelope
from tests.builders import instant
from tests.builders import load_payload
from workers.processing import body_fingerprint
from workers.processing import failure_identifiers
from workers.processing import process
from workers.validation import parse_event


@pytest.fixture
def registry():
    return HookRegistry()


class TestProcess:
    def test_valid_event_is_processed_and_stored(self, store, registry):
        outcome = process(body(load_payload("CREATE")), store, registry)
        assert outcome.label == "processed:CREATE"
        stored = store.get_appointment("7a1c3e5f-2b4d-4f6a-8c9e-000000000101")
        assert stored["status"] == "ACCEPTED"
        assert stored["lastEventId"] == "4d2f8a6c-9e1b-4c3d-a5f7-000000001001"

    def test_same_id_twice_is_applied_once(self, store, registry):
        raw = body(load_payload("CREATE"))
        assert process(raw, store, registry).label == "processed:CREATE"
        assert process(raw, store, registry).label == "duplicate"
        record = store.get_event("4d2f8a6c-9e1b-4c3d-a5f7-000000001001")
        assert record["state"] == "processed"
        assert record["duplicates"] == 1

    def test_older_event_is_stale_and_changes_nothing(self, store, registry):
        newer = envelope("CANCEL", event_id="e-2", updated_at=instant(10), status="CANCELLED")
        older = envelope("CREATE", event_id="e-1", updated_at=instant(0), status="ACCEPTED")
        process(body(newer), store, registry)
        assert process(body(older), store, registry).label == "stale:CREATE"
        assert store.get_appointment("appt-1")["status"] == "CANCELLED"
        assert store.get_event("e-1")["state"] == "stale"

    def test_unsupported_event_type_is_dead_lettered_with_its_body(self, store, registry):
        payload = envelope("TELEPORT", event_id="e-9")
        raw = body(payload)
        outcome = process(raw, store, registry)
        assert outcome.label == "dead_lettered:unsupported-eventType"
        record = store.get_event("e-9")
        assert record["state"] == "dead_lettered"
        assert record["reason"] == "unsupported eventType"
        assert record["rawBody"] == raw
        assert record["errors"][0]["path"] == "data.eventType"
        assert store.get_appointment("appt-1") is None

    def test_body_that_is_not_json_is_dead_lettered_under_its_fingerprint(self, store, registry):
        outcome = process("{broken", store, registry)
        assert outcome.event_id == body_fingerprint("{broken")
        assert store.get_event(outcome.event_id)["state"] == "dead_lettered"

    def test_handler_failure_is_dead_lettered_and_rolls_back(self, store, registry, monkeypatch):
        import handlers

        def explode(event, tx):
            tx.apply_snapshot()
            raise KeyError("boom")

        monkeypatch.setitem(handlers.HANDLERS, "CREATE", explode)
        outcome = process(body(load_payload("CREATE")), store, registry)
        assert outcome.label == "dead_lettered:handler-failed"
        assert store.get_appointment("7a1c3e5f-2b4d-4f6a-8c9e-000000000101") is None
        assert "KeyError" in store.get_event("4d2f8a6c-9e1b-4c3d-a5f7-000000001001")["reason"]

    def test_registered_hooks_get_one_outbox_row_each(self, store, registry):
        registry.add(lambda event: None, ["CREATE"])
        outcome = process(body(load_payload("CREATE")), store, registry)
        assert len(outcome.hook_run_ids) == 1
        hooks = store.get_event("4d2f8a6c-9e1b-4c3d-a5f7-000000001001")["hooks"]
        assert [h["state"] for h in hooks] == ["pending"]


class TestFailureIdentifiers:
    """A failure record is kept under the ids its delivery named, however broken the body."""

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_a_valid_body_gives_the_ids_validation_gives(self, event_type):
        raw = body(load_payload(event_type))
        event = parse_event(raw)
        assert failure_identifiers(raw) == (event.id, event.event_type, event.appointment_id)

    def test_an_invalid_body_still_names_its_event(self):
        payload = envelope("CANCEL", event_id="e-bad")
        payload["data"]["appointment"]["status"] = 42
        assert failure_identifiers(body(payload))[:2] == ("e-bad", "CANCEL")

    @pytest.mark.parametrize(
        "raw",
        ["not json", "[1, 2]", '{"id": 7}', '{"id": null}', "[" * 100_000 + "]" * 100_000],
        ids=["not-json", "array", "number-id", "null-id", "too-deep"],
    )
    def test_a_body_naming_no_id_is_kept_under_its_fingerprint(self, raw):
        assert failure_identifiers(raw) == (body_fingerprint(raw), None, None)
