"""RESCHEDULE: the appointment moved to another time."""

from handlers.events import AppointmentEvent
from handlers.snapshot import field_change
from handlers.snapshot import prior
from handlers.store import AppointmentTransaction


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
