"""Values come only from validated fields: unknown keys never reach an event or the store, and
numbers keep their exact value in the stored snapshot (contract, semantics 10)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from marshmallow import fields

from engagehook.cli import main
from handlers.hooks import HookRegistry
from tests.workers.payload_builders import SEED_EXAMPLE
from tests.workers.payload_builders import example
from workers.processing import process
from workers.schemas import EnvelopeSchema
from workers.schemas.fields import OneOfNested
from workers.validation import InvalidPayload
from workers.validation import parse_event

PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Moments of processing, not of the event: they differ between two runs of the same event.
RUN_FIELDS = ("firstSeenAt", "lastAppliedAt", "history")


def declared_keys(schema=None, seen=None) -> set[str]:
    """Every property name any schema of the contract declares, at any depth."""
    schema = schema or EnvelopeSchema()
    seen = seen if seen is not None else set()
    keys: set[str] = set()
    if type(schema) in seen:
        return keys
    seen.add(type(schema))
    pending = list(schema.load_fields.items())
    while pending:
        name, field = pending.pop()
        keys.add(field.data_key or name)
        if isinstance(field, OneOfNested):
            for variant in field.schemas.values():
                keys |= declared_keys(variant, seen)
        elif isinstance(field, fields.Nested):
            keys |= declared_keys(field.schema, seen)
        elif isinstance(field, fields.List):
            pending.append((name, field.inner))
    return keys


DECLARED = frozenset(declared_keys())
# Keys spelled like the loaded attribute names: the ones that used to override validated values.
INTERNAL_NAMES = (
    "event_type",
    "updated_at",
    "appointment_id",
    "status",
    "id_",
    "previous_appointment",
    "callback_request",
    "created_by_type",
    "meeting_type",
    "webhook_configuration_id",
    "correlation_id",
    "unknown_fields",
)
UNKNOWN_KEYS = st.one_of(
    st.sampled_from(INTERNAL_NAMES),
    st.text(min_size=1, max_size=20).filter(lambda key: key not in DECLARED),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["CANCEL", "not-a-date", "2099-01-01T00:00:00+00:00", "ACCEPTED"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def objects(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every JSON object of a document with its path, except inside free-form ``metadata``."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key != "metadata":
                yield from objects(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from objects(value, f"{path}[{index}]")


def documents() -> list[dict]:
    return [
        example("CREATE"),
        example("REQUEST_ALTERNATIVE_DATE"),
        json.loads(SEED_EXAMPLE.read_text()),
    ]


def without_tally(event):
    return dataclasses.replace(event, unknown_fields=())


def with_unknown_key(document: dict, data) -> dict:
    edited = copy.deepcopy(document)
    places = list(objects(edited))
    _path, target = places[data.draw(st.integers(0, len(places) - 1), label="object")]
    key = data.draw(UNKNOWN_KEYS.filter(lambda k: k not in target), label="key")
    target[key] = data.draw(JSON_VALUES, label="value")
    return edited


class TestUnknownKeysNeverChangeTheEvent:
    def test_an_internal_name_in_data_does_not_redirect_the_handler(self, sqlite_store):
        raw = example("CREATE")
        raw["data"]["event_type"] = "CANCEL"
        event = parse_event(json.dumps(raw))
        assert event.event_type == "CREATE"
        outcome = process(json.dumps(raw), sqlite_store, HookRegistry())
        assert outcome.label == "processed:CREATE"
        assert "data.event_type" in event.unknown_fields

    def test_an_internal_name_in_the_appointment_does_not_replace_updated_at(self):
        base = parse_event(json.dumps(example("CREATE")))
        raw = example("CREATE")
        raw["data"]["appointment"]["updated_at"] = "not-a-date"
        event = parse_event(json.dumps(raw))
        assert event.updated_at == base.updated_at
        assert "updated_at" not in event.appointment

    def test_validate_agrees_with_what_is_processed(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", str(tmp_path))
        raw = example("CREATE")
        raw["data"]["event_type"] = "CANCEL"
        raw["data"]["appointment"]["updated_at"] = "not-a-date"
        path = tmp_path / "shadowed.json"
        path.write_text(json.dumps(raw))
        assert main(["validate", str(path)]) == 0
        assert capsys.readouterr().out.strip() == f"{path}: ok"
        assert parse_event(path.read_bytes()).event_type == "CREATE"

    @PROPERTIES
    @given(data=st.data())
    def test_adding_any_unknown_key_anywhere_never_changes_the_built_event(self, data):
        document = data.draw(st.sampled_from(documents()), label="document")
        base = parse_event(json.dumps(document))
        edited = with_unknown_key(document, data)
        assert without_tally(parse_event(json.dumps(edited))) == without_tally(base)
        try:
            strict = parse_event(json.dumps(edited), mode="strict")
        except InvalidPayload:
            return  # strict rejects unknown keys in closed objects: no event at all
        assert without_tally(strict) == without_tally(base)

    @PROPERTIES
    @given(data=st.data())
    def test_adding_any_unknown_key_anywhere_never_changes_the_stored_state(
        self, data, sqlite_store
    ):
        document = example("CREATE")
        number = data.draw(st.integers(0, 10**9), label="n")
        document["id"] = f"evt-unknown-{number}"
        document["data"]["appointment"]["id"] = f"appt-unknown-{number}"
        plain, edited = copy.deepcopy(document), with_unknown_key(document, data)
        edited["id"] = f"{edited['id']}-edited"
        edited["data"]["appointment"]["id"] = f"{plain['data']['appointment']['id']}-edited"
        registry = HookRegistry()
        assert process(json.dumps(plain), sqlite_store, registry).label.startswith(
            ("processed", "duplicate")
        )
        assert process(json.dumps(edited), sqlite_store, registry).label.startswith(
            ("processed", "duplicate")
        )
        stored_plain = stored(sqlite_store, plain["data"]["appointment"]["id"])
        stored_edited = stored(sqlite_store, edited["data"]["appointment"]["id"])
        stored_edited["id"] = stored_plain["id"]
        stored_edited["lastEventId"] = stored_plain["lastEventId"]
        stored_edited["snapshot"]["id"] = stored_plain["snapshot"]["id"]
        assert stored_edited == stored_plain


def stored(store, appointment_id: str) -> dict:
    state = store.get_appointment(appointment_id)
    return {key: value for key, value in state.items() if key not in RUN_FIELDS}


class TestStoredStateOnEachBackend:
    def test_unknown_keys_do_not_reach_the_stored_snapshot(self, store):
        raw = example("CREATE")
        appointment = raw["data"]["appointment"]
        appointment["updated_at"] = "not-a-date"
        appointment["participants"][0]["brand_new"] = {"nested": True}
        appointment["office"]["shadow"] = "x"
        process(json.dumps(raw), store, HookRegistry())
        snapshot = store.snapshot(appointment["id"])
        assert "updated_at" not in snapshot
        assert "brand_new" not in snapshot["participants"][0]
        assert "shadow" not in snapshot["office"]
        assert snapshot["updatedAt"] == appointment["updatedAt"]

    @pytest.mark.parametrize(
        "number",
        [2**64, -(2**70), 123456789012345678901234567890, 2**63 - 1, 0.1, 1e300, 42.0],
        ids=str,
    )
    def test_numbers_in_metadata_keep_their_exact_value(self, store, number):
        """The decimal value the sender wrote survives; an integer never becomes a float.

        (PostgreSQL's jsonb keeps numbers as numeric and writes 1e+300 back as its 301 digits:
        the same value, which is what is compared.)
        """
        raw = example("CREATE")
        raw["data"]["appointment"]["metadata"] = {"big": number, "list": [number, {"n": number}]}
        outcome = process(json.dumps(raw), store, HookRegistry())
        assert outcome.label.startswith("processed")
        metadata = store.snapshot(raw["data"]["appointment"]["id"])["metadata"]
        sent = Decimal(json.dumps(number))
        for kept in (metadata["big"], metadata["list"][0], metadata["list"][1]["n"]):
            assert Decimal(json.dumps(kept)) == sent
            if isinstance(number, int):
                assert type(kept) is int
