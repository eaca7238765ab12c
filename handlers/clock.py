"""The one clock of the store and the handlers: aware UTC instants."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime


def utcnow() -> datetime:
    """The current instant, timezone-aware."""
    return datetime.now(UTC)
