"""Property tests: generated valid payloads validate; one mutation fails at the mutated path."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests.workers.payload_builders import ABSENT
from tests.workers.payload_builders import EXAMPLES
from tests.workers.payload_builders import KEEP
from tests.workers.payload_builders import NAIVE
from tests.workers.payload_builders import NOT_BOOLEAN
from tests.workers.payload_builders import NOT_DATE_TIME
from tests.workers.payload_builders import NOT_NUMBER
from tests.workers.payload_builders import NOT_STRING
from tests.workers.payload_builders import RULES
from tests.workers.payload_builders import UNKNOWN
from tests.workers.payload_builders import Rule
from tests.workers.payload_builders import example
from tests.workers.payload_builders import has_path
from tests.workers.payload_builders import set_path
from workers.schemas.fields import AwareDateTime
from workers.schemas.paths import join
from workers.validation import VALIDATION_MODES
from workers.validation import InvalidPayload
from workers.validation import parse_event
from workers.validation import validate_document

# Small budgets keep the suite fast; database=None keeps hypothesis from writing into the tree.
PROPERTIES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EDITS = [rule for rule in RULES if rule.good is not KEEP]
FAILING = [rule for rule in RULES if rule.message != UNKNOWN]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@st.composite
def aware_date_times(draw) -> tuple[dt.datetime, str]:
    """An aware instant and one RFC 3339 spelling of it (offset or Z, with or without fraction)."""
    naive = draw(st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2100, 1, 1)))
    minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    instant = naive.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    if draw(st.booleans()):
        instant = instant.replace(microsecond=0)
    text = instant.isoformat(timespec="seconds" if instant.microsecond == 0 else "microseconds")
    if minutes == 0 and draw(st.booleans()):
        text = text.removesuffix("+00:00") + "Z"
    return instant, text


def valid_values(rule: Rule) -> st.SearchStrategy:
    """Values satisfying ``rule`` and every other rule at its path, wider than its one example."""
    good = rule.good
    if rule.message in (NAIVE, NOT_DATE_TIME):
        return aware_date_times().map(lambda pair: pair[1])
    if rule.message.startswith("Longer than maximum length"):
        cap = len(good)
        return st.just(good) | st.text(st.characters(blacklist_categories=("Cs",)), max_size=cap)
    if good == "text" and rule.message == NOT_STRING:
        return TEXT
    if rule.message == NOT_BOOLEAN:
        return st.booleans()
    if rule.message == NOT_NUMBER:
        return st.floats(-90, 90) | st.integers(-90, 90)
    if rule.message == "Must be greater than or equal to 0." and isinstance(good, int):
        return st.integers(0, 2**40)
    return st.just(good)


@st.composite
def valid_envelopes(draw) -> dict:
    """An example envelope with a random series of valid edits drawn from the rule table."""
    doc = example(draw(st.sampled_from(EXAMPLES)))
    for rule in draw(st.lists(st.sampled_from(EDITS), max_size=25)):
        if has_path(doc, rule.path):
            rule.apply(doc, draw(valid_values(rule)))
    return doc


def leaf_paths(node, path: str = "") -> list[tuple[str, object]]:
    """Every property and list item below the root, except inside free-form ``metadata``."""
    children = []
    if isinstance(node, dict):
        children = [(join(path, k), v) for k, v in node.items()]
    elif isinstance(node, list):
        children = [(join(path, i), v) for i, v in enumerate(node)]
    paths = []
    for child_path, value in children:
        paths.append((child_path, value))
        if not child_path.endswith(".metadata"):
            paths.extend(leaf_paths(value, child_path))
    return paths


def objects_in(node, path: str = "") -> list[tuple[str, dict]]:
    """Every JSON object of the document with its path, except inside ``metadata``."""
    found = [(path, node)] if isinstance(node, dict) else []
    for child_path, value in leaf_paths(node, path):
        if isinstance(value, dict) and not child_path.endswith(".metadata"):
            found.append((child_path, value))
    return found


def wrong_type(value: object) -> object:
    """A JSON value of a type the schema cannot accept where the non-null ``value`` stood."""
    return {} if isinstance(value, list) else []


def parse(doc: dict, mode: str):
    """parse_event on ``doc`` encoded as the sender would send it."""
    return parse_event(orjson.dumps(doc), mode=mode)


class TestValidPayloads:
    @PROPERTIES
    @given(doc=valid_envelopes())
    def test_generated_valid_payloads_validate_in_both_modes(self, doc):
        for mode in VALIDATION_MODES:
            event = parse(doc, mode)
            assert event.appointment == doc["data"]["appointment"]
            assert event.unknown_fields == ()

    @PROPERTIES
    @given(pair=aware_date_times())
    def test_any_rfc3339_spelling_loads_to_the_same_instant(self, pair):
        instant, text = pair
        assert AwareDateTime().deserialize(text) == instant


class TestSingleMutations:
    @PROPERTIES
    @given(doc=valid_envelopes(), data=st.data())
    def test_a_rule_violation_fails_at_the_mutated_path(self, doc, data):
        applicable = [rule for rule in FAILING if has_path(doc, rule.path)]
        rule = data.draw(st.sampled_from(applicable))
        if rule.bad is ABSENT and not isinstance(rule.parent(doc), dict):
            return
        rule.apply(doc, rule.bad)
        expected = [{"path": rule.path, "message": rule.message}]
        assert validate_document(doc, mode="strict") == expected
        assert validate_document(doc, mode="tolerant") == ([] if rule.strict_only else expected)

    @PROPERTIES
    @given(doc=valid_envelopes(), data=st.data())
    def test_a_wrong_json_type_anywhere_fails_at_that_path(self, doc, data):
        # A null's declared type is unknown here (null -> [] is valid for a nullable list).
        candidates = [(path, value) for path, value in leaf_paths(doc) if value is not None]
        path, value = data.draw(st.sampled_from(candidates))
        mutated = set_path(orjson.loads(orjson.dumps(doc)), path, wrong_type(value))
        for mode in VALIDATION_MODES:
            with pytest.raises(InvalidPayload) as info:
                parse(mutated, mode)
            assert [error["path"] for error in info.value.errors] == [path]

    @PROPERTIES
    @given(doc=valid_envelopes(), data=st.data())
    def test_an_unknown_key_is_kept_in_tolerant_mode_and_at_most_rejected_in_strict(
        self, doc, data
    ):
        path, obj = data.draw(st.sampled_from(objects_in(doc)))
        obj["zzBrandNew"] = {"personal": "data"}
        unknown = join(path, "zzBrandNew")
        assert parse(doc, "tolerant").unknown_fields == (unknown,)
        errors = validate_document(doc, mode="strict")
        if errors:
            assert errors == [{"path": unknown, "message": UNKNOWN}]
        else:
            assert parse(doc, "strict").unknown_fields == (unknown,)
