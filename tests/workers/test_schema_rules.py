"""Every rule of the spec, table-driven: a payload that passes and one that fails at its path."""

from __future__ import annotations

import json

import pytest

from tests.workers.payload_builders import OPEN_PATHS
from tests.workers.payload_builders import OPTIONAL_PATHS
from tests.workers.payload_builders import RULES
from tests.workers.payload_builders import SEED_EXAMPLE
from tests.workers.payload_builders import Rule
from tests.workers.payload_builders import edited
from tests.workers.payload_builders import split
from tests.workers.payload_builders import without
from workers.validation import VALIDATION_MODES
from workers.validation import InvalidPayload
from workers.validation import parse_event
from workers.validation import validate_document

MODES = pytest.mark.parametrize("mode", VALIDATION_MODES)
BY_NAME = pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
STRICT_ONLY = [rule for rule in RULES if rule.strict_only]
# (property, message) of every strict-mode error of the sender's own documented example.
SEED_EXAMPLE_BREAKS = {
    (split(error["path"])[-1], error["message"])
    for error in validate_document(json.loads(SEED_EXAMPLE.read_text()), mode="strict")
}


def event_of(raw: dict, mode: str):
    """parse_event on ``raw`` re-encoded, as the worker would receive it."""
    return parse_event(json.dumps(raw), mode=mode)


class TestRuleTable:
    @MODES
    @BY_NAME
    def test_the_passing_value_validates(self, rule: Rule, mode):
        assert validate_document(rule.passing(), mode=mode) == []

    @BY_NAME
    def test_the_failing_value_fails_at_its_path_in_strict_mode(self, rule: Rule):
        errors = validate_document(rule.failing(), mode="strict")
        assert errors == [{"path": rule.path, "message": rule.message}]

    @BY_NAME
    def test_tolerant_mode_fails_it_too_unless_the_rule_is_strict_only(self, rule: Rule):
        errors = validate_document(rule.failing(), mode="tolerant")
        expected = [] if rule.strict_only else [{"path": rule.path, "message": rule.message}]
        assert errors == expected

    @pytest.mark.parametrize("rule", STRICT_ONLY, ids=[rule.name for rule in STRICT_ONLY])
    def test_what_tolerant_mode_lets_through_is_unknown_keys_uncertain_caps_or_the_example(
        self, rule
    ):
        """Strict-only: unknown keys, caps the seed does not state for the field, or a rule
        the sender's own documented example breaks (tolerant accepts what it does)."""
        is_unknown_key = rule.message == "Unknown field."
        is_uncertain_cap = rule.message.startswith(("Longer than", "Must be greater"))
        broken_by_the_example = (split(rule.path)[-1], rule.message) in SEED_EXAMPLE_BREAKS
        assert is_unknown_key or is_uncertain_cap or broken_by_the_example


class TestOptionalProperties:
    @MODES
    @pytest.mark.parametrize(("name", "path"), OPTIONAL_PATHS)
    def test_a_property_without_a_required_marker_may_be_absent(self, name, path, mode):
        assert validate_document(without(name, path), mode=mode) == []


class TestOpenObjects:
    @MODES
    @pytest.mark.parametrize(("name", "path"), OPEN_PATHS)
    def test_an_unknown_key_is_kept_and_reported_in_both_modes(self, name, path, mode):
        raw = edited(name, path, {"value": "not logged"})
        assert event_of(raw, mode).unknown_fields == (path,)

    @MODES
    def test_metadata_is_free_form_and_not_counted(self, mode):
        raw = edited("CREATE", "data.appointment.metadata.anything", {"deep": [1, None]})
        assert event_of(raw, mode).unknown_fields == ()


class TestReasons:
    def test_an_unknown_event_type_is_unsupported_not_invalid(self):
        raw = edited("CREATE", "data.eventType", "MERGE")
        with pytest.raises(InvalidPayload) as info:
            event_of(raw, "tolerant")
        assert info.value.reason == "unsupported eventType"

    @pytest.mark.parametrize("path", ["data.appointment.status", "data.previousAppointment.status"])
    def test_an_unknown_status_is_unsupported_not_invalid(self, path):
        raw = edited("REQUEST_ALTERNATIVE_DATE", path, "ON_HOLD")
        with pytest.raises(InvalidPayload) as info:
            event_of(raw, "strict")
        assert info.value.reason == "unsupported status"
