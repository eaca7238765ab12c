"""One attempt of one user hook: call it (sync or async), and say how it went without its words."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass

from handlers.errors import PermanentError
from handlers.hook_event import HookEvent
from handlers.hooks import Hook


@dataclass(frozen=True)
class Attempt:
    """How one attempt ended. ``error_class`` is what logs and Flower may show; ``error`` (the
    class and the hook's own message) is kept for operators in the store only."""

    ok: bool
    error_class: str | None = None
    error: str | None = None
    permanent: bool = False  # the hook raised PermanentError: retrying cannot help


def attempt(hook: Hook, event: HookEvent) -> Attempt:
    """Run ``hook(event)``; any exception, SystemExit included, is a failed attempt."""
    try:
        result = hook(event)
        if inspect.isawaitable(result):
            # An async hook (or a sync one returning a coroutine): awaited to completion in an
            # event loop of its own, instead of being dropped with "never awaited".
            asyncio.run(_awaited(result))
    except BaseException as exc:  # noqa: BLE001 - SystemExit from user code must not end the task
        return Attempt(
            ok=False,
            error_class=exc.__class__.__name__,
            error=_describe(exc),
            permanent=isinstance(exc, PermanentError),
        )
    return Attempt(ok=True)


async def _awaited(awaitable):
    return await awaitable


def _describe(exc: BaseException) -> str:
    """``Class: message``; a message that cannot even be turned into text is left out."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure itself
        message = ""
    return f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__


class HookRunDeadLettered(Exception):
    """A hook run is over without success: what the task ends with (FAILURE in Flower).

    Its message holds identifiers and the last exception's class only, never the hook's own
    words (they may quote a customer); the store keeps those for operators.
    """

    def __init__(
        self, hook_name: str | None, event_id: str | None, attempts: int, error_class: str | None
    ):
        self.hook_name, self.event_id, self.attempts = hook_name, event_id, attempts
        self.error_class = error_class
        last = f" (last: {error_class})" if error_class else ""
        super().__init__(
            f"hook {hook_name} dead-lettered for event {event_id} after {attempts} attempt(s){last}"
        )

    def __reduce__(self):
        # Celery pickles exceptions between processes; rebuild from the same arguments.
        return (self.__class__, (self.hook_name, self.event_id, self.attempts, self.error_class))
