"""The examples validate in both modes, and parse_event/validate_document keep their interface."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime

import pytest

from handlers.events import AppointmentEvent
from tests.workers.payload_builders import EVENT_TYPES
from tests.workers.payload_builders import EXAMPLES
from tests.workers.payload_builders import edited
from tests.workers.payload_builders import example
from tests.workers.payload_builders import example_bytes
from tests.workers.payload_builders import set_path
from workers.schemas import AppointmentDataSchema
from workers.schemas import EnvelopeSchema
from workers.validation import VALIDATION_MODES
from workers.validation import InvalidPayload
from workers.validation import parse_event
from workers.validation import validate_document


def rejection(raw: dict | bytes, mode: str = "tolerant") -> InvalidPayload:
    """The InvalidPayload that parsing ``raw`` raises."""
    body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(InvalidPayload) as info:
        parse_event(body, mode=mode)
    return info.value


class TestExamples:
    def test_there_is_one_example_per_event_type_named_by_it(self):
        assert sorted(EXAMPLES) == sorted(EVENT_TYPES)
        assert [example(name)["data"]["eventType"] for name in EXAMPLES] == list(EXAMPLES)

    @pytest.mark.parametrize("name", EXAMPLES)
    def test_example_validates_and_parses_into_an_event_in_both_modes(self, name):
        raw = example(name)
        assert {mode: validate_document(raw, mode=mode) for mode in VALIDATION_MODES} == {
            mode: [] for mode in VALIDATION_MODES
        }
        for mode in VALIDATION_MODES:
            event = parse_event(example_bytes(name), mode=mode)
            assert isinstance(event, AppointmentEvent)
            assert event.id == raw["id"]
            assert event.event_type == name
            assert event.appointment_id == raw["data"]["appointment"]["id"]
            assert event.status == raw["data"]["appointment"]["status"]
            assert event.correlation_id == raw["correlationId"]
            assert event.webhook_configuration_id == raw["webhookConfigurationId"]
            assert event.version == raw["version"]
            assert event.unknown_fields == ()
            # The raw objects are kept as sent.
            assert event.appointment == raw["data"]["appointment"]
            assert event.previous_appointment == raw["data"]["previousAppointment"]

    def test_updated_at_is_timezone_aware(self):
        event = parse_event(example_bytes("REQUEST_ALTERNATIVE_DATE"))
        assert event.updated_at == datetime(2024, 10, 9, 6, 47, 31, tzinfo=UTC)
        assert event.updated_at.utcoffset() is not None

    def test_parse_event_accepts_text_and_bytes(self):
        body = example_bytes("CREATE")
        assert parse_event(body.decode()) == parse_event(body)


class TestLoadedData:
    def test_lead_segment_id_int_is_loaded_as_string(self):
        loaded = AppointmentDataSchema().load(example("CREATE")["data"])
        assert loaded["appointment"]["lead_segment"]["id"] == "3"

    def test_previous_lead_segment_id_string_stays_string(self):
        loaded = AppointmentDataSchema().load(example("REQUEST_ALTERNATIVE_DATE")["data"])
        assert loaded["previous_appointment"]["lead_segment"]["id"] == "7"

    def test_dates_load_as_aware_datetimes(self):
        loaded = AppointmentDataSchema().load(example("CREATE")["data"])
        assert loaded["appointment"]["start"].tzinfo is not None

    def test_envelope_schema_load_builds_the_event(self):
        assert isinstance(EnvelopeSchema().load(example("CREATE")), AppointmentEvent)

    def test_unknown_properties_are_left_out_of_the_loaded_data(self):
        # Kept beside the loaded attributes, one spelled like an attribute would override it.
        data = edited("CREATE", "data.appointment.subject.newThing", 1)["data"]
        data["event_type"] = "CANCEL"
        loaded = AppointmentDataSchema().load(data)
        assert "newThing" not in loaded["appointment"]["subject"]
        assert loaded["event_type"] == "CREATE"


class TestUnknownProperties:
    # Closed objects (strict mode rejects the key); open ones are in test_schema_rules.py.
    PATHS = (
        "data.appointment.subject.brandNew",
        "data.appointment.participants[0].employee.brandNew",
        "data.appointment.office.location.geolocation.brandNew",
        "data.appointment.answers[0].question.translations.brandNew",
    )

    @pytest.mark.parametrize("path", PATHS)
    def test_tolerant_mode_keeps_and_reports_the_path(self, path):
        raw = edited("CREATE", path, {"secret": "personal"})
        event = parse_event(json.dumps(raw))
        assert event.unknown_fields == (path,)
        # Kept in the raw body only: the event, and so the stored snapshot, carry declared keys.
        assert event.appointment == example("CREATE")["data"]["appointment"]

    def test_tolerant_mode_logs_paths_without_values(self, caplog):
        raw = edited("CREATE", "data.appointment.subject.brandNew", "pieter@example.com")
        with caplog.at_level(logging.INFO, logger="workers.validation"):
            parse_event(json.dumps(raw))
        assert "data.appointment.subject.brandNew" in caplog.text
        assert "pieter@example.com" not in caplog.text

    def test_several_unknown_paths_are_sorted(self):
        raw = example("CREATE")
        for path in ("zeta", "data.appointment.participants[1].customer.x", "alpha"):
            set_path(raw, path, 1)
        event = parse_event(json.dumps(raw))
        assert event.unknown_fields == (
            "alpha",
            "data.appointment.participants[1].customer.x",
            "zeta",
        )


class TestConcurrency:
    def test_modes_and_tallies_do_not_leak_between_threads(self):
        closed = json.dumps(edited("CREATE", "data.appointment.subject.brandNew", 1))
        open_ = json.dumps(edited("CREATE", "data.appointment.brandNew", 1))

        def parse(index: int) -> tuple[str, ...] | str:
            body, mode = [(closed, "strict"), (closed, "tolerant"), (open_, "strict")][index % 3]
            try:
                return parse_event(body, mode=mode).unknown_fields
            except InvalidPayload as exc:
                return exc.errors[0]["path"]

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(parse, range(90)))
        assert (
            results
            == [
                "data.appointment.subject.brandNew",
                ("data.appointment.subject.brandNew",),
                ("data.appointment.brandNew",),
            ]
            * 30
        )


class TestInvalidPayload:
    def test_not_json_is_reported_at_the_root(self):
        error = rejection(b"{not json")
        assert error.reason == "invalid"
        assert error.errors[0]["path"] == ""
        assert error.errors[0]["message"].startswith("not JSON")
        assert error.event_id is None

    @pytest.mark.parametrize("body", [b"[]", b"42", b'"x"', b"null"])
    def test_a_non_object_is_reported_at_the_root(self, body):
        assert rejection(body).errors == [{"path": "", "message": "must be a JSON object"}]

    def test_identifiers_are_taken_best_effort_from_the_raw_dict(self):
        raw = edited("CREATE", "data.appointment.meetingType", "TELEPATHY")
        error = rejection(raw)
        assert (error.event_id, error.event_type, error.appointment_id) == (
            raw["id"],
            "CREATE",
            raw["data"]["appointment"]["id"],
        )

    def test_identifiers_are_none_when_not_strings(self):
        raw = edited("CREATE", "id", 5)
        set_path(raw, "data.appointment.id", None)
        error = rejection(raw)
        assert (error.event_id, error.appointment_id) == (None, None)

    def test_unknown_event_type_has_its_own_reason(self):
        error = rejection(edited("CREATE", "data.eventType", "MERGE"))
        assert error.reason == "unsupported eventType"
        assert [e["path"] for e in error.errors] == ["data.eventType"]
        assert error.event_type == "MERGE"

    def test_unknown_event_type_wins_over_other_errors(self):
        raw = edited("CREATE", "data.eventType", "MERGE")
        set_path(raw, "data.appointment.meetingType", "TELEPATHY")
        error = rejection(raw)
        assert error.reason == "unsupported eventType"
        assert [e["path"] for e in error.errors] == [
            "data.appointment.meetingType",
            "data.eventType",
        ]

    @pytest.mark.parametrize("path", ["data.appointment.status", "data.previousAppointment.status"])
    def test_unknown_status_has_its_own_reason(self, path):
        error = rejection(edited("REQUEST_ALTERNATIVE_DATE", path, "ON_HOLD"))
        assert error.reason == "unsupported status"
        assert [e["path"] for e in error.errors] == [path]
        assert "ON_HOLD" in error.errors[0]["message"]

    def test_missing_event_type_is_plainly_invalid(self):
        raw = example("CREATE")
        del raw["data"]["eventType"]
        error = rejection(raw)
        assert error.reason == "invalid"
        assert error.errors == [
            {"path": "data.eventType", "message": "Missing data for required field."}
        ]

    def test_errors_are_sorted_with_numeric_indexes(self):
        raw = example("CREATE")
        participant = raw["data"]["appointment"]["participants"][0]
        raw["data"]["appointment"]["participants"] = [participant] * 11
        raw["data"]["appointment"]["participants"][10] = {**participant, "role": "X"}
        raw["data"]["appointment"]["participants"][2] = {**participant, "role": "X"}
        raw["id"] = 1
        paths = [e["path"] for e in rejection(raw).errors]
        assert paths == [
            "data.appointment.participants[2].role",
            "data.appointment.participants[10].role",
            "id",
        ]

    def test_the_same_payload_gives_the_same_errors(self):
        raw = edited("CREATE", "data.appointment.subject.order", -1)
        set_path(raw, "entity", "Customer")
        assert validate_document(raw) == validate_document(json.loads(json.dumps(raw)))

    def test_an_unknown_mode_is_a_programming_error(self):
        with pytest.raises(ValueError, match="VALIDATION_MODE"):
            parse_event(example_bytes("CREATE"), mode="lenient")

    def test_validate_document_reports_the_same_errors_as_parse_event(self):
        raw = edited("CREATE", "data.appointment.participants[0].employee.email", "x" * 321)
        assert (
            validate_document(raw)
            == rejection(raw).errors
            == [
                {
                    "path": "data.appointment.participants[0].employee.email",
                    "message": "Longer than maximum length 320.",
                }
            ]
        )
