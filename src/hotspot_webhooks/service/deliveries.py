"""Deliveries: one event on its way to one webhook. Listed, shown with their attempts,
retried by hand, found by the control center's browser, and purged once finished and old."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..errors import Conflict, DatabaseUnavailable
from ..known_types import KnownEventTypes
from ..models import Delivery, DeliveryWithAttempts, Page
from ..states import DeliveryStatus
from ..store.disk_full import ADVICE as DISK_FULL_ADVICE
from ..store.disk_full import disk_full
from ..store.records import Purged
from ..store.store import Store
from ..validation import check_aware, check_choice, check_id, check_limit, is_id
from .caller import ADMIN, Caller
from .common import delivery_resource, found, now, page
from .webhooks import Webhooks, require_enabled


class LocatedDelivery(Delivery):
    """A delivery as the control center lists it: with its event's location."""

    location_id: str


class Deliveries:
    def __init__(self, store: Store, known: KnownEventTypes, webhooks: Webhooks) -> None:
        self.store = store
        self.known = known
        self.webhooks = webhooks

    async def get_all(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Delivery]:
        for value, field in (
            (webhook_id, "webhook_id"),
            (event_id, "event_id"),
            (cursor, "cursor"),
        ):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if status is not None:
            check_choice(status, DeliveryStatus, "status", what="delivery status")
        check_limit(limit)
        rows = await self.store.deliveries.list_deliveries(
            webhook_id=webhook_id or None,
            event_id=event_id or None,
            status=status,
            after_id=cursor or None,
            limit=limit + 1,
            operator_id=caller.operator_id,
        )
        return page([Delivery.model_validate(r) for r in rows], limit)

    async def get(self, delivery_id: str, *, caller: Caller = ADMIN) -> DeliveryWithAttempts:
        row = (
            await self.store.deliveries.get_delivery(delivery_id, caller.operator_id)
            if is_id(delivery_id)
            else None
        )
        return delivery_resource(*found(row, "delivery", delivery_id))

    async def retry(self, delivery_id: str, *, caller: Caller = ADMIN) -> Delivery:
        """Make a delivery due now, whatever its state; the next pass sends it again."""
        delivery = await self.get(delivery_id, caller=caller)
        require_enabled(await self.webhooks.get(delivery.webhook_id, caller=caller))
        if not await self.store.deliveries.schedule_now(delivery_id, now()):
            raise Conflict(
                f"delivery {delivery_id!r} is being attempted right now; retry after it finishes"
            )
        return Delivery.model_validate((await self.get(delivery_id, caller=caller)).model_dump())

    async def search(
        self,
        *,
        location_id: str | None = None,
        webhook_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[LocatedDelivery]:
        """Deliveries filtered by location, webhook, event type, status and time (creation,
        ``since`` inclusive), newest first, each with its event's location."""
        for value, field in (
            (location_id, "location_id"),
            (webhook_id, "webhook_id"),
            (cursor, "cursor"),
        ):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if event_type:
            await self.known.get(event_type, field="event_type")
        if status:
            check_choice(status, DeliveryStatus, "status", what="delivery status")
        for when, field in ((since, "since"), (until, "until")):
            if when is not None:
                check_aware(when, field)
        check_limit(limit)
        rows = await self.store.deliveries.find_deliveries(
            location_id=location_id or None,
            webhook_id=webhook_id or None,
            event_type=event_type or None,
            status=status or None,
            since=since,
            until=until,
            after_id=cursor or None,
            limit=limit + 1,
            operator_id=caller.operator_id,
        )
        fetched = [LocatedDelivery.model_validate(r) for r in rows]
        data = fetched[:limit]
        return Page[LocatedDelivery](
            data=data, next_cursor=data[-1].id if len(fetched) > limit else None
        )

    async def purge(self, older_than: timedelta, *, caller: Caller = ADMIN) -> Purged:
        """Delete finished deliveries, their attempts and events older than ``older_than``
        (pending ones stay): what ``RETENTION`` runs every tenth of it, and ``purge`` by hand."""
        caller.require_admin()
        try:
            return await self.store.queue.retention.purge(now() - older_than)
        except DatabaseUnavailable as exc:
            if disk_full(exc):  # deleting writes too: say what to do (docs/operations.md)
                raise DatabaseUnavailable(f"purge failed: {DISK_FULL_ADVICE}") from exc
            raise
