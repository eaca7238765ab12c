"""ACCEPT: an employee accepted a requested appointment."""

from handlers.events import AppointmentEvent
from handlers.snapshot import field_change
from handlers.snapshot import prior
from handlers.store import AppointmentTransaction


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Move the stored status and keep the rest of the snapshot current."""
    before = prior(event.previous_appointment, tx.current)
    tx.record(field_change("status", before, event.appointment))
    tx.apply_snapshot()
