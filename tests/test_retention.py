"""Retention: ``purge`` deletes what is finished and old, in small transactions, and leaves
pending work and everything recent; ``RETENTION`` runs it inside the dispatcher."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import func, select, update

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings, parse_duration
from hotspot_webhooks.delivery import retention
from hotspot_webhooks.delivery.dispatcher import running_dispatcher
from hotspot_webhooks.service import Service
from hotspot_webhooks.states import DeliveryStatus
from hotspot_webhooks.store.records import AttemptRecord, Outcome
from hotspot_webhooks.store.schema import attempts, deliveries, events

BACKENDS = ("sqlite", "postgresql")
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
RECEIVER = "http://127.0.0.1:9/hook"
LONG_AGO = datetime.now(UTC) - timedelta(days=40)


def finished(delivery_id: str, status: DeliveryStatus) -> Outcome:
    now = datetime.now(UTC)
    return Outcome(
        delivery_id=delivery_id,
        status=status,
        attempt_count=1,
        next_attempt_at=None,
        last_status=200 if status is DeliveryStatus.SUCCEEDED else 500,
        last_error=None,
        delivered_at=now if status is DeliveryStatus.SUCCEEDED else None,
        attempt=AttemptRecord(delivery_id, 1, now, 3, {"Content-Type": "x"}, 200, "ok", None),
    )


async def count(service: Service, table: Any, *where: Any) -> int:
    async with service.store.db.read() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(query)).scalar_one())


async def backdate(service: Service, event_ids: list[str]) -> None:
    """Make these events, and their deliveries, 40 days old."""
    async with service.store.db.write() as conn:
        await conn.execute(
            update(events).where(events.c.id.in_(event_ids)).values(created_at=LONG_AGO)
        )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id.in_(event_ids))
            .values(created_at=LONG_AGO)
        )


async def old_and_new(service: Service, location: str) -> dict[str, list[str]]:
    """Old events whose deliveries succeeded, failed or are still pending; an old event no
    webhook took; and recent finished ones. Returns the event ids of each kind."""
    await service.webhooks.create(location, EVENT, RECEIVER)
    kinds: dict[str, list[str]] = {"succeeded": [], "failed": [], "pending": [], "recent": []}
    for kind, ids in kinds.items():
        for n in range(5):
            ids.append((await service.events.emit(EVENT, location, SAMPLE, id=f"{kind}-{n}")).id)
    await service.locations.create("loc-quiet", "No webhooks", "acme")
    kinds["unheard"] = [(await service.events.emit(EVENT, "loc-quiet", SAMPLE, id="unheard")).id]
    now = datetime.now(UTC)
    claimed = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=now + timedelta(minutes=5), limit=100
    )
    status_of = {
        **{e: DeliveryStatus.SUCCEEDED for e in kinds["succeeded"] + kinds["recent"]},
        **{e: DeliveryStatus.FAILED for e in kinds["failed"]},
    }
    await service.store.queue.record(
        "w1", [finished(c.id, status_of[c.event_id]) for c in claimed if c.event_id in status_of]
    )
    await backdate(service, kinds["succeeded"] + kinds["failed"] + kinds["pending"])
    await backdate(service, kinds["unheard"])
    return kinds


async def test_purge_deletes_old_finished_work_in_batches_and_keeps_pending_and_recent(
    service: Service, location: str
) -> None:
    kinds = await old_and_new(service, location)

    purged = await service.store.queue.retention.purge(
        datetime.now(UTC) - timedelta(days=30), batch=3
    )

    assert (purged.deliveries, purged.attempts, purged.events) == (10, 10, 11)
    assert purged.transactions >= 10 / 3 + 11 / 3  # small transactions, not one
    left = {e for (e,) in await _all(service, select(events.c.id))}
    assert left == set(kinds["pending"] + kinds["recent"])
    assert await count(service, deliveries) == 10  # the pending old ones and the recent
    assert await count(service, attempts) == 5  # the recent ones' attempts
    # purging again finds nothing; an event id is free again once its event is gone
    again = await service.store.queue.retention.purge(
        datetime.now(UTC) - timedelta(days=30), batch=3
    )
    assert (again.deliveries, again.attempts, again.events) == (0, 0, 0)
    assert not (await service.events.emit(EVENT, location, SAMPLE, id="succeeded-0")).duplicate


async def test_purge_runs_the_same_few_statements_whatever_its_windows_hold(
    service: Service, location: str
) -> None:
    """Every statement text a connection runs is prepared and kept, with its parameters, by the
    driver's cache and SQLAlchemy's: a window bound as an ``IN`` list of its keys was a new
    statement for every length of the last window, so a worker purging every 30 s grew by
    megabytes a minute. Windows are ranges of the key now: the same statements every time."""
    await service.webhooks.create(location, EVENT, RECEIVER)
    for n in range(9):
        await service.events.emit(EVENT, location, SAMPLE, id=f"e-{n:02d}")
    statements: set[str] = set()

    def note(*args: Any) -> None:
        statements.add(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    seen: list[set[str]] = []
    for n in range(9, 14):  # windows of 4: the last one holds 1, 2, 3, 0 and 1 keys
        sqlalchemy.event.listen(service.store.db.engine.sync_engine, "before_cursor_execute", note)
        try:
            await service.store.queue.retention.purge(
                datetime.now(UTC) - timedelta(days=30), batch=4
            )
        finally:
            sqlalchemy.event.remove(
                service.store.db.engine.sync_engine, "before_cursor_execute", note
            )
        seen.append(set(statements))
        await service.events.emit(EVENT, location, SAMPLE, id=f"e-{n:02d}")

    assert all(found == seen[0] for found in seen), [len(found) for found in seen]
    assert len(seen[0]) <= 12  # windows with and without an upper bound, BEGIN and such


async def test_retention_purges_inside_the_dispatcher(
    service: Service,
    location: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kinds = await old_and_new(service, location)
    monkeypatch.setattr(retention, "PERIOD_FLOOR", 0.05)
    monkeypatch.setattr(retention, "PERIOD_CEILING", 0.1)  # 30d: a purge every 0.1 s
    settings = make_settings(retention="30d", interval=60)

    async with running_dispatcher(service.store.queue, settings, service.cipher):
        for _ in range(100):
            if await count(service, events) == 10:
                break
            await asyncio.sleep(0.05)

    left = {e for (e,) in await _all(service, select(events.c.id))}
    assert left == set(kinds["pending"] + kinds["recent"])


def test_purge_command_and_its_errors(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path}/hw.db"
    env = {"HOTSPOT_WEBHOOKS_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "hotspot_webhooks"]
    subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [*command, "purge", "--older-than", "30d", "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"deliveries": 0' in done.stdout and '"longest_transaction"' in done.stdout
    bad = subprocess.run(
        [*command, "purge", "--older-than", "a month"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--older-than" in bad.stderr and "30d" in bad.stderr


def test_durations_read_as_operators_write_them() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    for wrong in ("30", "d", "0d", "-1d", "1.5d", "30 days"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(wrong)
    assert Settings(_env_file=None, retention="off").retention is None  # type: ignore[call-arg]
    assert Settings(_env_file=None, retention="30d").retention == timedelta(days=30)  # type: ignore[call-arg]


async def _all(service: Service, query: Any) -> list[Any]:
    async with service.store.db.read() as conn:
        return list((await conn.execute(query)).all())
