"""The build-info metric every role serves: which version runs, on which Python."""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

from prometheus_client.core import GaugeMetricFamily


@cache
def version() -> str:
    """The installed distribution's version ("unknown" when run from a bare checkout)."""
    try:
        return metadata.version("engagehook")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_info(role: str) -> GaugeMetricFamily:
    """``engagehook_build_info{version, python, role} 1``: join on it to see what a scrape ran."""
    family = GaugeMetricFamily(
        "engagehook_build_info",
        "Always 1; the labels say which engagehook version and Python this process runs.",
        labels=["version", "python", "role"],
    )
    family.add_metric([version(), platform.python_version(), role], 1)
    return family


class BuildInfoCollector:
    """A collector serving only the build-info metric (for registries built per scrape)."""

    def __init__(self, role: str) -> None:
        self.role = role

    def describe(self):
        return []

    def collect(self):
        yield build_info(self.role)
