"""`engagehook flower` on the real Redis: processed tasks appear, named, with identifiers only."""

from __future__ import annotations

import json

import httpx
import pytest

from core.config import Settings
from core.names import PROCESS_WEBHOOK
from ingest.queue import CeleryQueue
from tests.builders import EXAMPLE_FILES
from tests.builders import body
from tests.builders import envelope
from tests.processes import free_port
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_until
from tests.test_logs import personal_values
from workers.celery_app import create_celery_app

pytestmark = pytest.mark.slow

USER, PASSWORD = "ops", "flower-pw-7c2e91"


def api(base: str, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> httpx.Response:
    return httpx.get(f"{base}{path}", auth=auth, timeout=10)


class TestFlower:
    """Flower sees every processed webhook task, and nothing personal about it."""

    @pytest.fixture
    def monitored(self, tmp_path, redis_url):
        env = {
            "REDIS_URL": redis_url,
            "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
            "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}",
        }
        port = free_port()
        flower = start(["flower", "--port", str(port)], env, tmp_path / "flower.log")
        migrate(env)
        worker = start(["worker", "--concurrency", "1"], env, tmp_path / "worker.log")
        base = f"http://127.0.0.1:{port}"

        def worker_online() -> bool:
            # Listed here only once Flower has received the worker's own events, so its event
            # receiver is running and no task event can slip past it.
            try:
                workers = api(base, "/workers?json=1").json()["data"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return any(worker.get("status") for worker in workers)

        try:
            wait_until(worker_online, timeout=60, interval=0.5)
            yield base, env, tmp_path
        finally:
            stop(flower)
            stop(worker)

    def test_processed_tasks_show_name_outcome_and_identifiers_only(self, monitored):
        base, env, _ = monitored
        queue = CeleryQueue(create_celery_app(Settings.from_env(env)))
        sent = {}
        for n, path in enumerate(EXAMPLE_FILES):
            event_type = json.loads(path.read_text())["data"]["eventType"]
            payload = envelope(
                event_type, base=path.stem, event_id=f"fl-{n}", appointment_id=f"fl-appt-{n}"
            )
            queue.enqueue(
                body(payload),
                event_id=payload["id"],
                event_type=event_type,
                appointment_id=payload["data"]["appointment"]["id"],
            )
            sent[payload["id"]] = payload

        def finished() -> dict | None:
            tasks = api(base, f"/api/tasks?taskname={PROCESS_WEBHOOK}").json()
            done = [t for t in tasks.values() if t["state"] == "SUCCESS"]
            return tasks if len(done) == len(sent) else None

        tasks = wait_until(finished, timeout=60, interval=0.5)
        shown = {}
        for task in tasks.values():
            assert task["name"] == PROCESS_WEBHOOK
            event_id = next(i for i in sent if f"event_id='{i}'" in task["args"])
            shown[event_id] = task
        assert set(shown) == set(sent)
        for event_id, task in shown.items():
            payload = sent[event_id]
            event_type = payload["data"]["eventType"]
            appointment_id = payload["data"]["appointment"]["id"]
            assert task["args"] == (
                f"(event_id={event_id!r}, eventType={event_type!r}, "
                f"appointment_id={appointment_id!r})"
            )
            assert task["kwargs"] == "{}"
            assert task["result"] == repr(f"processed:{event_type}")
        everything = json.dumps(tasks)
        leaks = {
            v for payload in sent.values() for v in personal_values(payload) if v in everything
        }
        assert leaks == set()

    @pytest.fixture
    def flower_only(self, tmp_path, redis_url):
        env = {
            "REDIS_URL": redis_url,
            "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
            "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}",
        }
        port = free_port()
        flower = start(["flower", "--port", str(port)], env, tmp_path / "flower.log")
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return api(base, "/healthcheck", auth=None).text == "OK"
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, timeout=60, interval=0.3)
            yield base, tmp_path
        finally:
            stop(flower)

    def test_pages_and_api_refuse_callers_without_the_password(self, flower_only):
        base, _ = flower_only
        for auth in (None, (USER, "wrong-password"), ("intruder", PASSWORD)):
            assert api(base, "/api/tasks", auth=auth).status_code == 401
            assert api(base, "/", auth=auth).status_code == 401
        assert api(base, "/api/tasks").status_code == 200

    def test_history_is_kept_in_the_data_dir_and_logs_are_json(self, flower_only):
        base, tmp_path = flower_only
        wait_until(lambda: list((tmp_path / "var").glob("flower*")), timeout=30)
        lines = (tmp_path / "flower.log").read_text().splitlines()
        assert lines and all(json.loads(line)["role"] == "flower" for line in lines if line)
        assert PASSWORD not in "\n".join(lines)
