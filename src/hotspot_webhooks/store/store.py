"""``Store``: every read and write the service and the dispatcher make, as methods.

The store speaks rows and records; it knows nothing of HTTP, of the catalog or of who may do
what. The service decides (its ``Caller``) and passes the decision down as an operator to
narrow reads to, or as ``EmitRules``; the store applies it in SQL. Writes that belong together
(an event and its deliveries; a batch of attempts and their outcomes) happen in one
transaction, and the dispatcher's claim and record are one statement or one batch each.
Emits go through the group commit (``emits.py``); the hot paths' statements are named in
``statements.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..config import DEFAULT_DATABASE_URL, DEFAULT_DB_TIMEOUT
from ..custom_types import CustomEventType
from ..errors import Conflict, DatabaseNotReady, DatabaseUnavailable
from ..states import (
    LOCATION_DISABLED,
    OPERATOR_DISABLED,
    DeliveryStatus,
    OwnerStatus,
    WebhookStatus,
)
from ..subscription import ANY
from .access import (
    AccessWatch,
    ListenWatch,
    StampWatch,
    announce_after,
    announce_in,
    stamp_file_for,
)
from .clock import database_ago, database_now
from .database import (
    check_sqlite_path,
    create_engine,
    did_not_answer,
    display_url,
    parse_database_url,
    sqlite_file,
    transaction,
    within,
)
from .emits import GroupCommit
from .late import flag_late, held_sqlite, shown_error
from .migrate import require_current, upgrade
from .notify import NOTIFY_SQL, NewWork, listen
from .readiness import PROBE_SQL, WriteHealth
from .records import (
    LOST,
    AttemptRecord,
    Backlog,
    ClaimedDelivery,
    DeadWorkerTakeover,
    EmitCounts,
    EmitRules,
    ExpiredLease,
    NewEvent,
    Outcome,
    Pair,
    Purged,
    SubscribedWebhook,
    UnknownLocation,
)
from .schema import (
    DUE,
    attempts,
    deliveries,
    event_types,
    events,
    locations,
    operators,
    subscriptions,
    tokens,
    webhooks,
    workers,
)
from .sqlite_writer import SqliteWriter
from .statements import (
    CLAIM_POSTGRESQL,
    CLAIM_SQLITE,
    INSERT_ATTEMPT,
    INSERT_ATTEMPTS,
    RECORD_OUTCOME,
    RECORD_OUTCOMES,
    SELECT_LEASED,
    ClaimParams,
    LeaseParams,
    OutcomeParams,
)

_Query = TypeVar("_Query", bound=Select[Any])
DELIVERY_COLUMNS = (*deliveries.c, events.c.type.label("event_type"))
# a fair claim ranks this many times its size of the oldest due deliveries
CLAIM_WINDOW = 2
# how often a claim on PostgreSQL chooses again when other workers took some of its choice
CLAIM_TRIES = 3
PURGE_BATCH = 1000  # rows a purge deletes per transaction


class HealthRows(NamedTuple):
    """The overview's reads (``Store.webhook_health``), each a list of rows per webhook."""

    stats: Sequence[Row[Any]]  # webhook_id, attempts, succeeded, p50_ms, p95_ms
    timeline: Sequence[Row[Any]]  # webhook_id, bucket, outcome, attempts
    last_failures: Sequence[Row[Any]]  # webhook_id, delivery_id, started_at, status, error, ...
    unreachable: Sequence[Row[Any]]  # webhook_id, in_a_row, last_at
    pending: Sequence[Row[Any]]  # webhook_id, pending


class Store:
    """The database, as the operations the service and the dispatcher need."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        self.engine = engine
        self.timeout = timeout  # PostgreSQL: every wait on the database (``database.py``)
        # SQLite has one writer at a time. Queueing this process's writers here costs only the
        # wait; leaving it to SQLite's busy handler costs sleeps of up to 100 ms each.
        self._write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._last_lease_end: datetime | None = None
        path = sqlite_file(engine.url)
        self.write_health = WriteHealth()  # for readiness: do writes succeed?
        self._sqlite_writer = SqliteWriter(path, self.write_health) if path is not None else None
        self._access_stamp = stamp_file_for(path) if path is not None else None
        self.new_work = NewWork()
        self._group_commit = GroupCommit(
            dialect=engine.dialect,
            write=self.write,
            sqlite_writer=self._sqlite_writer,
            write_turn=self._write_turn,
            new_work=self.new_work,
            timeout=None if path is not None else timeout,
            did_not_answer=lambda committing: did_not_answer(engine, committing=committing),
        )

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self.engine, write=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        try:
            if self._write_turn is None:
                async with transaction(self.engine, write=True) as conn:
                    yield conn
            else:
                async with self._write_turn, transaction(self.engine, write=True) as conn:
                    yield conn
        except DatabaseUnavailable as exc:
            self.write_health.failed(exc.message)
            raise
        self.write_health.succeeded()

    @classmethod
    async def open(
        cls, database_url: str, *, migrate: bool = False, db_timeout: float = DEFAULT_DB_TIMEOUT
    ) -> Store:
        """Connect, and either upgrade the schema or insist that it is current.

        A SQLite file that does not exist is only created by ``migrate``: otherwise this
        raises ``DatabaseNotReady`` instead of leaving an empty database behind.
        """
        path = sqlite_file(parse_database_url(database_url))
        if not migrate and path is not None and not path.exists():
            if path.parent.exists() or database_url != DEFAULT_DATABASE_URL:
                check_sqlite_path(path)  # a directory named but missing (or a file) says so
            where = "" if path.is_absolute() else f" (in {Path.cwd()})"
            raise DatabaseNotReady(f"database {path} does not exist{where}", missing=True)
        store = cls(create_engine(database_url, timeout=db_timeout), timeout=db_timeout)
        try:
            if migrate:
                await _upgrade_unbounded(database_url, db_timeout)
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
        """Raise ``DatabaseUnavailable`` unless the database answers within the timeout."""

        async def select_one() -> None:
            async with self.read() as conn:
                await conn.execute(select(1))

        try:
            await within(self.timeout, select_one())
        except TimeoutError:
            raise did_not_answer(self.engine, committing=False) from None

    async def check_writes(self) -> None:
        """Raise ``DatabaseUnavailable`` unless writes succeed (``readiness.py``)."""

        async def probe() -> None:
            async with self.write() as conn:
                await conn.execute(text(PROBE_SQL))

        await self.write_health.check(probe)

    def watch_access(self, forget: Callable[[], None]) -> AccessWatch:
        """What tells this process when a change of access made by any process (a token
        revoked, an operator disabled or deleted) makes what it remembers stale
        (``access.py``). Call it inside a running event loop; ``close`` it when done."""
        if self._access_stamp is not None:
            return StampWatch(self._access_stamp, forget)
        return ListenWatch(self.engine.url, forget)

    @asynccontextmanager
    async def _changing_access(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that changes who may do what: announced to every process."""
        async with self.write() as conn:
            yield conn
            await announce_in(conn)
        announce_after(self._access_stamp)

    # operators and tokens

    async def insert_operator(self, row: dict[str, Any], token: dict[str, Any]) -> None:
        async with self.write() as conn:
            await _insert_unique(conn, operators, row, f"operator {row['name']!r} exists already")
            await conn.execute(insert(tokens), token)

    async def insert_token(self, row: dict[str, Any]) -> None:
        async with self.write() as conn:
            await conn.execute(insert(tokens), row)

    async def find_token(self, token_hash: str) -> Row[Any] | None:
        """The token row with this hash (``operator_id`` NULL for an admin token), with its
        operator's status as ``operator_status`` (NULL for an admin token)."""
        query = (
            select(tokens, operators.c.status.label("operator_status"))
            .outerjoin(operators, operators.c.id == tokens.c.operator_id)
            .where(tokens.c.token_hash == token_hash)
        )
        async with self.read() as conn:
            return (await conn.execute(query)).first()

    async def list_tokens(
        self, operator_id: str | None = None
    ) -> Sequence[Row[str, str | None, datetime]]:
        """Token rows, oldest first, without their hashes; narrowed to one operator's."""
        query = select(tokens.c.id, tokens.c.operator_id, tokens.c.created_at)
        if operator_id is not None:
            query = query.where(tokens.c.operator_id == operator_id)
        async with self.read() as conn:
            return (await conn.execute(query.order_by(tokens.c.created_at, tokens.c.id))).all()

    async def delete_token(
        self, token_id: str, operator_id: str | None, *, keep_an_admin: bool
    ) -> bool:
        """Delete a token (of ``operator_id`` only, when given); False when there is none.
        With ``keep_an_admin``, the last admin token is refused (``Conflict``): nobody could
        manage operators any more.

        The admin tokens are locked before counting them (on PostgreSQL; SQLite has one
        writer), so two revocations at once cannot remove the last two together.
        """
        async with self._changing_access() as conn:
            query = select(tokens.c.operator_id).where(tokens.c.id == token_id)
            if operator_id is not None:
                query = query.where(tokens.c.operator_id == operator_id)
            found = (await conn.execute(query)).first()
            if found is None:
                return False
            if found.operator_id is None and keep_an_admin:
                admins = select(tokens.c.id).where(tokens.c.operator_id.is_(None))
                if conn.dialect.name == "postgresql":
                    admins = admins.with_for_update()
                ids = (await conn.execute(admins)).scalars().all()
                if token_id not in ids:
                    return False  # revoked meanwhile
                if len(ids) <= 1:
                    raise Conflict(
                        f"token {token_id} is the last admin token; create another admin "
                        "token first (`hotspot-webhooks tokens create --admin`)"
                    )
            deleted = await conn.execute(delete(tokens).where(tokens.c.id == token_id))
            return deleted.rowcount == 1

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

    async def set_operator_status(
        self, operator_id: str, status: OwnerStatus, reason: str | None, now: datetime
    ) -> None:
        """Disable or enable an operator, and with it the webhooks at its locations, in one
        transaction announced to every process (its tokens stop or start working at once).

        Disabling disables its enabled webhooks with ``reason``; enabling re-enables exactly
        those (their reason names the operator), not those disabled for another reason.
        """
        async with self._changing_access() as conn:
            await conn.execute(
                update(operators)
                .where(operators.c.id == operator_id)
                .values(status=status.value, disabled_reason=reason)
            )
            its = webhooks.c.operator_id == operator_id
            await _switch_webhooks(conn, its, status, reason, OPERATOR_DISABLED, now)

    async def set_location_status(
        self, location_id: str, status: OwnerStatus, reason: str | None, now: datetime
    ) -> int:
        """Disable or enable a location, in one transaction.

        Disabled, emits there create no delivery (``plan_emits``); the webhooks subscribed to
        it alone are disabled with ``reason`` (enabled again with it); and the due deliveries
        of its events for the other webhooks (several locations, or "*") fail unsent, as a
        disabled webhook's do. Returns how many deliveries failed so.
        """
        async with self.write() as conn:
            await conn.execute(
                update(locations)
                .where(locations.c.id == location_id)
                .values(status=status.value, disabled_reason=reason)
            )
            only_here = webhooks.c.id.in_(_subscribed_only_to(location_id))
            await _switch_webhooks(conn, only_here, status, reason, LOCATION_DISABLED, now)
            if status is OwnerStatus.ENABLED:
                return 0
            failed = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                    deliveries.c.lease_owner.is_(None),
                    deliveries.c.event_id.in_(
                        select(events.c.id).where(events.c.location_id == location_id)
                    ),
                )
                .values(
                    status=DeliveryStatus.FAILED.value,
                    next_attempt_at=None,
                    last_error=f"location {location_id} is disabled; not sent",
                )
            )
            return int(failed.rowcount or 0)

    async def delete_location(self, location_id: str, *, batch: int = PURGE_BATCH) -> Purged:
        """Delete a location with its webhooks and its events, their deliveries and attempts.

        Events go ``batch`` at a time, one short transaction each (no long lock: emits and
        claims go on meanwhile); the location goes last, in a transaction that finds no event
        left. A delete that stops half-way leaves the location there, to be deleted again.
        An attempt on the wire meanwhile is not stored (its delivery is gone).
        """
        purged = Purged()
        while True:
            started = time.monotonic()
            async with self.write() as conn:
                doomed_events = (
                    select(events.c.id).where(events.c.location_id == location_id).limit(batch)
                )
                ids = (await conn.execute(doomed_events)).scalars().all()
                if not ids and await self._delete_location_row(conn, location_id, purged):
                    _timed(purged, started)
                    return purged
                doomed = select(deliveries.c.id).where(deliveries.c.event_id.in_(ids))
                gone = await conn.execute(
                    delete(attempts).where(attempts.c.delivery_id.in_(doomed.scalar_subquery()))
                )
                purged.attempts += int(gone.rowcount)
                gone = await conn.execute(delete(deliveries).where(deliveries.c.event_id.in_(ids)))
                purged.deliveries += int(gone.rowcount)
                gone = await conn.execute(delete(events).where(events.c.id.in_(ids)))
                purged.events += int(gone.rowcount)
            _timed(purged, started)

    async def _delete_location_row(
        self, conn: AsyncConnection, location_id: str, purged: Purged
    ) -> bool:
        """The last step of ``delete_location``: the webhooks subscribed to it alone (their
        deliveries were of its events, gone already, but delete any all the same), its place
        in the others' subscriptions, and the location itself, unless an event arrived
        meanwhile (then False: go on)."""
        its_webhooks = _subscribed_only_to(location_id)
        its_deliveries = select(deliveries.c.id).where(
            deliveries.c.webhook_id.in_(its_webhooks.scalar_subquery())
        )
        gone = await conn.execute(
            delete(attempts).where(attempts.c.delivery_id.in_(its_deliveries.scalar_subquery()))
        )
        purged.attempts += int(gone.rowcount)
        gone = await conn.execute(
            delete(deliveries).where(deliveries.c.webhook_id.in_(its_webhooks.scalar_subquery()))
        )
        purged.deliveries += int(gone.rowcount)
        await conn.execute(delete(webhooks).where(webhooks.c.id.in_(its_webhooks)))
        await conn.execute(delete(subscriptions).where(subscriptions.c.location_id == location_id))
        gone = await conn.execute(
            delete(locations).where(
                locations.c.id == location_id,
                ~select(events.c.id).where(events.c.location_id == location_id).exists(),
            )
        )
        if gone.rowcount:
            return True
        still = select(locations.c.id).where(locations.c.id == location_id)
        return (await conn.execute(still)).first() is None

    async def delete_operator(self, operator_id: str, now: datetime) -> Purged:
        """Delete an operator with everything it owns: first disabled (its tokens stop at
        once, everywhere), then each location as ``delete_location`` does, then its tokens
        and itself. A delete that stops half-way leaves it disabled, to be deleted again."""
        reason = f"{OPERATOR_DISABLED}: being deleted"
        await self.set_operator_status(operator_id, OwnerStatus.DISABLED, reason, now)
        purged = Purged()
        while True:
            async with self.read() as conn:
                its_locations = select(locations.c.id).where(locations.c.operator_id == operator_id)
                location_ids = (await conn.execute(its_locations)).scalars().all()
            if not location_ids:
                break
            for location_id in location_ids:
                purged.add(await self.delete_location(location_id))
        async with self._changing_access() as conn:
            # what is left of its webhooks: those subscribed to "*" (no delivery left either)
            await conn.execute(delete(webhooks).where(webhooks.c.operator_id == operator_id))
            await conn.execute(delete(tokens).where(tokens.c.operator_id == operator_id))
            await conn.execute(
                delete(operators).where(
                    operators.c.id == operator_id,
                    ~select(locations.c.id).where(locations.c.operator_id == operator_id).exists(),
                )
            )
        return purged

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

    async def insert_webhook(self, row: dict[str, Any], pairs: Collection[Pair]) -> None:
        """A webhook and its subscription (``(location or "*", type or "*")`` pairs)."""
        async with self.write() as conn:
            await conn.execute(insert(webhooks), row)
            await _subscribe(conn, row["id"], row["operator_id"], pairs)

    async def get_webhook(
        self, webhook_id: str, operator_id: str | None = None
    ) -> SubscribedWebhook | None:
        query = select(webhooks).where(webhooks.c.id == webhook_id)
        async with self.read() as conn:
            found = (await conn.execute(_webhooks_of(query, operator_id))).first()
            if found is None:
                return None
            [subscribed] = await _with_subscriptions(conn, [found])
            return subscribed

    async def list_webhooks(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        operator_id: str | None = None,
    ) -> list[SubscribedWebhook]:
        """Webhooks, narrowed to those that receive events at ``location_id`` and/or of
        ``event_type`` (by name or through "*"), and to a status."""
        query = _webhooks_of(select(webhooks).order_by(webhooks.c.id), operator_id)
        if status is not None:
            query = query.where(webhooks.c.status == status)
        matching = []
        if location_id is not None:  # "*": every location of the webhook's own operator
            its_own = select(locations.c.id).where(
                locations.c.id == location_id,
                locations.c.operator_id == subscriptions.c.operator_id,
            )
            matching.append(
                or_(
                    subscriptions.c.location_id == location_id,
                    and_(subscriptions.c.location_id == ANY, its_own.exists()),
                )
            )
        if event_type is not None:
            matching.append(subscriptions.c.event_type.in_([event_type, ANY]))
        if matching:
            query = query.where(
                select(subscriptions.c.webhook_id)
                .where(subscriptions.c.webhook_id == webhooks.c.id, *matching)
                .exists()
            )
        async with self.read() as conn:
            return await _with_subscriptions(conn, (await conn.execute(query)).all())

    async def update_webhook(
        self, webhook_id: str, values: dict[str, Any], pairs: Collection[Pair] | None = None
    ) -> bool:
        """Change the webhook's columns in ``values`` and, given ``pairs``, its subscription."""
        async with self.write() as conn:
            result = await conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id)
                .values(**values)
                .returning(webhooks.c.operator_id)
            )
            owner = result.scalar_one_or_none()
            if owner is None:
                return False
            if pairs is not None:
                await conn.execute(
                    delete(subscriptions).where(subscriptions.c.webhook_id == webhook_id)
                )
                await _subscribe(conn, webhook_id, owner, pairs)
            return True

    async def rotate_key(
        self, webhook_id: str, api_key_encrypted: str, now: datetime, keep_previous_until: datetime
    ) -> None:
        """Give the webhook a new key; the one it replaces keeps signing beside it until
        ``keep_previous_until`` (none kept when that is not after ``now``). A key replaced
        before its own grace ran out is dropped: one previous key at most."""
        keep = keep_previous_until > now
        async with self.write() as conn:
            await conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id)
                .values(
                    api_key_encrypted=api_key_encrypted,
                    previous_api_key_encrypted=webhooks.c.api_key_encrypted if keep else None,
                    previous_key_expires_at=keep_previous_until if keep else None,
                    updated_at=now,
                )
            )

    async def erase_expired_keys(self, now: datetime) -> int:
        """Erase the previous keys whose grace ran out by ``now``; how many."""
        async with self.write() as conn:
            result = await conn.execute(
                update(webhooks)
                .where(webhooks.c.previous_key_expires_at <= now)
                .values(previous_api_key_encrypted=None, previous_key_expires_at=None)
            )
            return int(result.rowcount or 0)

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

    # registered event types

    async def list_event_types(self) -> list[CustomEventType]:
        async with self.read() as conn:
            rows = (await conn.execute(select(event_types).order_by(event_types.c.name))).all()
        return [
            CustomEventType(r.name, r.description, r.json_schema, r.sample, r.created_at)
            for r in rows
        ]

    async def insert_event_type(self, event_type: CustomEventType) -> None:
        """Register a type (``Conflict`` if the name is taken), announced to every process."""
        async with self._changing_access() as conn:
            await _insert_unique(
                conn,
                event_types,
                {
                    "name": event_type.name,
                    "description": event_type.description,
                    "json_schema": dict(event_type.json_schema),
                    "sample": dict(event_type.sample),
                    "created_at": event_type.created_at,
                },
                f"event type {event_type.name!r} is registered already",
            )

    async def delete_event_type(self, name: str) -> bool:
        """Remove a registered type, refused (``Conflict``) while an event of it is stored or
        a webhook names it; False when there is none."""
        async with self._changing_access() as conn:
            named = select(subscriptions.c.webhook_id).where(subscriptions.c.event_type == name)
            used = select(events.c.id).where(events.c.type == name)
            for query, what in ((named, "a webhook subscribes to it"), (used, "events of it")):
                if (await conn.execute(query.limit(1))).first() is not None:
                    raise Conflict(f"event type {name!r} is in use ({what}); it cannot be removed")
            gone = await conn.execute(delete(event_types).where(event_types.c.name == name))
            return bool(gone.rowcount)

    # events

    async def insert_events(
        self,
        new_events: Sequence[NewEvent],
        new_delivery_id: Callable[[], str],
        rules: EmitRules,
    ) -> EmitCounts:
        """Store events with one pending delivery per enabled matching webhook, atomically.

        An id that exists is left exactly as it was (idempotent emit) and reports its original
        count. Where ``rules`` refuse the emit (a location the caller may not use: raises
        ``UnknownLocation``; an id it may not reuse: ``EventIdTaken``) nothing is stored.
        Concurrent calls share transactions (group commit) but keep their own results.
        """
        return await self._group_commit.submit(new_events, rules, new_delivery_id)

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
    ) -> tuple[Row[Any], list[AttemptRecord]] | None:
        """A delivery with its attempts, oldest first."""
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
                select(*_ATTEMPT_COLUMNS)
                .where(attempts.c.delivery_id == delivery_id)
                .order_by(attempts.c.number, attempts.c.id)
            )
            return found, [_attempt(row) for row in tried]

    async def schedule_now(self, delivery_id: str, now: datetime) -> bool:
        """Make a delivery due now (manual retry); refused while a worker holds its lease."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner.is_(None))
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now)
            )
            await self._notify(conn, bool(result.rowcount))
        if result.rowcount:
            self.new_work.announce()
        return bool(result.rowcount)

    async def requeue_failed(self, webhook_id: str, since: datetime, now: datetime) -> int:
        """Make a webhook's failed deliveries created since ``since`` due now (recover)."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.webhook_id == webhook_id,
                    deliveries.c.status == DeliveryStatus.FAILED,
                    deliveries.c.created_at >= since,
                )
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now)
            )
            await self._notify(conn, bool(result.rowcount))
        if result.rowcount:
            self.new_work.announce()
        return int(result.rowcount or 0)

    def announce_new_work_across_processes(self, enabled: bool) -> None:
        """``LOW_LATENCY`` for other processes: on PostgreSQL a commit that stores or re-queues
        deliveries sends ``NOTIFY``; SQLite has no such channel (in-process listeners only)."""
        self.new_work.notify_other_processes = enabled and self.engine.dialect.name == "postgresql"

    def listen_for_new_work(
        self, wake: Callable[[], None], stopping: asyncio.Event
    ) -> Coroutine[Any, Any, None] | None:
        """What wakes a dispatcher in another process (PostgreSQL ``LISTEN``, until
        ``stopping``); None where the backend has no such channel."""
        if self.engine.dialect.name != "postgresql":
            return None
        return listen(self.engine.url, wake, stopping)

    async def _notify(self, conn: AsyncConnection, changed: bool) -> None:
        if changed and self.new_work.notify_other_processes:
            await conn.exec_driver_sql(NOTIFY_SQL)

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
        The event's location must be one of the webhook's operator (held until the commit),
        else ``UnknownLocation`` and nothing is stored.
        """
        async with self.write() as conn:
            its_location = (
                select(locations.c.id)
                .join(webhooks, webhooks.c.operator_id == locations.c.operator_id)
                .where(locations.c.id == new.location_id, webhooks.c.id == webhook_id)
                .with_for_update(read=True, key_share=True)
            )
            if (await conn.execute(its_location)).first() is None:
                raise UnknownLocation(new.location_id, 0)
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
                    "status": DeliveryStatus.PENDING,
                    "attempt_count": 0,
                    "next_attempt_at": lease_until,
                    "lease_owner": owner,
                    "created_at": new.created_at,
                },
            )
            rows = await SELECT_LEASED.fetchall(conn, LeaseParams(owner, lease_until))
        return rows[0]

    # the dispatcher's side

    async def claim_due(
        self,
        *,
        owner: str,
        due_by: datetime,
        lease_until: datetime,
        limit: int,
        per_webhook: int | None = None,
        exclude_webhooks: Collection[str] = (),
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries, oldest first, for ``owner``.

        Fair: of the oldest due deliveries (a window of a few times ``limit``), at most
        ``per_webhook`` of any one webhook are taken, so one endpoint's backlog cannot fill a
        claim; ``exclude_webhooks`` (endpoints that are full or whose circuit is open) are
        skipped altogether. The lease is ``next_attempt_at`` moved to ``lease_until``, a
        backstop for holders that do not heartbeat. ``SKIP LOCKED`` lets workers on PostgreSQL
        claim side by side; SQLite serializes writers anyway.
        """
        # (owner, lease end) must name one claim alone: never reuse a lease end
        if self._last_lease_end is not None and lease_until <= self._last_lease_end:
            lease_until = self._last_lease_end + timedelta(microseconds=1)
        self._last_lease_end = lease_until
        params = ClaimParams(
            owner=owner,
            lease_until=lease_until,
            due_by=due_by,
            window=limit if per_webhook is None else limit * CLAIM_WINDOW,
            per_webhook=limit if per_webhook is None else per_webhook,
            limit=limit,
            excluded=list(exclude_webhooks),
        )
        async with self.write() as conn:
            if conn.dialect.name == "postgresql":
                return await _claim_skipping_locked(conn, params)
            # one writer at a time: what the claim chose is still waiting
            if not await CLAIM_SQLITE.execute(conn, params):
                return []
            # (owner, lease end) names exactly this claim's rows, through the leased index
            return await SELECT_LEASED.fetchall(conn, LeaseParams(owner, lease_until))

    async def autovacuum_is_off(self) -> bool:
        """Is PostgreSQL's autovacuum off (the purges' room then never reused)? SQLite: no."""
        if self.engine.dialect.name != "postgresql":
            return False
        async with self.read() as conn:
            setting = (await conn.execute(text("SHOW autovacuum"))).scalar_one()
        return bool(setting == "off")

    @property
    def last_lease_end(self) -> datetime | None:
        """The lease end of this process's latest claim (each claim's own)."""
        return self._last_lease_end

    async def release_claims(self, owner: str, lease_ends: Collection[datetime]) -> int:
        """Give back, unsent and due at once, what ``owner`` leased under these lease ends:
        claims that failed as they committed (``delivery/unsure_claims.py``), whose rows no one
        holds. Not what is on the wire: a claim that failed was never sent from."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner == owner,
                    deliveries.c.next_attempt_at.in_(list(lease_ends)),
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.on_wire_since.is_(None),
                )
                .values(lease_owner=None, next_attempt_at=datetime.now(UTC))
            )
            return int(result.rowcount or 0)

    async def defer_due(self, webhook_ids: Collection[str], until: datetime) -> int:
        """Make these webhooks' unclaimed pending deliveries due no sooner than ``until`` (their
        endpoint's circuit is open: nothing goes out before its probe). No attempt is counted."""
        async with self.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.webhook_id.in_(list(webhook_ids)),
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.lease_owner.is_(None),
                    deliveries.c.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )
            return int(result.rowcount or 0)

    async def mark_on_wire(self, owner: str, since: Mapping[str, datetime]) -> None:
        """Note that attempts of these deliveries (delivery id → when the request went out,
        still leased by ``owner``) are on the wire: should ``owner`` die now, each gets an
        attempt of unknown outcome, where a merely claimed one goes back untouched."""
        async with self.write() as conn:
            await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == bindparam("b_id"),
                    deliveries.c.lease_owner == bindparam("b_owner"),
                )
                .values(on_wire_since=bindparam("b_since")),
                [{"b_id": i, "b_owner": owner, "b_since": t} for i, t in since.items()],
            )

    # the backlog, for the metrics

    async def backlog(self, now: datetime) -> Backlog:
        """How many deliveries are due by ``now`` and how late the oldest is, and how many
        webhooks are disabled: two small reads (the due ones are the entries of the partial
        index ``ix_deliveries_due``, its predicate spelled as it is so both databases use it)."""
        due = (
            select(func.count(), func.min(deliveries.c.next_attempt_at))
            .where(text(DUE))
            .where(deliveries.c.next_attempt_at <= now)
        )
        disabled = select(func.count()).where(webhooks.c.status == WebhookStatus.DISABLED.value)
        async with self.read() as conn:
            count, oldest = (await conn.execute(due)).one()
            disabled_count = (await conn.execute(disabled)).scalar_one()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return Backlog(due=count, oldest_due_age=age, disabled_webhooks=disabled_count)

    # retention

    async def purge(self, older_than: datetime, *, batch: int = PURGE_BATCH) -> Purged:
        """Delete what is finished and older than ``older_than``: succeeded and failed
        deliveries with their attempts, then events with no delivery left (pending ones and
        their events stay, however old).

        Both tables are walked in windows of ``batch`` rows along the primary key, one short
        transaction each, deleting what qualifies in the window: each row is looked at once,
        no transaction holds the writer for long (emits and claims go on meanwhile), and no
        statement leaves the planner room for a scan of the whole table.
        An event id can be used again once its event is purged.
        """
        purged = Purged()
        old_and_done = (
            deliveries.c.status.in_([DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED]),
            deliveries.c.created_at < older_than,
        )
        after: str | None = ""
        while after is not None:
            started = time.monotonic()
            async with self.write() as conn:
                window, after = await _window(conn, deliveries.c.id, after, batch)
                doomed = select(deliveries.c.id).where(window, *old_and_done)
                gone = await conn.execute(
                    delete(attempts).where(attempts.c.delivery_id.in_(doomed.scalar_subquery()))
                )
                purged.attempts += int(gone.rowcount)
                gone = await conn.execute(delete(deliveries).where(window, *old_and_done))
                purged.deliveries += int(gone.rowcount)
            _timed(purged, started)
        after = ""
        while after is not None:
            started = time.monotonic()
            async with self.write() as conn:
                window, after = await _window(conn, events.c.id, after, batch)
                gone = await conn.execute(
                    delete(events).where(
                        window,
                        events.c.created_at < older_than,
                        ~select(deliveries.c.id)
                        .where(deliveries.c.event_id == events.c.id)
                        .exists(),
                    )
                )
                purged.events += int(gone.rowcount)
            _timed(purged, started)
        return purged

    # workers

    async def register_worker(
        self, worker_id: str, host: str, pid: int, now: datetime | None = None
    ) -> None:
        """Register ``worker_id``, stamped by the database's clock (or ``now``, for tests)."""
        stamp = database_now(self.engine.dialect) if now is None else now
        async with self.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker_id))
            await conn.execute(
                insert(workers).values(
                    id=worker_id, host=host, pid=pid, started_at=stamp, heartbeat_at=stamp
                )
            )

    async def heartbeat(self, worker_id: str, now: datetime | None = None) -> bool:
        """Say ``worker_id`` is alive, at the database's time of the write (or ``now``, for
        tests); False if it had been declared dead (its row is gone)."""
        stamp = database_now(self.engine.dialect) if now is None else now
        async with self.write() as conn:
            result = await conn.execute(
                update(workers).where(workers.c.id == worker_id).values(heartbeat_at=stamp)
            )
            return bool(result.rowcount)

    async def deregister_worker(self, worker_id: str) -> None:
        async with self.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker_id))

    async def list_workers(self) -> Sequence[Row[Any]]:
        async with self.read() as conn:
            return (await conn.execute(select(workers).order_by(workers.c.started_at))).all()

    async def take_over_dead_workers(
        self,
        silent_since: datetime | timedelta,
        now: datetime,
        lost: Callable[[ExpiredLease], Outcome],
        *,
        judge: str | None = None,
    ) -> list[DeadWorkerTakeover]:
        """Declare dead every worker whose last heartbeat is older than ``silent_since`` (a
        timedelta: that long before the database's time) and hand its deliveries back: those
        merely claimed go back to the queue untouched (due ``now``); each one on the wire gets
        the attempt of unknown outcome that ``lost`` makes of it, recorded in the same
        transaction. Deleting the worker's row decides which of several workers looking at
        once does it. The ``judge`` (the worker looking) never declares itself dead.
        """
        taken: list[DeadWorkerTakeover] = []
        dialect = self.engine.dialect

        def silent() -> ColumnElement[bool]:
            since = (
                database_ago(dialect, silent_since.total_seconds())
                if isinstance(silent_since, timedelta)
                else silent_since
            )
            return and_(workers.c.heartbeat_at < since, workers.c.id != (judge or ""))

        async with self.read() as conn:
            found = (await conn.execute(select(workers.c.id).where(silent()))).scalars().all()
        for worker_id in found:
            async with self.write() as conn:
                gone = await conn.execute(
                    delete(workers).where(workers.c.id == worker_id, silent())
                )
                if not gone.rowcount:
                    continue  # it came back, or another worker took it over
                held = deliveries.c.lease_owner == worker_id
                released = await conn.execute(
                    update(deliveries)
                    .where(held, deliveries.c.on_wire_since.is_(None))
                    .values(lease_owner=None, next_attempt_at=now)
                )
                on_wire = await conn.execute(
                    update(deliveries)
                    .where(held, deliveries.c.status == DeliveryStatus.PENDING)
                    .values(lease_owner=LOST + worker_id)
                    .returning(
                        deliveries.c.id,
                        deliveries.c.lease_owner,
                        deliveries.c.attempt_count,
                        deliveries.c.on_wire_since,
                    )
                )
                leases = [ExpiredLease(*row) for row in on_wire]
                await _write_outcomes(conn, LOST + worker_id, [lost(lease) for lease in leases])
                taken.append(DeadWorkerTakeover(worker_id, int(released.rowcount or 0), leases))
        return taken

    async def take_expired_leases(
        self, expired_by: datetime, lost: Callable[[ExpiredLease], Outcome]
    ) -> list[ExpiredLease]:
        """Take over the deliveries whose holder let the lease run out before it recorded a
        result, where that holder is no registered worker (a test send whose process died;
        a registered worker's deliveries come back through ``take_over_dead_workers``).

        Each is marked ``lost:<owner>`` in the statement that finds it, so of several workers
        looking at once exactly one takes it, and the attempt of unknown outcome that ``lost``
        makes of it is recorded in the same transaction, which frees it.
        """
        async with self.write() as conn:
            rows = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner.is_not(None),
                    deliveries.c.lease_owner.not_like(f"{LOST}%"),
                    deliveries.c.lease_owner.not_in(select(workers.c.id)),
                    deliveries.c.next_attempt_at <= expired_by,
                    deliveries.c.status == DeliveryStatus.PENDING,
                )
                .values(lease_owner=literal(LOST) + deliveries.c.lease_owner)
                .returning(
                    deliveries.c.id,
                    deliveries.c.lease_owner,
                    deliveries.c.attempt_count,
                    func.coalesce(deliveries.c.on_wire_since, deliveries.c.next_attempt_at),
                )
            )
            leases = [ExpiredLease(*row) for row in rows]
            for mark in {lease.mark for lease in leases}:
                mine = [lost(lease) for lease in leases if lease.mark == mark]
                await _write_outcomes(conn, mark, mine)
            return leases

    async def record(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        released: Mapping[datetime, Collection[str]] | None = None,
        now: datetime | None = None,
        disable_webhooks: dict[str, str] | None = None,
    ) -> int:
        """Record a batch of outcomes in one transaction; return how many leases were still ours.

        Attempts are always stored (they happened), unless their delivery is gone (its
        webhook was deleted meanwhile). A delivery is only updated while ``owner`` still holds
        its lease, so a worker whose lease ran out cannot overwrite a newer state.
        ``released`` deliveries (due time → ids) go back to the queue unsent, due then.
        """
        try:
            return await self._record(owner, outcomes, released, now, disable_webhooks)
        except IntegrityError:
            # a webhook was being deleted with its deliveries as the batch was written (its
            # attempt's delivery was there when looked for, gone by the commit): once more,
            # the deleted delivery's attempt is now left out
            return await self._record(owner, outcomes, released, now, disable_webhooks)

    async def _record(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        released: Mapping[datetime, Collection[str]] | None,
        now: datetime | None,
        disable_webhooks: dict[str, str] | None,
    ) -> int:
        async with self.write() as conn:
            kept = await _write_outcomes(conn, owner, outcomes)
            for due_at, ids in (released or {}).items():
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
                    .values(lease_owner=None, next_attempt_at=due_at, on_wire_since=None)
                )
            for webhook_id, reason in (disable_webhooks or {}).items():
                await conn.execute(
                    update(webhooks)
                    .where(webhooks.c.id == webhook_id)
                    .values(
                        status=WebhookStatus.DISABLED,
                        disabled_reason=reason,
                        updated_at=now,
                    )
                )
            return kept

    # the control center's overview and delivery browser (web/)

    async def webhook_health(
        self,
        since: datetime,
        success: Collection[int],
        bucket_seconds: int,
        operator_id: str | None = None,
    ) -> HealthRows:
        """What the overview shows of each webhook's attempts since ``since``, in one read:
        counts and p50/p95 duration (nearest rank), attempts per time bucket by outcome, the
        last failure, the unreachable attempts in a row (what opens a circuit) and the pending
        deliveries. ``success`` is the statuses that count as delivered."""
        ok = attempts.c.status.in_(list(success))
        recent = attempts.c.started_at >= since

        def of_webhooks(query: _Query) -> _Query:
            joined = query.join(deliveries, deliveries.c.id == attempts.c.delivery_id).join(
                webhooks, webhooks.c.id == deliveries.c.webhook_id
            )
            return _webhooks_of(joined.where(recent), operator_id)

        ranked = of_webhooks(
            select(
                deliveries.c.webhook_id.label("webhook_id"),
                attempts.c.duration_ms.label("duration_ms"),
                case((ok, 1), else_=0).label("succeeded"),
                func.row_number()
                .over(partition_by=deliveries.c.webhook_id, order_by=attempts.c.duration_ms)
                .label("rank"),
                func.count().over(partition_by=deliveries.c.webhook_id).label("total"),
            ).select_from(attempts)
        ).subquery()
        stats = select(
            ranked.c.webhook_id,
            func.count().label("attempts"),
            func.sum(ranked.c.succeeded).label("succeeded"),
            func.min(
                case((ranked.c.rank * 100 >= ranked.c.total * 50, ranked.c.duration_ms))
            ).label("p50_ms"),
            func.min(
                case((ranked.c.rank * 100 >= ranked.c.total * 95, ranked.c.duration_ms))
            ).label("p95_ms"),
        ).group_by(ranked.c.webhook_id)

        seconds = extract("epoch", attempts.c.started_at) - int(since.timestamp())
        bucket: ColumnElement[Any] = (
            cast(seconds / bucket_seconds, Integer)  # integers: SQLite divides exactly so
            if self.engine.dialect.name == "sqlite"
            else cast(func.floor(seconds / bucket_seconds), Integer)
        )
        outcome = case(
            (ok, literal("succeeded")),
            (
                and_(
                    deliveries.c.status == DeliveryStatus.FAILED.value,
                    attempts.c.number == deliveries.c.attempt_count,
                ),
                literal("failed"),
            ),
            else_=literal("retrying"),
        )
        classified = of_webhooks(
            select(
                deliveries.c.webhook_id.label("webhook_id"),
                bucket.label("bucket"),
                outcome.label("outcome"),
            ).select_from(attempts)
        ).subquery()
        timeline = select(
            classified.c.webhook_id,
            classified.c.bucket,
            classified.c.outcome,
            func.count().label("attempts"),
        ).group_by(classified.c.webhook_id, classified.c.bucket, classified.c.outcome)

        last_failed = of_webhooks(
            select(func.max(attempts.c.id))
            .select_from(attempts)
            .where(~ok | attempts.c.status.is_(None))
        ).group_by(deliveries.c.webhook_id)
        failures: Select[Any] = (
            select(
                deliveries.c.webhook_id,
                attempts.c.delivery_id,
                attempts.c.started_at,
                attempts.c.status,
                attempts.c.error,
                attempts.c.response_excerpt,
            )
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(attempts.c.id.in_(last_failed))
        )

        answered = (
            of_webhooks(
                select(
                    deliveries.c.webhook_id.label("webhook_id"),
                    func.max(attempts.c.started_at).label("at"),
                )
                .select_from(attempts)
                .where(attempts.c.status.is_not(None))
            )
            .group_by(deliveries.c.webhook_id)
            .subquery()
        )
        unreachable = (
            of_webhooks(
                select(
                    deliveries.c.webhook_id,
                    func.count().label("in_a_row"),
                    func.max(attempts.c.started_at).label("last_at"),
                ).select_from(attempts)
            )
            .outerjoin(answered, answered.c.webhook_id == deliveries.c.webhook_id)
            .where(
                attempts.c.status.is_(None),
                or_(answered.c.at.is_(None), attempts.c.started_at > answered.c.at),
            )
            .group_by(deliveries.c.webhook_id)
        )

        pending = _webhooks_of(
            select(deliveries.c.webhook_id, func.count().label("pending"))
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .where(deliveries.c.status == DeliveryStatus.PENDING.value),
            operator_id,
        ).group_by(deliveries.c.webhook_id)

        async with self.read() as conn:
            return HealthRows(
                stats=(await conn.execute(stats)).all(),
                timeline=(await conn.execute(timeline)).all(),
                last_failures=(await conn.execute(failures)).all(),
                unreachable=(await conn.execute(unreachable)).all(),
                pending=(await conn.execute(pending)).all(),
            )

    async def find_deliveries(
        self,
        *,
        location_id: str | None = None,
        webhook_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: str | None = None,
        limit: int = 50,
        operator_id: str | None = None,
    ) -> Sequence[Row[Any]]:
        """Deliveries newest first, with their event's location, filtered by any of location,
        webhook, event type, status and creation time (``since`` inclusive, ``until`` not)."""
        query: Select[Any] = (
            select(*DELIVERY_COLUMNS, events.c.location_id.label("location_id"))
            .join(events, events.c.id == deliveries.c.event_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        for column, value in (
            (events.c.location_id, location_id),
            (deliveries.c.webhook_id, webhook_id),
            (events.c.type, event_type),
            (deliveries.c.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(deliveries.c.created_at >= since)
        if until is not None:
            query = query.where(deliveries.c.created_at < until)
        if after_id is not None:
            query = query.where(deliveries.c.id < after_id)
        async with self.read() as conn:
            found: Sequence[Row[Any]] = (await conn.execute(_events_of(query, operator_id))).all()
        return found


async def _write_outcomes(conn: AsyncConnection, owner: str, outcomes: Sequence[Outcome]) -> int:
    """Store the attempts (always: they happened; not once their delivery is deleted) and the
    new states of the deliveries ``owner`` still holds; return how many it held.

    The attempt of a delivery whose lease ``owner`` no longer holds (another worker took it
    over while this one stalled or was cut off) is stored flagged ``late``: it changes no
    delivery and takes no number from the attempts that count (unique per number).

    PostgreSQL takes each half as one statement over arrays, the states first (the update
    locks each row and says which leases were still ours); SQLite, in process, runs them row
    by row (``executemany``), which is its fastest way, after reading which it holds."""
    if not outcomes:
        return 0
    attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
    # positional (the fields' order, which mypy checks): a third of the keyword form's cost
    states = [
        OutcomeParams(
            o.delivery_id,
            owner,
            o.status,
            o.attempt_count,
            o.next_attempt_at,
            o.last_status,
            o.last_error,
            o.delivered_at,
        )
        for o in outcomes
    ]
    if conn.dialect.name == "postgresql":
        held = set(await RECORD_OUTCOMES.returned(conn, states))
        if attempt_rows:
            await INSERT_ATTEMPTS.execute(conn, flag_late(attempt_rows, held))
        return len(held)
    if attempt_rows:
        held = await held_sqlite(conn, owner, [a.delivery_id for a in attempt_rows])
        await INSERT_ATTEMPT.executemany(conn, flag_late(attempt_rows, held))
    return await RECORD_OUTCOME.executemany(conn, states)  # SQLite counts every row it changed


async def _claim_skipping_locked(
    conn: AsyncConnection, params: ClaimParams
) -> list[ClaimedDelivery]:
    """PostgreSQL: claim, skipping rows other workers' claims hold. They read the same window,
    so some of the chosen may be taken meanwhile; then the claim chooses again (its own
    leases are out of the window now), a few times at most."""
    taken: list[ClaimedDelivery] = []
    make = CLAIM_POSTGRESQL.make
    for _ in range(CLAIM_TRIES):
        rows = await CLAIM_POSTGRESQL.fetch_rows(
            conn, params._replace(limit=params.limit - len(taken))
        )
        got = [make(row) for row in rows if row[0] is not None]  # id: None if none leased
        taken += got
        if len(got) == rows[0][-1]:  # as many as it chose ("wanted"): none was skipped
            break
    return taken


async def _window(
    conn: AsyncConnection, key: Any, after: str, size: int
) -> tuple[ColumnElement[bool], str | None]:
    """The window of the next ``size`` primary keys after ``after``, as a range of the key, and
    where the window after it starts (None: this is the last one).

    A range, not the keys themselves: an ``IN`` list of as many keys as the window holds is a
    statement of its own for every length, and the last window's length is a new one at every
    purge; each was prepared and kept, with its keys, by the driver's and SQLAlchemy's caches of
    every connection (a worker purging every 30 s grew by 40 MB in 8 minutes)."""
    last = (
        await conn.execute(select(key).where(key > after).order_by(key).offset(size - 1).limit(1))
    ).scalar()
    if last is None:
        return key > after, None
    return and_(key > after, key <= last), last


def _timed(purged: Purged, started: float) -> None:
    purged.transactions += 1
    purged.longest_transaction = max(purged.longest_transaction, time.monotonic() - started)


_ATTEMPT_COLUMNS = [attempts.c[name] for name in AttemptRecord._fields]


def _attempt(row: Row[Any]) -> AttemptRecord:
    values = row._asdict()
    headers = values["request_headers"]
    # the JSON column decodes on read; text is what a driver that does not hands back
    values["request_headers"] = json.loads(headers) if isinstance(headers, str) else dict(headers)
    values["error"] = shown_error(values["error"], values["late"])
    return AttemptRecord(**values)


async def _switch_webhooks(
    conn: AsyncConnection,
    which: ColumnElement[bool],
    status: OwnerStatus,
    reason: str | None,
    owner_disabled: str,
    now: datetime,
) -> None:
    """Disable the enabled webhooks among ``which`` with ``reason``, or re-enable those among
    them disabled for ``owner_disabled`` (their reason starts so)."""
    chosen: tuple[ColumnElement[bool], ...]
    if status is OwnerStatus.DISABLED:
        chosen = which, webhooks.c.status == WebhookStatus.ENABLED.value
        values = {"status": WebhookStatus.DISABLED.value, "disabled_reason": reason}
    else:
        chosen = (
            which,
            webhooks.c.status == WebhookStatus.DISABLED.value,
            webhooks.c.disabled_reason.startswith(owner_disabled, autoescape=True),
        )
        values = {"status": WebhookStatus.ENABLED.value, "disabled_reason": None}
    await conn.execute(update(webhooks).where(*chosen).values(**values, updated_at=now))


def _owned_by(query: _Query, operator_id: str | None) -> _Query:
    """``query`` over locations, narrowed to one operator's (None: the admin sees all)."""
    return query if operator_id is None else query.where(locations.c.operator_id == operator_id)


def _webhooks_of(query: _Query, operator_id: str | None) -> _Query:
    """``query`` over webhooks, narrowed to one operator's."""
    return query if operator_id is None else query.where(webhooks.c.operator_id == operator_id)


def _subscribed_only_to(location_id: str) -> Select[Any]:
    """The ids of the webhooks whose subscription names this location and no other."""
    return (
        select(subscriptions.c.webhook_id)
        .group_by(subscriptions.c.webhook_id)
        .having(
            func.min(subscriptions.c.location_id) == location_id,
            func.max(subscriptions.c.location_id) == location_id,
        )
        .where(
            subscriptions.c.webhook_id.in_(
                select(subscriptions.c.webhook_id).where(subscriptions.c.location_id == location_id)
            )
        )
    )


async def _subscribe(
    conn: AsyncConnection, webhook_id: str, operator_id: str, pairs: Collection[Pair]
) -> None:
    await conn.execute(
        insert(subscriptions),
        [
            {
                "webhook_id": webhook_id,
                "location_id": location_id,
                "event_type": event_type,
                "operator_id": operator_id,
            }
            for location_id, event_type in pairs
        ],
    )


async def _with_subscriptions(
    conn: AsyncConnection, rows: Sequence[Row[Any]]
) -> list[SubscribedWebhook]:
    """The webhook rows with their subscriptions, read in one query."""
    pairs: dict[str, list[Pair]] = {row.id: [] for row in rows}
    for chunk in _chunks(list(pairs), 500):
        query = select(
            subscriptions.c.webhook_id, subscriptions.c.location_id, subscriptions.c.event_type
        ).where(subscriptions.c.webhook_id.in_(chunk))
        for webhook_id, location_id, event_type in await conn.execute(query):
            pairs[webhook_id].append((location_id, event_type))
    return [SubscribedWebhook(row, pairs[row.id]) for row in rows]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


async def _upgrade_unbounded(database_url: str, db_timeout: float) -> None:
    """Migrate through an engine of its own whose statements are not bounded by the timeout
    (an index on a big table may rightly take longer than a request should wait)."""
    engine = create_engine(database_url, timeout=db_timeout, bound_statements=False)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
