"""The event types this process knows: the six built-ins (``catalog``) and those an admin
registered (``custom_types``, kept in the store).

The registered ones are read from the store on first use and kept; a registration or a
removal on any process is announced as a change (``store/access.py``), and each process
then reads them again on next use. A name it does not know is looked up once more before
it is refused, so a type registered a moment ago elsewhere is never refused here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import catalog, strict_json
from .custom_types import CustomEventType
from .custom_types import serialize as serialize_custom
from .errors import InvalidInput, field_error
from .store.event_types import EventTypes

EventType = catalog.EventType | CustomEventType


class KnownEventTypes:
    def __init__(self, event_types: EventTypes) -> None:
        self._event_types = event_types
        self._custom: dict[str, CustomEventType] | None = None

    def forget(self) -> None:
        """What was registered may have changed: read it again on next use."""
        self._custom = None

    def loaded(self) -> Mapping[str, CustomEventType]:
        """The registered types as last read (none before the first read)."""
        return self._custom or {}

    async def custom(self) -> Mapping[str, CustomEventType]:
        if self._custom is None:
            self._custom = {t.name: t for t in await self._event_types.list_event_types()}
        return self._custom

    async def names(self) -> list[str]:
        return [*catalog.EVENT_TYPES, *await self.custom()]

    async def get(self, name: object, *, field: str = "type") -> EventType:
        """The type called ``name``, or ``InvalidInput`` naming ``field`` and the known ones."""
        if isinstance(name, str):
            builtin = catalog.EVENT_TYPES.get(name)
            if builtin is not None:
                return builtin
            found = (await self.custom()).get(name)
            if found is None:
                self.forget()  # registered a moment ago on another process?
                found = (await self.custom()).get(name)
            if found is not None:
                return found
        raise UnknownEventType(name, field, await self.names())


class UnknownEventType(InvalidInput):
    def __init__(self, name: object, field: str, known: list[str]) -> None:
        super().__init__(
            f"unknown event type {name!r}; expected one of: {', '.join(known)}",
            details=[field_error(field, f"unknown event type {name!r}")],
        )


def body_of(event_type: EventType, data: object, *, field: str = "data") -> bytes:
    """The exact bytes an event's payload is stored and sent as, once validated."""
    if isinstance(event_type, CustomEventType):
        # before its schema: NaN or a lone surrogate may pass a schema, but no receiver reads
        # them, and jsonschema's messages would quote them
        strict_json.check(data, field, what=f"invalid {event_type.name} payload")
        return serialize_custom(event_type.validate(data, field=field))
    return catalog.serialize(catalog.validate(event_type, data, field=field))


def sample_body(event_type: EventType) -> bytes:
    if isinstance(event_type, CustomEventType):
        # a sample stored before JSON was checked strictly may hold what JSON cannot carry
        strict_json.check(
            event_type.sample,
            "sample",
            what=f"{event_type.name}'s registered sample cannot be sent",
        )
        return serialize_custom(dict(event_type.sample))
    return catalog.serialize(event_type.sample)


def describe(event_type: EventType) -> dict[str, Any]:
    """What ``GET /v1/event-types`` shows of a type."""
    if isinstance(event_type, CustomEventType):
        return {
            "name": event_type.name,
            "description": event_type.description,
            "fields": event_type.fields,
            "json_schema": dict(event_type.json_schema) if _carried(event_type.json_schema) else {},
            "sample": dict(event_type.sample) if _carried(event_type.sample) else {},
            "builtin": False,
        }
    return {
        "name": event_type.name,
        "description": event_type.description,
        "fields": list(event_type.fields),
        "json_schema": event_type.json_schema(),
        "sample": dict(event_type.sample),
        "builtin": True,
    }


def _carried(value: object) -> bool:
    """Can JSON carry ``value`` (no NaN, infinity or lone surrogate, as ``strict_json``)?"""
    return not strict_json.problems(value, nul=False)
