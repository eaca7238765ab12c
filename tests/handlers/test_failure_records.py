"""Failure records can always be written, whatever values the body held (semantics 9).

A 202 whose dead letter the database refuses is an acknowledged event with no record: these
tests write, on both backends, the values PostgreSQL columns cannot take as they are.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy.exc import DataError

from handlers import failure_records
from handlers.hooks import HookRegistry
from handlers.storable import LosslessText
from handlers.storable import event_key
from tests.builders import envelope
from workers.processing import process

LONG = "x" * 300
NUL = "a\x00b"


def dead_letter(store, **overrides):
    values = {
        "event_id": "e-odd",
        "raw_body": '{"id": "e-odd"}',
        "reason": "invalid",
        "errors": [{"path": "data.eventType", "message": "bad"}],
        "event_type": "CREATE",
        "appointment_id": "appt-1",
    }
    values.update(overrides)
    return store.dead_letter(**values)


class TestDeadLetterTakesAnyValue:
    @pytest.mark.parametrize(
        "field, value",
        [
            ("event_type", "E" * 100),
            ("event_type", "CRE\x00ATE"),
            ("appointment_id", LONG),
            ("appointment_id", NUL),
            ("reason", "why\x00" * 200),
        ],
    )
    def test_unfit_labels_are_escaped_and_bounded(self, store, field, value):
        assert dead_letter(store, **{field: value}) == "dead_lettered"
        record = store.get_event("e-odd")
        assert record["state"] == "dead_lettered"
        stored = record[
            {"event_type": "eventType", "appointment_id": "appointmentId"}.get(field, field)
        ]
        assert "\x00" not in stored and len(stored) <= 255

    @pytest.mark.parametrize("event_id", [LONG, NUL, "\ud800lone"])
    def test_an_unfit_event_id_is_recorded_under_a_stable_key(self, store, event_id):
        assert dead_letter(store, event_id=event_id) == "dead_lettered"
        record = store.get_event(event_id)
        assert record["state"] == "dead_lettered"
        assert record["id"] == event_key(event_id) != event_id
        # A second delivery of the same id meets the same record.
        assert dead_letter(store, event_id=event_id) == "dead_lettered"
        assert store.get_event(event_id)["attempts"] == 2
        assert store.unfinished_event_ids([event_id]) == set()

    def test_errors_with_nul_paths_and_messages_are_kept_readable(self, store):
        errors = [{"path": f"data.k\x00{i}", "message": "m\x00" * 2000} for i in range(500)]
        assert dead_letter(store, errors=errors) == "dead_lettered"
        stored = store.get_event("e-odd")["errors"]
        assert stored[0]["path"] == "data.k\\u00000"
        assert all("\x00" not in e["path"] + e["message"] for e in stored)
        assert stored[-1]["message"].endswith("more errors")

    @pytest.mark.parametrize(
        "raw_body", ['{"a": "\x00"}', '{"a": "\udcff"}', LosslessText.MARKER + "abc", "plain"]
    )
    def test_the_raw_body_round_trips_exactly_and_replays_as_sent(self, store, raw_body):
        dead_letter(store, raw_body=raw_body)
        assert store.raw_body("e-odd") == raw_body
        assert store.get_event("e-odd")["rawBody"] == raw_body
        assert store.requeue("e-odd") == raw_body

    def test_retry_notes_take_the_same_values(self, store):
        store.mark_retrying(
            event_id=NUL, raw_body="\x00", reason="r\x00", event_type="E" * 100, appointment_id=LONG
        )
        record = store.get_event(NUL)
        assert record["state"] == "retrying"
        assert store.raw_body(NUL) == "\x00"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400),
)
def test_any_string_anywhere_in_a_dead_letter_is_recorded(sqlite_store, text):
    state = sqlite_store.dead_letter(
        event_id=text or "e",
        raw_body=text,
        reason=text,
        errors=[{"path": text, "message": text}],
        event_type=text,
        appointment_id=text,
    )
    assert state == "dead_lettered"
    assert sqlite_store.raw_body(text or "e") == text


class TestValidButUnstorable:
    """A body that passes validation but holds what a column cannot take is dead-lettered."""

    @pytest.mark.parametrize(
        "payload_change, path",
        [
            (lambda p: p["data"]["appointment"].update(id=LONG), "data.appointment.id"),
            (lambda p: p["data"]["appointment"].update(id=NUL), "data.appointment.id"),
            (lambda p: p.update(id=LONG), "id"),
            (
                lambda p: p["data"]["appointment"].update(externalId="x\x00"),
                "data.appointment.externalId",
            ),
            (
                lambda p: p["data"]["appointment"]["participants"][1]["customer"].update(
                    firstName="Ann\x00"
                ),
                "data.appointment.participants[1].customer.firstName",
            ),
        ],
    )
    def test_it_gets_a_dead_letter_naming_the_path(self, store, payload_change, path):
        payload = envelope(event_id="e-unstorable")
        payload_change(payload)
        raw = json.dumps(payload)
        outcome = process(raw, store, HookRegistry())
        assert outcome.label == "dead_lettered:unstorable-value"
        record = store.get_event(payload["id"])
        assert record["state"] == "dead_lettered"
        assert record["reason"] == "unstorable value"
        assert path in [e["path"] for e in record["errors"]]
        assert store.raw_body(payload["id"]) == raw
        assert store.get_appointment(payload["data"]["appointment"]["id"]) is None

    def test_a_database_refusal_of_the_full_record_leaves_a_bare_one(self, store, monkeypatch):
        calls = []
        real = failure_records._record

        def refuse_first(store, event_id, raw_body, state, failure):
            calls.append(failure)
            if len(calls) == 1:
                raise DataError("INSERT ...", {}, Exception("value too long"))
            return real(store, event_id, raw_body, state, failure)

        monkeypatch.setattr(failure_records, "_record", refuse_first)
        assert dead_letter(store) == "dead_lettered"
        record = store.get_event("e-odd")
        assert record["reason"] == "unrecordable failure: DataError"
        assert record["eventType"] is None
        assert store.raw_body("e-odd") == '{"id": "e-odd"}'
