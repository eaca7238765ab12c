"""The OpenAPI document: valid, complete, and generated from the schemas the workers enforce."""

from __future__ import annotations

import pytest
from apispec.ext.marshmallow.common import resolve_schema_instance
from marshmallow import fields

from tests.workers.payload_builders import EXAMPLES
from tests.workers.payload_builders import RULES
from tests.workers.payload_builders import example
from workers.openapi import build_openapi
from workers.schemas import EnvelopeSchema
from workers.schemas.base import BaseSchema
from workers.schemas.fields import OneOfNested

jsonschema = pytest.importorskip("jsonschema", reason="install the test extra")
openapi_spec_validator = pytest.importorskip("openapi_spec_validator", reason="test extra")

ERROR_STATUSES = ("400", "401", "403", "413", "415", "503")


@pytest.fixture(scope="module")
def document():
    """One generated document for the whole module (building it takes a few milliseconds)."""
    return build_openapi()


@pytest.fixture(scope="module")
def envelope_validator(document):
    """A JSON Schema 2020-12 validator for the documented request body, formats asserted."""
    root = {"$ref": "#/components/schemas/Envelope", "components": document["components"]}
    validator = jsonschema.Draft202012Validator
    return validator(root, format_checker=validator.FORMAT_CHECKER)


def contract_schemas():
    """Every schema class reachable from the envelope, by walking the nested fields."""
    seen: dict[str, BaseSchema] = {}
    todo = [EnvelopeSchema()]
    while todo:
        schema = todo.pop()
        name = type(schema).__name__.removesuffix("Schema")
        if name in seen:
            continue
        seen[name] = schema
        for field in schema.fields.values():
            inner = getattr(field, "inner", field)
            if isinstance(inner, fields.Nested):
                todo.append(inner.schema)
            elif isinstance(inner, OneOfNested):
                todo.extend(dict.fromkeys(inner.schemas.values()))
    return seen


CONTRACT_SCHEMAS = contract_schemas()


class TestDocument:
    def test_it_is_a_valid_openapi_document(self, document):
        openapi_spec_validator.validate(document)
        assert document["openapi"].startswith("3.1")

    def test_it_describes_every_route_of_the_contract(self, document):
        assert set(document["paths"]) >= {
            "/webhooks",
            "/healthz",
            "/readyz",
            "/metrics",
            "/admin/appointments/{id}",
            "/admin/events/{id}",
        }

    def test_the_webhook_body_is_the_envelope_schema(self, document):
        body = document["paths"]["/webhooks"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Envelope"}
        assert body["required"] is True

    def test_the_webhook_answers_are_documented(self, document):
        responses = document["paths"]["/webhooks"]["post"]["responses"]
        assert set(responses) == {"200", "202", *ERROR_STATUSES}
        for status in ERROR_STATUSES:
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
        assert "Retry-After" in responses["503"]["headers"]

    def test_the_error_shape_is_error_and_message(self, document):
        error = document["components"]["schemas"]["Error"]
        assert set(error["properties"]) == {"error", "message"}
        assert sorted(error["required"]) == ["error", "message"]

    def test_the_queued_answer_carries_status_and_id(self, document):
        queued = document["components"]["schemas"]["Queued"]
        assert queued["properties"]["status"]["enum"] == ["queued"]
        assert "id" in queued["required"]


class TestNoDrift:
    @pytest.mark.parametrize("name", sorted(CONTRACT_SCHEMAS))
    def test_each_schema_is_documented_with_its_fields_and_policy(self, document, name):
        schema = CONTRACT_SCHEMAS[name]
        documented = document["components"]["schemas"][name]
        wire = {field.data_key or key for key, field in schema.fields.items()}
        assert set(documented.get("properties", {})) == wire
        required = {field.data_key or key for key, field in schema.fields.items() if field.required}
        assert set(documented.get("required", [])) == required
        assert documented["additionalProperties"] is not resolve_schema_instance(schema).closed

    def test_customer_is_documented_open(self, document):
        assert document["components"]["schemas"]["Customer"]["additionalProperties"] is True

    def test_previous_appointment_is_required_and_nullable(self, document):
        data = document["components"]["schemas"]["AppointmentData"]
        assert "previousAppointment" in data["required"]
        assert {"type": "null"} in data["properties"]["previousAppointment"]["anyOf"]

    @pytest.mark.parametrize("name", EXAMPLES)
    def test_the_examples_match_the_documented_schema(self, envelope_validator, name):
        envelope_validator.validate(example(name))

    @pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
    def test_the_document_agrees_with_strict_mode_on_every_rule(self, envelope_validator, rule):
        assert envelope_validator.is_valid(rule.passing())
        assert not envelope_validator.is_valid(rule.failing())
