"""COMPLETE: the appointment took place (or was a no-show), possibly with a completion form."""

from handlers.events import AppointmentEvent
from handlers.snapshot import answers
from handlers.snapshot import field_change
from handlers.snapshot import prior
from handlers.store import AppointmentTransaction


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Move the status to COMPLETED or NO_SHOW and keep the completion answers given."""
    before = prior(event.previous_appointment, tx.current)
    tx.record(
        {
            **field_change("status", before, event.appointment),
            "answers": answers(event.appointment, "APPOINTMENT_COMPLETION"),
        }
    )
    tx.apply_snapshot()
