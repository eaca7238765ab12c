"""A failed fault test's report ends with what its processes logged."""

from __future__ import annotations

import pytest

from tests.faults.deployment import Deployment


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Deployment):
            report.sections.append(("deployment logs", value.log_tails()))
