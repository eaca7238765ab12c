"""The eleven handlers: the stored appointment and the recorded change after each event."""

from __future__ import annotations

import json

import pytest

from handlers import HANDLERS
from handlers.events import EVENT_TYPES
from tests.builders import load_payload
from tests.handlers.builders import STATUS_OF
from tests.handlers.builders import answer
from tests.handlers.builders import employee_participant
from tests.handlers.builders import event
from tests.handlers.builders import from_payload
from tests.handlers.builders import reduced_employee

QUESTIONNAIRE = answer("a-q", "SUBJECT_QUESTIONNAIRE", "Refinancing")
CANCELLATION = answer("a-c", "APPOINTMENT_CANCELLATION", "I found another bank")
COMPLETION = answer("a-d", "APPOINTMENT_COMPLETION", "Offer sent")


def apply(store, evt):
    return store.apply(evt, json.dumps({"id": evt.id}), HANDLERS[evt.event_type])


def last_change(store, appointment_id="appt-1"):
    history = store.get_appointment(appointment_id)["history"]
    return history[-1]["changes"]


@pytest.fixture
def created(sqlite_store):
    """A store holding appt-1 as booked (ACCEPTED, 8:00-9:00, employee emp-1)."""
    booked = event(
        "CREATE",
        event_id="e-0",
        minutes=0,
        participants=[employee_participant("emp-1")],
        answers=[QUESTIONNAIRE],
    )
    apply(sqlite_store, booked)
    return sqlite_store


class TestRegistry:
    def test_every_event_type_has_exactly_one_handler(self):
        assert sorted(HANDLERS) == sorted(EVENT_TYPES)
        assert len(EVENT_TYPES) == 11

    def test_every_handler_module_says_what_it_does(self):
        for handler in HANDLERS.values():
            assert handler.__doc__ and handler.__module__.startswith("handlers.")


class TestFirstSight:
    """Events arrive out of order: any type may be the first one seen for an appointment."""

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_event_for_an_unseen_appointment_lands(self, store, event_type):
        evt = event(event_type, event_id=f"e-{event_type}", appointment_id=f"new-{event_type}")
        assert apply(store, evt).outcome == "processed"
        stored = store.get_appointment(f"new-{event_type}")
        assert stored["status"] == STATUS_OF[event_type]
        assert stored["snapshot"] == dict(evt.appointment)
        assert stored["lastEventType"] == event_type


class TestCreate:
    @pytest.mark.parametrize(
        "event_type, status", [("CREATE", "ACCEPTED"), ("CREATE_REQUEST", "INCOMING_REQUEST")]
    )
    def test_create_inserts_and_records_the_creation(self, sqlite_store, event_type, status):
        apply(sqlite_store, event(event_type, event_id="e-1"))
        stored = sqlite_store.get_appointment("appt-1")
        assert stored["status"] == status
        assert stored["firstSeenAt"] is not None
        assert last_change(sqlite_store) == {
            "created": True,
            "status": {"old": None, "new": status},
        }

    def test_create_request_example_is_stored_as_sent(self, sqlite_store):
        evt = from_payload(load_payload("CREATE_REQUEST"))
        apply(sqlite_store, evt)
        stored = sqlite_store.get_appointment(evt.appointment_id)
        assert stored["status"] == "INCOMING_REQUEST"
        assert stored["snapshot"] == dict(evt.appointment)


class TestStatusMoves:
    @pytest.mark.parametrize(
        "event_type, before, after",
        [
            ("ACCEPT", "INCOMING_REQUEST", "ACCEPTED"),
            ("CANCEL", "ACCEPTED", "CANCELLED"),
            ("COMPLETE", "ACCEPTED", "COMPLETED"),
            ("COMPLETE", "ACCEPTED", "NO_SHOW"),
            ("REOPEN", "CANCELLED", "ACCEPTED"),
            ("REQUEST_ALTERNATIVE_DATE", "OUTGOING_INVITE", "ALTERNATIVE_DATE_REQUESTED"),
            ("RESCHEDULE_REQUEST", "ACCEPTED", "OUTGOING_INVITE"),
        ],
    )
    def test_status_moves_from_previous_to_new(self, created, event_type, before, after):
        evt = event(
            event_type,
            event_id="e-1",
            minutes=5,
            status=after,
            previous={
                "status": before,
                "start": "2024-10-08T08:00:00+00:00",
                "end": "2024-10-08T09:00:00+00:00",
            },
        )
        apply(created, evt)
        assert created.get_appointment("appt-1")["status"] == after
        assert last_change(created)["status"] == {"old": before, "new": after}

    def test_without_previous_appointment_the_stored_state_is_the_old_one(self, created):
        apply(created, event("CANCEL", event_id="e-1", minutes=5, previous=None))
        assert last_change(created)["status"] == {"old": "ACCEPTED", "new": "CANCELLED"}

    def test_cancel_keeps_the_cancellation_answers(self, created):
        evt = event("CANCEL", event_id="e-1", minutes=5, answers=[QUESTIONNAIRE, CANCELLATION])
        apply(created, evt)
        stored = created.get_appointment("appt-1")
        assert stored["answers"] == [QUESTIONNAIRE, CANCELLATION]
        (kept,) = last_change(created)["answers"]
        assert (kept["id"], kept["answerType"], kept["value"]) == (
            "a-c",
            "APPOINTMENT_CANCELLATION",
            "I found another bank",
        )

    def test_complete_keeps_the_completion_answers(self, created):
        evt = event("COMPLETE", event_id="e-1", minutes=5, answers=[QUESTIONNAIRE, COMPLETION])
        apply(created, evt)
        assert created.get_appointment("appt-1")["answers"] == [QUESTIONNAIRE, COMPLETION]
        assert [a["id"] for a in last_change(created)["answers"]] == ["a-d"]

    def test_cancel_without_a_form_records_no_answers(self, created):
        apply(created, event("CANCEL", event_id="e-1", minutes=5, answers=[QUESTIONNAIRE]))
        assert last_change(created)["answers"] == []

    def test_request_alternative_date_example_records_the_proposed_dates(self, sqlite_store):
        evt = from_payload(load_payload("REQUEST_ALTERNATIVE_DATE"))
        apply(sqlite_store, evt)
        change = last_change(sqlite_store, evt.appointment_id)
        assert change["status"] == {"old": "OUTGOING_INVITE", "new": "ALTERNATIVE_DATE_REQUESTED"}
        previous = evt.previous_appointment
        for key in ("start", "end"):
            if previous[key] != evt.appointment[key]:
                assert change[key] == {"old": previous[key], "new": evt.appointment[key]}


class TestReschedule:
    def test_reschedule_records_old_and_new_times_from_previous_appointment(self, created):
        evt = event(
            "RESCHEDULE",
            event_id="e-1",
            minutes=5,
            start="2024-10-09T13:00:00+00:00",
            end="2024-10-09T14:00:00+00:00",
            previous={
                "status": "ACCEPTED",
                "start": "2024-10-08T08:00:00+00:00",
                "end": "2024-10-08T09:00:00+00:00",
            },
        )
        apply(created, evt)
        stored = created.get_appointment("appt-1")
        assert (stored["start"], stored["end"]) == (
            "2024-10-09T13:00:00+00:00",
            "2024-10-09T14:00:00+00:00",
        )
        change = last_change(created)
        assert change["start"] == {
            "old": "2024-10-08T08:00:00+00:00",
            "new": "2024-10-09T13:00:00+00:00",
        }
        assert change["end"] == {
            "old": "2024-10-08T09:00:00+00:00",
            "new": "2024-10-09T14:00:00+00:00",
        }

    def test_reschedule_prefers_previous_appointment_over_the_stored_state(self, created):
        # The stored state may be older than what the sender knew just before this event.
        evt = event(
            "RESCHEDULE",
            event_id="e-1",
            minutes=5,
            start="2024-10-10T08:00:00+00:00",
            previous={"status": "ACCEPTED", "start": "2024-10-09T08:00:00+00:00"},
        )
        apply(created, evt)
        assert last_change(created)["start"]["old"] == "2024-10-09T08:00:00+00:00"

    def test_reschedule_without_previous_appointment_uses_the_stored_times(self, created):
        evt = event(
            "RESCHEDULE",
            event_id="e-1",
            minutes=5,
            start="2024-10-10T08:00:00+00:00",
            previous=None,
        )
        apply(created, evt)
        assert last_change(created)["start"] == {
            "old": "2024-10-08T08:00:00+00:00",
            "new": "2024-10-10T08:00:00+00:00",
        }


class TestReassign:
    def test_reassign_records_old_and_new_employees(self, created):
        evt = event(
            "REASSIGN",
            event_id="e-1",
            minutes=5,
            participants=[
                employee_participant("emp-2"),
                employee_participant("emp-3", role="SECONDARY"),
            ],
            previous={"status": "ACCEPTED", "participants": [reduced_employee("emp-1")]},
        )
        apply(created, evt)
        assert last_change(created)["employees"] == {
            "old": [{"id": "emp-1", "role": "PRIMARY"}],
            "new": [{"id": "emp-2", "role": "PRIMARY"}, {"id": "emp-3", "role": "SECONDARY"}],
        }
        participants = created.get_appointment("appt-1")["participants"]
        assert [p["employee"]["id"] for p in participants] == ["emp-2", "emp-3"]

    def test_reassign_ignores_customers(self, created):
        customer = {"role": "PRIMARY", "type": "CUSTOMER", "customer": {"id": "c-1"}}
        evt = event(
            "REASSIGN",
            event_id="e-1",
            minutes=5,
            participants=[employee_participant("emp-2"), customer],
            previous=None,
        )
        apply(created, evt)
        assert last_change(created)["employees"] == {
            "old": [{"id": "emp-1", "role": "PRIMARY"}],
            "new": [{"id": "emp-2", "role": "PRIMARY"}],
        }


class TestGenericUpdate:
    def test_generic_update_applies_the_snapshot_and_names_the_changed_fields(self, created):
        evt = event(
            "GENERIC_UPDATE",
            event_id="e-1",
            minutes=5,
            internalNotes="new notes",
            externalId="CRM-2",
            participants=[employee_participant("emp-1")],
            answers=[QUESTIONNAIRE],
        )
        apply(created, evt)
        stored = created.get_appointment("appt-1")
        assert stored["snapshot"] == dict(evt.appointment)
        assert stored["externalId"] == "CRM-2"
        assert last_change(created) == {"fields": ["externalId", "internalNotes"]}

    def test_history_holds_field_names_not_their_values(self, created):
        apply(
            created,
            event(
                "GENERIC_UPDATE",
                event_id="e-1",
                minutes=5,
                internalNotes="private remark",
                participants=[],
                answers=[],
            ),
        )
        assert "private remark" not in json.dumps(last_change(created))
