"""`engagehook validate` and `engagehook dead-letters`: invalid payloads are visible, replayable."""

from __future__ import annotations

import json

import httpx
import pytest

from engagehook.cli import main
from handlers.hooks import HookRegistry
from handlers.store import Store
from tests.builders import EXAMPLE_FILES
from tests.builders import body
from tests.builders import envelope
from tests.processes import cli_json
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until
from workers.processing import process


def with_unknown_property(event_id: str) -> dict:
    """A payload strict mode refuses (an unknown key in the closed subject) and tolerant takes."""
    payload = envelope("CREATE", event_id=event_id, appointment_id=f"a-{event_id}")
    payload["data"]["appointment"]["subject"]["newField"] = "added by the sender"
    return payload


class TestValidate:
    def test_valid_files_print_ok_and_exit_0(self, env, monkeypatch, capsys):
        monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", env["ENGAGEHOOK_DATA_DIR"])
        assert main(["validate", *map(str, EXAMPLE_FILES)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines == [f"{path}: ok" for path in EXAMPLE_FILES]

    def test_invalid_file_prints_the_errors_and_exits_1(self, tmp_path, env, monkeypatch, capsys):
        monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", env["ENGAGEHOOK_DATA_DIR"])
        payload = envelope("CREATE")
        payload["data"]["appointment"]["updatedAt"] = "2024-10-01T07:58:12"  # no offset
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(payload))
        assert main(["validate", str(EXAMPLE_FILES[0]), str(bad)]) == 1
        out = capsys.readouterr().out
        assert f"{EXAMPLE_FILES[0]}: ok" in out
        errors = json.loads(out[out.index("[") :])
        assert [e["path"] for e in errors] == ["data.appointment.updatedAt"]


class TestDeadLetterInspection:
    @pytest.fixture
    def filled(self, env, monkeypatch):
        monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", env["ENGAGEHOOK_DATA_DIR"])
        monkeypatch.setenv("VALIDATION_MODE", "strict")
        from core.config import Settings

        settings = Settings.from_env(env)
        settings.ensure_dirs()
        store = Store(settings.store_url)
        store.migrate()
        process(body(with_unknown_property("dl-1")), store, HookRegistry(), mode="strict")
        process(body(envelope("CREATE", event_id="ok-1")), store, HookRegistry(), mode="strict")
        yield store
        store.engine.dispose()

    def test_list_shows_only_dead_letters_with_reason(self, filled, capsys):
        assert main(["dead-letters", "list"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(d["id"], d["reason"]) for d in listed] == [("dl-1", "invalid")]
        assert "rawBody" not in listed[0]

    def test_show_prints_body_and_error_paths(self, filled, capsys):
        assert main(["dead-letters", "show", "dl-1"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["state"] == "dead_lettered"
        assert json.loads(shown["rawBody"])["id"] == "dl-1"
        assert [e["path"] for e in shown["errors"]] == ["data.appointment.subject.newField"]

    def test_show_of_a_processed_event_exits_1(self, filled, capsys):
        assert main(["dead-letters", "show", "ok-1"]) == 1

    def test_replay_of_an_unknown_id_exits_1(self, filled, capsys):
        assert main(["dead-letters", "replay", "nope"]) == 1


@pytest.mark.slow
def test_dead_letter_rejected_by_old_rules_is_recovered_by_replay_after_upgrade(tmp_path):
    """Strict serve dead-letters a payload; after a switch to tolerant, replay applies it."""
    env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"), "VALIDATION_MODE": "strict"}
    payload = with_unknown_property("dl-replay")
    for mode in ("strict", "tolerant"):
        env["VALIDATION_MODE"] = mode
        port = free_port()
        serve = start(["serve", "--port", str(port)], env, tmp_path / f"serve-{mode}.log")
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60)
            if mode == "strict":
                response = httpx.post(
                    f"http://127.0.0.1:{port}/webhooks",
                    content=json.dumps(payload),
                    headers={"Content-Type": "application/json"},
                    timeout=5,
                )
                assert response.status_code == 202
                record = wait_until(
                    lambda: (
                        (r := cli_json(["event", "dl-replay"], env)[1])
                        and r["state"] == "dead_lettered"
                        and r
                    ),
                    timeout=30,
                )
                assert record["reason"] == "invalid"
                assert cli_json(["appointment", "a-dl-replay"], env)[0] == 1
            else:
                code, _ = cli_json(["dead-letters", "replay", "--all"], env)
                assert code == 0
                found = wait_until(
                    lambda: cli_json(["appointment", "a-dl-replay"], env)[1], timeout=30
                )
                assert found["lastEventId"] == "dl-replay"
                assert cli_json(["event", "dl-replay"], env)[1]["state"] == "processed"
                assert cli_json(["dead-letters", "list"], env)[1] == []
        finally:
            stop(serve)
