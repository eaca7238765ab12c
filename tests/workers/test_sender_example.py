"""The sender's own documented example: what tolerant mode accepts, and where strict differs."""

from __future__ import annotations

import json

import pytest

from handlers.hooks import HookRegistry
from tests.workers.payload_builders import SEED_EXAMPLE
from tests.workers.payload_builders import edited
from workers.processing import process
from workers.validation import validate_document

# Strict follows the schema; the example omits one Required property and writes the placeholder
# "string" where the seed states a 2-character cap.
STRICT_ERRORS = [
    {"path": "data.appointment.callbackRequest", "message": "Missing data for required field."},
    {"path": "data.appointment.listing.location.countryCode", "message": "Length must be 2."},
    {"path": "data.appointment.location.countryCode", "message": "Length must be 2."},
    {"path": "data.appointment.office.location.countryCode", "message": "Length must be 2."},
    {
        "path": "data.appointment.participants[0].employee.language",
        "message": "Longer than maximum length 2.",
    },
    {"path": "data.previousAppointment.location.countryCode", "message": "Length must be 2."},
]


@pytest.fixture
def seed_example():
    return json.loads(SEED_EXAMPLE.read_text())


def test_tolerant_mode_accepts_the_senders_own_example(seed_example):
    assert validate_document(seed_example, mode="tolerant") == []


def test_strict_mode_follows_the_schema_where_the_example_does_not(seed_example):
    assert validate_document(seed_example, mode="strict") == STRICT_ERRORS


@pytest.mark.parametrize("mode", ["tolerant", "strict"])
def test_a_null_callback_request_is_accepted_in_both_modes(mode):
    assert (
        validate_document(edited("CREATE", "data.appointment.callbackRequest", None), mode=mode)
        == []
    )


@pytest.mark.parametrize(
    "path",
    [
        "data.appointment.externalId",
        "data.appointment.subject.externalId",
        "data.appointment.participants[0].employee.email",
    ],
)
def test_caps_the_seed_states_for_a_named_field_hold_in_both_modes(path):
    cap = 320 if path.endswith("email") else 255
    errors = validate_document(edited("CREATE", path, "x" * (cap + 1)), mode="tolerant")
    assert errors == [{"path": path, "message": f"Longer than maximum length {cap}."}]


def test_the_example_is_processed_not_dead_lettered_in_tolerant_mode(sqlite_store, seed_example):
    outcome = process(SEED_EXAMPLE.read_text(), sqlite_store, HookRegistry(), mode="tolerant")
    assert outcome.label == f"processed:{seed_example['data']['eventType']}"
    assert sqlite_store.get_event(seed_example["id"])["state"] == "processed"
    stored = sqlite_store.snapshot(seed_example["data"]["appointment"]["id"])
    assert stored["participants"] == seed_example["data"]["appointment"]["participants"]
