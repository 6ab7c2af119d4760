"""Events: stored with their deliveries through the group commit (``emits.py``), and read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, and_, or_, select

from .database import did_not_answer
from .db import Database
from .emits import GroupCommit
from .records import EmitCounts, EmitRules, NewEvent
from .schema import events
from .scoping import events_of


class Events:
    """Storing and reading events."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.group_commit = GroupCommit(
            dialect=db.engine.dialect,
            write=db.write,
            sqlite_writer=db.sqlite_writer,
            write_turn=db.write_turn,
            new_work=db.new_work,
            timeout=None if db.sqlite_writer is not None else db.timeout,
            did_not_answer=lambda committing: did_not_answer(db.engine, committing=committing),
        )

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
        return await self.group_commit.submit(new_events, rules, new_delivery_id)

    async def get_event(self, event_id: str, operator_id: str | None = None) -> Row[Any] | None:
        query = select(events).where(events.c.id == event_id)
        async with self.db.read() as conn:
            return (await conn.execute(events_of(query, operator_id))).first()

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
            after = events_of(after_query, operator_id).scalar_subquery()
            query = query.where(
                or_(
                    events.c.created_at < after,
                    and_(events.c.created_at == after, events.c.id < after_id),
                )
            )
        async with self.db.read() as conn:
            return (await conn.execute(events_of(query, operator_id))).all()
