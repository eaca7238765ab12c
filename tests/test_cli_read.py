"""The read side of the command line: `engagehook appointment ID`, `event ID`, `migrate`."""

from __future__ import annotations

import json

import pytest

from engagehook.cli import main
from handlers import HANDLERS
from tests.handlers.builders import event
from tests.processes import cli_json


@pytest.fixture
def filled(store, data_dir, monkeypatch):
    """The CLI's environment pointed at a store with one applied CANCEL (e-1 on appt-1)."""
    monkeypatch.setenv("DATABASE_URL", store.url)
    monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", str(data_dir))
    evt = event("CANCEL", event_id="e-1", internalNotes="Bénédicte belt terug")
    store.apply(evt, '{"id": "e-1"}', HANDLERS["CANCEL"])
    return store


class TestAppointment:
    def test_known_appointment_prints_json_and_exits_0(self, filled, capsys):
        assert main(["appointment", "appt-1"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert (found["id"], found["status"], found["lastEventId"]) == (
            "appt-1",
            "CANCELLED",
            "e-1",
        )
        assert found["snapshot"]["internalNotes"] == "Bénédicte belt terug"

    def test_unknown_appointment_exits_1_with_nothing_on_stdout(self, filled, capsys):
        assert main(["appointment", "nope"]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert "no appointment 'nope'" in err


class TestEvent:
    def test_known_event_prints_its_processing_record(self, filled, capsys):
        assert main(["event", "e-1"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert (found["id"], found["state"], found["errors"]) == ("e-1", "processed", [])

    def test_unknown_event_exits_1(self, filled, capsys):
        assert main(["event", "nope"]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert "no event 'nope'" in err


class TestConsoleScript:
    def test_migrate_then_read_in_real_processes(self, tmp_path):
        env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var")}
        assert cli_json(["migrate"], env)[0] == 0
        assert (tmp_path / "var" / "engagehook.sqlite3").exists()
        assert cli_json(["event", "nope"], env) == (1, None)
        assert cli_json(["appointment", "nope"], env) == (1, None)
