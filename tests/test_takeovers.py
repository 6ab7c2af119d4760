"""A worker's lease taken over while its requests were on the wire (issue 25, F4): every
attempt number goes on the wire once, the attempts that count are unique per number (a
constraint), and the stalled worker's late outcomes are kept, flagged late. Real worker
processes, SIGSTOP, a real receiver, on both databases."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from hotspot_webhooks import catalog
from hotspot_webhooks.service import Service
from hotspot_webhooks.store import schema
from hotspot_webhooks.store.database import create_engine
from hotspot_webhooks.store.migrate import upgrade
from hotspot_webhooks.store.schema import attempts
from tests.receivers import PythonReceiver
from tests.test_worker_process import eventually

BACKENDS = ("sqlite", "postgresql")
EVENT = "transaction.paid.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
FAST_LIVENESS = {"heartbeat": "1", "worker_timeout": "4"}


async def start_worker(service: Service, **settings: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": service.settings.database_url,
        "HOTSPOT_WEBHOOKS_SECRET_KEY": service.settings.secret_key or "",
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_RETRY_POLICY": "next-pass",
        **{f"HOTSPOT_WEBHOOKS_{k.upper()}": v for k, v in settings.items()},
    }
    if not env["HOTSPOT_WEBHOOKS_SECRET_KEY"]:
        del env["HOTSPOT_WEBHOOKS_SECRET_KEY"]  # SQLite: the key file beside the database
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "worker", "--processes", "1", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def rows(service: Service, sql: str) -> list[Any]:
    async with service.store.db.read() as conn:
        return list((await conn.exec_driver_sql(sql)).all())


async def test_a_stalled_workers_lease_taken_over_mid_request_sends_no_number_twice(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 3.0  # slow: A's requests are still on the wire when B takes over
    await service.webhooks.create(location, EVENT, python_receiver.url)
    for _ in range(6):
        await service.events.emit(EVENT, location, SAMPLE)
    settings = {"interval": "0.2", "timeout": "20", "per_host_concurrency": "2"}

    stalled = await start_worker(service, **settings, **FAST_LIVENESS)
    taker: asyncio.subprocess.Process | None = None
    try:
        await eventually(lambda: _received(python_receiver, 2), within=30)
        await asyncio.sleep(1.0)  # A has marked its 2 requests on the wire; 4 wait in its lane
        stalled.send_signal(signal.SIGSTOP)
        taker = await start_worker(service, **settings, **FAST_LIVENESS)
        # B declares A dead: its 2 requests become attempts of unknown outcome, the 4 it merely
        # claimed go back untouched, and B sends all 6
        await eventually(lambda: _received(python_receiver, 8), within=60)
        stalled.send_signal(signal.SIGCONT)  # A wakes with 2 answers waiting and 4 unsent
        await eventually(lambda: _settled(service), within=60)
        await eventually(lambda: _late_rows(service, 2), within=30)
        await asyncio.sleep(2.0)  # time for A to (wrongly) send what it still held
    except AssertionError as failed:
        logs = await _stop(stalled, taker)
        raise AssertionError(f"{failed}; the workers said:\n{logs}") from failed
    finally:
        await _stop(stalled, taker)

    on_the_wire = Counter(
        (r.header("X-Hotspotsystem-Delivery"), r.header("X-Hotspotsystem-Attempt"))
        for r in python_receiver.requests
    )
    assert [key for key, seen in on_the_wire.items() if seen > 1] == []  # no number twice
    assert len(python_receiver.requests) == 8
    attempts = await rows(
        service, "SELECT delivery_id, number, status, error, late FROM attempts ORDER BY id"
    )
    counted = Counter((d, n) for d, n, _, _, late in attempts if not late)
    assert max(counted.values()) == 1
    late = [(d, n, status) for d, n, status, _, is_late in attempts if is_late]
    unknown = {(d, n) for d, n, _, error, _ in attempts if "outcome unknown" in str(error)}
    assert len(late) == 2 and {(d, n) for d, n, _ in late} == unknown
    assert all(status == 200 for _, _, status in late)  # what A's receiver answered, kept
    shown = (await service.deliveries.get(str(late[0][0]))).attempts
    assert [a.error for a in shown if a.status == 200 and a.number == late[0][1]] == [
        "recorded late: another worker had taken this delivery over; it changed nothing"
    ]
    states = await rows(service, "SELECT status FROM deliveries")
    assert sorted(s for (s,) in states) == ["succeeded"] * 6


async def test_the_database_refuses_a_second_counted_attempt_of_one_number(
    service: Service, location: str
) -> None:
    webhook = await service.webhooks.create(location, EVENT, "http://127.0.0.1:9/x")
    await service.events.emit(EVENT, location, SAMPLE)
    (delivery,) = (await service.deliveries.get_all(webhook_id=webhook.id)).data
    row = {
        "delivery_id": delivery.id,
        "number": 1,
        "started_at": datetime.now(UTC),
        "duration_ms": 0,
        "request_headers": {},
    }
    async with service.store.db.write() as conn:
        await conn.execute(insert(attempts), [{**row, "late": False}])
        await conn.execute(insert(attempts), [{**row, "late": True}])  # a late one: kept beside
    with pytest.raises(IntegrityError):
        async with service.store.db.write() as conn:
            await conn.execute(insert(attempts), [{**row, "late": False}])


async def _stop(*workers: asyncio.subprocess.Process | None) -> str:
    """Stop the workers (waking a stopped one first); what they wrote to stderr."""
    said = []
    for worker in workers:
        if worker is not None and worker.returncode is None:
            worker.send_signal(signal.SIGCONT)
            worker.terminate()
            _, stderr = await asyncio.wait_for(worker.communicate(), 30)
            said.append(stderr.decode(errors="replace")[-3000:])
    return "\n---\n".join(said)


async def _received(receiver: PythonReceiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def _settled(service: Service) -> bool:
    pending = await rows(service, "SELECT count(*) FROM deliveries WHERE status = 'pending'")
    return bool(pending[0][0] == 0)


async def _late_rows(service: Service, count: int) -> bool:
    late = await rows(service, "SELECT count(*) FROM attempts WHERE late")
    return bool(late[0][0] >= count)


async def test_upgrading_keeps_every_attempt_and_flags_the_later_of_a_doubled_number_late(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0007")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema.operators), [{"id": "op_1", "name": "acme", "created_at": now}]
            )
            await conn.execute(
                insert(schema.locations),
                [{"id": "loc-1", "name": "L", "operator_id": "op_1", "created_at": now}],
            )
            await conn.execute(
                insert(schema.webhooks),
                [
                    {
                        "id": "wh_1",
                        "operator_id": "op_1",
                        "callback_url": "http://127.0.0.1:9/",
                        "api_key_encrypted": "x",
                        "status": "enabled",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            await conn.execute(
                insert(schema.events),
                [
                    {
                        "id": "evt_1",
                        "type": EVENT,
                        "location_id": "loc-1",
                        "body": b"{}",
                        "delivery_count": 1,
                        "created_at": now,
                    }
                ],
            )
            await conn.execute(
                insert(schema.deliveries),
                [
                    {
                        "id": "dlv_1",
                        "event_id": "evt_1",
                        "webhook_id": "wh_1",
                        "status": "succeeded",
                        "attempt_count": 2,
                        "created_at": now,
                    }
                ],
            )
            # as a stalled worker left them: attempt 1 twice (unknown, then its late 200)
            for number, status, error in [
                (1, None, "outcome unknown: worker w stopped"),
                (2, 200, None),
                (1, 200, None),
            ]:
                await conn.execute(
                    text(
                        "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, "
                        "request_headers, status, error) VALUES ('dlv_1', :number, "
                        "CURRENT_TIMESTAMP, 0, '{}', :status, :error)"
                    ),
                    {"number": number, "status": status, "error": error},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            kept = (
                await conn.exec_driver_sql("SELECT number, status, late FROM attempts ORDER BY id")
            ).all()
        assert [tuple(row) for row in kept] == [(1, None, False), (2, 200, False), (1, 200, True)]
    finally:
        await engine.dispose()
