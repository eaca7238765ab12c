"""The one reading of an envelope's identifiers that ingest, metrics and dead letters share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.envelope import EnvelopeIds
from core.envelope import peek

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def test_the_identifiers_of_a_well_formed_envelope_are_read():
    document = {
        "id": "e-1",
        "correlationId": "c-1",
        "data": {"eventType": "CREATE", "appointment": {"id": "a-1"}},
    }
    assert peek(document) == EnvelopeIds("e-1", "c-1", "CREATE", "a-1")


def test_a_value_that_is_not_a_string_is_not_an_identifier():
    document = {"id": 7, "data": {"eventType": ["CREATE"], "appointment": "a-1"}}
    assert peek(document) == EnvelopeIds()


@given(JSON)
def test_any_document_gives_strings_or_none_and_never_fails(document):
    ids = peek(document)
    for value in (ids.event_id, ids.correlation_id, ids.event_type, ids.appointment_id):
        assert value is None or isinstance(value, str)
