"""Prometheus metrics: what an operator watches to know deliveries are flowing.

Every metric is named ``hotspot_webhooks_*`` and labelled only by bounded values (an event
type, an outcome, a component), never by a URL, a webhook id or an event id: a label value is
a time series, and ids would make one per webhook.

Several processes may serve one set of metrics: ``worker --processes N`` runs N dispatchers
under one supervisor, and an API may run under several server processes. prometheus-client's
multiprocess mode covers them: with ``PROMETHEUS_MULTIPROC_DIR`` set before a process starts,
it writes its values to files in that directory, and whoever serves ``/metrics`` reads them all
(``render``). The supervisor makes a fresh directory per tree and forgets a dead child's live
gauges (``forget_process``); counters of dead children stay counted, as Prometheus expects.

The hot path counts in plain integers (``Outcomes``) and hands them to prometheus-client in
batches, when the recorder writes its batch: a delivery costs a dict increment here.
"""

from __future__ import annotations

import hmac
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

EVENTS_ACCEPTED = Counter(
    "hotspot_webhooks_events_accepted",
    "Events stored with their deliveries (a repeated event id is not counted again).",
    ["event_type"],
)
DELIVERIES = Counter(
    "hotspot_webhooks_deliveries",
    "Delivery attempts by what they made of the delivery: succeeded, retrying (to be tried "
    "again) or failed (retries exhausted, 410 Gone, or its webhook disabled).",
    ["event_type", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "hotspot_webhooks_attempt_duration_seconds",
    "Time of one delivery attempt, from sending to the receiver's answer (or the error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
HELD = Counter(
    "hotspot_webhooks_deliveries_held",
    "Claimed deliveries handed back unsent because their endpoint's circuit is open.",
)
DISABLED_BY_RECEIVER = Counter(
    "hotspot_webhooks_webhooks_disabled",
    "Webhooks disabled because their receiver answered 410 Gone.",
)
CIRCUITS_OPENED = Counter(
    "hotspot_webhooks_circuits_opened",
    "Endpoint circuits that opened (endpoints that could not be reached).",
)
OPEN_CIRCUITS = Gauge(
    "hotspot_webhooks_open_circuits",
    "Endpoint circuits open or probing now, summed over the dispatchers (each has its own).",
    multiprocess_mode="livesum",
)
PASS_SECONDS = Histogram(
    "hotspot_webhooks_pass_duration_seconds",
    "One dispatcher pass: claiming everything due while there is room (worker --once: the "
    "whole pass, up to every outcome recorded).",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
DATABASE_ERRORS = Counter(
    "hotspot_webhooks_database_errors",
    "Times the database could not be reached (DatabaseUnavailable), by the component that "
    "met it: claim, record, register, heartbeat, mark, defer, api.",
    ["component"],
)
DISPATCHERS = Gauge(
    "hotspot_webhooks_dispatchers",
    "Dispatchers running (registered as workers) in the processes these metrics cover.",
    multiprocess_mode="livesum",
)
# measured from the database by a dispatcher (``delivery/backlog.py``): the same for every
# process, so the most recent measurement of a live process is the value
DUE = Gauge(
    "hotspot_webhooks_due_deliveries",
    "Deliveries due now and waiting for a worker (not counting those held for a probe).",
    multiprocess_mode="livemostrecent",
)
OLDEST_DUE_AGE = Gauge(
    "hotspot_webhooks_oldest_due_age_seconds",
    "How long the oldest due delivery has waited past its due time (0 when none is due).",
    multiprocess_mode="livemostrecent",
)
DISABLED_WEBHOOKS = Gauge(
    "hotspot_webhooks_disabled_webhooks",
    "Webhooks disabled now (by a 410 Gone, or by hand).",
    multiprocess_mode="livemostrecent",
)
BACKLOG_MEASURED = Gauge(
    "hotspot_webhooks_backlog_measured_timestamp_seconds",
    "When the due backlog was last measured (unix time): 0 means this process does not.",
    multiprocess_mode="livemax",
)

_exported = False


def record_events_accepted(event_types: Iterable[str]) -> None:
    """Count newly stored events, one type per event (the service calls this once per emit)."""
    counts: dict[str, int] = {}
    for event_type in event_types:
        counts[event_type] = counts.get(event_type, 0) + 1
    for event_type, count in counts.items():
        EVENTS_ACCEPTED.labels(event_type).inc(count)


def record_database_error(component: str) -> None:
    DATABASE_ERRORS.labels(component).inc()


class Outcomes:
    """Attempt outcomes and durations, counted in plain numbers on the hot path and handed to
    prometheus-client in a batch by ``publish`` (a labelled increment costs a lock, and in
    multiprocess mode a write to a mapped file, so once per batch, not per delivery)."""

    __slots__ = ("_counts", "_seconds", "held")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._seconds: list[float] = []
        self.held = 0  # handed back unsent by an open circuit

    def add(self, event_type: str, outcome: str, seconds: float | None) -> None:
        key = (event_type, outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        if seconds is not None:
            self._seconds.append(seconds)

    def publish(self) -> None:
        counts, self._counts = self._counts, {}
        seconds, self._seconds = self._seconds, []
        held, self.held = self.held, 0
        if held:
            HELD.inc(held)
        for (event_type, outcome), count in counts.items():
            DELIVERIES.labels(event_type, outcome).inc(count)
        for each in seconds:
            ATTEMPT_SECONDS.observe(each)


# ---- exposition ------------------------------------------------------------------------------


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROC_DIR) or None


def exported() -> bool:
    """Does anyone read this process's metrics? (A dispatcher then measures the backlog.)"""
    return _exported or multiprocess_directory() is not None


def mark_exported() -> None:
    global _exported
    _exported = True


def render(directory: str | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type: every process writing to ``directory`` (or
    ``PROMETHEUS_MULTIPROC_DIR``) aggregated, else this process's metrics."""
    directory = directory or multiprocess_directory()
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def token_matches(authorization: str | None, token: str | None) -> bool:
    """With ``METRICS_TOKEN`` set, a scrape must say ``Authorization: Bearer <it>``."""
    if token is None:
        return True
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((authorization or "").encode(), expected)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


def serve(
    host: str, port: int, *, token: str | None = None, directory: str | None = None
) -> Callable[[], None]:
    """Serve ``GET /metrics`` on ``host:port`` from a thread (a worker has no HTTP server of
    its own); return what stops it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([b"not found: metrics are at /metrics\n"])
        if not token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return iter([b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"])
        body, content_type = render(directory)
        start_response("200 OK", [("Content-Type", content_type)])
        return iter([body])

    server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    mark_exported()
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


def new_multiprocess_directory() -> str:
    """A fresh, private directory for one supervisor tree's metric files (stale files of an
    earlier tree would be counted again)."""
    parent = multiprocess_directory()
    return tempfile.mkdtemp(prefix="hotspot-webhooks-metrics-", dir=parent)


def forget_process(pid: int, directory: str) -> None:
    """A child died: its live gauges no longer count (its counters do)."""
    _multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove_multiprocess_directory(directory: str) -> None:
    shutil.rmtree(Path(directory), ignore_errors=True)
