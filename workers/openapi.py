"""The OpenAPI 3.1 document, generated from the same Marshmallow schemas the workers enforce."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow import OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_instance
from marshmallow import fields

from workers.schemas import EnvelopeSchema
from workers.schemas.fields import OneOfNested
from workers.schemas.fields import StrOrInt
from workers.schemas.responses import DuplicateSchema
from workers.schemas.responses import ErrorSchema
from workers.schemas.responses import EventRecordSchema
from workers.schemas.responses import QueuedSchema
from workers.schemas.validators import StrictLength
from workers.schemas.validators import StrictRange

OPENAPI_VERSION = "3.1.0"
DESCRIPTION = (
    "Receiver for Pexip Engage Appointment webhooks. The request body schema is the sender's "
    "contract as the workers enforce it in VALIDATION_MODE=strict. In the default tolerant mode "
    "unknown properties are kept and counted instead of rejected (`additionalProperties: false` "
    "objects included), and rules marked `x-enforced-in: strict` are not applied."
)


def build_openapi() -> dict[str, Any]:
    """Describe the HTTP interface, with ``POST /webhooks`` typed by the envelope schema."""
    plugin = _ContractPlugin()
    spec = APISpec(
        title="engagehook",
        version=_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    converter = plugin.converter
    assert converter is not None  # set by APISpec, which initialised the plugin above
    converter.add_attribute_function(_one_of_schema)
    converter.add_attribute_function(_str_or_int)
    converter.add_attribute_function(_strict_only)
    _add_security(spec)
    for name, schema in (
        ("Envelope", EnvelopeSchema),
        ("Queued", QueuedSchema),
        ("Duplicate", DuplicateSchema),
        ("Error", ErrorSchema),
        ("EventRecord", EventRecordSchema),
    ):
        spec.components.schema(name, schema=schema)
    _add_paths(spec)
    return spec.to_dict()


class _ContractConverter(OpenAPIConverter):
    """Writes ``additionalProperties`` from the schema's ``closed`` flag, and its docstring."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema = super().schema2jsonschema(schema)
        instance = resolve_schema_instance(schema)
        jsonschema["additionalProperties"] = not getattr(instance, "closed", False)
        doc = (type(instance).__doc__ or "").strip().splitlines()
        if doc:
            jsonschema.setdefault("description", doc[0].replace("``", "`"))
        return jsonschema


class _ContractPlugin(MarshmallowPlugin):
    """The Marshmallow plugin with the contract's converter."""

    Converter = _ContractConverter


def _one_of_schema(self: OpenAPIConverter, field: fields.Field, **kwargs: Any) -> dict:
    """``OneOfNested`` -> ``oneOf`` of the variants with a ``discriminator`` naming the tag."""
    if not isinstance(field, OneOfNested):
        return {}
    refs = {variant: self.resolve_nested_schema(variant) for variant in field.variants}
    mapping = {tag: refs[type(schema)]["$ref"] for tag, schema in field.schemas.items()}
    one_of = {
        "oneOf": list(refs.values()),
        "discriminator": {"propertyName": field.discriminator, "mapping": mapping},
    }
    if field.allow_none:
        return {"anyOf": [one_of, {"type": "null"}]}
    return one_of


def _str_or_int(self: OpenAPIConverter, field: fields.Field, **kwargs: Any) -> dict:
    """``StrOrInt`` -> a string or an integer (with its minimum), nullable when allowed."""
    if not isinstance(field, StrOrInt):
        return {}
    types = ["string", "integer"] + (["null"] if field.allow_none else [])
    ret: dict[str, Any] = {"type": types}
    if field.minimum is not None:
        ret["minimum"] = field.minimum
    return ret


def _strict_only(self: OpenAPIConverter, field: fields.Field, **kwargs: Any) -> dict:
    """Mark the rules that only strict mode enforces, so readers of the document can tell."""
    if any(isinstance(v, StrictLength | StrictRange) for v in field.validators):
        return {"x-enforced-in": "strict"}
    return {}


def _add_security(spec: APISpec) -> None:
    """The shared-secret schemes of the contract (each optional: unset means not checked)."""
    schemes = {
        "webhookBearer": {"type": "http", "scheme": "bearer", "description": "WEBHOOK_TOKEN"},
        "webhookQueryToken": {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": "WEBHOOK_TOKEN in the webhook URL: what Pexip Engage can send",
        },
        "webhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Webhook-Signature",
            "description": "sha256=<hex HMAC-SHA256 of the raw body> (WEBHOOK_HMAC_SECRET), "
            "for a relay or proxy that signs bodies: Pexip Engage itself does not sign",
        },
        "adminBearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
    }
    for name, scheme in schemes.items():
        spec.components.security_scheme(name, scheme)


def _json(schema: str) -> dict[str, Any]:
    """A JSON body described by the component ``schema``."""
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    """An error answer: the one ``{error, message}`` shape of the contract."""
    return {"description": description, "content": _json("Error"), **extra}


def _add_paths(spec: APISpec) -> None:
    """The routes of contract.md; only ``POST /webhooks`` carries the appointment contract."""
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    spec.path(
        path="/webhooks",
        operations={
            "post": {
                "summary": "Receive one Appointment webhook",
                "operationId": "receiveWebhook",
                "security": [
                    {"webhookBearer": []},
                    {"webhookQueryToken": []},
                    {"webhookSignature": []},
                    {},
                ],
                "requestBody": {"required": True, "content": _json("Envelope")},
                "responses": {
                    "202": {"description": "Queued for processing", "content": _json("Queued")},
                    "200": {"description": "Already received", "content": _json("Duplicate")},
                    "400": _error("Not JSON, not an object, or no string `id`"),
                    "401": _error("Missing or wrong token or signature"),
                    "403": _error("webhookConfigurationId not in WEBHOOK_CONFIGURATION_IDS"),
                    "413": _error("Body larger than MAX_BODY_BYTES"),
                    "415": _error("Content-Type is not application/json"),
                    "503": _error("The payload could not be stored; retry", headers=retry_after),
                },
            }
        },
    )
    spec.path(
        path="/healthz",
        operations={"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "summary": "Readiness: the broker or the local spool can take a webhook",
                "responses": {
                    "200": {
                        "description": "Ready or degraded; broker, spool and store each with"
                        " their status"
                    },
                    "503": _error("Neither the broker nor the spool can take a webhook"),
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    )
    id_parameter = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    spec.path(
        path="/admin/appointments/{id}",
        parameters=[id_parameter],
        operations={
            "get": {
                "summary": "Current projected state of one appointment",
                "security": [{"adminBearer": []}],
                "responses": {
                    "200": {
                        "description": "The stored appointment",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "404": _error("Unknown appointment, or ADMIN_TOKEN unset"),
                },
            }
        },
    )
    spec.path(
        path="/admin/events/{id}",
        parameters=[id_parameter],
        operations={
            "get": {
                "summary": "Processing record of one event",
                "security": [{"adminBearer": []}],
                "responses": {
                    "200": {"description": "The event record", "content": _json("EventRecord")},
                    "404": _error("Unknown event, or ADMIN_TOKEN unset"),
                },
            }
        },
    )


def _version() -> str:
    """The installed distribution's version, or the source tree's when not installed."""
    try:
        return metadata.version("engagehook")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"
