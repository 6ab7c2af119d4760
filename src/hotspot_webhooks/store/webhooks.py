"""Webhooks with their subscriptions (location and event type pairs) and their keys."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..states import OwnerStatus, WebhookStatus
from ..subscription import ANY
from .db import Database, chunks
from .records import Pair, SubscribedWebhook
from .schema import attempts, deliveries, locations, subscriptions, webhooks
from .scoping import webhooks_of


class Webhooks:
    """Webhooks, subscriptions and keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_webhook(self, row: dict[str, Any], pairs: Collection[Pair]) -> None:
        """A webhook and its subscription (``(location or "*", type or "*")`` pairs)."""
        async with self.db.write() as conn:
            await conn.execute(insert(webhooks), row)
            await subscribe(conn, row["id"], row["operator_id"], pairs)

    async def get_webhook(
        self, webhook_id: str, operator_id: str | None = None
    ) -> SubscribedWebhook | None:
        query = select(webhooks).where(webhooks.c.id == webhook_id)
        async with self.db.read() as conn:
            found = (await conn.execute(webhooks_of(query, operator_id))).first()
            if found is None:
                return None
            [subscribed] = await with_subscriptions(conn, [found])
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
        query = webhooks_of(select(webhooks).order_by(webhooks.c.id), operator_id)
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
        async with self.db.read() as conn:
            return await with_subscriptions(conn, (await conn.execute(query)).all())

    async def update_webhook(
        self, webhook_id: str, values: dict[str, Any], pairs: Collection[Pair] | None = None
    ) -> bool:
        """Change the webhook's columns in ``values`` and, given ``pairs``, its subscription."""
        async with self.db.write() as conn:
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
                await subscribe(conn, webhook_id, owner, pairs)
            return True

    async def rotate_key(
        self, webhook_id: str, api_key_encrypted: str, now: datetime, keep_previous_until: datetime
    ) -> None:
        """Give the webhook a new key; the one it replaces keeps signing beside it until
        ``keep_previous_until`` (none kept when that is not after ``now``). A key replaced
        before its own grace ran out is dropped: one previous key at most."""
        keep = keep_previous_until > now
        async with self.db.write() as conn:
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

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook with its deliveries and their attempts."""
        async with self.db.write() as conn:
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


async def switch_webhooks(
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


def subscribed_only_to(location_id: str) -> Select[Any]:
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


async def subscribe(
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


async def with_subscriptions(
    conn: AsyncConnection, rows: Sequence[Row[Any]]
) -> list[SubscribedWebhook]:
    """The webhook rows with their subscriptions, read in one query."""
    pairs: dict[str, list[Pair]] = {row.id: [] for row in rows}
    for chunk in chunks(list(pairs), 500):
        query = select(
            subscriptions.c.webhook_id, subscriptions.c.location_id, subscriptions.c.event_type
        ).where(subscriptions.c.webhook_id.in_(chunk))
        for webhook_id, location_id, event_type in await conn.execute(query):
            pairs[webhook_id].append((location_id, event_type))
    return [SubscribedWebhook(row, pairs[row.id]) for row in rows]
