"""``data.appointment`` and ``data.previousAppointment``: three variants each, chosen by status."""

from __future__ import annotations

from collections.abc import Sequence

from marshmallow import fields
from marshmallow.validate import Length
from marshmallow.validate import OneOf
from marshmallow.validate import Range

from workers.schemas.answers import AnswerSchema
from workers.schemas.base import BaseSchema
from workers.schemas.base import ClosedSchema
from workers.schemas.common import IdReferenceSchema
from workers.schemas.common import LocationSchema
from workers.schemas.common import translations_schema
from workers.schemas.fields import AwareDateTime
from workers.schemas.fields import OneOfNested
from workers.schemas.fields import StrictBoolean
from workers.schemas.fields import StrictInteger
from workers.schemas.fields import StrictlyRequiredNested
from workers.schemas.fields import StrOrInt
from workers.schemas.participants import ReducedParticipantSchema
from workers.schemas.participants import participant_field
from workers.schemas.validators import StrictLength
from workers.schemas.validators import StrictRange

# The seed's three variants split the seven statuses (spec 3.1); each value selects one variant.
CONFIRMED_STATUSES = ("ACCEPTED", "COMPLETED", "NO_SHOW", "CANCELLED")
REQUEST_STATUSES = ("INCOMING_REQUEST",)
INVITE_STATUSES = ("OUTGOING_INVITE", "ALTERNATIVE_DATE_REQUESTED")
STATUSES = CONFIRMED_STATUSES + REQUEST_STATUSES + INVITE_STATUSES
MEETING_TYPES = ("OFFICE", "ON_LOCATION", "PHONE", "VIDEO")
ACTOR_TYPES = ("CUSTOMER", "EMPLOYEE", "OTHER")
ORIGINS = ("PLUGIN", "BACKOFFICE_APP", "PARTNER_BOOKING_APP", "OTHER")
UNSUPPORTED_STATUS = "unsupported status"

SubjectTranslationsSchema = translations_schema(
    "SubjectTranslations", "name", "description", "instructions"
)
SubjectGroupTranslationsSchema = translations_schema("SubjectGroupTranslations", "name")
OfficeTranslationsSchema = translations_schema(
    "OfficeTranslations", "name", "description", "directions", "parkingInfo"
)
ListingTranslationsSchema = translations_schema("ListingTranslations", "name", "description")


class SubjectGroupSchema(ClosedSchema):
    """``subject.subjectGroup``: the seed renders none of its rules; EXT ones apply in strict."""

    id = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True, validate=StrictLength(max=255))
    order = StrictInteger(allow_none=True, validate=StrictRange(min=0))
    color = fields.String(allow_none=True, validate=StrictLength(max=7))
    image = fields.String(allow_none=True, validate=StrictLength(max=65535))
    translations = fields.Nested(SubjectGroupTranslationsSchema, allow_none=True)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)


class SubjectSchema(ClosedSchema):
    """``appointment.subject`` (spec 3.3)."""

    id = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    enabled_for_customer_use = StrictBoolean(allow_none=True)
    enabled_for_internal_use = StrictBoolean(allow_none=True)
    order = StrictInteger(allow_none=True, validate=Range(min=0))
    cancellation_by_agent_form_id = fields.String(allow_none=True)
    cancellation_by_customer_form_id = fields.String(allow_none=True)
    completion_by_agent_form_id = fields.String(allow_none=True)
    questionnaire_form_id = fields.String(allow_none=True)
    subject_group = fields.Nested(SubjectGroupSchema)
    translations = fields.Nested(SubjectTranslationsSchema)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)


class OfficeSchema(ClosedSchema):
    """``appointment.office`` (spec 3.6); its location is the only non-nullable one."""

    id = fields.String(allow_none=True)
    active = StrictBoolean(allow_none=True)
    email = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    phone_number = fields.String(allow_none=True)
    time_zone = fields.String(allow_none=True)
    uses_independent_agents = StrictBoolean(allow_none=True)
    virtual = StrictBoolean(allow_none=True)
    location = fields.Nested(LocationSchema)
    translations = fields.Nested(OfficeTranslationsSchema)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)


class ListingSchema(ClosedSchema):
    """``appointment.listing`` (spec 3.16)."""

    id = fields.String(allow_none=True)
    active = StrictBoolean(allow_none=True)
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    time_zone = fields.String(allow_none=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    tags = fields.List(fields.String(), allow_none=True)
    translations = fields.Nested(ListingTranslationsSchema)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)


class LeadSegmentSchema(ClosedSchema):
    """``appointment.leadSegment`` (spec 3.17): ``id`` comes as an integer, loaded as a string."""

    id = StrOrInt(allow_none=True)
    active = StrictBoolean(allow_none=True)
    code = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)
    # A plain string in the seed (its placeholder is not a date-time sample), so not parsed.
    deleted_at = fields.String(allow_none=True)


class MeetingRoomSchema(ClosedSchema):
    """``appointment.meetingRoom`` (spec 3.18); ``provider`` values are unknown: not enumerated."""

    id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    provider = fields.String(allow_none=True)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)
    deleted_at = fields.String(allow_none=True)


class CallbackRequestSchema(BaseSchema):
    """``appointment.callbackRequest``: type not rendered; read as an open ``{id}`` (spec 3.15)."""

    id = fields.String(allow_none=True)


class PreviousSubjectSchema(IdReferenceSchema):
    """``previousAppointment.subject``: ``{id}`` (L767)."""


class PreviousOfficeSchema(IdReferenceSchema):
    """``previousAppointment.office``: ``{id}`` (L770)."""


class PreviousListingSchema(IdReferenceSchema):
    """``previousAppointment.listing``: ``{id}`` or null (L786)."""


class PreviousLeadSegmentSchema(ClosedSchema):
    """``previousAppointment.leadSegment``: ``{id}`` or null (L789); a string here, int upstream."""

    id = StrOrInt(allow_none=True)


class AppointmentSchema(BaseSchema):
    """The fields all three appointment variants share (the seed repeats them verbatim, spec 3.1).

    ``id`` and ``updatedAt`` are required although the seed lost their markers: the store keys
    on the first and orders events by the second (spec §7).
    """

    id = fields.String(required=True)
    subject = fields.Nested(SubjectSchema)
    office = fields.Nested(OfficeSchema)
    participants = fields.List(participant_field(), allow_none=True)
    answers = fields.List(fields.Nested(AnswerSchema), allow_none=True)
    # Required by the schema, absent from the sender's own example: required in strict only.
    callback_request = StrictlyRequiredNested(CallbackRequestSchema, allow_none=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    listing = fields.Nested(ListingSchema, allow_none=True)
    lead_segment = fields.Nested(LeadSegmentSchema, allow_none=True)
    meeting_type = fields.String(required=True, validate=OneOf(MEETING_TYPES))
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    hybrid = StrictBoolean(allow_none=True)
    trailing_buffer_time = StrictInteger(allow_none=True, validate=StrictRange(min=0))
    internal_notes = fields.String(allow_none=True)
    meeting_room = fields.Nested(MeetingRoomSchema, allow_none=True)
    message_for_customer = fields.String(allow_none=True)
    metadata = fields.Dict(allow_none=True)  # free-form, additional properties allowed (L236)
    created_at = AwareDateTime(allow_none=True)
    created_by_id = fields.String(allow_none=True)
    created_by_type = fields.String(required=True, validate=OneOf(ACTOR_TYPES))
    created_from = fields.String(required=True, validate=OneOf(ORIGINS))
    updated_at = AwareDateTime(required=True)
    updated_by_id = fields.String(allow_none=True)
    updated_by_type = fields.String(required=True, validate=OneOf(ACTOR_TYPES))
    updated_from = fields.String(required=True, validate=OneOf(ORIGINS))
    start = AwareDateTime(allow_none=True)
    end = AwareDateTime(allow_none=True)


class ConfirmedAppointmentSchema(AppointmentSchema):
    """Variant A: an accepted, completed, no-show or cancelled appointment."""

    status = fields.String(required=True, validate=OneOf(CONFIRMED_STATUSES))


class RequestedAppointmentSchema(AppointmentSchema):
    """Variant B: a request a customer made, waiting for the office."""

    status = fields.String(required=True, validate=OneOf(REQUEST_STATUSES))


class InvitedAppointmentSchema(AppointmentSchema):
    """Variant C: an invite the office sent, or one for which another date was asked."""

    status = fields.String(required=True, validate=OneOf(INVITE_STATUSES))


class PreviousAppointmentSchema(BaseSchema):
    """The reduced appointment of ``previousAppointment`` (spec 4.1): no id, no updatedAt."""

    subject = fields.Nested(PreviousSubjectSchema)
    office = fields.Nested(PreviousOfficeSchema)
    participants = fields.List(fields.Nested(ReducedParticipantSchema), allow_none=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    listing = fields.Nested(PreviousListingSchema, allow_none=True)
    lead_segment = fields.Nested(PreviousLeadSegmentSchema, allow_none=True)
    external_id = fields.String(allow_none=True, validate=Length(max=255))
    start = AwareDateTime(allow_none=True)
    end = AwareDateTime(allow_none=True)


class ConfirmedPreviousAppointmentSchema(PreviousAppointmentSchema):
    """Variant A of the previous state."""

    status = fields.String(required=True, validate=OneOf(CONFIRMED_STATUSES))


class RequestedPreviousAppointmentSchema(PreviousAppointmentSchema):
    """Variant B of the previous state."""

    status = fields.String(required=True, validate=OneOf(REQUEST_STATUSES))


class InvitedPreviousAppointmentSchema(PreviousAppointmentSchema):
    """Variant C of the previous state."""

    status = fields.String(required=True, validate=OneOf(INVITE_STATUSES))


def _by_status(variants: Sequence[type[BaseSchema]], **kwargs: object) -> OneOfNested:
    """An appointment-shaped field whose variant ``status`` chooses; unknown ones are flagged."""
    message = f"{UNSUPPORTED_STATUS} {{input!r}}: expected one of {{choices}}"
    return OneOfNested("status", variants, unsupported=message, **kwargs)


def appointment_field(**kwargs: object) -> OneOfNested:
    """``data.appointment``: one of the three variants."""
    variants = [ConfirmedAppointmentSchema, RequestedAppointmentSchema, InvitedAppointmentSchema]
    return _by_status(variants, **kwargs)


def previous_appointment_field(**kwargs: object) -> OneOfNested:
    """``data.previousAppointment``: one of the three reduced variants."""
    variants = [
        ConfirmedPreviousAppointmentSchema,
        RequestedPreviousAppointmentSchema,
        InvitedPreviousAppointmentSchema,
    ]
    return _by_status(variants, **kwargs)
