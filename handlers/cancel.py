"""CANCEL: the appointment was cancelled, possibly with a cancellation form filled in."""

from handlers.api import AppointmentTransaction
from handlers.api import answers
from handlers.api import field_change
from handlers.api import prior
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Move the status to the cancelled state and keep the cancellation answers given."""
    before = prior(event.previous_appointment, tx.current)
    tx.record(
        {
            **field_change("status", before, event.appointment),
            "answers": answers(event.appointment, "APPOINTMENT_CANCELLATION"),
        }
    )
    tx.apply_snapshot()
