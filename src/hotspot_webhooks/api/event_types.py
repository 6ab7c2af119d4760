"""``/v1/event-types``: the catalog, with each type's JSON Schema and sample payload."""

from __future__ import annotations

from fastapi import APIRouter

from .. import catalog
from ..errors import NotFound
from ..models import EventTypeInfo, Page
from .errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/event-types", tags=["event types"])


def _info(event_type: catalog.EventType) -> EventTypeInfo:
    return EventTypeInfo(
        name=event_type.name,
        description=event_type.description,
        fields=list(event_type.fields),
        json_schema=event_type.json_schema(),
        sample=dict(event_type.sample),
    )


@router.get("")
async def list_event_types() -> Page[EventTypeInfo]:
    """The six event types. Public: it holds nothing but the catalog."""
    return Page[EventTypeInfo](data=[_info(t) for t in catalog.EVENT_TYPES.values()])


@router.get("/{name}", responses={404: ERROR_RESPONSES[404]})
async def get_event_type(name: str) -> EventTypeInfo:
    event_type = catalog.EVENT_TYPES.get(name)
    if event_type is None:
        raise NotFound(
            f"unknown event type {name!r}; expected one of: {', '.join(catalog.EVENT_TYPES)}"
        )
    return _info(event_type)
