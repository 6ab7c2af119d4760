"""``/v1/event-types``: the catalog, with each type's JSON Schema and sample payload; the admin
registers further types (validated against their JSON Schema, Draft 2020-12) and removes
unused ones. The built-ins cannot be changed or removed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..custom_types import MAX_DESCRIPTION, MAX_NAME, NAME_PATTERN
from ..models import EventTypeInfo, Page
from ..validation import TEXT_PATTERN
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .json_body import StrictJSONRoute

router = APIRouter(prefix="/v1/event-types", tags=["event types"], route_class=StrictJSONRoute)

SESSION_START: dict[str, JsonValue] = {
    "name": "session.start",
    "description": "A guest's Wi-Fi session has started.",
    "schema": {
        "type": "object",
        "properties": {
            "mac": {"type": "string", "pattern": "^([0-9A-F]{2}-){5}[0-9A-F]{2}$"},
            "started_at": {"type": "string", "format": "date-time"},
            "minutes": {"type": "integer", "minimum": 0},
        },
        "required": ["mac", "started_at"],
        "additionalProperties": False,
    },
    "sample": {"mac": "BE-72-B3-40-F9-BE", "started_at": "2026-11-30T12:00:00Z", "minutes": 60},
}


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SESSION_START]})

    name: str = Field(
        max_length=MAX_NAME,
        json_schema_extra={"pattern": NAME_PATTERN},
        description="Lowercase words joined by dots, not a built-in's name.",
    )
    description: str = Field(
        min_length=1, max_length=MAX_DESCRIPTION, json_schema_extra={"pattern": TEXT_PATTERN}
    )
    schema_: dict[str, Any] = Field(
        alias="schema", description="A JSON Schema (Draft 2020-12) of a JSON object."
    )
    sample: dict[str, Any] = Field(description="A payload the schema accepts.")


@router.get("")
async def list_event_types(service: ServiceDep) -> Page[EventTypeInfo]:
    """The six built-ins, then the registered types. Public: it holds nothing but the
    catalog."""
    return Page[EventTypeInfo](data=await service.event_types.get_all())


@router.get("/{name}", responses={404: ERROR_RESPONSES[404]})
async def get_event_type(name: str, service: ServiceDep) -> EventTypeInfo:
    return await service.event_types.get(name)


@router.post("", status_code=201, responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE})
async def register_event_type(
    body: EventTypeCreate, service: ServiceDep, caller: CallerDep
) -> EventTypeInfo:
    """Register a further event type (admin only). Its events are validated against its
    schema; webhooks subscribe to it by name. A built-in's name, or a registered one, is 409."""
    return await service.event_types.register(
        body.name, body.description, body.schema_, body.sample, caller=caller
    )


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE},
)
async def remove_event_type(name: str, service: ServiceDep, caller: CallerDep) -> Response:
    """Remove a registered type (admin only) that no event and no webhook uses; a built-in
    or a type in use is 409."""
    await service.event_types.remove(name, caller=caller)
    return Response(status_code=204)
