"""handlers.store.Store: once-only, in order, and failures kept, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from handlers import HANDLERS
from handlers.errors import TransientError
from handlers.models import Appointment
from handlers.models import AppointmentChange
from handlers.models import HookRun
from handlers.store import Store
from tests.handlers.builders import dead_letter_hook_run
from tests.handlers.builders import event
from tests.handlers.builders import finish_hook_run


def apply(store, evt, hooks=()):
    """Apply one event with its real handler, as workers.processing does."""
    return store.apply(evt, f"raw:{evt.id}", HANDLERS[evt.event_type], hooks)


def history_ids(store, appointment_id="appt-1"):
    return [change["eventId"] for change in store.get_appointment(appointment_id)["history"]]


class TestOnce:
    def test_new_event_is_processed_and_becomes_the_stored_state(self, store):
        evt = event("CREATE", event_id="e-1")
        assert apply(store, evt).outcome == "processed"
        stored = store.get_appointment("appt-1")
        assert stored["snapshot"] == dict(evt.appointment)
        assert stored["lastEventId"] == "e-1"
        assert store.get_event("e-1")["state"] == "processed"
        assert store.get_event("e-1")["rawBody"] == "raw:e-1"

    def test_same_event_id_twice_is_applied_once_then_duplicate(self, store):
        evt = event("CREATE", event_id="e-1")
        assert apply(store, evt).outcome == "processed"
        assert apply(store, evt).outcome == "duplicate"
        assert apply(store, evt).outcome == "duplicate"
        record = store.get_event("e-1")
        assert (record["state"], record["duplicates"], record["attempts"]) == ("processed", 2, 1)
        assert history_ids(store) == ["e-1"]

    def test_duplicate_never_calls_the_handler_again(self, store):
        calls = []

        def counting(evt, tx):
            calls.append(evt.id)
            tx.apply_snapshot()

        evt = event("CREATE", event_id="e-1")
        store.apply(evt, "{}", counting)
        store.apply(evt, "{}", counting)
        assert calls == ["e-1"]

    def test_duplicate_queues_no_second_hook_run(self, store):
        evt = event("CANCEL", event_id="e-1")
        first = apply(store, evt, ["crm:sync", "mail:send"])
        second = apply(store, evt, ["crm:sync", "mail:send"])
        assert len(first.hook_run_ids) == 2
        assert second.hook_run_ids == ()
        assert [h["hook"] for h in store.get_event("e-1")["hooks"]] == ["crm:sync", "mail:send"]

    def test_stale_event_delivered_again_is_a_duplicate(self, store):
        apply(store, event("CANCEL", event_id="e-2", minutes=10))
        old = event("CREATE", event_id="e-1", minutes=0)
        assert apply(store, old).outcome == "stale"
        assert apply(store, old).outcome == "duplicate"
        assert store.get_event("e-1")["state"] == "stale"


class TestOrder:
    def test_older_event_is_stale_and_changes_nothing(self, store):
        apply(store, event("CANCEL", event_id="e-2", minutes=10))
        before = store.get_appointment("appt-1")
        assert apply(store, event("GENERIC_UPDATE", event_id="e-1", minutes=5)).outcome == "stale"
        after = store.get_appointment("appt-1")
        assert after == before
        assert after["status"] == "CANCELLED"
        assert store.get_event("e-1")["state"] == "stale"

    def test_cancel_before_its_create_lands_and_the_create_is_stale(self, store):
        cancel = event("CANCEL", event_id="e-cancel", minutes=30)
        create = event("CREATE", event_id="e-create", minutes=0)
        assert apply(store, cancel).outcome == "processed"
        assert apply(store, create).outcome == "stale"
        stored = store.get_appointment("appt-1")
        assert stored["status"] == "CANCELLED"
        assert stored["snapshot"] == dict(cancel.appointment)
        assert history_ids(store) == ["e-cancel"]

    def test_newer_event_replaces_the_whole_snapshot(self, store):
        apply(store, event("CREATE", event_id="e-1", minutes=0))
        newer = event("GENERIC_UPDATE", event_id="e-2", minutes=1, internalNotes="changed")
        apply(store, newer)
        stored = store.get_appointment("appt-1")
        assert stored["snapshot"]["internalNotes"] == "changed"
        assert stored["updatedAt"] == newer.updated_at.isoformat()
        assert history_ids(store) == ["e-1", "e-2"]

    @pytest.mark.parametrize("order", [("e-a", "e-b"), ("e-b", "e-a")])
    def test_equal_updated_at_is_won_by_the_larger_event_id_in_any_order(self, store, order):
        events = {
            "e-a": event("GENERIC_UPDATE", event_id="e-a", minutes=5, internalNotes="a"),
            "e-b": event("GENERIC_UPDATE", event_id="e-b", minutes=5, internalNotes="b"),
        }
        outcomes = {eid: apply(store, events[eid]).outcome for eid in order}
        assert store.get_appointment("appt-1")["lastEventId"] == "e-b"
        assert store.snapshot("appt-1")["internalNotes"] == "b"
        assert outcomes["e-b"] == "processed"
        assert outcomes["e-a"] == ("processed" if order[0] == "e-a" else "stale")

    def test_appointments_are_ordered_independently(self, store):
        apply(store, event("CANCEL", event_id="e-1", appointment_id="appt-1", minutes=10))
        assert apply(store, event("CREATE", event_id="e-2", appointment_id="appt-2")).outcome == (
            "processed"
        )
        assert store.get_appointment("appt-2")["status"] == "ACCEPTED"


class TestFailures:
    def test_dead_letter_keeps_the_body_reason_and_errors(self, store):
        errors = [{"path": "data.eventType", "message": "unsupported eventType 'X'"}]
        state = store.dead_letter(
            event_id="e-1",
            raw_body="{...}",
            reason="unsupported eventType",
            errors=errors,
            event_type="X",
            appointment_id="appt-1",
        )
        assert state == "dead_lettered"
        record = store.get_event("e-1")
        assert (record["state"], record["reason"], record["errors"], record["rawBody"]) == (
            "dead_lettered",
            "unsupported eventType",
            errors,
            "{...}",
        )
        assert [r["id"] for r in store.dead_letters()] == ["e-1"]
        assert "rawBody" not in store.dead_letters()[0]
        assert store.get_appointment("appt-1") is None

    def test_dead_lettered_id_delivered_again_is_tried_again_not_a_duplicate(self, store):
        store.dead_letter(event_id="e-1", raw_body="{}", reason="gave up", errors=[])
        assert apply(store, event("CREATE", event_id="e-1")).outcome == "processed"
        record = store.get_event("e-1")
        assert (record["state"], record["reason"], record["errors"]) == ("processed", None, [])

    def test_dead_letter_of_an_applied_id_is_a_duplicate_and_keeps_the_outcome(self, store):
        apply(store, event("CREATE", event_id="e-1"))
        assert store.dead_letter(event_id="e-1", raw_body="{}", reason="late", errors=[]) == (
            "duplicate"
        )
        assert store.get_event("e-1")["state"] == "processed"

    def test_requeue_hands_back_the_body_of_a_dead_letter_once(self, store):
        store.dead_letter(event_id="e-1", raw_body="the body", reason="invalid", errors=[])
        assert store.requeue("e-1") == "the body"
        assert store.get_event("e-1")["state"] == "queued"
        assert store.requeue("e-1") is None

    def test_requeue_of_an_unknown_or_processed_id_is_refused(self, store):
        apply(store, event("CREATE", event_id="e-1"))
        assert store.requeue("e-1") is None
        assert store.requeue("nope") is None

    def test_retrying_delivery_is_applied_when_it_finally_succeeds(self, store):
        store.mark_retrying(event_id="e-1", raw_body="{}", reason="store unavailable")
        assert store.get_event("e-1")["state"] == "retrying"
        assert apply(store, event("CREATE", event_id="e-1")).outcome == "processed"
        record = store.get_event("e-1")
        assert (record["state"], record["attempts"]) == ("processed", 2)

    def test_retrying_mark_after_the_outcome_changes_nothing(self, store):
        apply(store, event("CREATE", event_id="e-1"))
        store.mark_retrying(event_id="e-1", raw_body="{}", reason="late failure")
        assert store.get_event("e-1")["state"] == "processed"

    def test_failing_handler_rolls_back_the_whole_event(self, store):
        def half_done(evt, tx):
            tx.apply_snapshot()
            raise RuntimeError("downstream bug")

        with pytest.raises(RuntimeError):
            store.apply(event("CREATE", event_id="e-1"), "{}", half_done, ["crm:sync"])
        assert store.get_appointment("appt-1") is None
        assert store.get_event("e-1") is None

    def test_unreachable_database_is_a_transient_error(self):
        store = Store("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
        with pytest.raises(TransientError):
            apply(store, event("CREATE"))
        store.engine.dispose()


class TestHistory:
    def test_each_applied_event_adds_one_history_row_in_order(self, store):
        apply(store, event("CREATE", event_id="e-1", minutes=0))
        apply(store, event("CANCEL", event_id="e-3", minutes=20))
        apply(store, event("ACCEPT", event_id="e-2", minutes=10))  # stale: no row
        history = store.get_appointment("appt-1")["history"]
        assert [(h["eventId"], h["eventType"]) for h in history] == [
            ("e-1", "CREATE"),
            ("e-3", "CANCEL"),
        ]
        assert history[1]["changes"]["status"] == {"old": "ACCEPTED", "new": "CANCELLED"}


class TestPrune:
    def test_pruned_event_delivered_again_is_still_a_duplicate(self, store):
        evt = event("CREATE", event_id="e-1")
        apply(store, evt)
        assert store.prune(timedelta(seconds=-1)) == 1
        assert store.get_event("e-1") is None
        assert apply(store, evt).outcome == "duplicate"
        assert history_ids(store) == ["e-1"]

    def test_prune_keeps_events_whose_hooks_have_not_finished(self, store):
        apply(store, event("CREATE", event_id="e-1"), ["crm:sync"])
        apply(store, event("CREATE", event_id="e-2", appointment_id="appt-2"))
        assert store.prune(timedelta(seconds=-1)) == 1
        assert store.get_event("e-1")["state"] == "processed"
        assert store.get_event("e-2") is None

    def test_prune_keeps_dead_letters(self, store):
        store.dead_letter(event_id="e-1", raw_body="{}", reason="invalid", errors=[])
        assert store.prune(timedelta(seconds=-1)) == 0
        assert store.get_event("e-1")["state"] == "dead_lettered"

    def test_prune_keeps_an_event_whose_hook_run_was_dead_lettered(self, store):
        # The dead hook run waits for a replay, which needs its event's raw body.
        (run_id,) = apply(store, event("CREATE", event_id="e-1"), ["crm:sync"]).hook_run_ids
        dead_letter_hook_run(store, run_id)
        assert store.prune(timedelta(seconds=-1)) == 0
        assert store.get_event("e-1")["hooks"][0]["state"] == "dead_lettered"
        assert [run["eventId"] for run in store.dead_hook_runs()] == ["e-1"]

    def test_prune_deletes_an_event_with_its_done_hook_runs(self, store):
        (run_id,) = apply(store, event("CREATE", event_id="e-1"), ["crm:sync"]).hook_run_ids
        finish_hook_run(store, run_id, "done")
        assert store.prune(timedelta(seconds=-1)) == 1
        with store.transaction() as session:
            assert session.get(HookRun, run_id) is None


class TestReadModel:
    def test_appointment_exposes_the_fields_of_its_snapshot(self, store):
        evt = event("CREATE", event_id="e-1")
        apply(store, evt)
        stored = store.get_appointment("appt-1")
        for key in ("subject", "office", "listing", "leadSegment", "participants", "answers"):
            assert stored[key] == evt.appointment[key]
        assert stored["start"] == "2024-10-08T08:00:00+00:00"
        assert stored["meetingType"] == evt.appointment["meetingType"]
        assert stored["externalId"] == evt.appointment["externalId"]

    def test_reference_ids_are_queryable_columns(self, store):
        evt = event("CREATE", event_id="e-1", leadSegment={"id": 3, "code": "PRIVATE"})
        apply(store, evt)
        with store.transaction(read_only=True) as session:
            row = session.scalars(
                select(Appointment).where(Appointment.office_id == evt.appointment["office"]["id"])
            ).one()
            assert row.subject_id == evt.appointment["subject"]["id"]
            assert row.lead_segment_id == "3"
            assert row.listing_id is None

    def test_unknown_ids_read_as_none(self, store):
        assert store.get_appointment("nope") is None
        assert store.get_event("nope") is None


class TestConcurrency:
    """Threads applying one appointment's events at once lose no update (each backend's lock)."""

    def test_concurrent_writers_converge_on_the_newest_event(self, store):
        events = [
            event("GENERIC_UPDATE", event_id=f"e-{n:02d}", minutes=n, internalNotes=str(n))
            for n in range(24)
        ]
        deliveries = events * 2
        random.Random(4).shuffle(deliveries)
        outcomes: list[tuple[str, str]] = []
        lock = threading.Lock()

        def worker(chunk):
            for evt in chunk:
                result = apply(store, evt)
                with lock:
                    outcomes.append((evt.id, result.outcome))

        threads = [threading.Thread(target=worker, args=(deliveries[i::6],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert store.snapshot("appt-1") == dict(events[-1].appointment)
        for evt in events:
            mine = sorted(outcome for eid, outcome in outcomes if eid == evt.id)
            assert mine in (["duplicate", "processed"], ["duplicate", "stale"])
        with store.transaction(read_only=True) as session:
            applied = session.scalars(
                select(AppointmentChange.event_id).order_by(AppointmentChange.id)
            ).all()
        # In commit order, every applied event was newer than the one before: nothing was
        # overwritten by an older snapshot that raced past the ordering check.
        assert applied == sorted(applied)
        assert applied[-1] == "e-23"
