"""CREATE_REQUEST: a customer asked for an appointment that an employee still has to accept."""

from handlers.events import AppointmentEvent
from handlers.snapshot import field_change
from handlers.store import AppointmentTransaction


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Store the request (status INCOMING_REQUEST) as the appointment's state."""
    tx.record(
        {"created": tx.current is None, **field_change("status", tx.current, event.appointment)}
    )
    tx.apply_snapshot()
