"""Tables of the appointment store: events, appointments, their history and hook runs."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import DateTime
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import TypeDecorator
from sqlalchemy import UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from handlers.clock import utcnow
from handlers.storable import LosslessText

JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite drops offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class EventRecord(Base):
    """The processing record of one event id: exactly one outcome per id."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_type: Mapped[str | None] = mapped_column(String(64))
    appointment_id: Mapped[str | None] = mapped_column(String(255), index=True)
    appointment_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(String(255))
    errors: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    # Exactly the body that arrived, also when a text column could not hold it as it is.
    raw_body: Mapped[str] = mapped_column(LosslessText())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    """The current projected state of one appointment: the newest snapshot seen."""

    __tablename__ = "appointments"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(64), index=True)
    start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meeting_type: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The ids of the objects an appointment belongs to, as columns so that operators can query
    # "every appointment of this office" without JSON operators; the objects stay in snapshot.
    subject_id: Mapped[str | None] = mapped_column(String(255), index=True)
    office_id: Mapped[str | None] = mapped_column(String(255), index=True)
    listing_id: Mapped[str | None] = mapped_column(String(255), index=True)
    lead_segment_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    last_event_id: Mapped[str] = mapped_column(String(255))
    last_event_type: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_applied_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppointmentChange(Base):
    """What one applied event changed on one appointment (old and new values)."""

    __tablename__ = "appointment_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(String(255), index=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HookRun(Base):
    """One user hook to run for one applied event; written in the same commit (an outbox)."""

    __tablename__ = "hook_runs"
    __table_args__ = (
        UniqueConstraint("event_id", "hook_name", name="uq_hook_runs_event_hook"),
        Index("ix_hook_runs_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[str] = mapped_column(String(255))
    hook_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20))  # pending, running, done, dead_lettered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The claim of the attempt running (or about to retry) the hook: a fresh token per attempt,
    # when it was taken and until when it holds. Any other delivery of the run (a redelivery
    # with the same task id, the sweeper's) stays away until lease_expires_at.
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The appointment as stored before the event was applied (None for its first event).
    prior_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class HookRegistration(Base):
    """A hook some worker of the deployment loaded, per eventType, and when it last said so.

    An event is given a run for every hook registered here recently, not only for those the
    worker applying it loaded: during a rolling deploy that worker may not have them yet.
    """

    __tablename__ = "hook_registrations"
    __table_args__ = (Index("ix_hook_registrations_type_seen", "event_type", "last_seen_at"),)

    hook_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
