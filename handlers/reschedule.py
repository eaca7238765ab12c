"""RESCHEDULE: the appointment moved to another time."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.api import prior
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Record the old start/end (from previousAppointment) and the new ones, then store."""
    before = prior(event.previous_appointment, tx.current) or {}
    tx.record(
        {
            "start": {"old": before.get("start"), "new": event.appointment.get("start")},
            "end": {"old": before.get("end"), "new": event.appointment.get("end")},
            **field_change("status", before, event.appointment),
        }
    )
    tx.apply_snapshot()
