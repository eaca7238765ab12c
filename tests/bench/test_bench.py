"""The benchmark's own logic: its workload, its reading of wrk and its verdicts (no timings)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from bench import loadgen
from bench import report
from bench.reference_app import create_bare
from bench.support import BenchError
from bench.workload import generate
from workers.validation import parse_event


@pytest.fixture(scope="module")
def workload():
    """A small duplicated, shuffled workload."""
    return generate(events=200, appointments=20, duplicate_share=0.1, seed=3)


class TestWorkload:
    def test_workload_has_the_asked_counts(self, workload):
        assert len(workload.deliveries) == 200
        assert (workload.unique_events, workload.duplicates, workload.appointments) == (180, 20, 20)
        assert len({d.event_id for d in workload.deliveries}) == 180

    def test_duplicates_repeat_their_original_byte_for_byte(self, workload):
        bodies: dict[str, set[str]] = {}
        for delivery in workload.deliveries:
            bodies.setdefault(delivery.event_id, set()).add(delivery.body)
        assert all(len(found) == 1 for found in bodies.values())
        assert sum(Counter(d.event_id for d in workload.deliveries).values()) - 180 == 20

    def test_newest_snapshot_is_the_latest_event_of_each_appointment(self, workload):
        for appointment_id, snapshot in workload.newest.items():
            latest = max(
                (d for d in workload.deliveries if d.appointment_id == appointment_id),
                key=lambda d: d.updated_at,
            )
            assert orjson.loads(latest.body)["data"]["appointment"] == snapshot

    def test_order_is_shuffled_but_reproducible(self, workload):
        again = generate(events=200, appointments=20, duplicate_share=0.1, seed=3)
        assert [d.event_id for d in again.deliveries] == [d.event_id for d in workload.deliveries]
        times = [d.updated_at for d in workload.deliveries]
        assert times != sorted(times)

    def test_every_event_type_in_the_workload_is_valid(self, workload):
        first_of_type = {}
        for delivery in workload.deliveries:
            event_type = orjson.loads(delivery.body)["data"]["eventType"]
            first_of_type.setdefault(event_type, delivery.body)
        assert len(first_of_type) >= 8
        for raw in first_of_type.values():
            parse_event(raw)


class TestWrkOutput:
    LINE = (
        'BENCH_JSON {"requests":1000,"duration_us":2000000,"connect_errors":0,"read_errors":1,'
        '"write_errors":0,"status_errors":3,"timeouts":2,"p50_us":1500,"p90_us":2500,'
        '"p99_us":9000,"p999_us":12000,"mean_us":1700.5,"max_us":15000}'
    )

    def test_summary_line_becomes_rates_and_milliseconds(self):
        result = loadgen.parse("Running 2s test\n" + self.LINE + "\n", target_rps=400)
        assert result.rps == 500.0
        assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
        assert (result.errors, result.non_2xx, result.target_rps) == (3, 3, 400)

    def test_output_without_summary_is_an_error(self):
        with pytest.raises(BenchError, match="no summary"):
            loadgen.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def results(ratio=0.6, unstored=0, p99=4.0, worker_ratio=0.55, checks_ok=True):
    """A results document shaped like bench.run writes it."""
    half = {"rps": 900.0, "p50_ms": 1.0, "p99_ms": p99, "errors": 0}
    row = {
        "rps": 1800.0,
        "rps_runs": [1800.0],
        "p50_ms": 2.0,
        "p99_ms": 6.0,
        "half_rate": half,
        "label": "x",
    }
    run = {
        "events_per_second": 100.0,
        "worker_cpu_us_per_event": 2000,
        "postgres_cpu_us_per_event": 500,
        "peak_rss_mib": [],
    }
    return {
        "environment": {},
        "endpoint": {
            "settings": {
                "gunicorn": "2",
                "load": "wrk",
                "rounds": 1,
                "round_seconds": 5,
                "half_rate_seconds": 8,
                "body_bytes": 8000,
            },
            "rows": [
                {**row, "name": "bare", "ratio_to_bare": 1.0, "answered_but_not_stored": None},
                {
                    **row,
                    "name": "engagehook",
                    "ratio_to_bare": ratio,
                    "answered_but_not_stored": unstored,
                },
            ],
        },
        "workers": {
            "settings": {
                "pool": "prefork",
                "broker": "Redis",
                "store": "PostgreSQL",
                "rounds": 1,
                "noop_events": 10,
                "engagehook_events": 10,
            },
            "noop": {"events_per_second": 200.0, "runs": [run]},
            "engagehook": {"events_per_second": 200.0 * worker_ratio, "runs": [run]},
            "ratio": worker_ratio,
            "cpu_ratio": 0.5,
            "stages": {
                "validate_us": 1,
                "validate_cpu_us": 1,
                "store_us": 1,
                "store_cpu_us": 1,
                "process_us": 1,
                "process_cpu_us": 1,
                "bare_commit_us": 1,
                "samples": 1,
            },
        },
        "validation": {"available": False, "reason": "not in this checkout"},
        "e2e": {
            "settings": {
                "events": 10,
                "unique_events": 9,
                "duplicates": 1,
                "appointments": 2,
                "senders": 2,
                "web_workers": 2,
                "worker_concurrency": 2,
            },
            "drain_seconds": 1.0,
            "events_per_second": 10.0,
            "unique_events_per_second": 9.0,
            "post_seconds": 0.5,
            "ingest_per_second": 20.0,
            "drain_after_last_post_seconds": 0.5,
            "ack_p50_ms": 1.0,
            "ack_p99_ms": 2.0,
            "answers": {"queued": 10},
            "sender_retries": 0,
            "memory": [],
            "checks": {
                "ok": checks_ok,
                "appointments_matching_newest_snapshot": 2,
                "appointments": 2,
                "events_with_one_outcome": 9,
                "expected_events": 9,
                "duplicates_seen": 1,
                "expected_duplicates": 1,
                "deliveries_given_up_by_sender": 0,
                "dead_lettered": 0,
            },
        },
    }


class TestVerdicts:
    @pytest.mark.parametrize(
        ("document", "missed"),
        [
            (results(), []),
            (results(ratio=0.40), [0]),
            (results(unstored=1), [0]),
            (results(p99=12.0), [1]),
            (results(worker_ratio=0.3), [2]),
            (results(checks_ok=False), [3]),
        ],
    )
    def test_each_target_is_judged_on_its_own_numbers(self, document, missed):
        verdicts = [met for _target, _measured, met in report.targets(document)]
        assert [i for i, met in enumerate(verdicts) if not met] == missed

    @pytest.mark.parametrize(
        ("document", "ok"),
        [
            (results(), True),
            (results(worker_ratio=0.1), True),  # a missed target is reported, not a failure
            (results(unstored=2), False),
            (results(checks_ok=False), False),
            ({**results(), "workers": {"error": "worker never came online"}}, False),
        ],
    )
    def test_run_fails_only_when_something_did_not_run_or_check(self, document, ok):
        assert report.all_ran_and_checked(document) is ok

    def test_results_page_names_every_section_and_missing_validation(self):
        page = report.render(results())
        for heading in (
            "## Targets",
            "## Endpoint",
            "## Workers",
            "## Validation",
            "## End to end",
            "## Sizing",
        ):
            assert heading in page
        assert "Not available: not in this checkout" in page


class TestReferenceApp:
    def test_bare_endpoint_answers_202_with_the_id_and_stores_nothing(self):
        client = create_bare().test_client()
        response = client.post("/webhooks", data=b'{"id": "e-1"}', content_type="application/json")
        assert response.status_code == 202
        assert response.json == {"status": "queued", "id": "e-1"}
