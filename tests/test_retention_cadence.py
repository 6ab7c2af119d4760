"""Retention keeps up with itself: purges come every tenth of ``RETENTION`` (30 s to an hour),
not once a day, so a short retention keeps the database at its size (issue 25, F7)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import func, select, text

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.delivery import retention
from hotspot_webhooks.delivery.dispatcher import running_dispatcher
from hotspot_webhooks.service import Service
from hotspot_webhooks.states import DeliveryStatus
from hotspot_webhooks.store.migrate import head_revision
from hotspot_webhooks.store.schema import deliveries, events

from .pg_cluster import PgCluster, pg_cluster_fixture  # noqa: F401  (the pg_cluster fixture)
from .receivers import PythonReceiver

BACKENDS = ("sqlite", "postgresql")
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample


def test_purges_come_every_tenth_of_the_retention_between_30_s_and_an_hour() -> None:
    assert retention.purge_period(timedelta(minutes=5)) == 30.0
    assert retention.purge_period(timedelta(minutes=20)) == 120.0
    assert retention.purge_period(timedelta(hours=5)) == 1800.0
    assert retention.purge_period(timedelta(days=30)) == 3600.0  # not once a day
    assert retention.purge_period(timedelta(seconds=5)) == 30.0  # the floor


async def _count(service: Service, table: object, *where: object) -> int:
    async with service.store.db.read() as conn:
        query = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())


async def _wait_for(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


async def test_a_short_retention_is_purged_again_and_again_by_the_running_dispatcher(
    service: Service,
    location: str,
    python_receiver: PythonReceiver,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RETENTION=2s with the floor lowered for the test: a purge every 0.5 s (as 5m purges
    # every 30 s); the first within a period of start
    monkeypatch.setattr(retention, "PERIOD_FLOOR", 0.5)
    await service.webhooks.create(location, EVENT, python_receiver.url)
    settings = make_settings(retention="2s", interval=0.05)
    succeeded = deliveries.c.status == DeliveryStatus.SUCCEEDED

    async with running_dispatcher(service.store.queue, settings, service.cipher):
        for wave in range(3):
            ids = [
                (await service.events.emit(EVENT, location, SAMPLE, id=f"wave{wave}-{n}")).id
                for n in range(5)
            ]
            await _wait_for(f"wave {wave} delivered", partial(_delivered, service, ids))
            # delivered, then 2 s old, then purged by the next purge: each wave, not just the first
            await _wait_for(f"wave {wave} purged", partial(_gone, service, ids))
        assert await _count(service, deliveries, succeeded) == 0
    assert len(python_receiver.requests) == 15


async def _delivered(service: Service, ids: list[str]) -> bool:
    done = deliveries.c.status == DeliveryStatus.SUCCEEDED
    return await _count(service, deliveries, deliveries.c.event_id.in_(ids), done) == len(ids)


async def _gone(service: Service, ids: list[str]) -> bool:
    return await _count(service, events, events.c.id.in_(ids)) == 0


@pytest.mark.postgresql_only
async def test_the_hot_tables_are_vacuumed_at_one_percent_of_dead_rows(service: Service) -> None:
    async with service.store.db.read() as conn:
        rows = await conn.execute(
            text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names)"),
            {"names": ["deliveries", "attempts", "events", "workers"]},
        )
        options = {name: set(reloptions or ()) for name, reloptions in rows}
    for table in ("deliveries", "attempts", "events", "workers"):
        assert {
            "autovacuum_vacuum_scale_factor=0.01",
            "autovacuum_analyze_scale_factor=0.02",
        } <= options[table], table
    assert "fillfactor=80" in options["deliveries"]  # room in each page for its updates


@pytest.mark.sqlite_only
async def test_the_autovacuum_migration_runs_on_sqlite_and_changes_nothing_there(
    service: Service,
) -> None:
    async with service.store.db.read() as conn:
        revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert revision == head_revision()  # 0008 included: SQLite has no storage parameters


@pytest.mark.postgresql_only
@pytest.mark.parametrize("autovacuum", ["on", "off"])
async def test_a_server_whose_autovacuum_is_off_is_named_at_the_first_purge(
    pg_cluster: PgCluster,
    autovacuum: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Purged rows' room is reused only once VACUUM has run: with autovacuum off the database
    grows as if nothing were purged, so the dispatcher says so (once) instead of saying
    nothing. A throwaway cluster of its own: the machine's server is never reconfigured."""
    await pg_cluster.admin_sql(
        f"ALTER SYSTEM SET autovacuum = {autovacuum}", "SELECT pg_reload_conf()"
    )
    url = await pg_cluster.create_database("hooks")
    service = await Service.open(
        Settings(_env_file=None, database_url=url, secret_key="k" * 32), migrate=True
    )
    caplog.set_level(logging.WARNING, logger="hotspot_webhooks.delivery.retention")
    monkeypatch.setattr(retention, "PERIOD_FLOOR", 0.05)
    try:
        for _ in range(50):  # the reload reaches new sessions at once, or very soon
            if await service.store.queue.retention.autovacuum_is_off() == (autovacuum == "off"):
                break
            await asyncio.sleep(0.1)
        stopping = asyncio.Event()
        purging = asyncio.create_task(
            retention.purge_periodically(
                service.store.queue.retention, timedelta(seconds=1), stopping
            )
        )
        await asyncio.sleep(2)  # the first purge comes within 0.1 to 1 period (0.1 s here)
        stopping.set()
        await purging
    finally:
        await service.close()
    warned = "autovacuum is off" in caplog.text
    assert warned == (autovacuum == "off"), caplog.text
