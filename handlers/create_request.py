"""CREATE_REQUEST: a customer asked for an appointment that an employee still has to accept."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Store the request (status INCOMING_REQUEST) as the appointment's state."""
    tx.record(
        {"created": tx.current is None, **field_change("status", tx.current, event.appointment)}
    )
    tx.apply_snapshot()
