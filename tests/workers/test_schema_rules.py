"""Every rule of the spec, table-driven: a payload that passes and one that fails at its path."""

from __future__ import annotations

import json

import pytest

from tests.workers.payload_builders import FAILING
from tests.workers.payload_builders import OPEN_PATHS
from tests.workers.payload_builders import OPTIONAL_PATHS
from tests.workers.payload_builders import PASSING
from tests.workers.payload_builders import RULES
from tests.workers.payload_builders import SEED_EXAMPLE
from tests.workers.payload_builders import UNEDITED
from tests.workers.payload_builders import Rule
from tests.workers.payload_builders import canonical
from tests.workers.payload_builders import edited
from tests.workers.payload_builders import group_id
from tests.workers.payload_builders import split
from tests.workers.payload_builders import without
from workers.validation import VALIDATION_MODES
from workers.validation import parse_event
from workers.validation import validate_document

STRICT_ONLY = [rule for rule in RULES if rule.strict_only]
# (property, message) of every strict-mode error of the sender's own documented example.
SEED_EXAMPLE_BREAKS = {
    (split(error["path"])[-1], error["message"])
    for error in validate_document(json.loads(SEED_EXAMPLE.read_text()), mode="strict")
}


def event_of(raw: dict, mode: str):
    """parse_event on ``raw`` re-encoded, as the worker would receive it."""
    return parse_event(json.dumps(raw), mode=mode)


def errors_by_mode(doc: dict) -> dict[str, list[dict[str, str]]]:
    """The validator's errors for ``doc`` in each mode."""
    return {mode: validate_document(doc, mode=mode) for mode in VALIDATION_MODES}


class TestRuleTable:
    @pytest.mark.parametrize(
        ("names", "doc"), PASSING, ids=[group_id(names) for names, _ in PASSING]
    )
    def test_the_passing_value_validates(self, names, doc):
        assert errors_by_mode(doc) == {mode: [] for mode in VALIDATION_MODES}

    @pytest.mark.parametrize(
        ("rules", "doc"),
        FAILING,
        ids=[group_id(tuple(r.name for r in rules)) for rules, _ in FAILING],
    )
    def test_the_failing_value_fails_at_its_path(self, rules: tuple[Rule, ...], doc):
        rule = rules[0]
        expected = [{"path": rule.path, "message": rule.message}]
        errors = errors_by_mode(doc)
        assert errors == {"strict": expected, "tolerant": [] if rule.strict_only else expected}

    def test_every_rule_is_checked_once_on_each_side(self):
        failing = [rule.name for rules, _ in FAILING for rule in rules]
        passing = {name for names, _ in PASSING for name in names}
        on_examples = {rule.name for rule in RULES if canonical(rule.passing()) in UNEDITED}
        assert sorted(failing) == sorted(rule.name for rule in RULES)
        assert passing | on_examples == {rule.name for rule in RULES}
        assert not passing & on_examples

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
    @pytest.mark.parametrize(("name", "path"), OPTIONAL_PATHS)
    def test_a_property_without_a_required_marker_may_be_absent(self, name, path):
        assert errors_by_mode(without(name, path)) == {mode: [] for mode in VALIDATION_MODES}


class TestOpenObjects:
    @pytest.mark.parametrize(("name", "path"), OPEN_PATHS)
    def test_an_unknown_key_is_kept_and_reported_in_both_modes(self, name, path):
        raw = edited(name, path, {"value": "not logged"})
        reported = {mode: event_of(raw, mode).unknown_fields for mode in VALIDATION_MODES}
        assert reported == {mode: (path,) for mode in VALIDATION_MODES}

    def test_metadata_is_free_form_and_not_counted(self):
        raw = edited("CREATE", "data.appointment.metadata.anything", {"deep": [1, None]})
        reported = {mode: event_of(raw, mode).unknown_fields for mode in VALIDATION_MODES}
        assert reported == {mode: () for mode in VALIDATION_MODES}
