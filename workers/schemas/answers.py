"""``appointment.answers[]``: form, question, selected options and files (spec 3.12-3.14)."""

from __future__ import annotations

from marshmallow import fields
from marshmallow.validate import OneOf

from workers.schemas.base import BaseSchema
from workers.schemas.base import ClosedSchema
from workers.schemas.common import IdReferenceSchema
from workers.schemas.common import translations_schema
from workers.schemas.fields import AwareDateTime
from workers.schemas.fields import StrictInteger

ANSWER_TYPES = (
    "SUBJECT_QUESTIONNAIRE",
    "APPOINTMENT_CANCELLATION",
    "APPOINTMENT_COMPLETION",
    "QUALIFICATION",
)

QuestionTranslationsSchema = translations_schema("QuestionTranslations", "label")


class FormSchema(IdReferenceSchema):
    """``answers[].form``: exactly ``{id}``, closed (L157)."""


class QuestionSchema(ClosedSchema):
    """``answers[].question`` (L160); unlike every other externalId this one has no cap."""

    id = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    order = StrictInteger(allow_none=True)
    translations = fields.Nested(QuestionTranslationsSchema, allow_none=True)


class SelectedAnswerOptionSchema(BaseSchema):
    """An ``answers[].selectedAnswerOptions[]`` item (its AP is not rendered: open)."""

    id = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    value = fields.String(allow_none=True)


class FileSchema(BaseSchema):
    """An ``answers[].files[]`` item: ``{id}``; its AP is not rendered, so it stays open."""

    id = fields.String(allow_none=True)


class AnswerSchema(BaseSchema):
    """An ``answers[]`` item (its AP is not rendered: open)."""

    id = fields.String(allow_none=True)
    form = fields.Nested(FormSchema)
    question = fields.Nested(QuestionSchema)
    answer_type = fields.String(required=True, validate=OneOf(ANSWER_TYPES))
    value = fields.String(allow_none=True)
    selected_answer_options = fields.List(
        fields.Nested(SelectedAnswerOptionSchema), allow_none=True
    )
    files = fields.List(fields.Nested(FileSchema), allow_none=True)
    created_at = AwareDateTime(allow_none=True)
    updated_at = AwareDateTime(allow_none=True)
