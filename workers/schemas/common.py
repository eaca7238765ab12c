"""Pieces shared by several objects: translations, geolocation, location, ``{id}`` references."""

from __future__ import annotations

from typing import cast

from marshmallow import fields

from workers.schemas.base import BaseSchema
from workers.schemas.base import ClosedSchema
from workers.schemas.fields import StrictNumber
from workers.schemas.validators import StrictLength
from workers.schemas.validators import StrictRange


class TranslationItemSchema(BaseSchema):
    """One ``{"value", "language"}`` pair of a translation list (its AP is not rendered: open)."""

    value = fields.String(allow_none=True)
    language = fields.String(allow_none=True)


def translations_schema(name: str, *keys: str) -> type[ClosedSchema]:
    """A closed ``translations`` object whose ``keys`` each map to a list of translation items.

    Seven objects share this shape and differ only in their keys (spec 3.5), so the shape is
    written here once and each owner names its keys.
    """
    declared: dict[str, fields.Field] = {
        key: fields.List(fields.Nested(TranslationItemSchema), allow_none=True, data_key=key)
        for key in keys
    }
    return cast(type[ClosedSchema], ClosedSchema.from_dict(declared, name=name))


LocationTranslationsSchema = translations_schema(
    "LocationTranslations", "city", "street1", "street2", "state"
)


class GeolocationSchema(ClosedSchema):
    """``location.geolocation``; the coordinate ranges are EXT (REST input), so strict mode only."""

    latitude = StrictNumber(allow_none=True, validate=StrictRange(min=-90, max=90))
    longitude = StrictNumber(allow_none=True, validate=StrictRange(min=-180, max=180))


class LocationSchema(ClosedSchema):
    """The one location shape of five places: office, customer, appointment, listing, previous."""

    postal_code = fields.String(allow_none=True)
    # Stated (exactly 2), but the sender's own example writes "string": strict-only.
    country_code = fields.String(allow_none=True, validate=StrictLength(equal=2))
    geolocation = fields.Nested(GeolocationSchema, allow_none=True)
    translations = fields.Nested(LocationTranslationsSchema)


class IdReferenceSchema(ClosedSchema):
    """A closed object that carries only its ``id`` ("Hide X attribute", singular, in the seed)."""

    id = fields.String(allow_none=True)
