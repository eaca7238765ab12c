"""Errors raised while applying events, organised by what the caller does next.

HandlerError
├── TransientError   retry with backoff (database unreachable, lock timeout, downstream 5xx)
└── PermanentError   do not retry; dead-letter with the reason
"""


class HandlerError(Exception):
    """Base of every error a handler or the store raises on purpose."""


class TransientError(HandlerError):
    """Will probably succeed later: the task retries it with exponential backoff and jitter."""


class PermanentError(HandlerError):
    """Will fail the same way every time: the event is dead-lettered with this message."""
