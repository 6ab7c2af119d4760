"""Group commit of emitted events: many concurrent emits, one transaction and one fsync.

Calls that arrive while a commit is under way are committed together in the next one. Each
caller still gets its own all-or-nothing result: an emit naming a location it may not use, or
an event id it may not reuse, fails alone and the others in its group are stored.

A commit reads what it must decide on (``statements.emit_lookups``), plans every emit in
memory (``plan_emits``, a pure function), and writes the planned events and deliveries. On
SQLite the whole transaction runs in one hand-off to the writer thread; on PostgreSQL it runs
through SQLAlchemy's async connection. Both read the same lookups and write the same rows.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Dialect, Select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InvalidInput
from ..integrations.filters import Filter, compile_filter
from ..states import OwnerStatus
from ..subscription import ANY
from .database import within
from .driver_sql import driver_sql
from .notify import NOTIFY_SQL, NewWork
from .records import EmitCounts, EmitRules, EventIdTaken, NewEvent, UnknownLocation
from .sqlite_writer import SqliteWriter
from .statements import (
    INSERT_DELIVERY,
    INSERT_EVENT,
    DeliveryParams,
    EmitLookups,
    EventParams,
    ExistingEvent,
    LocationOwner,
    Subscription,
    emit_lookups,
)

MAX_EVENTS_PER_COMMIT = 5000
FILTER_CACHE_SIZE = 10_000  # webhook filters kept compiled, per process

log = logging.getLogger(__name__)

EmitOutcome = EmitCounts | Exception  # what one caller of a group commit hears


class _Emit:
    """One caller's events waiting for the next group commit."""

    def __init__(
        self,
        events: Sequence[NewEvent],
        rules: EmitRules,
        new_delivery_id: Callable[[], str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.events = events
        self.rules = rules
        self.new_delivery_id = new_delivery_id
        self.done: asyncio.Future[EmitCounts] = loop.create_future()
        self.since = loop.time()


@dataclass
class EmitPlan:
    """What one group commit writes, and what each of its callers hears."""

    results: list[EmitOutcome] = field(default_factory=list)
    events: list[EventParams] = field(default_factory=list)
    deliveries: list[DeliveryParams] = field(default_factory=list)


def plan_emits(
    group: Sequence[_Emit],
    existing: Iterable[ExistingEvent],
    owners: Iterable[LocationOwner],
    subscriptions: Iterable[Subscription],
) -> EmitPlan:
    """Decide, emit by emit, what a group commit writes, from the rows of its lookups."""
    # event id → what exists under it; grows with each event planned
    known = {row.id: row for row in existing}
    owner_of: dict[str, str] = {}
    disabled: set[str] = set()  # locations whose events are stored with no delivery
    for owner in owners:
        owner_of[owner.id] = owner.operator_id
        if owner.status == OwnerStatus.DISABLED:
            disabled.add(owner.id)
    # (owner, location or "*", type or "*") → enabled webhooks (with their filters); each
    # webhook subscribes to a product of locations and types, so at most one of an event's
    # four keys names it
    targets: dict[tuple[str, str, str], list[Target]] = {}
    for row in subscriptions:
        key = (row.operator_id, row.location_id, row.event_type)
        targets.setdefault(key, []).append(Target(row.webhook_id, row.filter_json))
    plan = EmitPlan()
    for emit in group:
        refused = _refusal(emit, known, owner_of)
        if refused is not None:
            plan.results.append(refused)
            continue
        counts: dict[str, int] = {}
        existed: set[str] = set()
        planned: set[str] = set()  # stored by this emit: repeated in it, new all the same
        for new in emit.events:
            if new.id in known:
                counts[new.id] = known[new.id].delivery_count
                if new.id not in planned:
                    existed.add(new.id)
                continue
            planned.add(new.id)
            owner_id = owner_of[new.location_id]
            matched = [] if new.location_id in disabled else _matched(targets, owner_id, new)
            counts[new.id] = len(matched)
            known[new.id] = ExistingEvent(new.id, len(matched), owner_id)
            plan.events.append(
                EventParams(
                    id=new.id,
                    type=new.type,
                    location_id=new.location_id,
                    body=new.body,
                    delivery_count=len(matched),
                    created_at=new.created_at,
                )
            )
            plan.deliveries.extend(
                DeliveryParams(
                    id=emit.new_delivery_id(),
                    event_id=new.id,
                    webhook_id=webhook_id,
                    next_attempt_at=new.created_at,
                    created_at=new.created_at,
                )
                for webhook_id in matched
            )
        plan.results.append(EmitCounts(counts, frozenset(existed)))
    return plan


class Target(NamedTuple):
    """An enabled webhook an emit may match, and its filter (SPEC §9), if it has one."""

    webhook_id: str
    filter_json: str | None


def _matched(
    targets: dict[tuple[str, str, str], list[Target]], owner: str, event: NewEvent
) -> list[str]:
    """The webhooks of ``owner`` that ``event`` goes to, by id (the order deliveries are
    created in): subscribed to its location and type, and, where a webhook has a filter,
    matched by it. The payload is parsed only when a candidate has a filter."""
    found: list[str] = []
    data: Mapping[str, Any] | None = None
    for key in (
        (owner, event.location_id, event.type),
        (owner, event.location_id, ANY),
        (owner, ANY, event.type),
        (owner, ANY, ANY),
    ):
        for target in targets.get(key, ()):
            if target.filter_json is not None:
                if data is None:
                    data = json.loads(event.body)
                if not filter_matches(target.filter_json, target.webhook_id, data):
                    continue
            found.append(target.webhook_id)
    found.sort()
    return found


@functools.lru_cache(maxsize=FILTER_CACHE_SIZE)
def _compiled(filter_json: str) -> Filter:
    return compile_filter(json.loads(filter_json))


def filter_matches(filter_json: str, webhook_id: str, data: Mapping[str, Any]) -> bool:
    """Whether the stored filter matches ``data``. A stored filter was checked when it was
    written; one that no longer compiles (it cannot, short of an edit of the database) sends
    nothing rather than everything, and says so in the log."""
    try:
        return _compiled(filter_json).matches(data)
    except InvalidInput as exc:
        log.error(
            "webhook %s: its stored filter is invalid (%s); nothing matches it", webhook_id, exc
        )
        return False


def _refusal(
    emit: _Emit, known: dict[str, ExistingEvent], owner_of: dict[str, str]
) -> Exception | None:
    """Why this emit may not be stored at all, by its caller's rules; None if it may."""
    for index, event in enumerate(emit.events):
        if not emit.rules.may_emit_at(owner_of.get(event.location_id)):
            return UnknownLocation(event.location_id, index)
    for event in emit.events:
        found = known.get(event.id)
        if found is not None and not emit.rules.may_reuse_event_id(found.operator_id):
            return EventIdTaken(event.id)
    return None


class GroupCommit:
    """The queue of emits waiting for a commit, and the task that commits them."""

    def __init__(
        self,
        *,
        dialect: Dialect,
        write: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        sqlite_writer: SqliteWriter | None,
        write_turn: asyncio.Lock | None,
        new_work: NewWork,
        timeout: float | None = None,
        did_not_answer: Callable[[bool], Exception] | None = None,
    ) -> None:
        self._dialect = dialect
        # PostgreSQL: each emit is answered within ``timeout`` of its arrival (``_bounded``)
        self._timeout = timeout
        self._did_not_answer = did_not_answer
        self._committing_now = False  # the commit under way has sent its last statement
        self._new_work = new_work
        self._write = write
        self._sqlite_writer = sqlite_writer
        self._write_turn = write_turn
        self._waiting: list[_Emit] = []
        self._committing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(
        self, events: Sequence[NewEvent], rules: EmitRules, new_delivery_id: Callable[[], str]
    ) -> EmitCounts:
        emit = _Emit(events, rules, new_delivery_id, asyncio.get_running_loop())
        self._waiting.append(emit)
        if not self._committing:
            self._committing = True
            # a task of its own: a caller that goes away must not cancel the others' commit
            self._task = asyncio.create_task(self._commit_waiting())
        return await asyncio.shield(emit.done)

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                # one turn of the event loop first: requests whose bytes are already here
                # reach this queue too, and share the commit
                await asyncio.sleep(0)
                taken = 0
                group: list[_Emit] = []
                while self._waiting and (not group or taken < MAX_EVENTS_PER_COMMIT):
                    group.append(self._waiting.pop(0))
                    taken += len(group[-1].events)
                try:
                    results = await self._bounded(group)
                except Exception as exc:  # the database failed: every caller in it hears so
                    results = [exc] * len(group)
                else:
                    self._new_work.announce()
                for emit, result in zip(group, results, strict=True):
                    if isinstance(result, Exception):
                        emit.done.set_exception(result)
                    else:
                        emit.done.set_result(result)
        finally:
            self._committing = False

    async def _bounded(self, group: Sequence[_Emit]) -> list[EmitOutcome]:
        """The group's commit, given up (cancelled) when its oldest emit has waited
        ``timeout``, so no emit waits longer whatever the database does. Given up before
        COMMIT was sent, the transaction is rolled back (the connection is thrown away: the
        server rolls back when it sees it closed); after, its outcome is unknown and the
        error says so (an emit carrying its event id may be sent again safely)."""
        if self._timeout is None or self._did_not_answer is None:
            return await self._commit(group)
        self._committing_now = False
        loop = asyncio.get_running_loop()
        deadline = min(emit.since for emit in group) + self._timeout
        try:
            return await within(deadline - loop.time(), self._commit(group))
        except TimeoutError:
            raise self._did_not_answer(self._committing_now) from None

    async def _commit(self, group: Sequence[_Emit]) -> list[EmitOutcome]:
        """One transaction for the group; an emit that is refused is left out alone.
        ``_committing_now`` is set once every statement is done: COMMIT follows."""
        lookups = emit_lookups(
            {e.id for emit in group for e in emit.events},
            {e.location_id for emit in group for e in emit.events},
            {e.type for emit in group for e in emit.events},
        )
        if self._sqlite_writer is not None:
            return await self._commit_on_sqlite_thread(self._sqlite_writer, group, lookups)
        async with self._write() as conn:
            plan = plan_emits(
                group,
                map(ExistingEvent._make, (await conn.execute(lookups.existing)).all()),
                map(LocationOwner._make, (await conn.execute(lookups.owners)).all()),
                map(Subscription._make, (await conn.execute(lookups.subscriptions)).all()),
            )
            if plan.events:
                await INSERT_EVENT.executemany(conn, plan.events)
            if plan.deliveries:
                await INSERT_DELIVERY.executemany(conn, plan.deliveries)
                if self._new_work.notify_other_processes:
                    await conn.exec_driver_sql(NOTIFY_SQL)
            self._committing_now = True
        return plan.results

    async def _commit_on_sqlite_thread(
        self, writer: SqliteWriter, group: Sequence[_Emit], lookups: EmitLookups
    ) -> list[EmitOutcome]:
        """The same transaction as ``_commit``, run whole on the SQLite writer thread."""
        dialect = self._dialect

        def work(conn: sqlite3.Connection) -> list[EmitOutcome]:
            def rows(query: Select[Any]) -> list[Any]:
                return conn.execute(*driver_sql(query, dialect)).fetchall()

            plan = plan_emits(
                group,
                map(ExistingEvent._make, rows(lookups.existing)),
                map(LocationOwner._make, rows(lookups.owners)),
                map(Subscription._make, rows(lookups.subscriptions)),
            )
            if plan.events:
                conn.executemany(*INSERT_EVENT.prepare(dialect, plan.events))
            if plan.deliveries:
                conn.executemany(*INSERT_DELIVERY.prepare(dialect, plan.deliveries))
            return plan.results

        assert self._write_turn is not None
        async with self._write_turn:
            return await writer.run(work)
