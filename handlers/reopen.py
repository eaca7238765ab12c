"""REOPEN: a cancelled or completed appointment was opened again."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.api import prior
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Move the stored status and keep the rest of the snapshot current."""
    before = prior(event.previous_appointment, tx.current)
    tx.record(field_change("status", before, event.appointment))
    tx.apply_snapshot()
