"""COMPLETE: the appointment took place (or was a no-show), possibly with a completion form."""

from handlers.api import AppointmentTransaction
from handlers.api import answers
from handlers.api import field_change
from handlers.api import prior
from handlers.events import AppointmentEvent


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
