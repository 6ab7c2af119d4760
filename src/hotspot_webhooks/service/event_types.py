"""Event types: the six built-ins and those an admin registers, with their JSON Schemas.

``known`` is this process's view of them (``known_types.KnownEventTypes``), which every part
that validates a type name asks."""

from __future__ import annotations

from dataclasses import replace

from .. import catalog, strict_json
from ..custom_types import MAX_DESCRIPTION, check_definition
from ..errors import Conflict, NotFound
from ..known_types import EventType, KnownEventTypes, UnknownEventType, describe
from ..models import EventTypeInfo
from ..store.store import Store
from ..validation import check_text, is_text
from .access import Access
from .caller import ADMIN, Caller
from .common import now


class EventTypes:
    def __init__(self, store: Store, access: Access, known: KnownEventTypes) -> None:
        self.store = store
        self.access = access
        self.known = known

    async def get_all(self) -> list[EventTypeInfo]:
        """The six built-ins, then the registered types by name."""
        self.access.watch()
        custom = await self.known.custom()
        every: list[EventType] = [*catalog.EVENT_TYPES.values(), *custom.values()]
        return [EventTypeInfo(**describe(t)) for t in every]

    async def get(self, name: str) -> EventTypeInfo:
        self.access.watch()
        try:
            found = await self.known.get(name, field="name")
        except UnknownEventType as exc:
            raise NotFound(exc.message) from None
        return EventTypeInfo(**describe(found))

    async def register(
        self,
        name: str,
        description: str,
        json_schema: object,
        sample: object,
        *,
        caller: Caller = ADMIN,
    ) -> EventTypeInfo:
        """Register a further event type (the admin's act): events of it are validated
        against ``json_schema`` (JSON Schema, Draft 2020-12) and webhooks may subscribe to it.
        A built-in's name is refused (409), as is a name registered already."""
        caller.require_admin()
        description = check_text(description, "description", max_length=MAX_DESCRIPTION)
        # stored as JSON, and the sample sent as a payload (test sends): RFC 8259 only
        strict_json.check(json_schema, "schema", nul=False, what="invalid schema")
        strict_json.check(sample, "sample", what="invalid sample")
        defined = check_definition(name, description, json_schema, sample)
        registered = replace(defined, created_at=now())
        await self.store.event_types.insert_event_type(registered)
        self.access.forget()
        return EventTypeInfo(**describe(registered))

    async def remove(self, name: str, *, caller: Caller = ADMIN) -> None:
        """Remove a registered type no event and no webhook uses (409 otherwise); the
        built-ins cannot be removed (409)."""
        caller.require_admin()
        if name in catalog.EVENT_TYPES:
            raise Conflict(f"{name!r} is a built-in event type; built-ins cannot be removed")
        if not (is_text(name) and await self.store.event_types.delete_event_type(name)):
            raise NotFound(f"event type {name!r} is not registered")
        self.access.forget()
