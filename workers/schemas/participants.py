"""``participants[]``: EMPLOYEE or CUSTOMER by ``type``, and the reduced previous participant."""

from __future__ import annotations

from marshmallow import fields
from marshmallow.validate import Length
from marshmallow.validate import OneOf

from workers.schemas.base import BaseSchema
from workers.schemas.base import ClosedSchema
from workers.schemas.common import LocationSchema
from workers.schemas.common import translations_schema
from workers.schemas.fields import AwareDateTime
from workers.schemas.fields import OneOfNested
from workers.schemas.fields import StrictBoolean
from workers.schemas.fields import StrOrInt
from workers.schemas.validators import StrictLength

ROLES = ("PRIMARY", "SECONDARY")
EMPLOYEE_ROLES = ("ADMIN", "AGENT", "CENTRAL_PLANNER", "OFFICE_MANAGER")
EMPLOYEE_STATUSES = ("ACTIVE", "SUSPENDED", "PENDING")

EmployeeTranslationsSchema = translations_schema("EmployeeTranslations", "function")


class EmployeeSchema(ClosedSchema):
    """``participants[EMPLOYEE].employee`` (spec 3.10); caps mapped by document order (INFERRED)."""

    id = fields.String(allow_none=True)
    communication_email = fields.String(allow_none=True, validate=Length(max=320))
    email = fields.String(allow_none=True, validate=Length(max=320))
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    first_name = fields.String(allow_none=True)
    # Stated (at most 2), but the sender's own example writes "string": strict-only.
    language = fields.String(allow_none=True, validate=StrictLength(max=2))
    last_name = fields.String(allow_none=True)
    online_planning = StrictBoolean(allow_none=True)
    phone_number = fields.String(allow_none=True)
    profile_picture_url = fields.String(allow_none=True)
    static_video_url = fields.String(allow_none=True)
    translations = fields.Nested(EmployeeTranslationsSchema, allow_none=True)
    available_roles = fields.List(fields.String(validate=OneOf(EMPLOYEE_ROLES)), allow_none=True)
    status = fields.String(required=True, validate=OneOf(EMPLOYEE_STATUSES))
    time_zone = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)


class CustomerSchema(BaseSchema):
    """``participants[CUSTOMER].customer`` (spec 3.11).

    The seed closes this object but never shows its field names; the names below are guesses,
    so it stays open even in strict mode (contract: VALIDATION_MODE) and the guessed ``id`` may
    be an integer or a string. The caps the seed lists here sit on fields it never names, so
    they are strict-only.
    """

    id = StrOrInt(allow_none=True, minimum=0)
    external_id = fields.String(allow_none=True, validate=StrictLength(max=255))
    email = fields.String(allow_none=True, validate=StrictLength(max=320))
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    language = fields.String(allow_none=True, validate=StrictLength(max=2))
    location = fields.Nested(LocationSchema, allow_none=True)


class ParticipantSchema(BaseSchema):
    """What EMPLOYEE and CUSTOMER participants share; their AP is not rendered, so they stay open.

    The seed caps two of ``token``/``videoUrl``/``videoTestUrl`` at 2000 without saying which
    (spec 3.9); spec §8.7 keeps tolerant mode from enforcing them, strict mode caps all three.
    """

    role = fields.String(required=True, validate=OneOf(ROLES))
    token = fields.String(allow_none=True, validate=StrictLength(max=2000))
    video_url = fields.String(allow_none=True, validate=StrictLength(max=2000))
    video_test_url = fields.String(allow_none=True, validate=StrictLength(max=2000))
    cancel_url = fields.String(allow_none=True)
    edit_url = fields.String(allow_none=True)
    invite_url = fields.String(allow_none=True)
    office365_calendar_url = fields.String(allow_none=True)
    google_calendar_url = fields.String(allow_none=True)
    ical_url = fields.String(allow_none=True)
    created_at = AwareDateTime(allow_none=True)


class EmployeeParticipantSchema(ParticipantSchema):
    """A participant with ``type: EMPLOYEE`` and its ``employee``."""

    type = fields.String(required=True, validate=OneOf(["EMPLOYEE"]))
    employee = fields.Nested(EmployeeSchema)


class CustomerParticipantSchema(ParticipantSchema):
    """A participant with ``type: CUSTOMER`` and its ``customer``."""

    type = fields.String(required=True, validate=OneOf(["CUSTOMER"]))
    customer = fields.Nested(CustomerSchema)


def participant_field() -> OneOfNested:
    """A ``participants[]`` item: the EMPLOYEE or CUSTOMER alternative, chosen by ``type``."""
    return OneOfNested("type", [EmployeeParticipantSchema, CustomerParticipantSchema])


class ReducedPersonSchema(BaseSchema):
    """``previousAppointment.participants[].employee`` / ``.customer``: just the id."""

    id = StrOrInt(allow_none=True)


class ReducedParticipantSchema(BaseSchema):
    """A ``previousAppointment.participants[]`` item: the seed renders no rules (spec §8.12).

    Only the JSON types of the example are checked, so the old assignment (``employee.id``)
    can be read; role and type are not held to the enums the seed never states here.
    """

    role = fields.String(allow_none=True)
    type = fields.String(allow_none=True)
    token = fields.String(allow_none=True)
    video_url = fields.String(allow_none=True)
    video_test_url = fields.String(allow_none=True)
    employee = fields.Nested(ReducedPersonSchema, allow_none=True)
    customer = fields.Nested(ReducedPersonSchema, allow_none=True)
