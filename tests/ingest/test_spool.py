"""The local spool: durable while the broker is down, drained in order once it is back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ingest.app import create_app
from ingest.queue import EnqueueFailed
from ingest.queue import SpoolingQueue
from ingest.spool import Spool
from ingest.spool import SpoolFull
from tests.builders import body
from tests.builders import envelope
from tests.fakes import SwitchableQueue
from tests.processes import wait_until

IDS = {"event_type": "CREATE", "appointment_id": "appt-1"}


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "spool", max_bytes=1_000_000)


@pytest.fixture
def broker():
    return SwitchableQueue()


@pytest.fixture
def spooling(broker, spool):
    queue = SpoolingQueue(broker, spool, cooldown=60, drain_interval=0.05)
    yield queue
    queue.stop()


def put(spool_or_queue, event_id: str, raw: str | None = None):
    raw = raw if raw is not None else body(envelope(event_id=event_id))
    if isinstance(spool_or_queue, Spool):
        return spool_or_queue.put(raw, event_id=event_id, **IDS)
    return spool_or_queue.enqueue(raw, event_id=event_id, **IDS)


class TestSpool:
    def test_put_keeps_the_body_byte_for_byte_with_its_identifiers(self, spool):
        raw = '{"id": "e-1",  "note": "Zoë \\u00e9 ✓", "n": 1.50}'
        path = put(spool, "e-1", raw)
        payload = spool.read(path)
        assert (payload.body, payload.event_id, payload.event_type, payload.appointment_id) == (
            raw,
            "e-1",
            "CREATE",
            "appt-1",
        )

    def test_pending_lists_payloads_in_the_order_they_were_put(self, spool):
        ids = [f"e-{n}" for n in range(30)]
        for event_id in ids:
            put(spool, event_id)
        assert [spool.read(p).event_id for p in spool.pending()] == ids

    def test_put_leaves_no_temporary_file_behind(self, spool):
        put(spool, "e-1")
        assert sorted(os.listdir(spool.directory)) == [spool.pending()[0].name]

    def test_put_beyond_the_byte_bound_raises_spool_full(self, tmp_path):
        spool = Spool(tmp_path / "spool", max_bytes=3_000)
        raw = json.dumps({"id": "x", "pad": "p" * 1_000})
        put(spool, "e-1", raw)
        put(spool, "e-2", raw)
        with pytest.raises(SpoolFull):
            put(spool, "e-3", raw)
        assert len(spool) == 2

    def test_removing_a_payload_makes_room_again(self, tmp_path):
        spool = Spool(tmp_path / "spool", max_bytes=2_500)

        def raw(event_id: str) -> str:
            return json.dumps({"id": event_id, "pad": "p" * 1_000})

        first = put(spool, "e-1", raw("e-1"))
        put(spool, "e-2", raw("e-2"))
        spool.remove(first)
        put(spool, "e-3", raw("e-3"))
        assert [spool.read(p).event_id for p in spool.pending()] == ["e-2", "e-3"]

    def test_unwritable_directory_raises_os_error(self, tmp_path):
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        with pytest.raises(OSError):
            put(Spool(blocker / "spool", max_bytes=1_000), "e-1")

    def test_stale_temporary_files_are_removed_fresh_ones_kept(self, spool):
        spool.directory.mkdir(parents=True)
        stale = spool.directory / ".tmp-old"
        fresh = spool.directory / ".tmp-new"
        stale.write_text("half")
        fresh.write_text("half")
        os.utime(stale, (0, 0))
        assert spool.remove_stale_temporaries() == 1
        assert not stale.exists() and fresh.exists()

    def test_drain_lock_is_held_by_one_process_at_a_time(self, spool):
        holder = (
            "import sys, time; from ingest.spool import Spool; from pathlib import Path;"
            "s = Spool(Path(sys.argv[1]), 1000)\n"
            "with s.drain_lock() as held:\n print(held, flush=True); sys.stdin.readline()"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", holder, str(spool.directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "True"
            with spool.drain_lock() as held:
                assert held is False
        finally:
            child.communicate("\n", timeout=10)
        with spool.drain_lock() as held:
            assert held is True  # released when its holder ended


class TestSpoolingQueue:
    def test_broker_up_queues_and_spools_nothing(self, spooling, broker, spool):
        assert put(spooling, "e-1") == "queued"
        assert [ids[0] for ids in broker.identifiers] == ["e-1"]
        assert len(spool) == 0

    def test_broker_down_spools_the_payload(self, spooling, broker, spool):
        broker.down = True
        raw = body(envelope(event_id="e-1"))
        assert put(spooling, "e-1", raw) == "spooled"
        assert [spool.read(p).body for p in spool.pending()] == [raw]

    def test_after_a_failure_the_broker_is_not_tried_again_during_the_cooldown(
        self, spooling, broker
    ):
        broker.down = True
        for n in range(5):
            assert put(spooling, f"e-{n}") == "spooled"
        assert broker.attempts == 1  # each further request is spared the publish timeout

    def test_broker_down_and_spool_full_raises_enqueue_failed(self, broker, tmp_path):
        queue = SpoolingQueue(broker, Spool(tmp_path / "spool", max_bytes=10))
        broker.down = True
        with pytest.raises(EnqueueFailed):
            put(queue, "e-1")
        queue.stop()

    def test_drain_publishes_in_order_and_deletes_only_what_the_broker_took(self, broker, spool):
        queue = SpoolingQueue(broker, spool, cooldown=0)
        for n in range(5):
            put(spool, f"e-{n}")
        original = broker.enqueue

        def take_three(raw, **ids):
            if len(broker.bodies) == 3:
                raise EnqueueFailed("broker went down again")
            return original(raw, **ids)

        broker.enqueue = take_three
        assert queue.drain_once() == 3
        assert [i[0] for i in broker.identifiers] == ["e-0", "e-1", "e-2"]
        assert [spool.read(p).event_id for p in spool.pending()] == ["e-3", "e-4"]
        broker.enqueue = original
        assert queue.drain_once() == 2
        assert [i[0] for i in broker.identifiers] == [f"e-{n}" for n in range(5)]
        assert len(spool) == 0

    def test_drainer_empties_the_spool_once_the_broker_is_back(self, broker, spool):
        queue = SpoolingQueue(broker, spool, cooldown=0.1, drain_interval=0.05)
        broker.down = True
        ids = [f"e-{n}" for n in range(20)]
        for event_id in ids:
            assert put(queue, event_id) == "spooled"
        broker.down = False
        wait_until(lambda: len(spool) == 0, timeout=10)
        queue.stop()
        assert [i[0] for i in broker.identifiers] == ids

    def test_a_new_process_drains_what_a_previous_one_spooled(self, broker, spool):
        for n in range(3):
            put(spool, f"e-{n}")
        restarted = SpoolingQueue(broker, Spool(spool.directory, 1_000_000), drain_interval=0.05)
        restarted.start()
        wait_until(lambda: len(broker.bodies) == 3, timeout=10)
        restarted.stop()
        assert len(spool) == 0

    def test_drain_skips_when_another_process_holds_the_lock(self, broker, spool):
        put(spool, "e-1")
        queue = SpoolingQueue(broker, spool)
        with Spool(spool.directory, 1_000).drain_lock() as held:
            assert held
            assert queue.drain_once() == 0
        assert broker.bodies == []

    def test_unreadable_file_is_set_aside_and_the_rest_drained(self, broker, spool):
        put(spool, "e-1")
        spool.directory.joinpath("00000000000000000000-0000001-000001.json").write_bytes(b"junk")
        queue = SpoolingQueue(broker, spool)
        assert queue.drain_once() == 1
        assert [i[0] for i in broker.identifiers] == ["e-1"]
        assert os.listdir(spool.directory / "corrupt") == [
            "00000000000000000000-0000001-000001.json"
        ]

    def test_ping_reports_the_broker(self, spooling, broker):
        broker.down = True
        with pytest.raises(ConnectionError):
            spooling.ping()


class TestEndpointWithSpool:
    @pytest.fixture
    def app(self, env, spooling):
        return create_app(env, queue=spooling)

    def test_broker_down_still_answers_202_and_says_spooled(self, client, broker, spool):
        broker.down = True
        response = client.post(
            "/webhooks", data=body(envelope(event_id="e-1")), content_type="application/json"
        )
        assert response.status_code == 202
        assert response.json == {"status": "queued", "id": "e-1", "stored": "spooled"}
        assert [spool.read(p).event_id for p in spool.pending()] == ["e-1"]

    def test_broker_down_and_spool_full_answers_503_with_retry_after(self, env, broker, tmp_path):
        queue = SpoolingQueue(broker, Spool(tmp_path / "full", max_bytes=10))
        broker.down = True
        response = (
            create_app(env, queue=queue)
            .test_client()
            .post("/webhooks", data=body(envelope(event_id="e-1")), content_type="application/json")
        )
        queue.stop()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert response.json["error"] == "unavailable"

    def test_app_without_an_injected_queue_spools_under_the_data_dir(self, data_dir):
        app = create_app({"ENGAGEHOOK_DATA_DIR": str(data_dir)})
        queue = app.extensions["engagehook.queue"]
        assert isinstance(queue, SpoolingQueue)
        assert queue.spool.directory == data_dir / "spool"


class TestDamagedEntries:
    """Issue 14.12: a damaged entry is set aside once and reported; it never stops the others."""

    def test_a_directory_named_like_a_payload_does_not_stop_the_drain(self, broker, spool):
        put(spool, "e-1")
        spool.directory.joinpath("00000000000000000000-0000001-000001.json").mkdir()
        put(spool, "e-2")
        queue = SpoolingQueue(broker, spool)
        assert queue.drain_once() == 2
        assert [i[0] for i in broker.identifiers] == ["e-1", "e-2"]
        assert os.listdir(spool.directory / "corrupt") == [
            "00000000000000000000-0000001-000001.json"
        ]
        assert queue.drain_once() == 0  # set aside once: nothing is tried again

    def test_a_body_whose_id_differs_from_its_header_is_set_aside_not_published(
        self, broker, spool, caplog
    ):
        # The in-flight entry is keyed by the header's id: a body the worker records under
        # another id would leave that entry behind, republished on every sweep forever.
        path = put(spool, "e-1", body(envelope(event_id="e-other")))
        put(spool, "e-2")
        queue = SpoolingQueue(broker, spool)
        with caplog.at_level("ERROR", logger="ingest.queue"):
            assert queue.drain_once() == 1
        assert [i[0] for i in broker.identifiers] == ["e-2"]
        assert os.listdir(spool.directory / "corrupt") == [path.name]
        assert path.name in caplog.text
        assert "e-other" not in caplog.text  # the file name, not what the payload says

    @pytest.mark.parametrize("raw", ["not json at all", "[1, 2]", '{"no": "id"}'])
    def test_a_body_that_is_no_webhook_envelope_is_set_aside(self, broker, spool, raw):
        path = put(spool, "e-1", raw)
        queue = SpoolingQueue(broker, spool)
        assert queue.drain_once() == 0
        assert broker.identifiers == []
        assert os.listdir(spool.directory / "corrupt") == [path.name]

    def test_an_entry_that_cannot_even_be_moved_is_skipped_and_reported_once(
        self, broker, spool, monkeypatch, caplog
    ):
        put(spool, "e-1")
        stuck = spool.directory / "00000000000000000000-0000001-000001.json"
        stuck.write_bytes(b"junk")

        def refuse(path):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(spool, "set_aside", refuse)
        queue = SpoolingQueue(broker, spool)
        with caplog.at_level("ERROR", logger="ingest.queue"):
            assert queue.drain_once() == 1
            put(spool, "e-2")
            assert queue.drain_once() == 1
        assert [i[0] for i in broker.identifiers] == ["e-1", "e-2"]
        assert sum(stuck.name in r.getMessage() for r in caplog.records) == 1

    def test_the_metric_counts_what_was_set_aside(self, broker, spool, tmp_path):
        from core.config import Settings
        from ingest.metrics import StateCollector

        spool.directory.mkdir(parents=True, exist_ok=True)
        spool.directory.joinpath("00000000000000000000-0000001-000001.json").mkdir()
        spool.directory.joinpath("00000000000000000000-0000001-000002.json").write_bytes(b"x")
        SpoolingQueue(broker, spool).drain_once()
        settings = Settings(data_dir=tmp_path)
        found = {
            m.name: m.samples[0].value
            for m in StateCollector(settings)._spool({})
            if m.name == "engagehook_spool_corrupt"
        }
        assert found == {"engagehook_spool_corrupt": 2}
