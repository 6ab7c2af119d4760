"""Events: what happened at a location, validated against its type and stored with one
delivery per subscribed webhook, in one transaction (a batch: all or none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..errors import Conflict, NotFound, field_error
from ..ids import new_id
from ..known_types import KnownEventTypes, body_of
from ..models import EmitResult, Event, Page
from ..store.records import EventIdTaken, NewEvent, UnknownLocation
from ..store.store import Store
from ..validation import check_batch_size, check_id, check_limit, is_id
from .caller import ADMIN, Caller
from .common import found, now, page


@dataclass(frozen=True)
class EmitRequest:
    """One event to emit, as received (validated by ``Events.emit_many``)."""

    type: str
    location_id: str
    data: Any
    id: str | None = None


class Events:
    def __init__(self, store: Store, known: KnownEventTypes) -> None:
        self.store = store
        self.known = known

    async def emit(
        self,
        type: str,
        location_id: str,
        data: Any,
        *,
        id: str | None = None,
        caller: Caller = ADMIN,
    ) -> EmitResult:
        """Store one event with its deliveries; an id that exists changes nothing."""
        requests = [EmitRequest(type, location_id, data, id)]
        return (await self.emit_many(requests, single=True, caller=caller))[0]

    async def emit_many(
        self, requests: Sequence[EmitRequest], *, single: bool = False, caller: Caller = ADMIN
    ) -> list[EmitResult]:
        """Validate every event, then store all of them in one transaction (or none)."""
        check_batch_size(len(requests))
        received_at = now()
        new_events = []
        for index, request in enumerate(requests):
            prefix = "" if single else f"events[{index}]."
            event_type = await self.known.get(request.type, field=f"{prefix}type")
            location_id = check_id(request.location_id, f"{prefix}location_id")
            body = body_of(event_type, request.data, field=f"{prefix}data")
            event_id = new_id("evt") if request.id is None else check_id(request.id, f"{prefix}id")
            new_events.append(NewEvent(event_id, event_type.name, location_id, body, received_at))
        try:
            stored = await self.store.events.insert_events(
                new_events, lambda: new_id("dlv"), caller
            )
        except UnknownLocation as exc:
            field = "location_id" if single else f"events[{exc.index}].location_id"
            raise NotFound(exc.message, details=[field_error(field, "no such location")]) from None
        except EventIdTaken as exc:
            raise Conflict(
                f"event id {exc.event_id!r} is already taken; send this event under another id"
            ) from None
        results = []
        seen: set[str] = set()
        for new in new_events:
            duplicate = new.id in stored.existing or new.id in seen
            seen.add(new.id)
            results.append(
                EmitResult(id=new.id, deliveries=stored.deliveries[new.id], duplicate=duplicate)
            )
        metrics.record_events_accepted(
            new.type
            for new, result in zip(new_events, results, strict=True)
            if not result.duplicate
        )
        return results

    async def get(self, event_id: str, *, caller: Caller = ADMIN) -> Event:
        row = (
            await self.store.events.get_event(event_id, caller.operator_id)
            if is_id(event_id)
            else None
        )
        return Event.from_row(found(row, "event", event_id))

    async def get_all(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Event]:
        for value, field in ((location_id, "location_id"), (cursor, "cursor")):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if type is not None:
            await self.known.get(type)
        check_limit(limit)
        rows = await self.store.events.list_events(
            location_id=location_id or None,
            type=type,
            operator_id=caller.operator_id,
            after_id=cursor or None,
            limit=limit + 1,
        )
        return page([Event.from_row(r) for r in rows], limit)

    async def body(self, event_id: str, *, caller: Caller = ADMIN) -> bytes:
        """The exact bytes every attempt of this event sent: what reproducing an attempt
        (the control center's "copy as curl") must send again for its signature to hold."""
        row = (
            await self.store.events.get_event(event_id, caller.operator_id)
            if is_id(event_id)
            else None
        )
        return bytes(found(row, "event", event_id).body)
