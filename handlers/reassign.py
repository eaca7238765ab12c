"""REASSIGN: the appointment was handed to other employees."""

from handlers.api import AppointmentTransaction
from handlers.api import employees
from handlers.api import prior
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Record the old and new employees (id and role), then store the new snapshot."""
    before = prior(event.previous_appointment, tx.current)
    tx.record({"employees": {"old": employees(before), "new": employees(event.appointment)}})
    tx.apply_snapshot()
