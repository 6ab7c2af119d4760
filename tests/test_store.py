"""The store under the service: schema, pragmas, atomic emits, leases, pages and failures.

Every test runs on a real migrated SQLite file (the ``service`` fixture); rows are read back
with SQL so that what is checked is what is stored, not what a model says about it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, update

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.errors import (
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
)
from hotspot_webhooks.service import ADMIN, Caller, EmitRequest, Service
from hotspot_webhooks.states import DeliveryStatus
from hotspot_webhooks.store.queue import CLAIM_WINDOW
from hotspot_webhooks.store.records import AttemptRecord, ExpiredLease, NewEvent, Outcome
from hotspot_webhooks.store.schema import attempts, deliveries, events, metadata
from hotspot_webhooks.store.sqlite_writer import SqliteWriter
from hotspot_webhooks.store.statements import (
    ATTEMPT_ROW,
    CLAIM_POSTGRESQL,
    OUTCOME_ROW,
    ClaimParams,
)

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
CUSTOMER = "customer.create"
SUBSCRIBER = "subscriber.create"
SAMPLE = dict(catalog.EVENT_TYPES[CUSTOMER].sample)
RECEIVER = "http://127.0.0.1:9/hook"


async def webhook(service: Service, location: str, event_type: str = CUSTOMER) -> str:
    return (await service.webhooks.create(location, event_type, RECEIVER)).id


async def count(service: Service, table: Any, *where: Any) -> int:
    async with service.store.db.read() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return (await conn.execute(query)).scalar_one()


async def delivery_rows(service: Service, *where: Any) -> list[Any]:
    async with service.store.db.read() as conn:
        query = select(deliveries).where(*where).order_by(deliveries.c.id)
        return list((await conn.execute(query)).all())


async def set_delivery(service: Service, delivery_id: str, **values: Any) -> None:
    async with service.store.db.write() as conn:
        query = update(deliveries).where(deliveries.c.id == delivery_id).values(**values)
        await conn.execute(query)


async def stored_body(service: Service, event_id: str) -> bytes:
    row = await service.store.events.get_event(event_id)
    assert row is not None
    return bytes(row.body)


def attempt(delivery_id: str, number: int = 1, status: int | None = 200) -> AttemptRecord:
    return AttemptRecord(
        delivery_id=delivery_id,
        number=number,
        started_at=datetime.now(UTC),
        duration_ms=12,
        request_headers={"X-Hotspotsystem-Attempt": str(number)},
        status=status,
        response_excerpt="ok",
        error=None,
    )


def succeeded(delivery_id: str) -> Outcome:
    now = datetime.now(UTC)
    return Outcome(
        delivery_id=delivery_id,
        status=DeliveryStatus.SUCCEEDED,
        attempt_count=1,
        next_attempt_at=None,
        last_status=200,
        last_error=None,
        delivered_at=now,
        attempt=attempt(delivery_id),
    )


# ---- schema and connection ------------------------------------------------------------------


async def test_migrated_schema_matches_the_table_definitions(service: Service) -> None:
    def differences(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with service.store.db.read() as conn:
        assert await conn.run_sync(differences) == []


@pytest.mark.postgresql_only
async def test_migrated_row_types_are_what_the_record_statements_bind(service: Service) -> None:
    async with service.store.db.read() as conn:
        for row_type in (ATTEMPT_ROW, OUTCOME_ROW):
            found = await conn.exec_driver_sql(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum",
                (row_type.name,),
            )
            assert [tuple(row) for row in found] == list(row_type.attributes.items())


@pytest.mark.sqlite_only
async def test_sqlite_runs_in_wal_mode_with_full_sync_and_foreign_keys(service: Service) -> None:
    async with service.store.db.read() as conn:

        async def pragma(name: str) -> Any:
            return (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()

        assert await pragma("journal_mode") == "wal"
        assert await pragma("synchronous") == 2  # FULL
        assert await pragma("foreign_keys") == 1


# ---- emit -----------------------------------------------------------------------------------


async def test_emit_creates_one_pending_delivery_per_enabled_matching_webhook(
    service: Service, location: str
) -> None:
    await service.locations.create("loc-2", "Elsewhere", "acme")
    first = await webhook(service, location)
    second = await webhook(service, location)
    other_type = await webhook(service, location, SUBSCRIBER)
    other_location = await webhook(service, "loc-2")
    disabled = await webhook(service, location)
    assert await service.store.webhooks.update_webhook(disabled, {"status": "disabled"})

    result = await service.events.emit(CUSTOMER, location, SAMPLE, id="evt-fanout")

    assert (result.deliveries, result.duplicate) == (2, False)
    rows = await delivery_rows(service, deliveries.c.event_id == "evt-fanout")
    assert sorted(r.webhook_id for r in rows) == sorted([first, second])
    assert {r.status for r in rows} == {"pending"}
    assert {r.attempt_count for r in rows} == {0}
    assert all(r.next_attempt_at is not None for r in rows)
    for none_expected in (other_type, other_location, disabled):
        assert await count(service, deliveries, deliveries.c.webhook_id == none_expected) == 0
    assert (await service.events.get("evt-fanout")).deliveries == 2


async def test_emit_stores_the_body_bytes_the_catalog_serializes(
    service: Service, location: str
) -> None:
    given = {"id": "59243583", "email": "myname@gmail.com", "country_code": "AR"}
    event_type = catalog.get_event_type(CUSTOMER)

    await service.events.emit(CUSTOMER, location, given, id="evt-body")

    body = await stored_body(service, "evt-body")
    assert body == catalog.serialize(catalog.validate(event_type, given))
    assert list(catalog.parse_json(body)) == list(event_type.fields)  # omitted fields as null


async def test_emit_with_an_existing_id_changes_nothing_and_returns_the_first_result(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    first = await service.events.emit(CUSTOMER, location, SAMPLE, id="evt-once")
    body = await stored_body(service, "evt-once")
    await webhook(service, location)  # a second webhook now matches: the replay must ignore it

    again = await service.events.emit(CUSTOMER, location, {"id": "something else"}, id="evt-once")

    assert (first.deliveries, first.duplicate) == (1, False)
    assert (again.id, again.deliveries, again.duplicate) == ("evt-once", 1, True)
    assert await stored_body(service, "evt-once") == body
    assert await count(service, events) == 1
    assert await count(service, deliveries) == 1


async def test_emit_many_with_one_bad_payload_stores_nothing_and_names_its_index(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    batch = [
        EmitRequest(CUSTOMER, location, SAMPLE, id="evt-a"),
        EmitRequest(CUSTOMER, location, {"id": "1", "bogus": "x"}, id="evt-b"),
        EmitRequest(CUSTOMER, location, SAMPLE, id="evt-c"),
    ]

    with pytest.raises(InvalidInput) as raised:
        await service.events.emit_many(batch)

    assert "events[1].data.bogus" in raised.value.message
    assert [d["field"] for d in raised.value.details] == ["events[1].data.bogus"]
    assert await count(service, events) == 0
    assert await count(service, deliveries) == 0


async def test_emit_many_with_one_unknown_location_stores_nothing_and_names_its_index(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    batch = [
        EmitRequest(CUSTOMER, location, SAMPLE),
        EmitRequest(CUSTOMER, "loc-missing", SAMPLE),
    ]

    with pytest.raises(NotFound) as raised:
        await service.events.emit_many(batch)

    assert "loc-missing" in raised.value.message
    assert [d["field"] for d in raised.value.details] == ["events[1].location_id"]
    assert await count(service, events) == 0
    assert await count(service, deliveries) == 0


async def test_a_failure_while_writing_deliveries_leaves_no_event_behind(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    await webhook(service, location)
    body = catalog.serialize(SAMPLE)
    new = NewEvent("evt-torn", CUSTOMER, location, body, datetime.now(UTC))

    # Two matching webhooks given the same delivery id: the deliveries insert fails after the
    # event row was written in the same transaction.
    with pytest.raises(Exception, match=r"(?i)unique"):
        await service.store.events.insert_events([new], lambda: "dlv_same", ADMIN)

    assert await service.store.events.get_event("evt-torn") is None
    assert await count(service, deliveries) == 0


async def test_a_crash_inside_a_write_transaction_commits_nothing(
    service: Service, location: str, backend: str
) -> None:
    row = {
        "id": "evt-crash",
        "type": CUSTOMER,
        "location_id": location,
        "body": b"{}",
        "delivery_count": 0,
        "created_at": datetime.now(UTC),
    }

    async def insert_then_crash() -> None:
        async with service.store.db.write() as conn:
            await conn.execute(insert(events), row)
            raise RuntimeError("crash after the insert, before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        await insert_then_crash()

    assert await service.store.events.get_event("evt-crash") is None
    assert await count(service, events) == 0
    if backend == "sqlite":  # and the file itself, through a connection of its own
        path = service.settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as other_connection:
            assert other_connection.execute("SELECT count(*) FROM events").fetchone() == (0,)


# ---- leases ---------------------------------------------------------------------------------


async def test_claim_due_leases_only_due_unleased_pending_deliveries(
    service: Service, location: str
) -> None:
    hook = await webhook(service, location)
    for name in ("due", "later", "done"):
        await service.events.emit(CUSTOMER, location, SAMPLE, id=f"evt-{name}")
    ids = {r.event_id: r.id for r in await delivery_rows(service)}
    now = datetime.now(UTC)
    await set_delivery(service, ids["evt-later"], next_attempt_at=now + timedelta(hours=1))
    await set_delivery(service, ids["evt-done"], status="succeeded")
    lease_until = now + timedelta(minutes=5)

    claimed = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=lease_until, limit=10
    )

    assert [c.id for c in claimed] == [ids["evt-due"]]
    only = claimed[0]
    assert (only.event_id, only.webhook_id, only.attempt_number) == ("evt-due", hook, 1)
    assert (only.callback_url, only.webhook_enabled) == (RECEIVER, True)
    assert only.body == await stored_body(service, "evt-due")
    [row] = await delivery_rows(service, deliveries.c.id == only.id)
    assert (row.lease_owner, row.next_attempt_at, row.status) == ("w1", lease_until, "pending")
    # a leased delivery is its holder's, even once the backstop lease has run out: it comes
    # back only through a takeover (a dead worker's, or an unregistered holder's lease)
    for due_by in (now + timedelta(minutes=1), lease_until + timedelta(seconds=1)):
        taken = await service.store.queue.claim_due(
            owner="w2", due_by=due_by, lease_until=due_by + timedelta(minutes=5), limit=10
        )
        assert taken == []


async def test_a_claim_is_fair_across_webhooks_and_skips_the_excluded(
    service: Service, location: str
) -> None:
    busy = await webhook(service, location)
    for _ in range(20 * CLAIM_WINDOW - 5):  # the busy webhook's backlog is the oldest
        await service.events.emit(CUSTOMER, location, SAMPLE)
    quiet, skipped = await webhook(service, location), await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE)  # one more each, and one for the busy one
    now = datetime.now(UTC)

    claim = await service.store.queue.claim_due(
        owner="w1",
        due_by=now,
        lease_until=now + timedelta(minutes=5),
        limit=20,
        per_webhook=5,
        exclude_webhooks=[skipped],
    )

    taken: dict[str, int] = {}  # the busy one gets 5 of the window the claim ranks
    for claimed in claim:
        taken[claimed.webhook_id] = taken.get(claimed.webhook_id, 0) + 1
    assert taken == {busy: 5, quiet: 1}
    assert len({c.id for c in claim}) == 6


@pytest.mark.postgresql_only
async def test_a_claim_locks_its_rows_by_primary_key_even_before_statistics_exist(
    service: Service, location: str
) -> None:
    """Right after a burst, before autovacuum has analyzed it, PostgreSQL's default estimates
    make the due index look nearly empty; a claim that let it find the chosen rows through it
    scanned the whole backlog for each (135 ms a claim at 60,000 due, against 6)."""
    hook = await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE, id="evt-burst")
    async with service.store.db.write() as conn:
        await conn.exec_driver_sql("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
        await conn.exec_driver_sql(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempt_count, "
            "next_attempt_at, created_at) SELECT 'dlv_burst_' || g, 'evt-burst', $1, "
            "'pending', 0, now() - interval '1 minute', now() FROM generate_series(1, 20000) g",
            (hook,),
        )
    now = datetime.now(UTC)
    params = ClaimParams("w1", now + timedelta(minutes=5), now, 500, 100, 250, [])
    async with service.store.db.read() as conn:
        compiled = CLAIM_POSTGRESQL._compile(conn.dialect)
        explain = "EXPLAIN (FORMAT JSON) " + compiled.sql
        [[plan]] = (await conn.exec_driver_sql(explain, compiled.params(params))).all()

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    by_id_through_due_index = [  # e.g. Filter: ((id)::text = ANY (($1)::text[]))
        node
        for node in nodes(plan[0]["Plan"])
        if node.get("Index Name") == "ix_deliveries_due" and "= ANY" in node.get("Filter", "")
    ]
    assert by_id_through_due_index == []
    claimed = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=now + timedelta(minutes=5), limit=250, per_webhook=100
    )
    assert len(claimed) == 100


async def test_record_by_a_worker_that_lost_its_lease_keeps_the_attempt_but_not_the_state(
    service: Service, location: str, backend: str
) -> None:
    await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE)
    now = datetime.now(UTC)
    long_ago = now - timedelta(minutes=10)
    await service.store.queue.workers.register_worker("w1", "host", 1, long_ago)
    [claimed] = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=now + timedelta(minutes=5), limit=10
    )
    # w1 falls silent and is taken for dead; its merely claimed delivery goes back untouched
    [taken] = await service.store.queue.workers.take_over_dead_workers(
        now - timedelta(seconds=30), now, _no_lost
    )
    assert (taken.worker, taken.released, taken.on_wire) == ("w1", 1, [])
    await service.store.queue.claim_due(
        owner="w2", due_by=now, lease_until=now + timedelta(minutes=5), limit=10
    )

    kept = await service.store.queue.record("w1", [succeeded(claimed.id)])

    assert kept == 0
    [row] = await delivery_rows(service, deliveries.c.id == claimed.id)
    assert (row.status, row.lease_owner, row.attempt_count) == ("pending", "w2", 0)
    assert await count(service, attempts, attempts.c.delivery_id == claimed.id) == 1

    assert await service.store.queue.record("w2", [succeeded(claimed.id)]) == 1
    [row] = await delivery_rows(service, deliveries.c.id == claimed.id)
    assert (row.status, row.lease_owner, row.last_status) == ("succeeded", None, 200)


def _no_lost(lease: ExpiredLease) -> Outcome:
    raise AssertionError(f"{lease.delivery_id} was not on the wire")


async def test_a_dead_worker_gives_back_what_it_claimed_and_records_only_what_was_on_the_wire(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    for index in range(4):
        await service.events.emit(CUSTOMER, location, SAMPLE, id=f"evt-{index}")
    now = datetime.now(UTC)
    silent_since = now - timedelta(seconds=30)
    await service.store.queue.workers.register_worker("dead", "host", 1, now - timedelta(minutes=1))
    await service.store.queue.workers.register_worker("alive", "host", 2, now)
    dead_claim = await service.store.queue.claim_due(
        owner="dead", due_by=now, lease_until=now + timedelta(minutes=5), limit=3
    )
    [alive_claim] = await service.store.queue.claim_due(
        owner="alive", due_by=now, lease_until=now + timedelta(minutes=5), limit=3
    )
    sent_at = now - timedelta(seconds=5)
    on_wire = dead_claim[0].id
    await service.store.queue.mark_on_wire("dead", {on_wire: sent_at})
    await service.store.queue.mark_on_wire("alive", {alive_claim.id: sent_at})

    seen: list[ExpiredLease] = []

    def lost(lease: ExpiredLease) -> Outcome:
        seen.append(lease)
        return Outcome(
            delivery_id=lease.delivery_id,
            status=DeliveryStatus.PENDING,
            attempt_count=lease.attempt_count + 1,
            next_attempt_at=now,
            last_status=None,
            last_error="outcome unknown",
            delivered_at=None,
            attempt=attempt(lease.delivery_id, status=None),
        )

    [taken] = await service.store.queue.workers.take_over_dead_workers(silent_since, now, lost)
    again = await service.store.queue.workers.take_over_dead_workers(silent_since, now, lost)

    assert again == []  # exactly one worker takes a dead one over
    assert (taken.worker, taken.released) == ("dead", 2)
    assert [(lease.delivery_id, lease.started_at, lease.owner) for lease in seen] == [
        (on_wire, sent_at, "dead")
    ]
    rows = {r.id: r for r in await delivery_rows(service)}
    assert (rows[on_wire].lease_owner, rows[on_wire].attempt_count) == (None, 1)
    for claimed in dead_claim[1:]:  # merely claimed: back untouched, due now
        row = rows[claimed.id]
        assert (row.lease_owner, row.attempt_count, row.next_attempt_at) == (None, 0, now)
    assert rows[alive_claim.id].lease_owner == "alive"  # a live worker's stay its own
    assert await count(service, attempts) == 1
    assert not await service.store.queue.workers.heartbeat(
        "dead", now
    )  # it hears it was declared dead
    assert await service.store.queue.workers.heartbeat("alive", now)
    assert [w.id for w in await service.store.queue.workers.list_workers()] == ["alive"]


# ---- listing, retrying, deleting ------------------------------------------------------------


async def test_list_deliveries_pages_through_every_delivery_once(
    service: Service, location: str
) -> None:
    hook = await webhook(service, location)
    for _ in range(7):
        await service.events.emit(CUSTOMER, location, SAMPLE)
    all_ids = {r.id for r in await delivery_rows(service)}

    pages, cursor = [], None
    while True:
        page = await service.deliveries.get_all(webhook_id=hook, cursor=cursor, limit=3)
        pages.append([d.id for d in page.data])
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(pages) < 5, "pagination does not end"

    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == all_ids
    assert seen == sorted(seen, reverse=True)  # newest first


async def test_list_deliveries_filters_by_status_and_by_webhook(
    service: Service, location: str
) -> None:
    customers = await webhook(service, location)
    subscribers = await webhook(service, location, SUBSCRIBER)
    for _ in range(4):
        await service.events.emit(CUSTOMER, location, SAMPLE)
    for _ in range(2):
        await service.events.emit(SUBSCRIBER, location, SAMPLE)
    customer_rows = await delivery_rows(service, deliveries.c.webhook_id == customers)
    failed = {r.id for r in customer_rows[:2]}
    for delivery_id in failed:
        await set_delivery(service, delivery_id, status="failed")

    by_status = await service.deliveries.get_all(status="failed")
    by_webhook = await service.deliveries.get_all(webhook_id=subscribers)
    pending_customers = await service.deliveries.get_all(webhook_id=customers, status="pending")

    assert {d.id for d in by_status.data} == failed
    assert len(by_webhook.data) == 2
    assert {(d.webhook_id, d.event_type) for d in by_webhook.data} == {(subscribers, SUBSCRIBER)}
    assert len(pending_customers.data) == 2
    assert not failed & {d.id for d in pending_customers.data}
    with pytest.raises(InvalidInput, match="status"):
        await service.deliveries.get_all(status="lost")


async def test_retry_makes_a_failed_delivery_pending_and_due_now(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE)
    [row] = await delivery_rows(service)
    await set_delivery(service, row.id, status="failed", next_attempt_at=None, attempt_count=21)

    before = datetime.now(UTC)
    retried = await service.deliveries.retry(row.id)
    after = datetime.now(UTC)

    assert retried.status == "pending"
    assert retried.next_attempt_at is not None
    assert before <= retried.next_attempt_at <= after
    due = await service.store.queue.claim_due(
        owner="w1", due_by=after, lease_until=after + timedelta(minutes=5), limit=10
    )
    assert [c.id for c in due] == [row.id]


async def test_retry_of_a_delivery_being_attempted_is_refused(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE)
    now = datetime.now(UTC)
    lease_until = now + timedelta(minutes=5)
    [claimed] = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=lease_until, limit=10
    )

    with pytest.raises(Conflict, match="being attempted"):
        await service.deliveries.retry(claimed.id)

    [row] = await delivery_rows(service, deliveries.c.id == claimed.id)
    assert (row.lease_owner, row.next_attempt_at) == ("w1", lease_until)
    with pytest.raises(NotFound):
        await service.deliveries.retry("dlv_unknown")


async def test_delete_webhook_removes_its_deliveries_and_attempts_only(
    service: Service, location: str, backend: str
) -> None:
    doomed = await webhook(service, location)
    kept = await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE, id="evt-shared")
    now = datetime.now(UTC)
    claimed = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=now + timedelta(minutes=5), limit=10
    )
    assert await service.store.queue.record("w1", [succeeded(c.id) for c in claimed]) == 2
    doomed_ids = [r.id for r in await delivery_rows(service, deliveries.c.webhook_id == doomed)]

    await service.webhooks.delete(doomed)

    assert await service.store.webhooks.get_webhook(doomed) is None
    assert await count(service, deliveries, deliveries.c.webhook_id == doomed) == 0
    assert await count(service, attempts, attempts.c.delivery_id.in_(doomed_ids)) == 0
    assert await count(service, deliveries, deliveries.c.webhook_id == kept) == 1
    assert await count(service, attempts) == 1
    assert await service.store.events.get_event("evt-shared") is not None
    with pytest.raises(NotFound):
        await service.webhooks.delete(doomed)


async def test_an_attempt_in_flight_when_its_webhook_is_deleted_is_recorded_without_error(
    service: Service, location: str
) -> None:
    """The webhook goes (with its deliveries) while a worker sends one of them: recording the
    batch neither fails nor brings the deleted delivery's attempt back; the rest is kept."""
    doomed = await webhook(service, location)
    kept = await webhook(service, location)
    await service.events.emit(CUSTOMER, location, SAMPLE, id="evt-shared")
    now = datetime.now(UTC)
    claimed = await service.store.queue.claim_due(
        owner="w1", due_by=now, lease_until=now + timedelta(minutes=5), limit=10
    )
    await service.webhooks.delete(doomed)

    assert await service.store.queue.record("w1", [succeeded(c.id) for c in claimed]) == 1

    [survivor] = [c.id for c in claimed if c.webhook_id == kept]
    assert await count(service, attempts) == 1
    assert await count(service, attempts, attempts.c.delivery_id == survivor) == 1


# ---- opening a database that is not there ---------------------------------------------------


@pytest.mark.sqlite_only
async def test_open_in_a_directory_that_does_not_exist_is_database_unavailable(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir" / "sub"

    for migrate in (False, True):
        settings = make_settings(database_url=f"sqlite:///{missing / 'hooks.db'}")
        with pytest.raises(DatabaseUnavailable) as raised:
            await Service.open(settings, migrate=migrate)
        assert str(missing) in raised.value.message
        assert not missing.parent.exists()


@pytest.mark.sqlite_only
async def test_open_on_a_file_that_was_never_migrated_says_to_run_migrate(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")

    with pytest.raises(ConfigurationError, match="hotspot-webhooks migrate"):
        await Service.open(make_settings(database_url=f"sqlite:///{path}"))

    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("unrelated",)]


@pytest.mark.sqlite_only
async def test_open_on_a_missing_file_says_to_run_migrate_and_creates_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "never.db"

    with pytest.raises(ConfigurationError, match="hotspot-webhooks migrate"):
        await Service.open(make_settings(database_url=f"sqlite:///{path}"))

    assert not path.exists()


# group commit: concurrent emits share transactions, each keeps its own result


async def test_concurrent_emits_are_committed_together_yet_each_gets_its_own_result(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    commits = 0
    group_commit = service.store.events.group_commit
    commit = group_commit._commit

    async def counted(group: Any) -> Any:
        nonlocal commits
        commits += 1
        return await commit(group)

    group_commit._commit = counted  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(service.events.emit(CUSTOMER, location, SAMPLE, id=f"evt-{n}") for n in range(50))
    )

    assert [r.id for r in results] == [f"evt-{n}" for n in range(50)]
    assert all(r.deliveries == 1 and not r.duplicate for r in results)
    assert await count(service, events) == 50
    assert await count(service, deliveries) == 50
    assert commits < 50  # they shared transactions


async def test_in_a_shared_commit_a_failing_emit_fails_alone(
    service: Service, location: str
) -> None:
    await webhook(service, location)
    other = await service.operators.create("other")
    await service.locations.create("loc-other", "Elsewhere", other.id)
    await service.events.emit(CUSTOMER, "loc-other", SAMPLE, id="theirs")
    acme = await service.operators.find("acme")
    caller = Caller(acme.id)

    outcomes = await asyncio.gather(
        service.events.emit(CUSTOMER, location, SAMPLE, id="mine-1", caller=caller),
        service.events.emit(CUSTOMER, location, SAMPLE, id="theirs", caller=caller),  # taken
        service.events.emit(CUSTOMER, "loc-other", SAMPLE, id="mine-2", caller=caller),  # not ours
        service.events.emit(CUSTOMER, location, SAMPLE, id="mine-3", caller=caller),
        return_exceptions=True,
    )

    assert [type(o).__name__ for o in outcomes] == [
        "EmitResult",
        "Conflict",
        "NotFound",
        "EmitResult",
    ]
    assert isinstance(outcomes[2], NotFound)
    assert outcomes[2].details == [{"field": "location_id", "message": "no such location"}]
    stored = await service.events.get_all(limit=10)
    assert sorted(e.id for e in stored.data) == ["mine-1", "mine-3", "theirs"]
    assert (await service.events.get("theirs")).location_id == "loc-other"


async def test_the_same_new_id_emitted_twice_at_once_is_stored_once(
    service: Service, location: str
) -> None:
    await webhook(service, location)

    first, second = await asyncio.gather(
        service.events.emit(CUSTOMER, location, SAMPLE, id="same"),
        service.events.emit(CUSTOMER, location, {"email": "other@example.com"}, id="same"),
    )

    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.deliveries == second.deliveries == 1
    assert await count(service, events) == 1
    assert await count(service, deliveries) == 1


async def test_the_sqlite_writer_commits_what_returns_and_rolls_back_what_raises(
    tmp_path: Path,
) -> None:
    path = tmp_path / "writer.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
    writer = SqliteWriter(path)
    try:
        assert await writer.run(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount) == 1

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("the plan failed")

        with pytest.raises(RuntimeError, match="the plan failed"):
            await writer.run(half_then_fail)
        with pytest.raises(DatabaseUnavailable, match="no such table"):
            await writer.run(lambda c: c.execute("INSERT INTO missing VALUES (3)"))
        assert await writer.run(lambda c: c.execute("SELECT x FROM t").fetchall()) == [(1,)]
    finally:
        await writer.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert check.execute("SELECT x FROM t").fetchall() == [(1,)]
