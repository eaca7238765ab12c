"""User hooks: your own functions per eventType, run after the store commit.

Register with the decorator::

    from handlers.hooks import on

    @on("CANCEL", "COMPLETE")
    def sync_crm(event):  # a handlers.hook_event.HookEvent
        ...

and make the worker import the module: list it in ``ENGAGEHOOK_HOOK_MODULES`` or expose it
from your package under the ``engagehook.hooks`` entry-point group. An entry point may name
a module, whose decorators then run (``crm = "mypkg.crm"``), or a function, registered for
the eventType that is the entry point's name (``CANCEL = "mypkg.crm:on_cancel"``; ``*`` for
every type). A hook receives a ``HookEvent`` after the event's effect is committed, runs as
its own task with its own retries, and ends dead-lettered with its last error when they run
out: a failing hook never blocks the store nor re-applies the event. Hooks run at least once
per applied event (once, unless a worker dies mid-hook), never for duplicates or stale events.
A hook may be ``async def``: each run gets its own event loop (``asyncio.run``).

Mistakes are refused when the module is imported, so the worker does not start: ``@on``
without its parentheses, a function that cannot take the event as its one argument, an
eventType Pexip does not send.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

from handlers.events import EVENT_TYPES
from handlers.hook_event import HookEvent

ENTRY_POINT_GROUP = "engagehook.hooks"

Hook = Callable[[HookEvent], object]


class HookRegistrationError(ValueError):
    """A hook is registered in a way that would never run it correctly; the message says how."""


class UnknownEventType(HookRegistrationError):
    """A hook was registered for an eventType Pexip does not send."""


class HookConflict(HookRegistrationError):
    """Two different functions would run under the same hook name."""


class HookRegistry:
    """Hooks by eventType, addressable by a stable name (``module:qualname``)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Hook] = {}
        self._names_by_type: dict[str, list[str]] = {t: [] for t in EVENT_TYPES}

    def on(self, *event_types: str) -> Callable[[Hook], Hook]:
        """Decorator: run the function for each applied event of these types ("*" for all)."""
        if not event_types:
            raise UnknownEventType('name at least one eventType: @on("CANCEL"), or "*" for all')
        for given in event_types:
            if callable(given):
                # ``@on`` without parentheses: the function arrived as an "eventType" and the
                # decorator would silently replace it with a function that registers nothing.
                name = getattr(given, "__qualname__", repr(given))
                raise HookRegistrationError(
                    f'@on needs its eventTypes in parentheses: write @on("CANCEL") (or @on("*") '
                    f"for every type) above def {name}, not a bare @on"
                )
            if not isinstance(given, str):
                raise UnknownEventType(
                    f"@on takes eventType strings such as 'CANCEL', got {given!r}"
                )
        types = EVENT_TYPES if event_types == ("*",) else event_types

        def register(fn: Hook) -> Hook:
            self.add(fn, types)
            return fn

        return register

    def add(self, fn: Hook, event_types: Iterable[str]) -> str:
        """Register ``fn`` for ``event_types`` and return its name."""
        _check_callable_with_the_event(fn)
        name = hook_name(fn)
        known = self._by_name.get(name)
        if known is not None and known is not fn:
            # The name is what the outbox stores; two functions under one name would run the
            # wrong code for half the runs.
            raise HookConflict(f"another function is already registered as {name}: rename one")
        event_types = list(event_types)
        for event_type in event_types:
            if event_type not in self._names_by_type:
                raise UnknownEventType(
                    f"cannot register {name} for {event_type!r}: "
                    f"use one of {', '.join(EVENT_TYPES)}"
                )
        for event_type in event_types:
            if name not in self._names_by_type[event_type]:
                self._names_by_type[event_type].append(name)
        self._by_name[name] = fn
        return name

    def names_for(self, event_type: str) -> list[str]:
        """Names of the hooks to run for an applied event of this type, in registration order."""
        return list(self._names_by_type.get(event_type, ()))

    def get(self, name: str) -> Hook | None:
        """The hook registered under ``name``."""
        return self._by_name.get(name)

    def load(self, modules: Iterable[str] = ()) -> None:
        """Import hook modules named in configuration and those exposed as entry points."""
        for module in modules:
            importlib.import_module(module)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            loaded = entry.load()
            if isinstance(loaded, ModuleType) or not callable(loaded):
                continue  # a module: importing it ran its @on decorators
            if entry.name == "*":
                self.add(loaded, EVENT_TYPES)
            elif entry.name in EVENT_TYPES:
                self.add(loaded, [entry.name])
            elif self.names_registered(loaded) == ():
                raise UnknownEventType(
                    f"entry point {entry.name} = {entry.value} in group {ENTRY_POINT_GROUP}: "
                    f"name it after an eventType ({', '.join(EVENT_TYPES)}) or '*', "
                    "or decorate the function with @on"
                )

    def registrations(self) -> dict[str, tuple[str, ...]]:
        """Each hook's name and the eventTypes it runs for (what a worker records at start)."""
        return {
            name: tuple(t for t, names in self._names_by_type.items() if name in names)
            for name in self._by_name
        }

    def describe(self) -> str:
        """One line naming every hook and its eventTypes, for the worker's start-up log."""
        if not self._by_name:
            return "no user hooks loaded"
        parts = []
        for name in self._by_name:
            types = [t for t, names in self._names_by_type.items() if name in names]
            shown = "*" if len(types) == len(EVENT_TYPES) else ", ".join(types)
            parts.append(f"{name} ({shown})")
        return f"{len(parts)} user hook(s) loaded: " + "; ".join(parts)

    def names_registered(self, fn: Hook) -> tuple[str, ...]:
        """The eventTypes ``fn`` runs for (empty when it is not registered)."""
        name = hook_name(fn)
        if self._by_name.get(name) is not fn:
            return ()
        return tuple(t for t, names in self._names_by_type.items() if name in names)


def hook_name(fn: Hook) -> str:
    """The stable name a hook's runs are stored under: ``module:qualname``."""
    return f"{fn.__module__}:{fn.__qualname__}"


def _check_callable_with_the_event(fn: object) -> None:
    """Refuse what cannot be called as ``fn(event)``, at registration rather than per run."""
    if not callable(fn):
        raise HookRegistrationError(f"a hook must be a function, got {fn!r}")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise HookRegistrationError(
            f"{hook_name(fn)} is a generator function (it uses yield), so calling it would run "
            "nothing: make it a plain def or async def"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check
    try:
        signature.bind(object())
    except TypeError:
        raise HookRegistrationError(
            f"{hook_name(fn)} must take the event as its one argument: "
            f"def {getattr(fn, '__name__', 'hook')}(event)"
        ) from None


registry = HookRegistry()
on = registry.on
