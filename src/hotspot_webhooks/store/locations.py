"""Locations: a hotspot site of an operator's. Disabling one disables the webhooks that serve it
alone; deleting one deletes what only it used, in batches."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..states import LOCATION_DISABLED, DeliveryStatus, OwnerStatus
from .db import PURGE_BATCH, Database, insert_unique, timed
from .records import Purged
from .schema import attempts, deliveries, events, locations, subscriptions, webhooks
from .scoping import owned_by
from .webhooks import subscribed_only_to, switch_webhooks


class Locations:
    """Locations, their status and their deletion."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_location(self, row: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await insert_unique(conn, locations, row, f"location {row['id']!r} exists already")

    async def get_location(
        self, location_id: str, operator_id: str | None = None
    ) -> Row[Any] | None:
        query = select(locations).where(locations.c.id == location_id)
        async with self.db.read() as conn:
            return (await conn.execute(owned_by(query, operator_id))).first()

    async def list_locations(self, operator_id: str | None = None) -> Sequence[Row[Any]]:
        query = select(locations).order_by(locations.c.id)
        async with self.db.read() as conn:
            return (await conn.execute(owned_by(query, operator_id))).all()

    async def set_location_status(
        self, location_id: str, status: OwnerStatus, reason: str | None, now: datetime
    ) -> int:
        """Disable or enable a location, in one transaction.

        Disabled, emits there create no delivery (``plan_emits``); the webhooks subscribed to
        it alone are disabled with ``reason`` (enabled again with it); and the due deliveries
        of its events for the other webhooks (several locations, or "*") fail unsent, as a
        disabled webhook's do. Returns how many deliveries failed so.
        """
        async with self.db.write() as conn:
            await conn.execute(
                update(locations)
                .where(locations.c.id == location_id)
                .values(status=status.value, disabled_reason=reason)
            )
            only_here = webhooks.c.id.in_(subscribed_only_to(location_id))
            await switch_webhooks(conn, only_here, status, reason, LOCATION_DISABLED, now)
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
            async with self.db.write() as conn:
                doomed_events = (
                    select(events.c.id).where(events.c.location_id == location_id).limit(batch)
                )
                ids = (await conn.execute(doomed_events)).scalars().all()
                if not ids and await self._delete_location_row(conn, location_id, purged):
                    timed(purged, started)
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
            timed(purged, started)

    async def _delete_location_row(
        self, conn: AsyncConnection, location_id: str, purged: Purged
    ) -> bool:
        """The last step of ``delete_location``: the webhooks subscribed to it alone (their
        deliveries were of its events, gone already, but delete any all the same), its place
        in the others' subscriptions, and the location itself, unless an event arrived
        meanwhile (then False: go on)."""
        its_webhooks = subscribed_only_to(location_id)
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
