"""Custom event types an operator registered, beside the catalog's."""

from __future__ import annotations

from sqlalchemy import delete, select

from ..custom_types import CustomEventType
from ..errors import Conflict
from .db import Database, insert_unique
from .schema import event_types, events, subscriptions


class EventTypes:
    """Registered event types."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_event_types(self) -> list[CustomEventType]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(event_types).order_by(event_types.c.name))).all()
        return [
            CustomEventType(r.name, r.description, r.json_schema, r.sample, r.created_at)
            for r in rows
        ]

    async def insert_event_type(self, event_type: CustomEventType) -> None:
        """Register a type (``Conflict`` if the name is taken), announced to every process."""
        async with self.db.changing_access() as conn:
            await insert_unique(
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
        async with self.db.changing_access() as conn:
            named = select(subscriptions.c.webhook_id).where(subscriptions.c.event_type == name)
            used = select(events.c.id).where(events.c.type == name)
            for query, what in ((named, "a webhook subscribes to it"), (used, "events of it")):
                if (await conn.execute(query.limit(1))).first() is not None:
                    raise Conflict(f"event type {name!r} is in use ({what}); it cannot be removed")
            gone = await conn.execute(delete(event_types).where(event_types.c.name == name))
            return bool(gone.rowcount)
