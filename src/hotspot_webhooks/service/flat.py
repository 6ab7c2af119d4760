"""The service's old flat verbs (``service.create_webhook(...)``), each a one-line delegate
to the part that owns it (``service.webhooks.create(...)``).

Kept so that the faces, ``cli/backend.py``'s ``Backend``, ``client.RemoteService`` and the
tests keep working while each resource moves to the parts (HOUSE.md §5 step 9); a resource's
delegates are deleted when its callers have moved. Nothing here may hold logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..models import (
    Delivery,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    EventTypeInfo,
    Location,
    Operator,
    OperatorWithToken,
    Page,
    RecoverResult,
    Token,
    TokenCreated,
    Webhook,
    WebhookWithSecret,
)
from ..store.records import Purged
from .access import Access
from .caller import ADMIN, Caller
from .deliveries import Deliveries, LocatedDelivery
from .event_types import EventTypes
from .events import EmitRequest, Events
from .health import Health, Overview
from .locations import Locations
from .operators import Operators
from .tokens import Tokens
from .webhooks import Webhooks


class FlatVerbs:
    """The parts, and the flat names that reach them (``Service`` builds the parts)."""

    access: Access
    operators: Operators
    tokens: Tokens
    event_types: EventTypes
    locations: Locations
    webhooks: Webhooks
    events: Events
    deliveries: Deliveries
    health: Health

    # access

    async def authenticate(self, token: str | None) -> Caller:
        return await self.access.authenticate(token)

    async def ensure_admin_token(self) -> str | None:
        return await self.access.ensure_admin_token()

    # operators and tokens

    async def create_operator(self, name: str, *, caller: Caller = ADMIN) -> OperatorWithToken:
        return await self.operators.create(name, caller=caller)

    async def list_operators(self, *, caller: Caller = ADMIN) -> list[Operator]:
        return await self.operators.get_all(caller=caller)

    async def set_operator_status(
        self, operator: str, status: str, *, caller: Caller = ADMIN
    ) -> Operator:
        return await self.operators.set_status(operator, status, caller=caller)

    async def delete_operator(self, operator: str, *, caller: Caller = ADMIN) -> Purged:
        return await self.operators.delete(operator, caller=caller)

    async def operator_of(self, caller: Caller) -> Operator | None:
        return await self.operators.of_caller(caller)

    async def create_token(self, operator: str | None, *, caller: Caller = ADMIN) -> TokenCreated:
        return await self.tokens.create(operator, caller=caller)

    async def create_own_token(self, *, caller: Caller = ADMIN) -> TokenCreated:
        return await self.tokens.create_own(caller=caller)

    async def list_tokens(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Token]:
        return await self.tokens.get_all(operator, caller=caller)

    async def revoke_token(self, token_id: str, *, caller: Caller = ADMIN) -> None:
        await self.tokens.revoke(token_id, caller=caller)

    # event types

    async def list_event_types(self) -> list[EventTypeInfo]:
        return await self.event_types.get_all()

    async def get_event_type(self, name: str) -> EventTypeInfo:
        return await self.event_types.get(name)

    async def register_event_type(
        self,
        name: str,
        description: str,
        json_schema: object,
        sample: object,
        *,
        caller: Caller = ADMIN,
    ) -> EventTypeInfo:
        return await self.event_types.register(
            name, description, json_schema, sample, caller=caller
        )

    async def remove_event_type(self, name: str, *, caller: Caller = ADMIN) -> None:
        await self.event_types.remove(name, caller=caller)

    # locations

    async def create_location(
        self, location_id: str, name: str, operator: str | None, *, caller: Caller = ADMIN
    ) -> Location:
        return await self.locations.create(location_id, name, operator, caller=caller)

    async def list_locations(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Location]:
        return await self.locations.get_all(operator, caller=caller)

    async def get_location(self, location_id: str, *, caller: Caller = ADMIN) -> Location:
        return await self.locations.get(location_id, caller=caller)

    async def set_location_status(
        self, location_id: str, status: str, *, caller: Caller = ADMIN
    ) -> Location:
        return await self.locations.set_status(location_id, status, caller=caller)

    async def delete_location(self, location_id: str, *, caller: Caller = ADMIN) -> Purged:
        return await self.locations.delete(location_id, caller=caller)

    # webhooks

    async def create_webhook(
        self,
        location_id: str | None = None,
        event_type: str | None = None,
        callback_url: str | None = None,
        *,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        operator: str | None = None,
        caller: Caller = ADMIN,
    ) -> WebhookWithSecret:
        return await self.webhooks.create(
            location_id,
            event_type,
            callback_url,
            location_ids=location_ids,
            event_types=event_types,
            operator=operator,
            caller=caller,
        )

    async def list_webhooks(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        caller: Caller = ADMIN,
    ) -> list[Webhook]:
        return await self.webhooks.get_all(
            location_id=location_id, event_type=event_type, status=status, caller=caller
        )

    async def get_webhook(self, webhook_id: str, *, caller: Caller = ADMIN) -> Webhook:
        return await self.webhooks.get(webhook_id, caller=caller)

    async def update_webhook(
        self,
        webhook_id: str,
        *,
        callback_url: str | None = None,
        status: str | None = None,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        caller: Caller = ADMIN,
    ) -> Webhook:
        return await self.webhooks.update(
            webhook_id,
            callback_url=callback_url,
            status=status,
            location_ids=location_ids,
            event_types=event_types,
            caller=caller,
        )

    async def delete_webhook(self, webhook_id: str, *, caller: Caller = ADMIN) -> None:
        await self.webhooks.delete(webhook_id, caller=caller)

    async def rotate_key(self, webhook_id: str, *, caller: Caller = ADMIN) -> WebhookWithSecret:
        return await self.webhooks.rotate_key(webhook_id, caller=caller)

    async def test_webhook(
        self,
        webhook_id: str,
        *,
        event_type: str | None = None,
        location_id: str | None = None,
        caller: Caller = ADMIN,
    ) -> DeliveryWithAttempts:
        return await self.webhooks.test(
            webhook_id, event_type=event_type, location_id=location_id, caller=caller
        )

    async def recover(
        self, webhook_id: str, since: datetime, *, caller: Caller = ADMIN
    ) -> RecoverResult:
        return await self.webhooks.recover(webhook_id, since, caller=caller)

    # events

    async def emit(
        self,
        type: str,
        location_id: str,
        data: Any,
        *,
        id: str | None = None,
        caller: Caller = ADMIN,
    ) -> EmitResult:
        return await self.events.emit(type, location_id, data, id=id, caller=caller)

    async def emit_many(
        self, requests: Sequence[EmitRequest], *, single: bool = False, caller: Caller = ADMIN
    ) -> list[EmitResult]:
        return await self.events.emit_many(requests, single=single, caller=caller)

    async def get_event(self, event_id: str, *, caller: Caller = ADMIN) -> Event:
        return await self.events.get(event_id, caller=caller)

    async def list_events(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Event]:
        return await self.events.get_all(
            location_id=location_id, type=type, cursor=cursor, limit=limit, caller=caller
        )

    async def event_body(self, event_id: str, *, caller: Caller = ADMIN) -> bytes:
        return await self.events.body(event_id, caller=caller)

    # deliveries

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Delivery]:
        return await self.deliveries.get_all(
            webhook_id=webhook_id,
            event_id=event_id,
            status=status,
            cursor=cursor,
            limit=limit,
            caller=caller,
        )

    async def get_delivery(
        self, delivery_id: str, *, caller: Caller = ADMIN
    ) -> DeliveryWithAttempts:
        return await self.deliveries.get(delivery_id, caller=caller)

    async def retry_delivery(self, delivery_id: str, *, caller: Caller = ADMIN) -> Delivery:
        return await self.deliveries.retry(delivery_id, caller=caller)

    async def find_deliveries(
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
        return await self.deliveries.search(
            location_id=location_id,
            webhook_id=webhook_id,
            event_type=event_type,
            status=status,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
            caller=caller,
        )

    async def purge(self, older_than: timedelta, *, caller: Caller = ADMIN) -> Purged:
        return await self.deliveries.purge(older_than, caller=caller)

    # the control center

    async def overview(
        self, *, hours: int = 24, buckets: int = 24, caller: Caller = ADMIN
    ) -> Overview:
        return await self.health.overview(hours=hours, buckets=buckets, caller=caller)
