"""Plain helpers that load the example envelopes and edit them at a dotted path."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"
# One sample envelope per eventType, each file named by its eventType.
EXAMPLES = tuple(sorted(path.stem for path in PAYLOADS.glob("*.json")))
# The JSON example of the sender's own documentation, verbatim (placeholders and all).
SEED_EXAMPLE = PAYLOADS / "seed" / "pexip_engage_example.json"
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_CACHE: dict[str, dict[str, Any]] = {}


def example_bytes(name: str) -> bytes:
    """The example envelope ``name`` exactly as stored on disk."""
    return (PAYLOADS / f"{name}.json").read_bytes()


def example(name: str = "CREATE") -> dict[str, Any]:
    """A fresh, editable copy of the example envelope ``name``."""
    if name not in _CACHE:
        _CACHE[name] = json.loads(example_bytes(name))
    return copy.deepcopy(_CACHE[name])


def split(path: str) -> list[str | int]:
    """``a.b[0].c`` -> ``["a", "b", 0, "c"]``."""
    return [name if name else int(index) for name, index in _TOKEN.findall(path)]


def get_path(doc: Any, path: str) -> Any:
    """The value at ``path``; raises KeyError/IndexError/TypeError when it is not there."""
    for key in split(path):
        doc = doc[key]
    return doc


def has_path(doc: Any, path: str) -> bool:
    """Whether ``path`` can be written in ``doc``: its parent exists (and holds the list index)."""
    *parents, last = split(path)
    node = doc
    for key in parents:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, list):
        return isinstance(last, int) and last < len(node)
    return isinstance(node, dict) and isinstance(last, str)


def set_path(doc: Any, path: str, value: Any) -> Any:
    """Set ``path`` to ``value`` in place (the parent must exist) and return ``doc``."""
    *parents, last = split(path)
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


def delete_path(doc: Any, path: str) -> Any:
    """Remove the property at ``path`` in place and return ``doc``."""
    *parents, last = split(path)
    node = doc
    for key in parents:
        node = node[key]
    del node[last]
    return doc


def edited(name: str, path: str, value: Any) -> dict[str, Any]:
    """A copy of example ``name`` with ``path`` set to ``value``."""
    return set_path(example(name), path, value)


def without(name: str, path: str) -> dict[str, Any]:
    """A copy of example ``name`` with the property at ``path`` removed."""
    return delete_path(example(name), path)


##### The rule table: one passing and one failing value per rule of the spec #####

MISSING = "Missing data for required field."
NULL = "Field may not be null."
NOT_STRING = "Not a valid string."
NOT_INTEGER = "Not a valid integer."
NOT_NUMBER = "Not a valid number."
NOT_BOOLEAN = "Not a valid boolean."
NOT_LIST = "Not a valid list."
NOT_OBJECT = "Invalid input type."
UNKNOWN = "Unknown field."
NAIVE = "Not a valid date-time: the offset (+00:00 or Z) is missing."
NOT_DATE_TIME = "Not a valid date-time: expected e.g. 2024-05-04T09:42:00+00:00."


class _Absent:
    """Sentinel: the property is removed (or stays absent) instead of being set."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


class _Keep:
    """Sentinel: the example's own value is kept (the passing side of a "required" rule)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclass(frozen=True)
class Rule:
    """One rule of the spec: ``good`` at ``path`` passes, ``bad`` fails there with ``message``.

    ``strict_only`` rules let ``bad`` through in tolerant mode (unknown properties in closed
    objects, and the caps whose mapping to the field is uncertain).
    """

    name: str
    path: str
    good: Any
    bad: Any
    message: str
    example: str = "CREATE"
    strict_only: bool = False

    def apply(self, doc: dict[str, Any], value: Any) -> dict[str, Any]:
        """Write ``value`` (or remove the property for ABSENT) into ``doc`` in place."""
        if value is KEEP:
            return doc
        if value is ABSENT:
            parent, key = self.parent(doc), split(self.path)[-1]
            if isinstance(parent, dict):
                parent.pop(key, None)
            return doc
        return set_path(doc, self.path, copy.deepcopy(value))

    def parent(self, doc: dict[str, Any]) -> Any:
        """The object or list that holds the rule's property in ``doc``."""
        node = doc
        for key in split(self.path)[:-1]:
            node = node[key]
        return node

    def passing(self) -> dict[str, Any]:
        """The rule's example with the good value written in."""
        return self.apply(example(self.example), self.good)

    def failing(self) -> dict[str, Any]:
        """The rule's example with the bad value written in."""
        return self.apply(example(self.example), self.bad)


A = "data.appointment"
P_EMP = f"{A}.participants[0]"
P_CUS = f"{A}.participants[1]"
EMP = f"{P_EMP}.employee"
CUS = f"{P_CUS}.customer"
ANS = f"{A}.answers[0]"
PREV = "data.previousAppointment"
RAD = "REQUEST_ALTERNATIVE_DATE"
CR = "CREATE_REQUEST"


def _string(name, path, *, example="CREATE", nullable=True):
    """A string property: a number fails; null passes when the property is nullable."""
    rules = [Rule(f"{name}-type", path, "text", 5, NOT_STRING, example)]
    if nullable:
        rules.append(Rule(f"{name}-nullable", path, None, True, NOT_STRING, example))
    else:
        rules.append(Rule(f"{name}-not-null", path, "text", None, NULL, example))
    return rules


def _cap(name, path, cap, *, example="CREATE", strict_only=False):
    """A maximum length: ``cap`` characters pass, one more fails."""
    message = f"Longer than maximum length {cap}."
    return [
        Rule(f"{name}-max-{cap}", path, "x" * cap, "x" * (cap + 1), message, example, strict_only)
    ]


def _required(name, path, *, example="CREATE"):
    """A required property: present (as in the example) passes, absent fails."""
    return [Rule(f"{name}-required", path, KEEP, ABSENT, MISSING, example)]


def _enum(name, path, good, bad, choices, *, example="CREATE"):
    """A stated enum: a listed value passes, another fails, and null is refused."""
    return [
        Rule(f"{name}-enum", path, good, bad, f"Must be one of: {', '.join(choices)}.", example),
        Rule(f"{name}-not-null", path, good, None, NULL, example),
    ]


def _date_time(name, path, *, example="CREATE"):
    """A date-time: ``Z`` and fractions pass, a naive or malformed value fails."""
    return [
        Rule(f"{name}-naive", path, "2024-10-01T07:58:12Z", "2024-10-01T07:58:12", NAIVE, example),
        Rule(
            f"{name}-format",
            path,
            "2024-10-01T07:58:12.123456789+02:00",
            "01/10/2024 07:58",
            NOT_DATE_TIME,
            example,
        ),
    ]


def _object(name, path, *, good=KEEP, example="CREATE", nullable=False):
    """An object property: a string fails; null passes only when the seed says ``| null``."""
    rules = [Rule(f"{name}-type", path, good, "text", NOT_OBJECT, example)]
    if nullable:
        rules.append(Rule(f"{name}-nullable", path, None, [], NOT_OBJECT, example))
    else:
        rules.append(Rule(f"{name}-not-null", path, good, None, NULL, example))
    return rules


def _closed(name, path, *, example="CREATE"):
    """Additional properties NOT allowed: strict mode rejects an unknown key, tolerant keeps it."""
    return [Rule(f"{name}-closed", f"{path}.brandNew", ABSENT, 1, UNKNOWN, example, True)]


def _typed(name, path, good, bad, message, *, example="CREATE"):
    """Any other single rule: ``good`` passes, ``bad`` fails with ``message``."""
    return [Rule(f"{name}", path, good, bad, message, example)]


def _translations(name, path, keys, *, example="CREATE", nullable=False):
    """A closed translations object of lists of ``{value, language}`` items."""
    key = keys[0]
    return [
        *_object(name, path, good={k: [] for k in keys}, example=example, nullable=nullable),
        *_closed(name, path, example=example),
        *_typed(f"{name}-{key}-list", f"{path}.{key}", [], "text", NOT_LIST, example=example),
        *_typed(f"{name}-{key}-item", f"{path}.{key}[0]", {}, "v", NOT_OBJECT, example=example),
        *_string(f"{name}-{key}-item-value", f"{path}.{key}[0].value", example=example),
        *_string(f"{name}-{key}-item-language", f"{path}.{key}[0].language", example=example),
    ]


def _location(name, path, *, example="CREATE", nullable=True):
    """The shared location shape at one of its five places."""
    geo = f"{path}.geolocation"
    return [
        *_object(name, path, good={"countryCode": "BE"}, example=example, nullable=nullable),
        *_closed(name, path, example=example),
        Rule(
            f"{name}-countryCode-short",
            f"{path}.countryCode",
            "NL",
            "B",
            "Length must be 2.",
            example,
            strict_only=True,  # the sender's own example writes "string"
        ),
        Rule(
            f"{name}-countryCode-long",
            f"{path}.countryCode",
            "NL",
            "BEL",
            "Length must be 2.",
            example,
            strict_only=True,
        ),
        *_string(f"{name}-postalCode", f"{path}.postalCode", example=example),
        *_object(
            f"{name}-geolocation", geo, good={"latitude": 1.5}, example=example, nullable=True
        ),
        *_closed(f"{name}-geolocation", geo, example=example),
        Rule(f"{name}-latitude-type", f"{geo}.latitude", 51, "51.0", NOT_NUMBER, example),
        Rule(
            f"{name}-latitude-range",
            f"{geo}.latitude",
            -90,
            90.5,
            "Must be greater than or equal to -90 and less than or equal to 90.",
            example,
            strict_only=True,
        ),
        Rule(
            f"{name}-longitude-range",
            f"{geo}.longitude",
            180,
            -180.5,
            "Must be greater than or equal to -180 and less than or equal to 180.",
            example,
            strict_only=True,
        ),
        *_translations(
            f"{name}-translations",
            f"{path}.translations",
            ("city", "street1", "street2", "state"),
            example=example,
        ),
    ]


def _participant(name, path, *, example="CREATE"):
    """The rules every participant alternative shares (role, the 2000 caps, open AP)."""
    return [
        *_required(f"{name}-role", f"{path}.role", example=example),
        *_enum(f"{name}-role", f"{path}.role", "SECONDARY", "OBSERVER", ("PRIMARY", "SECONDARY")),
        *_required(f"{name}-type", f"{path}.type", example=example),
        Rule(f"{name}-type-null", f"{path}.type", KEEP, None, NULL, example),
        Rule(f"{name}-type-string", f"{path}.type", KEEP, 1, NOT_STRING, example),
        *_string(f"{name}-token", f"{path}.token", example=example),
        *_cap(f"{name}-token", f"{path}.token", 2000, example=example, strict_only=True),
        *_cap(f"{name}-videoUrl", f"{path}.videoUrl", 2000, example=example, strict_only=True),
        *_cap(
            f"{name}-videoTestUrl", f"{path}.videoTestUrl", 2000, example=example, strict_only=True
        ),
        *_string(f"{name}-icalUrl", f"{path}.icalUrl", example=example),
        *_date_time(f"{name}-createdAt", f"{path}.createdAt", example=example),
    ]


STATUSES = (
    "ACCEPTED",
    "COMPLETED",
    "NO_SHOW",
    "CANCELLED",
    "INCOMING_REQUEST",
    "OUTGOING_INVITE",
    "ALTERNATIVE_DATE_REQUESTED",
)
EVENT_TYPES = (
    "ACCEPT",
    "REASSIGN",
    "CANCEL",
    "COMPLETE",
    "CREATE",
    "RESCHEDULE",
    "REQUEST_ALTERNATIVE_DATE",
    "CREATE_REQUEST",
    "RESCHEDULE_REQUEST",
    "REOPEN",
    "GENERIC_UPDATE",
)
ACTORS = ("CUSTOMER", "EMPLOYEE", "OTHER")
ORIGINS = ("PLUGIN", "BACKOFFICE_APP", "PARTNER_BOOKING_APP", "OTHER")
UNSUPPORTED_EVENT_TYPE = "unsupported eventType 'MERGE': expected one of " + ", ".join(EVENT_TYPES)
UNSUPPORTED_STATUS = "unsupported status 'ON_HOLD': expected one of " + ", ".join(STATUSES)


def _status(name, path, *, example):
    """An appointment-shaped object's ``status``: it selects the variant (spec 3.1, 4)."""
    return [
        *_required(f"{name}-status", f"{path}.status", example=example),
        *[
            Rule(f"{name}-status-{s}", f"{path}.status", s, "ON_HOLD", UNSUPPORTED_STATUS, example)
            for s in STATUSES
        ],
        Rule(f"{name}-status-null", f"{path}.status", KEEP, None, NULL, example),
        Rule(f"{name}-status-string", f"{path}.status", KEEP, 7, NOT_STRING, example),
    ]


RULES: tuple[Rule, ...] = (
    # The envelope (spec 1): open; id is required by the processing semantics.
    *_required("id", "id"),
    *_string("id", "id", nullable=False),
    *_string("correlationId", "correlationId"),
    *_string("webhookConfigurationId", "webhookConfigurationId"),
    *_string("version", "version"),
    *_required("entity", "entity"),
    # Another entity is kept and dead-lettered as unsupported, not called broken (semantics 11).
    Rule(
        "entity-enum",
        "entity",
        "Appointment",
        "appointment",
        "unsupported entity 'appointment': expected 'Appointment'",
    ),
    Rule("entity-not-null", "entity", "Appointment", None, NULL),
    *_required("data", "data"),
    *_object("data", "data"),
    # data (spec 2): additional properties allowed.
    *_required("eventType", "data.eventType"),
    *[
        Rule(f"eventType-{t}", "data.eventType", t, "MERGE", UNSUPPORTED_EVENT_TYPE)
        for t in EVENT_TYPES
    ],
    Rule("eventType-not-null", "data.eventType", KEEP, None, NULL),
    *_string("message", "data.message"),
    *_required("appointment", A),
    *_object("appointment", A),
    *_required("previousAppointment", PREV),
    *_object("previousAppointment", PREV, example=RAD, nullable=True),
    # The appointment (spec 3.2): one of three variants by status; AP not rendered (open).
    *_status("appointment", A, example="CREATE"),
    *_required("appointment-id", f"{A}.id"),
    *_string("appointment-id", f"{A}.id", nullable=False),
    *_required("updatedAt", f"{A}.updatedAt"),
    Rule("updatedAt-not-null", f"{A}.updatedAt", KEEP, None, NULL),
    *_date_time("updatedAt", f"{A}.updatedAt"),
    *_date_time("createdAt", f"{A}.createdAt"),
    *_date_time("start", f"{A}.start"),
    *_date_time("end", f"{A}.end"),
    *_required("meetingType", f"{A}.meetingType"),
    *_enum(
        "meetingType",
        f"{A}.meetingType",
        "PHONE",
        "TELEPATHY",
        ("OFFICE", "ON_LOCATION", "PHONE", "VIDEO"),
    ),
    *_cap("externalId", f"{A}.externalId", 255),
    *_string("externalId", f"{A}.externalId"),
    *_typed("hybrid", f"{A}.hybrid", False, "true", NOT_BOOLEAN),
    *_typed("trailingBufferTime-type", f"{A}.trailingBufferTime", 0, 15.5, NOT_INTEGER),
    Rule(
        "trailingBufferTime-min",
        f"{A}.trailingBufferTime",
        0,
        -5,
        "Must be greater than or equal to 0.",
        strict_only=True,
    ),
    *_string("internalNotes", f"{A}.internalNotes"),
    *_string("messageForCustomer", f"{A}.messageForCustomer"),
    *_typed(
        "metadata", f"{A}.metadata", {"any": [1, {"x": None}]}, "text", "Not a valid mapping type."
    ),
    *_typed("metadata-nullable", f"{A}.metadata", None, [], "Not a valid mapping type."),
    *_string("createdById", f"{A}.createdById"),
    *_string("updatedById", f"{A}.updatedById"),
    *_required("createdByType", f"{A}.createdByType"),
    *_enum("createdByType", f"{A}.createdByType", "OTHER", "ROBOT", ACTORS),
    *_required("createdFrom", f"{A}.createdFrom"),
    *_enum("createdFrom", f"{A}.createdFrom", "OTHER", "API", ORIGINS),
    *_required("updatedByType", f"{A}.updatedByType"),
    *_enum("updatedByType", f"{A}.updatedByType", "CUSTOMER", "ROBOT", ACTORS),
    *_required("updatedFrom", f"{A}.updatedFrom"),
    *_enum("updatedFrom", f"{A}.updatedFrom", "PLUGIN", "API", ORIGINS),
    # Required by the schema, absent from the sender's own example: strict-only.
    Rule(
        "callbackRequest-required", f"{A}.callbackRequest", KEEP, ABSENT, MISSING, strict_only=True
    ),
    *_object("callbackRequest", f"{A}.callbackRequest", good={"id": "cb-1"}, nullable=True),
    *_string("callbackRequest-id", f"{A}.callbackRequest.id", example=RAD),
    # subject (3.3) and subjectGroup (3.4, EXT rules: strict only)
    *_object("subject", f"{A}.subject"),
    *_closed("subject", f"{A}.subject"),
    *_cap("subject-externalId", f"{A}.subject.externalId", 255),
    *_typed("subject-order-type", f"{A}.subject.order", 0, "1", NOT_INTEGER),
    *_typed("subject-order-bool", f"{A}.subject.order", 0, True, NOT_INTEGER),
    *_typed(
        "subject-order-min", f"{A}.subject.order", 0, -1, "Must be greater than or equal to 0."
    ),
    *_typed(
        "subject-enabledForCustomerUse", f"{A}.subject.enabledForCustomerUse", False, 1, NOT_BOOLEAN
    ),
    *_string("subject-questionnaireFormId", f"{A}.subject.questionnaireFormId"),
    *_date_time("subject-updatedAt", f"{A}.subject.updatedAt"),
    *_object("subjectGroup", f"{A}.subject.subjectGroup"),
    *_closed("subjectGroup", f"{A}.subject.subjectGroup"),
    *_cap("subjectGroup-externalId", f"{A}.subject.subjectGroup.externalId", 255, strict_only=True),
    Rule(
        "subjectGroup-order-min",
        f"{A}.subject.subjectGroup.order",
        0,
        -1,
        "Must be greater than or equal to 0.",
        strict_only=True,
    ),
    *_cap("subjectGroup-color", f"{A}.subject.subjectGroup.color", 7, strict_only=True),
    *_cap("subjectGroup-image", f"{A}.subject.subjectGroup.image", 65535, strict_only=True),
    *_translations(
        "subjectGroup-translations",
        f"{A}.subject.subjectGroup.translations",
        ("name",),
        nullable=True,
    ),
    *_translations(
        "subject-translations", f"{A}.subject.translations", ("name", "description", "instructions")
    ),
    # office (3.6) and its non-nullable location (3.7)
    *_object("office", f"{A}.office"),
    *_closed("office", f"{A}.office"),
    *_cap("office-externalId", f"{A}.office.externalId", 255),
    *_typed("office-virtual", f"{A}.office.virtual", True, "no", NOT_BOOLEAN),
    *_location("office-location", f"{A}.office.location", nullable=False),
    *_translations(
        "office-translations",
        f"{A}.office.translations",
        ("name", "description", "directions", "parkingInfo"),
    ),
    # participants (3.9): one of EMPLOYEE / CUSTOMER by type
    *_typed("participants-list", f"{A}.participants", [], {"type": "EMPLOYEE"}, NOT_LIST),
    *_typed("participants-item", f"{A}.participants[0]", KEEP, "text", NOT_OBJECT),
    *_typed("participants-item-not-null", f"{A}.participants[0]", KEEP, None, NULL),
    Rule(
        "participants-type-choice",
        f"{P_EMP}.type",
        "EMPLOYEE",
        "ROBOT",
        "Must be one of: EMPLOYEE, CUSTOMER.",
    ),
    *_participant("employee-participant", P_EMP),
    *_participant("customer-participant", P_CUS),
    # employee (3.10)
    *_object("employee", EMP),
    *_closed("employee", EMP),
    *_cap("employee-communicationEmail", f"{EMP}.communicationEmail", 320),
    *_cap("employee-email", f"{EMP}.email", 320),
    *_cap("employee-externalId", f"{EMP}.externalId", 255),
    *_cap("employee-language", f"{EMP}.language", 2, strict_only=True),  # example: "string"
    *_string("employee-firstName", f"{EMP}.firstName"),
    *_typed("employee-onlinePlanning", f"{EMP}.onlinePlanning", False, "yes", NOT_BOOLEAN),
    *_typed("employee-availableRoles-list", f"{EMP}.availableRoles", [], "ADMIN", NOT_LIST),
    *_enum(
        "employee-availableRoles-item",
        f"{EMP}.availableRoles[0]",
        "CENTRAL_PLANNER",
        "ROOT",
        ("ADMIN", "AGENT", "CENTRAL_PLANNER", "OFFICE_MANAGER"),
    ),
    *_required("employee-status", f"{EMP}.status"),
    *_enum(
        "employee-status", f"{EMP}.status", "PENDING", "RETIRED", ("ACTIVE", "SUSPENDED", "PENDING")
    ),
    *_translations("employee-translations", f"{EMP}.translations", ("function",), nullable=True),
    *_date_time("employee-updatedAt", f"{EMP}.updatedAt"),
    # customer (3.11): open even in strict mode; id is a string or an integer. The caps sit on
    # fields the seed never names, so they are strict-only.
    *_object("customer", CUS),
    *_typed("customer-id", f"{CUS}.id", 0, 1.5, "Not a valid string or integer."),
    *_typed("customer-id-string", f"{CUS}.id", "c-1", True, "Not a valid string or integer."),
    Rule(
        "customer-id-min",
        f"{CUS}.id",
        0,
        -1,
        "Must be greater than or equal to 0.",
        strict_only=True,
    ),
    *_cap("customer-externalId", f"{CUS}.externalId", 255, strict_only=True),
    *_cap("customer-email", f"{CUS}.email", 320, strict_only=True),
    *_cap("customer-language", f"{CUS}.language", 2, strict_only=True),
    *_string("customer-lastName", f"{CUS}.lastName"),
    *_location("customer-location", f"{CUS}.location", example=CR),
    # answers (3.12-3.14)
    *_typed("answers-list", f"{A}.answers", [], {}, NOT_LIST),
    *_typed("answers-item", f"{A}.answers[0]", KEEP, "text", NOT_OBJECT),
    *_required("answerType", f"{ANS}.answerType"),
    *_enum(
        "answerType",
        f"{ANS}.answerType",
        "QUALIFICATION",
        "OPINION",
        (
            "SUBJECT_QUESTIONNAIRE",
            "APPOINTMENT_CANCELLATION",
            "APPOINTMENT_COMPLETION",
            "QUALIFICATION",
        ),
    ),
    *_string("answer-value", f"{ANS}.value"),
    *_date_time("answer-createdAt", f"{ANS}.createdAt"),
    *_object("form", f"{ANS}.form"),
    *_closed("form", f"{ANS}.form"),
    *_string("form-id", f"{ANS}.form.id"),
    *_object("question", f"{ANS}.question"),
    *_closed("question", f"{ANS}.question"),
    *_string("question-externalId", f"{ANS}.question.externalId"),
    *_typed(
        "question-externalId-uncapped", f"{ANS}.question.externalId", "x" * 1000, 1000, NOT_STRING
    ),
    *_typed("question-order", f"{ANS}.question.order", 3, "3", NOT_INTEGER),
    *_translations(
        "question-translations", f"{ANS}.question.translations", ("label",), nullable=True
    ),
    *_typed("selectedAnswerOptions-list", f"{ANS}.selectedAnswerOptions", None, {}, NOT_LIST),
    *_string("selectedAnswerOption-externalId", f"{ANS}.selectedAnswerOptions[0].externalId"),
    *_string("selectedAnswerOption-value", f"{ANS}.selectedAnswerOptions[0].value"),
    *_typed("files-list", f"{ANS}.files", [{"id": "f-1"}], "f-1", NOT_LIST),
    *_typed("files-nullable", f"{ANS}.files", None, {"id": "f-1"}, NOT_LIST),
    *_string("file-id", f"{A}.answers[1].files[0].id", example=CR),
    # appointment.location (3.7), listing (3.16), leadSegment (3.17), meetingRoom (3.18)
    *_location("appointment-location", f"{A}.location", example=RAD),
    *_object("listing", f"{A}.listing", example=CR, nullable=True),
    *_closed("listing", f"{A}.listing", example=CR),
    *_cap("listing-externalId", f"{A}.listing.externalId", 255, example=CR),
    *_typed("listing-tags", f"{A}.listing.tags", [], "a", NOT_LIST, example=CR),
    *_typed("listing-tags-item", f"{A}.listing.tags[0]", "a", 1, NOT_STRING, example=CR),
    *_location("listing-location", f"{A}.listing.location", example=CR),
    *_translations(
        "listing-translations", f"{A}.listing.translations", ("name", "description"), example=CR
    ),
    *_object("leadSegment", f"{A}.leadSegment", nullable=True),
    *_closed("leadSegment", f"{A}.leadSegment"),
    *_typed("leadSegment-id", f"{A}.leadSegment.id", "ls-3", 3.5, "Not a valid string or integer."),
    *_typed("leadSegment-active", f"{A}.leadSegment.active", True, "false", NOT_BOOLEAN),
    *_typed("leadSegment-deletedAt", f"{A}.leadSegment.deletedAt", "string", 5, NOT_STRING),
    *_object("meetingRoom", f"{A}.meetingRoom", nullable=True),
    *_closed("meetingRoom", f"{A}.meetingRoom"),
    *_string("meetingRoom-provider", f"{A}.meetingRoom.provider"),
    *_string("meetingRoom-deletedAt", f"{A}.meetingRoom.deletedAt"),
    # previousAppointment (spec 4): its own reduced variants
    *_status("previous", PREV, example=RAD),
    *_object("previous-subject", f"{PREV}.subject", example=RAD),
    *_closed("previous-subject", f"{PREV}.subject", example=RAD),
    *_string("previous-subject-id", f"{PREV}.subject.id", example=RAD),
    *_object("previous-office", f"{PREV}.office", example=RAD),
    *_closed("previous-office", f"{PREV}.office", example=RAD),
    *_object("previous-listing", f"{PREV}.listing", good={"id": "l-1"}, example=RAD, nullable=True),
    *_object("previous-leadSegment", f"{PREV}.leadSegment", example=RAD, nullable=True),
    *_closed("previous-leadSegment", f"{PREV}.leadSegment", example=RAD),
    *_typed(
        "previous-leadSegment-id",
        f"{PREV}.leadSegment.id",
        7,
        ["7"],
        "Not a valid string or integer.",
        example=RAD,
    ),
    *_cap("previous-externalId", f"{PREV}.externalId", 255, example=RAD),
    *_date_time("previous-start", f"{PREV}.start", example=RAD),
    *_location("previous-location", f"{PREV}.location", example=RAD),
    *_typed("previous-participants", f"{PREV}.participants", [], "x", NOT_LIST, example=RAD),
    *_typed(
        "previous-participant-role",
        f"{PREV}.participants[0].role",
        "OBSERVER",
        1,
        NOT_STRING,
        example=RAD,
    ),
    *_typed(
        "previous-participant-employee-id",
        f"{PREV}.participants[0].employee.id",
        42,
        {"id": 1},
        "Not a valid string or integer.",
        example=RAD,
    ),
)

# Properties without a Required marker: removing any one of them leaves the example valid.
OPTIONAL_PATHS: tuple[tuple[str, str], ...] = tuple(
    ("CREATE", path)
    for path in (
        "correlationId",
        "webhookConfigurationId",
        "version",
        "data.message",
        f"{A}.subject",
        f"{A}.office",
        f"{A}.participants",
        f"{A}.answers",
        f"{A}.location",
        f"{A}.listing",
        f"{A}.leadSegment",
        f"{A}.externalId",
        f"{A}.hybrid",
        f"{A}.trailingBufferTime",
        f"{A}.internalNotes",
        f"{A}.meetingRoom",
        f"{A}.messageForCustomer",
        f"{A}.metadata",
        f"{A}.createdAt",
        f"{A}.createdById",
        f"{A}.updatedById",
        f"{A}.start",
        f"{A}.end",
        f"{A}.subject.id",
        f"{A}.subject.subjectGroup",
        f"{A}.subject.translations",
        f"{A}.office.location",
        f"{A}.office.translations",
        f"{A}.office.location.geolocation",
        f"{A}.office.location.countryCode",
        f"{P_EMP}.token",
        f"{P_EMP}.employee",
        f"{EMP}.id",
        f"{EMP}.availableRoles",
        f"{P_CUS}.customer",
        f"{CUS}.location",
        f"{ANS}.form",
        f"{ANS}.question",
        f"{ANS}.value",
        f"{ANS}.selectedAnswerOptions",
        f"{ANS}.files",
        f"{A}.leadSegment.id",
        f"{A}.meetingRoom.provider",
    )
) + tuple(
    (RAD, path)
    for path in (
        f"{PREV}.subject",
        f"{PREV}.office",
        f"{PREV}.participants",
        f"{PREV}.location",
        f"{PREV}.listing",
        f"{PREV}.leadSegment",
        f"{PREV}.externalId",
        f"{PREV}.start",
        f"{PREV}.end",
        f"{A}.callbackRequest.id",
    )
)

# Objects whose additional properties are allowed (data, metadata) or not rendered: an unknown
# key is kept and reported in both modes. Customer is closed by the seed but open by contract.
OPEN_PATHS: tuple[tuple[str, str], ...] = (
    ("CREATE", "brandNew"),
    ("CREATE", "data.brandNew"),
    ("CREATE", f"{A}.brandNew"),
    ("CREATE", f"{P_EMP}.brandNew"),
    ("CREATE", f"{P_CUS}.brandNew"),
    ("CREATE", f"{CUS}.brandNew"),
    ("CREATE", f"{ANS}.brandNew"),
    ("CREATE", f"{ANS}.selectedAnswerOptions[0].brandNew"),
    ("CREATE", f"{A}.subject.translations.name[0].brandNew"),
    (CR, f"{A}.answers[1].files[0].brandNew"),
    (RAD, f"{A}.callbackRequest.brandNew"),
    (RAD, f"{PREV}.brandNew"),
    (RAD, f"{PREV}.participants[0].brandNew"),
    (RAD, f"{PREV}.participants[0].employee.brandNew"),
)

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


##### Distinct documents: one test item per document, whatever number of rules share it #####


def canonical(doc: Any) -> str:
    """A key equal for equal documents (key order aside)."""
    return json.dumps(doc, sort_keys=True)


def distinct(named: list[tuple[str, dict[str, Any]]]) -> list[tuple[tuple[str, ...], Any]]:
    """``(name, document)`` pairs grouped by document, first seen first: ``(names, document)``."""
    groups: dict[str, tuple[list[str], Any]] = {}
    for name, doc in named:
        groups.setdefault(canonical(doc), ([], doc))[0].append(name)
    return [(tuple(names), doc) for names, doc in groups.values()]


def group_id(names: tuple[str, ...]) -> str:
    """A readable test id for the rules that share one document."""
    return names[0] if len(names) == 1 else f"{names[0]}+{len(names) - 1}"


# The unedited examples are validated by tests/workers/test_schemas.py::TestExamples.
UNEDITED = frozenset(canonical(example(name)) for name in EXAMPLES)
# Every rule's passing document that is not an unedited example, each once.
PASSING = [
    (names, doc)
    for names, doc in distinct([(rule.name, rule.passing()) for rule in RULES])
    if canonical(doc) not in UNEDITED
]
# Every rule's failing document, each once; rules that share one agree on path and message.
FAILING = [
    (tuple(BY_NAME[name] for name in names), doc)
    for names, doc in distinct([(rule.name, rule.failing()) for rule in RULES])
]
