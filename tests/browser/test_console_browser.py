"""The console in a real headless Chromium against a real `engagehook serve` (embedded).

From "a dead letter alert fired" to "replayed and processed" without a shell: log in, find
the dead letter by a filter, dry-run, replay, watch it processed; read an appointment's
timeline; and see that a POST without the session or without the CSRF token is refused.
Skips with a reason without Chromium or playwright; fails instead under CI
(ENGAGEHOOK_REQUIRE_SERVICES=1). ENGAGEHOOK_CONSOLE_SCREENSHOTS=<dir> keeps screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from handlers.store import Store
from tests.builders import dead_letter_after_an_outage
from tests.conftest import _missing
from tests.handlers.builders import payload
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-admin-token"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _missing("Chromium (/usr/bin/chromium, Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright for Python (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def seed_store(env: dict[str, str]) -> None:
    """Dead letters as an outage and a sender's mistake leave them, before serve starts."""
    store = Store(Settings.from_env(env).store_url)
    store.migrate()
    dead_letter_after_an_outage(store, "dl-outage-1", "ap-outage")
    for n, path in enumerate(["data.appointment.start", "data.appointment.subject.newField"]):
        store.dead_letter(
            event_id=f"dl-invalid-{n}",
            raw_body='{"id": "dl-invalid"}',
            reason="invalid",
            errors=[{"path": path, "message": "Not a valid datetime."}],
            event_type="RESCHEDULE",
            appointment_id=f"ap-{n}",
        )
    store.engine.dispose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """One `engagehook serve` for the module; each test touches records of its own."""
    tmp_path = tmp_path_factory.mktemp("console")
    env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"), "ADMIN_TOKEN": TOKEN}
    Settings.from_env(env).ensure_dirs()
    seed_store(env)
    port = free_port()
    serve = start(
        ["serve", "--port", str(port), "--workers", "1", "--concurrency", "1"],
        env,
        tmp_path / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base}/readyz", timeout=90)
        previous = {
            "start": "2024-10-08T09:00:00+00:00",
            "end": "2024-10-08T09:30:00+00:00",
            "status": "ACCEPTED",
        }
        for sent in (
            payload("CREATE", event_id="tl-1", appointment_id="ap-timeline", **previous),
            payload(
                "RESCHEDULE",
                event_id="tl-2",
                appointment_id="ap-timeline",
                minutes=10,
                previous=previous,
                start="2024-10-09T14:00:00+00:00",
                end="2024-10-09T14:30:00+00:00",
            ),
        ):
            answer = httpx.post(
                f"{base}/webhooks",
                content=json.dumps(sent),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert answer.status_code == 202
        admin = {"Authorization": f"Bearer {TOKEN}"}
        wait_until(
            lambda: (
                httpx.get(f"{base}/admin/events/tl-2", headers=admin, timeout=5).status_code == 200
            ),
            timeout=90,
            interval=0.5,
        )
        yield base
    finally:
        stop(serve)


def log_in(page, base: str) -> None:
    page.goto(f"{base}/console/")
    assert "/console/login" in page.url
    page.fill('input[name="token"]', TOKEN)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Overview')")


def screenshot(page, name: str, tmp_path: Path) -> None:
    directory = Path(os.environ.get("ENGAGEHOOK_CONSOLE_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / name), full_page=True)


def test_from_dead_letter_alert_to_replayed_and_processed(browser, deployment, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, deployment)
    assert page.locator(".metric.bad .value").first.inner_text() == "3"  # the alert's number
    screenshot(page, "console-overview.png", tmp_path)

    page.click("a.card:has-text('Dead letters')")
    page.fill('input[name="reason"]', "gave up")
    page.click("form.filters button:has-text('Filter')")
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 1
    assert "dl-outage-1" in rows.first.inner_text()
    page.goto(f"{deployment}/console/dead-letters")
    screenshot(page, "console-dead-letters.png", tmp_path)
    page.go_back()

    page.click("button:has-text('Dry run of all matching')")
    page.wait_for_selector("h1:has-text('1 would be replayed')")
    assert page.locator("ul.ids").inner_text().strip() == "dl-outage-1"
    page.click("button:has-text('Replay these 1')")
    page.wait_for_selector(".flash-ok:has-text('1 replayed')")

    def processed() -> bool:
        page.goto(f"{deployment}/console/events/dl-outage-1")
        return page.locator("h1 .state").inner_text() == "processed"

    wait_until(processed, timeout=90, interval=1)
    page.goto(f"{deployment}/console/dead-letters?reason=gave+up")
    assert "No dead letter matches" in page.locator("p.empty").inner_text()
    context.close()


def test_appointment_timeline_shows_what_changed(browser, deployment):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, deployment)
    page.fill('input[aria-label="Open an appointment by id"]', "ap-timeline")
    page.press('input[aria-label="Open an appointment by id"]', "Enter")
    page.wait_for_selector("h1:has-text('ap-timeline')")
    newest = page.locator(".timeline li").first
    assert "RESCHEDULE" in newest.inner_text()
    start = newest.locator("tr:has(th:text-is('start'))")
    old = start.locator("td.old time").get_attribute("datetime")
    new = start.locator("td.new time").get_attribute("datetime")
    assert (old, new) == ("2024-10-08T09:00:00+00:00", "2024-10-09T14:00:00+00:00")
    # Shown in the viewer's zone by the page's script, not as the raw ISO string.
    assert start.locator("td.new time").inner_text() != new
    assert "CREATE" in page.locator(".timeline li").nth(1).inner_text()
    context.close()


def test_posts_without_session_or_csrf_token_are_refused(browser, deployment):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    replay = f"{deployment}/console/dead-letters/replay"
    anonymous = page.request.post(replay, form={"ids": "dl-invalid-0", "csrf_token": "guess"})
    assert anonymous.status == 403
    log_in(page, deployment)
    no_token = page.request.post(replay, form={"ids": "dl-invalid-0"})
    assert (no_token.status, no_token.json()["error"]) == (403, "csrf_failed")
    page.goto(f"{deployment}/console/events/dl-invalid-0")
    assert page.locator("h1 .state").inner_text() == "dead lettered"
    context.close()
