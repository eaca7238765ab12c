"""GENERIC_UPDATE: any other change to the appointment (notes, subject, location, ...)."""

from handlers.api import AppointmentTransaction
from handlers.api import field_change
from handlers.events import AppointmentEvent


def handle(event: AppointmentEvent, tx: AppointmentTransaction) -> None:
    """Store the snapshot and record which top-level fields changed (names only for big ones)."""
    changed: dict[str, object] = {}
    current = tx.current or {}
    for name in sorted(set(current) | set(event.appointment)):
        if name in ("updatedAt", "updatedById"):
            continue
        changed.update(field_change(name, current, event.appointment))
    tx.record({"fields": sorted(changed)})
    tx.apply_snapshot()
