"""The handlers package: the eventType registry lives in ``handlers.registry``.

``HANDLERS`` and ``Handler`` are loaded on first use, so that reading the store (the admin
routes, /metrics) does not import every eventType handler.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("HANDLERS", "Handler"):
        from handlers import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'handlers' has no attribute {name!r}")
