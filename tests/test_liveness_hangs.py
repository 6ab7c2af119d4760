"""Workers whose heartbeats hang on the database judge neither themselves nor each other.

A heartbeat's time is the database's when it writes the row, and silence is judged by the
same clock: a worker whose UPDATE waited (here on a lock another connection holds: a real
hang, on both backends) is not stamped with the time it took before the wait. A worker never
declares itself dead, and workers that hung together, whose heartbeats are all stale at once,
wait a ``WORKER_TIMEOUT`` of good heartbeats before they judge anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.delivery.attempt import Attempts
from hotspot_webhooks.delivery.liveness import Liveness, OnWire
from hotspot_webhooks.service import Service
from hotspot_webhooks.store.records import ExpiredLease, Outcome

BACKENDS = ("sqlite", "postgresql")
HEARTBEAT = 1.0
WORKER_TIMEOUT = 4.0
HANG = 7.0  # past WORKER_TIMEOUT; below the busy timeout (15 s) and DB_TIMEOUT (10 s)

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def writes_to_workers_held(database_url: str) -> AsyncIterator[None]:
    """Another connection holds what a heartbeat's UPDATE needs until the block ends: the
    write lock on SQLite, an exclusive lock on ``workers`` on PostgreSQL."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(database_url)
    try:
        transaction = pg.transaction()
        await transaction.start()
        await pg.execute("LOCK TABLE workers IN ACCESS EXCLUSIVE MODE")
        yield
        await transaction.rollback()
    finally:
        await pg.close()


def _no_lost(lease: ExpiredLease) -> Outcome:
    raise AssertionError(f"no delivery was on the wire: {lease}")


@contextlib.asynccontextmanager
async def workers_beating(settings: Settings, count: int) -> AsyncIterator[list[Liveness]]:
    """``count`` workers, each with a store (connections) of its own, heartbeating."""
    services = [await Service.open(settings, migrate=n == 0) for n in range(count)]
    made = [
        Liveness(s.store.queue, settings, Attempts(settings, s.cipher), f"worker-{n}", OnWire())
        for n, s in enumerate(services)
    ]
    stopping = asyncio.Event()
    try:
        for worker in made:
            await worker.register()
        beating = [asyncio.create_task(worker.heartbeats(stopping)) for worker in made]
        try:
            yield made
        finally:
            stopping.set()
            await asyncio.gather(*beating)
    finally:
        for worker, service in zip(made, services, strict=True):
            await worker.attempts.close()
            await service.close()


async def hang_and_come_back(
    database_url: str, workers: list[Liveness], caplog: pytest.LogCaptureFixture
) -> None:
    """A few good heartbeats, every worker's heartbeat hung for ``HANG`` s, then long enough
    for each to judge again; no worker may have been declared dead, by itself or another."""
    queue = workers[0].queue
    await asyncio.sleep(2.5 * HEARTBEAT)
    before = {row.id: row.started_at for row in await queue.workers.list_workers()}
    assert set(before) == {w.owner for w in workers}
    with caplog.at_level(logging.WARNING, logger="hotspot_webhooks.delivery.liveness"):
        async with writes_to_workers_held(database_url):
            await asyncio.sleep(HANG)
        await asyncio.sleep(WORKER_TIMEOUT + 3 * HEARTBEAT)  # they judge again meanwhile
    after = {row.id: row.started_at for row in await queue.workers.list_workers()}
    judged = [
        message
        for record in caplog.records
        if " is dead " in (message := record.getMessage()) or "been declared dead" in message
    ]
    assert not judged, "\n".join(judged)
    assert after == before  # nobody was deleted and registered again
    noticed = [m for r in caplog.records if "after its previous heartbeat" in (m := r.getMessage())]
    for worker in workers:  # each says why it waits before judging
        assert any(worker.owner in message for message in noticed), noticed


async def test_a_worker_whose_heartbeat_hangs_past_its_timeout_does_not_declare_itself_dead(
    make_settings: Callable[..., Settings], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(heartbeat=HEARTBEAT, worker_timeout=WORKER_TIMEOUT)
    async with workers_beating(settings, 1) as workers:
        await hang_and_come_back(database_url, workers, caplog)


async def test_workers_that_hang_together_do_not_declare_each_other_dead(
    make_settings: Callable[..., Settings], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(heartbeat=HEARTBEAT, worker_timeout=WORKER_TIMEOUT)
    async with workers_beating(settings, 2) as workers:
        await hang_and_come_back(database_url, workers, caplog)


async def test_a_silent_worker_is_declared_dead_by_another_by_the_database_clock_never_itself(
    service: Service,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    await service.store.queue.workers.register_worker("silent", "host", 1, long_ago)
    await service.store.queue.workers.register_worker(
        "judge", "host", 2
    )  # stamped by the database: now
    now = datetime.now(UTC)
    silent_for = timedelta(seconds=30)

    itself = await service.store.queue.workers.take_over_dead_workers(
        silent_for, now, _no_lost, judge="silent"
    )
    assert [t.worker for t in itself] == []
    taken = await service.store.queue.workers.take_over_dead_workers(
        silent_for, now, _no_lost, judge="judge"
    )
    assert [t.worker for t in taken] == ["silent"]
    assert [w.id for w in await service.store.queue.workers.list_workers()] == ["judge"]
    stamped: Any = (await service.store.queue.workers.list_workers())[0].heartbeat_at
    assert abs((stamped - now).total_seconds()) < 60  # the database's clock, in UTC
