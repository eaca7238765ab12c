"""`engagehook events list`, `dead-letters list/replay` filters and `hooks list/replay`."""

from __future__ import annotations

import json

import pytest

from core.config import Settings
from engagehook.cli import main
from handlers import HANDLERS
from handlers.store import Store
from tests.handlers.builders import dead_letter_hook_run
from tests.handlers.builders import event


@pytest.fixture
def store(env, monkeypatch):
    """An embedded-mode data dir with two applied events, a dead hook run and two dead letters."""
    monkeypatch.setenv("ENGAGEHOOK_DATA_DIR", env["ENGAGEHOOK_DATA_DIR"])
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings.from_env(env)
    settings.ensure_dirs()
    store = Store(settings.store_url)
    store.migrate()
    store.apply(event("CREATE", event_id="ok-1", appointment_id="ap-1"), "{}", HANDLERS["CREATE"])
    result = store.apply(
        event("CANCEL", event_id="ok-2", appointment_id="ap-2", minutes=1),
        "{}",
        HANDLERS["CANCEL"],
        hook_names=["crm"],
    )
    dead_letter_hook_run(store, result.hook_run_ids[0])
    for event_id, reason in [("bad-1", "invalid"), ("bad-2", "unsupported entity")]:
        store.dead_letter(
            event_id=event_id, raw_body="{}", reason=reason, errors=[], event_type="CREATE"
        )
    yield store
    store.engine.dispose()


def printed(capsys):
    return json.loads(capsys.readouterr().out)


def test_events_list_filters_by_state_type_and_appointment(store, capsys):
    assert main(["events", "list", "--state", "processed", "--appointment", "ap-2"]) == 0
    assert [e["id"] for e in printed(capsys)] == ["ok-2"]
    assert main(["events", "list", "--type", "CREATE"]) == 0
    assert [e["id"] for e in printed(capsys)] == ["bad-2", "bad-1", "ok-1"]


def test_events_list_pages_with_a_cursor_named_on_stderr(store, capsys):
    assert main(["events", "list", "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 3
    cursor = captured.err.split("--cursor ")[1].strip()
    assert main(["events", "list", "--limit", "3", "--cursor", cursor]) == 0
    assert [e["id"] for e in printed(capsys)] == ["ok-1"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["events", "list", "--state", "lost"], "--state"),
        (["events", "list", "--since", "tuesday"], "--since"),
        (["events", "list", "--limit", "0"], "--limit"),
        (["dead-letters", "list", "--until", "2024-99-01"], "--until"),
        (["hooks", "list", "--state", "failed"], "--state"),
    ],
)
def test_bad_options_exit_with_what_to_send(store, argv, named):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert str(refused.value).startswith(f"engagehook: {named}:")


def test_dead_letters_list_by_reason(store, capsys):
    assert main(["dead-letters", "list", "--reason", "entity", "--since", "7d"]) == 0
    assert [d["id"] for d in printed(capsys)] == ["bad-2"]


def test_dead_letters_dry_run_lists_and_changes_nothing(store, capsys):
    assert main(["dead-letters", "replay", "--all", "--reason", "invalid", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == ["bad-1: would be replayed"]
    assert store.get_event("bad-1")["state"] == "dead_lettered"


def test_dead_letters_replay_of_several_ids(store, capsys):
    assert main(["dead-letters", "replay", "bad-1", "bad-2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["bad-1: replayed", "bad-2: replayed"]
    assert store.get_event("bad-2")["state"] == "queued"


def test_dead_letters_replay_needs_ids_or_all(store):
    with pytest.raises(SystemExit, match="--all"):
        main(["dead-letters", "replay"])


def test_hooks_list_and_replay(store, capsys):
    assert main(["hooks", "list", "--state", "dead_lettered"]) == 0
    runs = printed(capsys)
    assert [(r["eventId"], r["lastError"]) for r in runs] == [("ok-2", "CRM said 500")]
    assert main(["hooks", "replay", "--all-dead", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{runs[0]['id']}: would be replayed"]
    assert main(["hooks", "replay", str(runs[0]["id"])]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{runs[0]['id']}: re-run"]
    assert main(["hooks", "list", "--state", "dead_lettered"]) == 0
    assert printed(capsys) == []
    assert main(["hooks", "replay", str(runs[0]["id"])]) == 1
