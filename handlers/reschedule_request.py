"""RESCHEDULE_REQUEST: a new time was requested and awaits confirmation."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.api import prior
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Move the status and record the proposed start/end beside the previous ones."""
    before = prior(event.previous_appointment, tx.current)
    tx.record(
        {
            **field_change("status", before, event.appointment),
            **field_change("start", before, event.appointment),
            **field_change("end", before, event.appointment),
        }
    )
    tx.apply_snapshot()
