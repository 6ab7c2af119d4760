"""No endpoint can stall the others: hanging, dripping and failing receivers, the circuit
breaker, and the low-latency wake-up, against real receivers on 127.0.0.1 (SPEC §8)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.delivery.dispatcher import running_dispatcher
from hotspot_webhooks.service import EmitRequest, Service
from tests.receivers import MisbehavingReceiver, PythonReceiver, free_port

BACKENDS = ("sqlite", "postgresql")
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``check`` until true; return the seconds it took (fail after ``within``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await check():
        if loop.time() - started > within:
            raise AssertionError(f"not reached within {within:g} s")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def emit(service: Service, location: str, count: int) -> None:
    for start in range(0, count, 500):
        batch = min(500, count - start)
        await service.events.emit_many([EmitRequest(EVENT, location, dict(SAMPLE))] * batch)


async def statuses(service: Service, webhook_id: str) -> dict[str, int]:
    found: dict[str, int] = {}
    cursor = None
    while True:
        page = await service.deliveries.get_all(webhook_id=webhook_id, limit=500, cursor=cursor)
        for delivery in page.data:
            key = str(getattr(delivery.status, "value", delivery.status))
            found[key] = found.get(key, 0) + 1
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def test_a_hanging_endpoint_holds_only_its_share_and_stalls_no_one(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    """One location: 3 webhooks to a healthy receiver and 1 to one that never answers;
    meanwhile an event of another operator's location. Everything healthy is delivered within
    a pass or two while the hanging endpoint's deliveries are still outstanding."""
    healthy, other = await PythonReceiver().start(), await PythonReceiver().start()
    hanging = await MisbehavingReceiver("hang").start()
    try:
        good = [await service.webhooks.create(location, EVENT, healthy.url) for _ in range(3)]
        stuck = await service.webhooks.create(location, EVENT, hanging.url)
        await service.operators.create("globex")
        await service.locations.create("loc-2", "Elsewhere", "globex")
        elsewhere = await service.webhooks.create("loc-2", EVENT, other.url)
        await emit(service, location, 300)
        interval = 2.0
        settings = make_settings(
            interval=interval, timeout=60, concurrency=40, per_host_concurrency=10
        )

        async with running_dispatcher(service.store.queue, settings, service.cipher):
            await asyncio.sleep(0.2)  # the first pass is under way
            await service.events.emit(EVENT, "loc-2", SAMPLE)  # emitted meanwhile
            took = await eventually(
                lambda: _all_succeeded(service, [w.id for w in good], 300),
                within=2 * interval + 3,
            )
            await eventually(lambda: _all_succeeded(service, [elsewhere.id], 1), within=2)
            assert len(healthy.requests) == 900  # each once
            # still outstanding: none done, and no more on the wire than its share
            assert await statuses(service, stuck.id) == {"pending": 300}
            assert 1 <= hanging.requests <= settings.per_host_concurrency
            await hanging.stop()  # so that stopping need not wait for its requests' timeout
        assert took < 2 * interval + 3
    finally:
        for receiver in (healthy, other, hanging):
            await receiver.stop()


async def test_a_dripping_endpoint_times_out_alone(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    healthy = await PythonReceiver().start()
    drip = await MisbehavingReceiver("drip", drip_every=0.3).start()
    try:
        good = await service.webhooks.create(location, EVENT, healthy.url)
        slow = await service.webhooks.create(location, EVENT, drip.url)
        await emit(service, location, 50)
        settings = make_settings(interval=1.0, timeout=1.5, per_host_concurrency=5)

        async with running_dispatcher(service.store.queue, settings, service.cipher):
            await eventually(lambda: _all_succeeded(service, [good.id], 50), within=5)
            await eventually(lambda: _attempted(service, slow.id), within=10)

        shown = (await service.deliveries.get_all(webhook_id=slow.id, limit=500)).data
        tried = [d for d in shown if d.attempt_count]
        assert tried and all(d.status == "pending" for d in shown)
        assert all("timed out after 1.5 s" in (d.last_error or "") for d in tried)
    finally:
        await healthy.stop()
        await drip.stop()


async def test_endpoints_that_always_fail_neither_stall_others_nor_burn_held_retries(
    service: Service,
    location: str,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    healthy = await PythonReceiver().start()
    erroring = await PythonReceiver(respond=lambda n: 500).start()
    refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
    try:
        good = await service.webhooks.create(location, EVENT, healthy.url)
        await service.webhooks.create(location, EVENT, erroring.url)  # answers 500
        dead = await service.webhooks.create(location, EVENT, refused)
        await emit(service, location, 40)
        settings = make_settings(
            interval=0.5, per_host_concurrency=2, circuit_threshold=3, circuit_wait=30
        )

        with caplog.at_level(logging.WARNING, logger="hotspot_webhooks"):
            async with running_dispatcher(service.store.queue, settings, service.cipher):
                await eventually(lambda: _all_succeeded(service, [good.id], 40), within=5)
                await eventually(lambda: _count_at_least(erroring, 80), within=10)

        # a receiver that answers 500 is reachable: retried as usual, no circuit
        assert len(erroring.requests) >= 80
        # a host that refuses connections: its circuit opened after 3 in a row (plus what was
        # already on the wire), and the rest wait unsent, their retries untouched
        dead_deliveries = (await service.deliveries.get_all(webhook_id=dead.id, limit=500)).data
        burned = sum(d.attempt_count for d in dead_deliveries)
        assert 3 <= burned <= 3 + settings.per_host_concurrency
        assert all(d.status == "pending" for d in dead_deliveries)
        assert sum(1 for d in dead_deliveries if d.attempt_count == 0) >= 40 - burned
        assert any("circuit open for 127.0.0.1" in r.getMessage() for r in caplog.records)
    finally:
        await healthy.stop()
        await erroring.stop()


async def test_an_open_circuit_probes_once_per_step_and_closes_when_the_endpoint_answers(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    webhook = await service.webhooks.create(location, EVENT, f"http://127.0.0.1:{port}/hook")
    await emit(service, location, 10)
    settings = make_settings(
        interval=0.1, per_host_concurrency=1, circuit_threshold=2, circuit_wait=0.4
    )
    receiver = PythonReceiver(port=port)

    async with running_dispatcher(service.store.queue, settings, service.cipher):
        await eventually(lambda: _attempts_at_least(service, webhook.id, 3), within=5)
        # open: 2 failures, then a probe per step (0.4 s, 0.8 s, ...), not a request per pass
        await asyncio.sleep(1.0)
        failed = await _attempt_total(service, webhook.id)
        assert 3 <= failed <= 5
        await receiver.start()  # the endpoint comes back
        try:
            await eventually(lambda: _count_at_least(receiver, 10), within=10)
            await eventually(lambda: _all_succeeded(service, [webhook.id], 10), within=5)
        finally:
            await receiver.stop()

    deliveries = (await service.deliveries.get_all(webhook_id=webhook.id, limit=500)).data
    total = sum(d.attempt_count for d in deliveries)
    assert total == failed + 10  # every counted attempt was a real request
    assert sum(1 for d in deliveries if d.attempt_count == 1) >= 10 - failed
    assert len(receiver.requests) == 10  # once the probe got through, one request each


async def test_low_latency_sends_a_new_event_at_once_in_process(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    receiver = await PythonReceiver().start()
    try:
        await service.webhooks.create(location, EVENT, receiver.url)
        settings = make_settings(interval=60, low_latency=True)
        async with running_dispatcher(service.store.queue, settings, service.cipher):
            await asyncio.sleep(0.3)  # the first pass found nothing; the next is in a minute
            took = await _emit_and_time(service, location, receiver)
        assert took < 2.0  # a wake-up, not the 60 s pass
    finally:
        await receiver.stop()


@pytest.mark.postgresql_only
async def test_low_latency_wakes_a_worker_process_through_postgresql_notify(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    receiver = await PythonReceiver().start()
    settings = make_settings(low_latency=True)
    emitter = await Service.open(settings)  # an API process with LOW_LATENCY on
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": settings.database_url,
        "HOTSPOT_WEBHOOKS_SECRET_KEY": settings.secret_key or "",
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_INTERVAL": "60",
        "HOTSPOT_WEBHOOKS_LOW_LATENCY": "true",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "worker", "--processes", "1", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await service.webhooks.create(location, EVENT, receiver.url)
        await asyncio.sleep(2.0)  # started, listening, its first pass done
        assert worker.returncode is None
        took = await _emit_and_time(emitter, location, receiver)
        assert took < 2.0  # NOTIFY woke it; its next pass is a minute away
    finally:
        worker.terminate()
        await worker.wait()
        await emitter.close()
        await receiver.stop()


async def _emit_and_time(service: Service, location: str, receiver: PythonReceiver) -> float:
    before = len(receiver.requests)
    await service.events.emit(EVENT, location, SAMPLE)
    return await eventually(lambda: _count_at_least(receiver, before + 1), within=10)


async def _count_at_least(receiver: Any, count: int) -> bool:
    return len(receiver.requests) >= count


async def _attempted(service: Service, webhook_id: str) -> bool:
    shown = (await service.deliveries.get_all(webhook_id=webhook_id, limit=500)).data
    return any(d.attempt_count for d in shown)


async def _attempt_total(service: Service, webhook_id: str) -> int:
    shown = (await service.deliveries.get_all(webhook_id=webhook_id, limit=500)).data
    return sum(d.attempt_count for d in shown)


async def _attempts_at_least(service: Service, webhook_id: str, count: int) -> bool:
    return await _attempt_total(service, webhook_id) >= count


async def _all_succeeded(service: Service, webhook_ids: list[str], count: int) -> bool:
    """Have all of each webhook's ``count`` deliveries succeeded?"""
    for webhook_id in webhook_ids:
        if await statuses(service, webhook_id) != {"succeeded": count}:
            return False
    return True
