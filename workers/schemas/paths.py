"""Error and unknown-property paths, written like ``data.appointment.participants[0].id``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from marshmallow.error_store import SCHEMA

_INDEX = re.compile(r"\[(\d+)\]")


def join(path: str, key: str | int) -> str:
    """Extend ``path`` by a property name or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def sort_key(path: str) -> str:
    """Order paths as a reader expects: ``[2]`` before ``[10]``."""
    return _INDEX.sub(lambda m: f"[{int(m.group(1)):09d}]", path)


def flatten_errors(messages: Any, path: str = "") -> list[dict[str, str]]:
    """Turn marshmallow's nested messages into ``{"path", "message"}`` items sorted by path."""
    errors: list[dict[str, str]] = []
    _flatten(messages, path, errors)
    return sorted(errors, key=lambda e: (sort_key(e["path"]), e["message"]))


def _flatten(messages: Any, path: str, out: list[dict[str, str]]) -> None:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            # "_schema" holds the object's own errors (e.g. "Invalid input type."): keep its path.
            _flatten(value, path if key == SCHEMA else join(path, key), out)
    elif isinstance(messages, list | tuple):
        for message in messages:
            _flatten(message, path, out)
    else:
        out.append({"path": path, "message": str(messages)})


def unknown_paths(
    raw: Any, found: Iterable[tuple[Mapping[str, Any], Iterable[str]]]
) -> tuple[str, ...]:
    """Where the ``found`` unknown keys sit in ``raw``: one path per key, sorted, no values.

    The schemas only see each object, not where it sits, so they record the object itself and
    this walk over the raw document names its location.
    """
    by_object = {id(obj): keys for obj, keys in found}
    if not by_object:
        return ()
    paths: list[str] = []
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            for key in by_object.get(id(node), ()):
                paths.append(join(path, key))
            stack.extend((join(path, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((join(path, index), value) for index, value in enumerate(node))
    return tuple(sorted(set(paths), key=sort_key))
