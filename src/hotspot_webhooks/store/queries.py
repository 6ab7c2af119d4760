"""Every query the service and the dispatcher run, as methods of one ``Store``.

The store speaks rows and plain values; it knows nothing of HTTP or of the catalog. Writes that
belong together (an event and its deliveries; a batch of attempts and their outcomes) happen in
one transaction, and the dispatcher's claim and record are one statement or one batch each.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..config import DEFAULT_DATABASE_URL
from ..errors import ConfigurationError, Conflict, NotFound
from .bulk import DriverStatement, driver_sql
from .database import (
    check_sqlite_path,
    create_engine,
    display_url,
    parse_database_url,
    sqlite_file,
    transaction,
)
from .migrate import require_current, upgrade
from .schema import attempts, deliveries, events, locations, operators, tokens, webhooks
from .sqlite_writer import SqliteWriter

_Query = TypeVar("_Query", bound=Select[Any])
DELIVERY_COLUMNS = (*deliveries.c, events.c.type.label("event_type"))


@dataclass(slots=True)
class ClaimedDelivery:
    """A leased delivery with everything needed to send it."""

    id: str
    event_id: str
    event_type: str
    location_id: str
    webhook_id: str
    attempt_number: int
    body: bytes
    callback_url: str
    api_key_encrypted: str
    webhook_enabled: bool


LOST = "lost:"  # marks a lease taken over from a worker that did not record its attempt


@dataclass(frozen=True)
class ExpiredLease:
    delivery_id: str
    mark: str  # ``lost:<owner>``: the lease owner to record the lost attempt under
    attempt_count: int
    lease_end: datetime

    @property
    def owner(self) -> str:
        """The worker that held the lease."""
        return self.mark.removeprefix(LOST)


@dataclass(frozen=True)
class NewEvent:
    id: str
    type: str
    location_id: str
    body: bytes
    created_at: datetime


class UnknownLocation(NotFound):
    """An emitted event names a location that does not exist (for this operator)."""

    def __init__(self, location_id: str, index: int) -> None:
        super().__init__(f"location {location_id!r} does not exist; create it first")
        self.location_id = location_id
        self.index = index  # of the event within the emit


class _Emit:
    """One caller's events waiting for the next group commit."""

    def __init__(
        self,
        events: Sequence[NewEvent],
        operator_id: str | None,
        new_delivery_id: Callable[[], str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.events = events
        self.operator_id = operator_id
        self.new_delivery_id = new_delivery_id
        self.done: asyncio.Future[tuple[dict[str, int], set[str]]] = loop.create_future()


MAX_EVENTS_PER_COMMIT = 5000


_EmitOutcome = tuple[dict[str, int], set[str]] | Exception


@dataclass
class _EmitPlan:
    outcomes: list[_EmitOutcome]
    event_rows: list[tuple[Any, ...]]
    delivery_rows: list[tuple[Any, ...]]


def _emit_lookups(group: Sequence[_Emit]) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """What a group commit reads first: the events that exist among its ids (with their
    delivery count and owner), the owners of its locations, and the enabled webhooks there."""
    ids = {e.id for emit in group for e in emit.events}
    location_ids = {e.location_id for emit in group for e in emit.events}
    return (
        select(events.c.id, events.c.delivery_count, locations.c.operator_id)
        .join(locations, locations.c.id == events.c.location_id)
        .where(events.c.id.in_(ids)),
        select(locations.c.id, locations.c.operator_id).where(locations.c.id.in_(location_ids)),
        select(webhooks.c.id, webhooks.c.location_id, webhooks.c.event_type)
        .where(webhooks.c.status == "enabled", webhooks.c.location_id.in_(location_ids))
        .order_by(webhooks.c.id),
    )


def _plan_emits(
    group: Sequence[_Emit],
    existing: Iterable[Sequence[Any]],
    owner_rows: Iterable[Sequence[Any]],
    webhook_rows: Iterable[Sequence[Any]],
) -> _EmitPlan:
    """Decide, emit by emit, what a group commit writes and what each caller hears, from
    the rows of ``_emit_lookups``."""
    # event id → (delivery count, owning operator); grows with each event planned
    known: dict[str, tuple[int, str]] = {id: (count, owner) for id, count, owner in existing}
    owners: dict[str, str] = {location_id: owner for location_id, owner in owner_rows}
    targets: dict[tuple[str, str], list[str]] = {}  # (location, type) → enabled webhooks
    for webhook_id, location_id, event_type in webhook_rows:
        targets.setdefault((location_id, event_type), []).append(webhook_id)
    plan = _EmitPlan([], [], [])
    for emit in group:
        missing = next(
            (
                index
                for index, e in enumerate(emit.events)
                if not _may_emit_at(owners.get(e.location_id), emit.operator_id)
            ),
            None,
        )
        if missing is not None:
            plan.outcomes.append(UnknownLocation(emit.events[missing].location_id, missing))
            continue
        taken = next(
            (
                e.id
                for e in emit.events
                if e.id in known
                and emit.operator_id is not None
                and known[e.id][1] != emit.operator_id
            ),
            None,
        )
        if taken is not None:
            plan.outcomes.append(
                Conflict(f"event id {taken!r} is already taken; send this event under another id")
            )
            continue
        counts: dict[str, int] = {}
        existed: set[str] = set()
        for new in emit.events:
            if new.id in known:
                counts[new.id] = known[new.id][0]
                existed.add(new.id)
                continue
            matched = targets.get((new.location_id, new.type), [])
            counts[new.id] = len(matched)
            known[new.id] = (len(matched), owners[new.location_id])
            plan.event_rows.append(
                (new.id, new.type, new.location_id, new.body, len(matched), new.created_at)
            )
            plan.delivery_rows.extend(
                (emit.new_delivery_id(), new.id, webhook_id, new.created_at, new.created_at)
                for webhook_id in matched
            )
        plan.outcomes.append((counts, existed))
    return plan


def _may_emit_at(owner: str | None, operator_id: str | None) -> bool:
    """An operator emits at its own locations; the admin (None) at any that exists."""
    return owner is not None and (operator_id is None or owner == operator_id)


@dataclass(slots=True)
class Outcome:
    """What one claimed delivery became: an attempt was made (``attempt``) or not."""

    delivery_id: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempt: dict[str, Any] | None


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time. Queueing this process's writers here costs only the
        # wait; leaving it to SQLite's busy handler costs sleeps of up to 100 ms each.
        self._write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._last_lease_end: datetime | None = None
        self._emits: list[_Emit] = []  # waiting for the next group commit
        path = sqlite_file(engine.url)
        self._sqlite_writer = SqliteWriter(path) if path is not None else None
        self._emitting = False
        self._emit_task: asyncio.Task[None] | None = None

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self.engine, write=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_turn is None:
            async with transaction(self.engine, write=True) as conn:
                yield conn
            return
        async with self._write_turn, transaction(self.engine, write=True) as conn:
            yield conn

    @classmethod
    async def open(cls, database_url: str, *, migrate: bool = False) -> Store:
        """Connect, and either upgrade the schema or insist that it is current.

        A SQLite file that does not exist is only created by ``migrate``: any other command
        says so instead of leaving an empty database behind.
        """
        path = sqlite_file(parse_database_url(database_url))
        if not migrate and path is not None and not path.exists():
            check_sqlite_path(path, create_directory=database_url == DEFAULT_DATABASE_URL)
            raise ConfigurationError(
                f"database {path} does not exist; run `hotspot-webhooks migrate` to create it"
            )
        store = cls(create_engine(database_url))
        try:
            if migrate:
                await upgrade(store.engine)
            else:
                await require_current(store.engine, display_url(database_url))
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        if self._sqlite_writer is not None:
            await self._sqlite_writer.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(select(1))

    # operators and tokens

    async def insert_operator(self, row: dict[str, Any], token: dict[str, Any]) -> None:
        async with self.write() as conn:
            await _insert_unique(conn, operators, row, f"operator {row['name']!r} exists already")
            await conn.execute(insert(tokens), token)

    async def insert_token(self, row: dict[str, Any]) -> None:
        async with self.write() as conn:
            await conn.execute(insert(tokens), row)

    async def find_token(self, token_hash: str) -> Row[Any] | None:
        """The token row with this hash (``operator_id`` NULL for an admin token)."""
        async with self.read() as conn:
            result = await conn.execute(select(tokens).where(tokens.c.token_hash == token_hash))
            return result.first()

    async def has_admin_token(self) -> bool:
        async with self.read() as conn:
            result = await conn.execute(
                select(tokens.c.id).where(tokens.c.operator_id.is_(None)).limit(1)
            )
            return result.first() is not None

    async def find_operator(self, id_or_name: str) -> Row[Any] | None:
        async with self.read() as conn:
            result = await conn.execute(
                select(operators).where(
                    or_(operators.c.id == id_or_name, operators.c.name == id_or_name)
                )
            )
            return result.first()

    async def list_operators(self) -> Sequence[Row[Any]]:
        async with self.read() as conn:
            return (await conn.execute(select(operators).order_by(operators.c.created_at))).all()

    # locations

    async def insert_location(self, row: dict[str, Any]) -> None:
        async with self.write() as conn:
            await _insert_unique(conn, locations, row, f"location {row['id']!r} exists already")

    async def get_location(
        self, location_id: str, operator_id: str | None = None
    ) -> Row[Any] | None:
        query = select(locations).where(locations.c.id == location_id)
        async with self.read() as conn:
            return (await conn.execute(_owned_by(query, operator_id))).first()

    async def list_locations(self, operator_id: str | None = None) -> Sequence[Row[Any]]:
        query = select(locations).order_by(locations.c.id)
        async with self.read() as conn:
            return (await conn.execute(_owned_by(query, operator_id))).all()

    # webhooks

    async def insert_webhook(self, row: dict[str, Any]) -> None:
        async with self.write() as conn:
            await conn.execute(insert(webhooks), row)

    async def get_webhook(self, webhook_id: str, operator_id: str | None = None) -> Row[Any] | None:
        query = select(webhooks).where(webhooks.c.id == webhook_id)
        async with self.read() as conn:
            return (await conn.execute(_webhooks_of(query, operator_id))).first()

    async def list_webhooks(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        operator_id: str | None = None,
    ) -> Sequence[Row[Any]]:
        query = _webhooks_of(select(webhooks).order_by(webhooks.c.id), operator_id)
        for column, value in (
            (webhooks.c.location_id, location_id),
            (webhooks.c.event_type, event_type),
            (webhooks.c.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        async with self.read() as conn:
            return (await conn.execute(query)).all()

    async def update_webhook(self, webhook_id: str, values: dict[str, Any]) -> bool:
        async with self.write() as conn:
            result = await conn.execute(
                update(webhooks).where(webhooks.c.id == webhook_id).values(**values)
            )
            return bool(result.rowcount)

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook with its deliveries and their attempts."""
        async with self.write() as conn:
            await conn.execute(
                delete(attempts).where(
                    attempts.c.delivery_id.in_(
                        select(deliveries.c.id).where(deliveries.c.webhook_id == webhook_id)
                    )
                )
            )
            await conn.execute(delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
            result = await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
            return bool(result.rowcount)

    # events

    async def insert_events(
        self,
        new_events: Sequence[NewEvent],
        new_delivery_id: Callable[[], str],
        operator_id: str | None = None,
    ) -> tuple[dict[str, int], set[str]]:
        """Store events with one pending delivery per enabled matching webhook, atomically.

        Returns each event's delivery count and the ids that already existed: those are left
        exactly as they were (idempotent emit) and report their original count. An id that
        exists at another operator's location is a conflict, and a location that does not
        exist (or is another operator's) is ``UnknownLocation``; either way nothing is stored.

        Calls that arrive while a commit is under way are committed together in the next one
        (group commit): each caller still gets its own all-or-nothing result, but many
        concurrent emits share one transaction and one fsync.
        """
        emit = _Emit(new_events, operator_id, new_delivery_id, asyncio.get_running_loop())
        self._emits.append(emit)
        if not self._emitting:
            self._emitting = True
            # a task of its own: a caller that goes away must not cancel the others' commit
            self._emit_task = asyncio.create_task(self._commit_emits())
        return await asyncio.shield(emit.done)

    async def _commit_emits(self) -> None:
        try:
            while self._emits:
                # one turn of the event loop first: requests whose bytes are already here
                # reach this queue too, and share the commit
                await asyncio.sleep(0)
                taken = 0
                group: list[_Emit] = []
                while self._emits and (not group or taken < MAX_EVENTS_PER_COMMIT):
                    group.append(self._emits.pop(0))
                    taken += len(group[-1].events)
                try:
                    outcomes = await self._insert_emits(group)
                except Exception as exc:  # the database failed: every caller in it hears so
                    outcomes = [exc] * len(group)
                for emit, outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        emit.done.set_exception(outcome)
                    else:
                        emit.done.set_result(outcome)
        finally:
            self._emitting = False

    async def _insert_emits(self, group: Sequence[_Emit]) -> list[_EmitOutcome]:
        """One transaction for several emits; an emit that conflicts is left out alone."""
        lookups = _emit_lookups(group)
        if self._sqlite_writer is not None:
            return await self._insert_emits_sqlite(self._sqlite_writer, group, lookups)
        async with self.write() as conn:
            plan = _plan_emits(group, *[(await conn.execute(q)).all() for q in lookups])
            if plan.event_rows:
                await _INSERT_EVENT.executemany(conn, plan.event_rows)
            if plan.delivery_rows:
                await _INSERT_DELIVERY.executemany(conn, plan.delivery_rows)
        return plan.outcomes

    async def _insert_emits_sqlite(
        self, writer: SqliteWriter, group: Sequence[_Emit], lookups: Sequence[Select[Any]]
    ) -> list[_EmitOutcome]:
        """The same transaction as ``_insert_emits``, run whole on the SQLite writer thread."""
        dialect = self.engine.dialect

        def work(conn: sqlite3.Connection) -> list[_EmitOutcome]:
            found = [conn.execute(*driver_sql(q, dialect)).fetchall() for q in lookups]
            plan = _plan_emits(group, *found)
            if plan.event_rows:
                conn.executemany(*_INSERT_EVENT.prepare(dialect, plan.event_rows))
            if plan.delivery_rows:
                conn.executemany(*_INSERT_DELIVERY.prepare(dialect, plan.delivery_rows))
            return plan.outcomes

        assert self._write_turn is not None
        async with self._write_turn:
            return await writer.run(work)

    async def get_event(self, event_id: str, operator_id: str | None = None) -> Row[Any] | None:
        query = select(events).where(events.c.id == event_id)
        async with self.read() as conn:
            return (await conn.execute(_events_of(query, operator_id))).first()

    async def list_events(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        operator_id: str | None = None,
        after_id: str | None = None,
        limit: int = 50,
    ) -> Sequence[Row[Any]]:
        """Newest first; ``after_id`` continues after that event (none after an unknown id)."""
        query = select(events).order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit)
        for column, value in ((events.c.location_id, location_id), (events.c.type, type)):
            if value is not None:
                query = query.where(column == value)
        if after_id is not None:  # an id this operator cannot see is like one that never was
            after_query = select(events.c.created_at).where(events.c.id == after_id)
            after = _events_of(after_query, operator_id).scalar_subquery()
            query = query.where(
                or_(
                    events.c.created_at < after,
                    and_(events.c.created_at == after, events.c.id < after_id),
                )
            )
        async with self.read() as conn:
            return (await conn.execute(_events_of(query, operator_id))).all()

    # deliveries

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        after_id: str | None = None,
        limit: int = 50,
        operator_id: str | None = None,
    ) -> Sequence[Row[Any]]:
        """Newest first; ``after_id`` continues from a cursor (ids sort by creation)."""
        query = (
            select(*DELIVERY_COLUMNS)
            .join(events, events.c.id == deliveries.c.event_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        for column, value in (
            (deliveries.c.webhook_id, webhook_id),
            (deliveries.c.event_id, event_id),
            (deliveries.c.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        if after_id is not None:  # as for events: nothing after an id this caller cannot see
            after = _events_of(
                select(deliveries.c.id)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id == after_id),
                operator_id,
            ).scalar_subquery()
            query = query.where(deliveries.c.id < after)
        async with self.read() as conn:
            return (await conn.execute(_events_of(query, operator_id))).all()

    async def get_delivery(
        self, delivery_id: str, operator_id: str | None = None
    ) -> tuple[Row[Any], Sequence[Row[Any]]] | None:
        query = (
            select(*DELIVERY_COLUMNS)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id == delivery_id)
        )
        async with self.read() as conn:
            found = (await conn.execute(_events_of(query, operator_id))).first()
            if found is None:
                return None
            tried = await conn.execute(
                select(attempts)
                .where(attempts.c.delivery_id == delivery_id)
                .order_by(attempts.c.number, attempts.c.id)
            )
            return found, tried.all()

    async def schedule_now(self, delivery_id: str, now: datetime) -> bool:
        """Make a delivery due now (manual retry); refused while a worker holds its lease."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner.is_(None))
                .values(status="pending", next_attempt_at=now)
            )
            return bool(result.rowcount)

    async def requeue_failed(self, webhook_id: str, since: datetime, now: datetime) -> int:
        """Make a webhook's failed deliveries created since ``since`` due now (recover)."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.webhook_id == webhook_id,
                    deliveries.c.status == "failed",
                    deliveries.c.created_at >= since,
                )
                .values(status="pending", next_attempt_at=now)
            )
            return int(result.rowcount or 0)

    async def insert_leased_delivery(
        self,
        new: NewEvent,
        webhook_id: str,
        delivery_id: str,
        owner: str,
        lease_until: datetime,
    ) -> ClaimedDelivery:
        """Store an event with one delivery, to this webhook alone, already leased to ``owner``.

        For a test send: the caller attempts it at once, and no dispatcher can claim it first.
        """
        async with self.write() as conn:
            await conn.execute(
                insert(events),
                {
                    "id": new.id,
                    "type": new.type,
                    "location_id": new.location_id,
                    "body": new.body,
                    "delivery_count": 1,
                    "created_at": new.created_at,
                },
            )
            await conn.execute(
                insert(deliveries),
                {
                    "id": delivery_id,
                    "event_id": new.id,
                    "webhook_id": webhook_id,
                    "status": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": lease_until,
                    "lease_owner": owner,
                    "created_at": new.created_at,
                },
            )
            rows = await _SELECT_LEASED.fetchall(conn, (owner, lease_until))
        return _claimed(rows[0])

    # the dispatcher's side

    async def claim_due(
        self, *, owner: str, due_by: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries, oldest first, for ``owner``.

        The lease is ``next_attempt_at`` moved to ``lease_until``: if the owner dies, the
        deliveries fall due again then and any worker claims them. ``SKIP LOCKED`` lets workers
        on PostgreSQL claim side by side; SQLite serializes writers anyway.
        """
        due = (
            select(deliveries.c.id)
            .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= due_by)
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # (owner, lease end) must name one claim alone: never reuse a lease end
        if self._last_lease_end is not None and lease_until <= self._last_lease_end:
            lease_until = self._last_lease_end + timedelta(microseconds=1)
        self._last_lease_end = lease_until
        async with self.write() as conn:
            leased = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=lease_until, lease_owner=owner)
            )
            if not leased.rowcount:
                return []
            # (owner, lease end) names exactly this claim's rows, through the due index
            rows = await _SELECT_LEASED.fetchall(conn, (owner, lease_until))
        return [_claimed(row) for row in rows]

    async def take_expired_leases(self, expired_by: datetime) -> list[ExpiredLease]:
        """Take over the deliveries whose worker's lease ran out before it recorded a result.

        Each is marked ``lost:<owner>`` in the same statement that finds it, so of several
        workers looking at once exactly one records it; ``record`` with that mark as the owner
        then frees it.
        """
        async with self.write() as conn:
            rows = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner.is_not(None),
                    deliveries.c.lease_owner.not_like(f"{LOST}%"),
                    deliveries.c.next_attempt_at <= expired_by,
                    deliveries.c.status == "pending",
                )
                .values(lease_owner=literal(LOST) + deliveries.c.lease_owner)
                .returning(
                    deliveries.c.id,
                    deliveries.c.lease_owner,
                    deliveries.c.attempt_count,
                    deliveries.c.next_attempt_at,
                )
            )
            return [ExpiredLease(*row) for row in rows]

    async def record(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        released: Sequence[str] = (),
        release_at: datetime | None = None,
        disable_webhooks: dict[str, str] | None = None,
    ) -> int | None:
        """Record a batch of outcomes in one transaction; return how many leases were still ours
        (None where the driver does not count the rows an ``executemany`` changed).

        Attempts are always stored (they happened). A delivery is only updated while ``owner``
        still holds its lease, so a worker whose lease ran out cannot overwrite a newer state.
        ``released`` deliveries go back to the queue unsent, due at ``release_at``.
        """
        async with self.write() as conn:
            attempt_rows = [
                (
                    o.delivery_id, a["number"], a["started_at"], a["duration_ms"],
                    a["request_headers"], a["status"], a["response_excerpt"], a["error"],
                )
                for o in outcomes
                if (a := o.attempt)
            ]  # fmt: skip
            if attempt_rows:
                await _INSERT_ATTEMPT.executemany(conn, attempt_rows)
            kept: int | None = 0
            if outcomes:
                kept = await _RECORD_OUTCOME.executemany(
                    conn,
                    [
                        (
                            o.status, o.attempt_count, o.next_attempt_at, o.last_status,
                            o.last_error, o.delivered_at, o.delivery_id, owner,
                        )
                        for o in outcomes
                    ],
                )  # fmt: skip
            if released:
                await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(released),
                        deliveries.c.lease_owner == owner,
                    )
                    .values(lease_owner=None, next_attempt_at=release_at)
                )
            for webhook_id, reason in (disable_webhooks or {}).items():
                await conn.execute(
                    update(webhooks)
                    .where(webhooks.c.id == webhook_id)
                    .values(status="disabled", disabled_reason=reason, updated_at=release_at)
                )
            return kept


_EVENT_COLUMNS = ("id", "type", "location_id", "body", "delivery_count", "created_at")
_INSERT_EVENT = DriverStatement(
    insert(events).values({name: bindparam(name) for name in _EVENT_COLUMNS}),
    _EVENT_COLUMNS,
    datetimes=["created_at"],
)
# a new delivery is pending and due at once: at its event's creation
_INSERT_DELIVERY = DriverStatement(
    insert(deliveries).values(
        id=bindparam("id"),
        event_id=bindparam("event_id"),
        webhook_id=bindparam("webhook_id"),
        status="pending",
        attempt_count=0,
        next_attempt_at=bindparam("next_attempt_at"),
        created_at=bindparam("created_at"),
    ),
    ("id", "event_id", "webhook_id", "next_attempt_at", "created_at"),
    datetimes=["next_attempt_at", "created_at"],
)
_ATTEMPT_COLUMNS = (
    "delivery_id", "number", "started_at", "duration_ms", "request_headers", "status",
    "response_excerpt", "error",
)  # fmt: skip
_INSERT_ATTEMPT = DriverStatement(
    insert(attempts).values({name: bindparam(name) for name in _ATTEMPT_COLUMNS}),
    _ATTEMPT_COLUMNS,
    datetimes=["started_at"],
    jsons=["request_headers"],
)
_RECORD_OUTCOME = DriverStatement(
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        status=bindparam("b_status"),
        attempt_count=bindparam("b_attempt_count"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        last_status=bindparam("b_last_status"),
        last_error=bindparam("b_last_error"),
        delivered_at=func.coalesce(bindparam("b_delivered_at"), deliveries.c.delivered_at),
        lease_owner=null(),
    ),
    (
        "b_status", "b_attempt_count", "b_next_attempt_at", "b_last_status", "b_last_error",
        "b_delivered_at", "b_id", "b_owner",
    ),
    datetimes=["b_next_attempt_at", "b_delivered_at"],
)  # fmt: skip
_SELECT_LEASED = DriverStatement(
    select(
        deliveries.c.id,
        deliveries.c.event_id,
        deliveries.c.webhook_id,
        deliveries.c.attempt_count,
        events.c.type,
        events.c.location_id,
        events.c.body,
        webhooks.c.callback_url,
        webhooks.c.api_key_encrypted,
        webhooks.c.status,
    )
    .join(events, events.c.id == deliveries.c.event_id)
    .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
    .where(
        deliveries.c.status == "pending",
        deliveries.c.lease_owner == bindparam("owner"),
        deliveries.c.next_attempt_at == bindparam("lease_until"),
    )
    .order_by(deliveries.c.id),
    ("owner", "lease_until"),
    datetimes=["lease_until"],
)


def _claimed(row: Sequence[Any]) -> ClaimedDelivery:
    id, event_id, webhook_id, attempts, event_type, location_id, body, url, key, status = row
    return ClaimedDelivery(
        id, event_id, event_type, location_id, webhook_id, attempts + 1, bytes(body), url, key,
        status == "enabled",
    )  # fmt: skip


def _owned_by(query: _Query, operator_id: str | None) -> _Query:
    """``query`` over locations, narrowed to one operator's (None: the admin sees all)."""
    return query if operator_id is None else query.where(locations.c.operator_id == operator_id)


def _webhooks_of(query: _Query, operator_id: str | None) -> _Query:
    """``query`` over webhooks, narrowed to the webhooks at one operator's locations."""
    if operator_id is None:
        return query
    return query.where(
        webhooks.c.location_id.in_(
            select(locations.c.id).where(locations.c.operator_id == operator_id)
        )
    )


def _events_of(query: _Query, operator_id: str | None) -> _Query:
    """``query`` over events (or joined to them), narrowed to one operator's locations."""
    if operator_id is None:
        return query
    return query.where(
        events.c.location_id.in_(
            select(locations.c.id).where(locations.c.operator_id == operator_id)
        )
    )


async def _insert_unique(
    conn: AsyncConnection, table: Any, row: dict[str, Any], message: str
) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(table), row)
    except IntegrityError:
        raise Conflict(message) from None
