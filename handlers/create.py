"""CREATE: an appointment was booked; it becomes the stored state."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Store the new appointment; if a later event for it landed first, the store keeps that one."""
    tx.record(
        {"created": tx.current is None, **field_change("status", tx.current, event.appointment)}
    )
    tx.apply_snapshot()
