"""Prometheus metrics, scraped over HTTP and read by prometheus-client's own parser: each
metric moves when its event happens, every label value is bounded (an event type, an outcome,
a component: never a URL or an id), and ``worker --processes 2 --metrics-port P`` adds up both
of its children, forgetting a killed one's live gauges."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotspot_webhooks import catalog, metrics
from hotspot_webhooks.custom_types import NAME_PATTERN
from hotspot_webhooks.service import Service
from tests.live_api import LiveAPI
from tests.postgres import POSTGRES_SECRET_KEY, admin_sql, terminate_connections
from tests.receivers import PythonReceiver, free_port

BACKENDS = ("sqlite", "postgresql")
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
OUTCOMES = {"succeeded", "retrying", "failed"}
COMPONENTS = {"claim", "record", "register", "heartbeat", "mark", "defer", "api"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels, through prometheus-client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that carry ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def assert_bounded_labels(samples: Samples, secrets: list[str]) -> None:
    """Our metrics are labelled by event type, outcome or component (and ``le``), with values
    from those small sets (an event type: a built-in, or one the admin registered, which has
    a registered type's name); no label anywhere holds a URL or one of the ids handed out."""
    allowed = {
        "event_type": set(catalog.EVENT_TYPES),
        "outcome": OUTCOMES,
        "component": COMPONENTS,
    }
    for name, labels in samples:
        for label, value in labels:
            assert "://" not in value and "127.0.0.1" not in value, (name, label, value)
            assert not any(secret in value for secret in secrets), (name, label, value)
            if name.startswith("hotspot_webhooks_") and label != "le":
                registered = label == "event_type" and re.fullmatch(NAME_PATTERN, value)
                assert value in allowed[label] or registered, (name, label, value)


async def scrape(url: str, **headers: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 30, what: str = "the condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached within {within} s")
        await asyncio.sleep(0.05)


async def test_metrics_move_with_deliveries_and_hold_no_id_or_url(
    make_api: Callable[..., Awaitable[LiveAPI]],
) -> None:
    ok = await PythonReceiver().start()
    erroring = await PythonReceiver(respond=lambda n: 500).start()
    gone = await PythonReceiver(respond=lambda n: 410).start()
    refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
    api = await make_api(
        interval=0.1, max_retries=1, heartbeat=0.2, worker_timeout=1, circuit_threshold=2
    )
    try:
        before = await scrape(f"{api.url}/metrics")
        token = await api.operator_at("loc-1")
        hooks = [await api.webhook(token, "loc-1", r.url) for r in (ok, erroring, gone)]
        hooks.append(await api.webhook(token, "loc-1", refused))
        emit = {"type": EVENT, "location_id": "loc-1", "data": SAMPLE}
        events = [await api.ok("POST", "/v1/events", token, json=emit) for _ in range(3)]

        async def settled() -> bool:
            now = await scrape(f"{api.url}/metrics")
            moved = {
                o: total(now, "hotspot_webhooks_deliveries_total", outcome=o)
                - total(before, "hotspot_webhooks_deliveries_total", outcome=o)
                for o in OUTCOMES
            }
            # ok: 3 succeeded; 500: 3 retrying then 3 failed; 410: 1 failed (the webhook is
            # disabled by it), then 2 failed unsent; the refused endpoint: its circuit opens
            return (
                moved["succeeded"] >= 3
                and moved["failed"] >= 6
                and moved["retrying"] >= 3
                and total(now, "hotspot_webhooks_disabled_webhooks") >= 1
                and total(now, "hotspot_webhooks_open_circuits") >= 1
            )

        await eventually(settled, within=20)
        after = await scrape(f"{api.url}/metrics")
    finally:
        await ok.stop()
        await erroring.stop()
        await gone.stop()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("hotspot_webhooks_deliveries_total", event_type=EVENT, outcome="succeeded") >= 3
    assert moved("hotspot_webhooks_attempt_duration_seconds_count") >= 3 + 6 + 1
    assert moved("hotspot_webhooks_attempt_duration_seconds_sum") > 0
    assert moved("hotspot_webhooks_webhooks_disabled_total") >= 1  # by the 410
    assert moved("hotspot_webhooks_circuits_opened_total") >= 1
    assert moved("hotspot_webhooks_pass_duration_seconds_count") >= 1
    assert total(after, "hotspot_webhooks_dispatchers") >= 1
    assert total(after, "hotspot_webhooks_backlog_measured_timestamp_seconds") > 0
    assert ("hotspot_webhooks_due_deliveries", frozenset()) in after
    assert ("hotspot_webhooks_oldest_due_age_seconds", frozenset()) in after
    ids = [h["id"] for h in hooks] + [e["id"] for e in events] + [h["api_key"] for h in hooks]
    deliveries = await api.ok("GET", "/v1/deliveries?limit=100", token)
    ids += [d["id"] for d in deliveries["data"]]
    assert_bounded_labels(after, [*ids, token])


async def test_accepted_events_are_counted_by_type(
    make_api: Callable[..., Awaitable[LiveAPI]],
) -> None:
    api = await make_api(dispatch=False)
    token = await api.operator_at("loc-1")
    before = await scrape(f"{api.url}/metrics")
    body = {"type": EVENT, "location_id": "loc-1", "data": SAMPLE, "id": "evt-once"}
    for _ in range(2):  # the same id twice: one event
        await api.ok("POST", "/v1/events", token, json=body)
    after = await scrape(f"{api.url}/metrics")
    name = "hotspot_webhooks_events_accepted_total"
    assert total(after, name, event_type=EVENT) - total(before, name, event_type=EVENT) == 1


async def test_metrics_token_guards_the_endpoint_when_set(
    make_api: Callable[..., Awaitable[LiveAPI]],
) -> None:
    api = await make_api(dispatch=False, metrics_token="scrape-me-please")
    async with httpx.AsyncClient(timeout=10) as client:
        refused = await client.get(f"{api.url}/metrics")
        wrong = await client.get(f"{api.url}/metrics", headers={"Authorization": "Bearer no"})
    assert refused.status_code == wrong.status_code == 401
    assert refused.json()["error"]["code"] == 401
    await scrape(f"{api.url}/metrics", Authorization="Bearer scrape-me-please")


async def test_the_backlog_is_what_waits_due_and_for_how_long(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    webhook = await service.webhooks.create(location, EVENT, python_receiver.url)
    for _ in range(3):
        await service.events.emit(EVENT, location, SAMPLE)
    await asyncio.sleep(0.1)

    backlog = await service.store.queue.backlog(datetime.now(UTC))
    assert backlog.due == 3
    assert 0.1 <= backlog.oldest_due_age < 30
    assert backlog.disabled_webhooks == 0

    await service.webhooks.update(webhook.id, status="disabled")
    backlog = await service.store.queue.backlog(datetime.now(UTC))
    assert backlog.disabled_webhooks == 1


@pytest.mark.postgresql_only
async def test_database_outages_are_counted_where_they_are_met(
    make_api: Callable[..., Awaitable[LiveAPI]], database_url: str
) -> None:
    api = await make_api(interval=0.1, heartbeat=0.2, worker_timeout=1)

    async def registered() -> bool:  # on a busy machine the API answers before its dispatcher
        return total(await scrape(f"{api.url}/metrics"), "hotspot_webhooks_dispatchers") >= 1

    await eventually(registered, within=60, what="the API's dispatcher registered")
    before = await scrape(f"{api.url}/metrics")
    name = database_url.rsplit("/", 1)[1]
    await admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    try:
        await terminate_connections(name)
        answer = await api.call("GET", "/v1/locations")
        assert answer.status_code == 503

        def moved(samples: Samples, component: str) -> float:
            errors = "hotspot_webhooks_database_errors_total"
            return total(samples, errors, component=component) - total(
                before, errors, component=component
            )

        async def counted() -> bool:
            now = await scrape(f"{api.url}/metrics")
            return moved(now, "api") >= 1 and moved(now, "claim") >= 1

        await eventually(counted, within=20, what="an error counted by the API and by a claim")
    finally:
        await admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    await eventually(lambda: _answers(api), within=20, what="the API answering again")


async def _answers(api: LiveAPI) -> bool:
    return (await api.call("GET", "/v1/locations")).status_code == 200


def test_outcomes_are_published_in_batches() -> None:
    """The hot path counts in plain numbers; Prometheus sees them once published."""
    counted = metrics.Outcomes()
    name = "hotspot_webhooks_deliveries_total"

    def now() -> float:
        return total(parse(metrics.render()[0].decode()), name, event_type=EVENT, outcome="failed")

    before = now()
    for _ in range(5):
        counted.add(EVENT, "failed", 0.01)
    assert now() == before
    counted.publish()
    assert now() == before + 5


# ---- several processes -----------------------------------------------------------------------


async def start_workers(database_url: str, port: int, processes: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": database_url,
        "HOTSPOT_WEBHOOKS_SECRET_KEY": POSTGRES_SECRET_KEY,
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_INTERVAL": "0.1",
        "HOTSPOT_WEBHOOKS_CONCURRENCY": "4",
        "HOTSPOT_WEBHOOKS_HEARTBEAT": "0.2",
        "HOTSPOT_WEBHOOKS_WORKER_TIMEOUT": "2",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "worker",
        "--processes", str(processes), "--metrics-port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.postgresql_only
async def test_a_supervised_worker_serves_the_sum_of_its_processes(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 0.02  # 4 at once per process: both processes get work
    webhook = await service.webhooks.create(location, EVENT, python_receiver.url)
    for _ in range(200):
        await service.events.emit(EVENT, location, SAMPLE)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    workers = await start_workers(service.settings.database_url, port, processes=2)
    try:

        async def readable() -> bool:
            try:
                return total(await scrape(url), "hotspot_webhooks_dispatchers") == 2
            except httpx.HTTPError:
                return False

        def succeeded(count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                found = total(await scrape(url), "hotspot_webhooks_deliveries_total",
                              outcome="succeeded")  # fmt: skip
                return found >= count

            return check

        await eventually(readable, within=30)
        await eventually(succeeded(200), within=60)
        samples = await scrape(url)
        assert total(samples, "hotspot_webhooks_deliveries_total", outcome="succeeded") == 200
        assert total(samples, "hotspot_webhooks_attempt_duration_seconds_count") == 200
        assert total(samples, "hotspot_webhooks_dispatchers") == 2
        pids = sorted(w.pid for w in await service.store.queue.workers.list_workers())
        assert len(pids) == 2, pids

        # a child killed outright: its live gauges go, its counts stay, its successor counts
        os.kill(pids[0], signal.SIGKILL)

        async def replaced() -> bool:
            live = {w.pid for w in await service.store.queue.workers.list_workers()} - {pids[0]}
            return len(live) == 2

        await eventually(replaced, within=30)
        await asyncio.sleep(0.5)
        samples = await scrape(url)
        assert total(samples, "hotspot_webhooks_dispatchers") == 2
        assert total(samples, "hotspot_webhooks_deliveries_total", outcome="succeeded") == 200
        for _ in range(10):
            await service.events.emit(EVENT, location, SAMPLE)
        await eventually(succeeded(210), within=60)
        assert_bounded_labels(await scrape(url), [webhook.id, location])
    finally:
        workers.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(workers.communicate(), 60)
    assert workers.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
