"""The worker as a real process: killed mid-pass it loses nothing; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable

from hotspot_webhooks import catalog
from hotspot_webhooks.service import Service
from tests.receivers import PythonReceiver

SAMPLE = catalog.EVENT_TYPES["transaction.paid.create"].sample


async def start_worker(service: Service, **settings: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": service.settings.database_url,
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_RETRY_POLICY": "next-pass",
        **{f"HOTSPOT_WEBHOOKS_{k.upper()}": v for k, v in settings.items()},
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotspot_webhooks",
        "worker",
        "--processes",
        "1",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def db_rows(service: Service, sql: str) -> list[tuple[object, ...]]:
    path = service.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_worker_killed_mid_pass_loses_nothing(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 0.5
    await service.webhooks.create(location, "transaction.paid.create", python_receiver.url)
    for _ in range(20):
        await service.events.emit("transaction.paid.create", location, SAMPLE)
    settings = {
        "interval": "0.2",
        "timeout": "1",
        "concurrency": "4",
        "heartbeat": "0.5",
        "worker_timeout": "2",
    }

    doomed = await start_worker(service, **settings)
    await eventually(lambda: _at_least(python_receiver, 6))
    doomed.kill()  # SIGKILL: no chance to record or release anything
    await doomed.wait()

    leased = db_rows(service, "SELECT id FROM deliveries WHERE lease_owner IS NOT NULL")
    assert leased, "the killed worker held leases"
    survivor = await start_worker(service, **settings)
    try:
        await eventually(lambda: _none_pending(service), within=40)
    finally:
        survivor.terminate()
        await survivor.wait()

    deliveries = (await service.deliveries.get_all(limit=100)).data
    assert len(deliveries) == 20
    assert all(d.status == "succeeded" for d in deliveries)
    sent: dict[str, set[int]] = {}
    for request in python_receiver.requests:
        number = int(request.header("X-Hotspotsystem-Attempt") or 0)
        sent.setdefault(request.header("X-Hotspotsystem-Delivery") or "", set()).add(number)
    assert set(sent) == {d.id for d in deliveries}
    for delivery in deliveries:
        attempts = (await service.deliveries.get(delivery.id)).attempts
        assert attempts and attempts[-1].status == 200
        assert min(sent[delivery.id]) == 1  # no retry burned on a request never made
    # what the killed worker had on the wire is on record as attempts of unknown outcome,
    # and only that: each one's request did reach the receiver
    unknown = db_rows(
        service, "SELECT delivery_id, number FROM attempts WHERE error LIKE 'outcome unknown%'"
    )
    assert {d for d, _ in unknown} <= {d for (d,) in leased}
    for delivery_id, number in unknown:
        assert number in sent[str(delivery_id)]


async def test_sigterm_finishes_in_flight_attempts_and_releases_the_rest(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 1.0
    await service.webhooks.create(location, "transaction.paid.create", python_receiver.url)
    for _ in range(10):
        await service.events.emit("transaction.paid.create", location, SAMPLE)

    worker = await start_worker(service, interval="0.2", timeout="5", concurrency="2")
    await eventually(lambda: _at_least(python_receiver, 2))
    worker.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(worker.communicate(), 15)

    assert worker.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    in_flight = len(python_receiver.requests)
    succeeded = db_rows(service, "SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
    assert succeeded[0][0] == in_flight  # every request that went out was answered and recorded
    assert db_rows(service, "SELECT count(*) FROM attempts")[0][0] == in_flight
    still_leased = db_rows(service, "SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
    assert still_leased[0][0] == 0  # the unsent ones went straight back to the queue
    pending = (await service.deliveries.get_all(status="pending")).data
    assert len(pending) == 10 - in_flight
    assert all(d.attempt_count == 0 for d in pending)


async def _at_least(receiver: PythonReceiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def _none_pending(service: Service) -> bool:
    return not (await service.deliveries.get_all(status="pending")).data
