"""CANCEL: the appointment was cancelled, possibly with a cancellation form filled in."""

from handlers.events import AppointmentEvent
from handlers.snapshot import answers
from handlers.snapshot import field_change
from handlers.snapshot import prior
from handlers.store import AppointmentTransaction


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
