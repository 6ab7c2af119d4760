"""Deliveries as the operator sees them: listed, shown with their attempts, found across
locations, and made due again (retry one now, recover a webhook's failed ones)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, update

from ..states import DeliveryStatus
from .db import Database
from .records import AttemptRecord
from .schema import attempts, deliveries, events
from .scoping import ATTEMPT_COLUMNS, DELIVERY_COLUMNS, attempt_record, events_of


class Deliveries:
    """Deliveries as resources."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
            after = events_of(
                select(deliveries.c.id)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id == after_id),
                operator_id,
            ).scalar_subquery()
            query = query.where(deliveries.c.id < after)
        async with self.db.read() as conn:
            return (await conn.execute(events_of(query, operator_id))).all()

    async def get_delivery(
        self, delivery_id: str, operator_id: str | None = None
    ) -> tuple[Row[Any], list[AttemptRecord]] | None:
        """A delivery with its attempts, oldest first."""
        query = (
            select(*DELIVERY_COLUMNS)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id == delivery_id)
        )
        async with self.db.read() as conn:
            found = (await conn.execute(events_of(query, operator_id))).first()
            if found is None:
                return None
            tried = await conn.execute(
                select(*ATTEMPT_COLUMNS)
                .where(attempts.c.delivery_id == delivery_id)
                .order_by(attempts.c.number, attempts.c.id)
            )
            return found, [attempt_record(row) for row in tried]

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
        async with self.db.read() as conn:
            found: Sequence[Row[Any]] = (await conn.execute(events_of(query, operator_id))).all()
        return found

    async def schedule_now(self, delivery_id: str, now: datetime) -> bool:
        """Make a delivery due now (manual retry); refused while a worker holds its lease."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner.is_(None))
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now)
            )
            await self.db.notify(conn, bool(result.rowcount))
        if result.rowcount:
            self.db.new_work.announce()
        return bool(result.rowcount)

    async def requeue_failed(self, webhook_id: str, since: datetime, now: datetime) -> int:
        """Make a webhook's failed deliveries created since ``since`` due now (recover)."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.webhook_id == webhook_id,
                    deliveries.c.status == DeliveryStatus.FAILED,
                    deliveries.c.created_at >= since,
                )
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now)
            )
            await self.db.notify(conn, bool(result.rowcount))
        if result.rowcount:
            self.db.new_work.announce()
        return int(result.rowcount or 0)
