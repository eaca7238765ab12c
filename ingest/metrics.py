"""GET /metrics and the webhook counters, correct under several gunicorn workers.

Counters and histograms are written by each gunicorn worker; with PROMETHEUS_MULTIPROC_DIR set
(``engagehook web`` and ``serve`` set it) the scrape sums the files of every worker, so the
answer does not depend on which worker the load balancer picked. Queue depth, spool depth and
dead-letter counts are read when scraped, each with a short timeout; a source that does not
answer is reported as ``engagehook_source_up{source=...} 0`` and never fails the scrape.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from core import logs
from core.build import build_info
from core.config import Settings
from core.envelope import peek
from workers.broker_reads import QUEUES
from workers.broker_reads import BrokerReader

EXTENSION_KEY = "engagehook.metrics"
WEBHOOKS_PATH = "/webhooks"
# A scrape waits at most this long for each source, so it stays well inside scrape timeouts.
SOURCE_TIMEOUT_SECONDS = 0.5
# Ack latency of POST /webhooks: the sender gives up after 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")

logger = logging.getLogger(__name__)


class IngestMetrics:
    """The counters one ingest process writes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "engagehook_webhooks_received",
            "Webhook deliveries answered, by outcome (queued, spooled, duplicate, rejected) "
            "and, for rejections, the error code.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "engagehook_webhook_ack_seconds",
            "Time from request to answer on POST /webhooks.",
            ["outcome"],
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, outcome: str, reason: str, elapsed: float | None) -> None:
        """Count one answer and its latency; label children are looked up once per pair."""
        children = self._children.get((outcome, reason))
        if children is None:
            # Reasons are bounded codes (see classify), so this cache stays small.
            children = (
                self.received.labels(outcome=outcome, reason=reason),
                self.ack_seconds.labels(outcome=outcome),
            )
            self._children[(outcome, reason)] = children
        received, ack_seconds = children
        received.inc()
        if elapsed is not None:
            ack_seconds.observe(elapsed)


def multiprocess_dir() -> str | None:
    """The directory every process of this role writes its samples to, if any."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def classify(status_code: int, document: Any) -> tuple[str, str]:
    """The (outcome, reason) labels of one answer to POST /webhooks."""
    document = document if isinstance(document, dict) else {}
    if status_code < 400:
        if document.get("status") == "duplicate":
            return "duplicate", ""
        if document.get("stored") == "spooled" or document.get("status") == "spooled":
            return "spooled", ""
        return "queued", ""
    error = document.get("error")
    # The reason is a label: only short codes, so a request cannot mint new series.
    reason = error if isinstance(error, str) and _REASON.fullmatch(error) else f"http_{status_code}"
    return "rejected", reason


def note_envelope(envelope: dict[str, Any]) -> None:
    """Remember the identifiers of the webhook being handled, for its log line and metrics."""
    ids = peek(envelope)
    g.engagehook_webhook = {
        "event_id": logs.identifier(ids.event_id),
        "correlation_id": logs.identifier(ids.correlation_id),
        "event_type": logs.identifier(ids.event_type),
        "appointment_id": logs.identifier(ids.appointment_id),
    }


def note_answer(document: dict[str, Any]) -> None:
    """Remember the JSON document being answered, so counting it needs no second parse."""
    g.engagehook_answer = document


def _start_timer() -> None:
    g.engagehook_started = time.perf_counter()


def _answered_document(response: Response) -> Any:
    """What the answer says: as noted by whoever built it, else parsed back from the body."""
    document = g.get("engagehook_answer")
    return document if document is not None else response.get_json(silent=True)


def _observe(response: Response) -> Response:
    if request.path != WEBHOOKS_PATH:
        return response
    metrics: IngestMetrics = current_app.extensions[EXTENSION_KEY]["metrics"]
    outcome, reason = classify(response.status_code, _answered_document(response))
    started = g.get("engagehook_started")
    elapsed = time.perf_counter() - started if started is not None else None
    metrics.observe(outcome, reason, elapsed)
    _log_webhook(response, outcome, reason, elapsed)
    return response


def _log_webhook(response: Response, outcome: str, reason: str, elapsed: float | None) -> None:
    """The one log line of a webhook request (gunicorn writes no access line for it)."""
    level = logging.INFO if outcome != "rejected" else logging.WARNING
    logger.log(
        level,
        "webhook %s",
        outcome,
        extra={
            **(g.get("engagehook_webhook") or {}),
            "outcome": outcome,
            "reason": reason or None,
            "http_method": request.method,
            "path": WEBHOOKS_PATH,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2) if elapsed is not None else None,
        },
    )


def metrics_view() -> Response:
    """The Prometheus text exposition of this role, summed over its processes."""
    state = current_app.extensions[EXTENSION_KEY]
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(state["state"])
    else:
        registry = state["registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask, settings: Settings) -> None:
    """Count every answer of POST /webhooks and serve GET /metrics."""
    registry = CollectorRegistry(auto_describe=True)
    collector = StateCollector(settings)
    registry.register(collector)
    app.extensions[EXTENSION_KEY] = {
        "registry": registry,
        "metrics": IngestMetrics(registry),
        "state": collector,
    }
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


# -- state read at scrape time ------------------------------------------------------------------


class StateCollector:
    """Queue depth, spool depth and dead letters, read fresh on every scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = BrokerReader(
            embedded=settings.embedded,
            broker_url=settings.broker_url,
            redis_url=settings.redis_url,
            timeout=SOURCE_TIMEOUT_SECONDS,
        )
        self._store_probe: Any = None  # handlers.reads.Store, imported on first use

    def describe(self) -> Iterable[Any]:
        # Declaring no fixed metrics keeps registration from running a scrape.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        oldest: dict[str, float | None] = {}  # per scrape: scrapes may run concurrently
        up = GaugeMetricFamily(
            "engagehook_source_up",
            "1 when the source of the gauges below answered this scrape.",
            labels=["source"],
        )
        for source, read in (
            ("broker", partial(self._broker, oldest)),
            ("spool", partial(self._spool, oldest)),
            ("store", self._store),
        ):
            try:
                families = list(read())
            except Exception as exc:  # noqa: BLE001 - a scrape must never fail
                logger.warning("metrics source %s unavailable: %s", source, exc.__class__.__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up
        yield _oldest_pending(oldest)
        yield build_info("web")

    # broker ------------------------------------------------------------------------------------

    def _broker(self, oldest: dict[str, float | None]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "engagehook_queue_depth", "Messages waiting in the broker, per queue.", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "engagehook_queue_unacked",
            "Messages delivered to a worker and not yet acknowledged (running, or retries "
            "waiting for their countdown).",
        )
        waiting, held = self.broker.queue_depths()
        for queue in QUEUES:
            depth.add_metric([queue], waiting.get(queue, 0))
        unacked.add_metric([], held)
        yield depth
        yield unacked
        oldest["broker"] = self.broker.oldest_since()

    # spool -------------------------------------------------------------------------------------

    def _spool(self, oldest: dict[str, float | None]) -> Iterator[GaugeMetricFamily]:
        from ingest.spool import CORRUPT_DIR
        from ingest.spool import Spool

        spool = Spool(self.settings.spool_dir, self.settings.spool_max_bytes)
        yield GaugeMetricFamily(
            "engagehook_spool_depth",
            "Payloads acknowledged while the broker was down, waiting in the local spool.",
            value=len(spool),
        )
        yield GaugeMetricFamily(
            "engagehook_spool_bytes",
            "Bytes the waiting spooled payloads take.",
            value=spool.usage(),
        )
        yield GaugeMetricFamily(
            "engagehook_spool_limit_bytes",
            "ENGAGEHOOK_SPOOL_MAX_BYTES: beyond it ingest answers 503.",
            value=self.settings.spool_max_bytes,
        )
        yield GaugeMetricFamily(
            "engagehook_spool_corrupt",
            "Spool files that could not be read back, set aside for a human.",
            value=_count_files(self.settings.spool_dir / CORRUPT_DIR),
        )
        oldest["spool"] = spool.oldest_arrival()

    # store -------------------------------------------------------------------------------------

    def _store(self) -> Iterator[GaugeMetricFamily]:
        from handlers.reads import dead_letter_counts

        counts = dead_letter_counts(self._probe_store())
        family = GaugeMetricFamily(
            "engagehook_dead_letters",
            "Dead-lettered records in the store: events (invalid or gave up), payloads of an "
            "unsupported entity, and hook runs.",
            labels=["kind"],
        )
        for kind in ("event", "unsupported_entity", "hook"):
            family.add_metric([kind], counts[kind])
        yield family

    def _probe_store(self) -> Any:
        if self._store_probe is None:
            from handlers.reads import open_probe_store

            self._store_probe = open_probe_store(self.settings.store_url, SOURCE_TIMEOUT_SECONDS)
        return self._store_probe


def _oldest_pending(since: dict[str, float | None]) -> GaugeMetricFamily:
    """One family for every source that answered (a family may appear once per scrape)."""
    family = GaugeMetricFamily(
        "engagehook_oldest_pending_seconds",
        "Age of the oldest acknowledged webhook not yet processed, per source (broker, spool); "
        "0 when none waits.",
        labels=["source"],
    )
    now = time.time()
    for source, at in since.items():
        family.add_metric([source], max(0.0, now - at) if at is not None else 0.0)
    return family


def _count_files(directory: Path) -> int:
    try:
        # Every entry: a damaged spool entry set aside may be a directory.
        return sum(1 for _entry in os.scandir(directory))
    except FileNotFoundError:
        return 0
