"""The identifiers a webhook envelope carries, read before (or without) validating it.

Ingest needs them for its log line, metrics and Flower's task label, and a payload that fails
validation still names its event in its dead letter: one reading for all three, which takes
only strings and never fails on a malformed document.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvelopeIds:
    """``id``, ``correlationId``, ``data.eventType`` and ``data.appointment.id``, if strings."""

    event_id: str | None = None
    correlation_id: str | None = None
    event_type: str | None = None
    appointment_id: str | None = None


def peek(document: object) -> EnvelopeIds:
    """The identifiers of ``document`` (any decoded JSON); None for each one it lacks."""
    envelope = document if isinstance(document, dict) else {}
    data = found if isinstance(found := envelope.get("data"), dict) else {}
    appointment = found if isinstance(found := data.get("appointment"), dict) else {}
    return EnvelopeIds(
        event_id=_string(envelope.get("id")),
        correlation_id=_string(envelope.get("correlationId")),
        event_type=_string(data.get("eventType")),
        appointment_id=_string(appointment.get("id")),
    )


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None
