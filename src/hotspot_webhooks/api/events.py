"""``/v1/events``: emit one event or a batch (each stored with its deliveries before the answer),
list them, show one.

The request schema is built from the catalog: one object per event type, told apart by
``type``, each with exactly its payload fields, and one for the types an admin registers
(any JSON object as ``data``, which the service validates against the type's JSON Schema).
So ``/docs`` shows all six payloads and a wrong field is named before the service sees the
event (which validates it again anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from .. import catalog
from ..custom_types import MAX_NAME, NAME_PATTERN, REGISTERED_TAG
from ..models import EmitBatchResult, EmitResult, Event, Page
from ..service import EmitRequest
from ..validation import MAX_BATCH, MAX_PAGE
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import EVENT_TYPE_ENUM, id_field, id_in_path, id_in_query
from .json_body import StrictJSONRoute

router = APIRouter(
    prefix="/v1/events", tags=["events"], responses=ERROR_RESPONSES, route_class=StrictJSONRoute
)


def _class_name(event_type: catalog.EventType) -> str:
    return "".join(part.title() for part in event_type.name.split("."))


def _value() -> Any:
    """A payload field: a string or null, without NUL (the service says so by name)."""
    return Field(None, json_schema_extra={"pattern": catalog.VALUE_PATTERN})


def _event_model(event_type: catalog.EventType) -> type[BaseModel]:
    data = create_model(  # type: ignore[call-overload]
        f"{_class_name(event_type)}Data",
        __config__=ConfigDict(extra="forbid", title=f"{event_type.name} payload"),
        **{name: (str | None, _value()) for name in event_type.fields},
    )
    model: type[BaseModel] = create_model(
        f"{_class_name(event_type)}Event",
        __config__=ConfigDict(extra="forbid", title=event_type.name),
        __doc__=event_type.description,
        type=(Literal[event_type.name], ...),  # type: ignore[arg-type]
        location_id=(str, id_field()),
        data=(data, ...),
        id=(str | None, id_field("Idempotency key; generated when absent.", default=None)),
    )
    return model


class RegisteredEvent(BaseModel):
    """An event of a type an admin registered (`GET /v1/event-types` lists them); its `data`
    is validated against that type's JSON Schema."""

    model_config = ConfigDict(extra="forbid", title="an event of a registered type")

    type: str = Field(
        max_length=MAX_NAME,
        json_schema_extra={"pattern": NAME_PATTERN, "not": {"enum": list(catalog.EVENT_TYPES)}},
    )
    location_id: str = id_field()
    data: dict[str, Any]
    id: str | None = id_field("Idempotency key; generated when absent.", default=None)


def _tag(value: Any) -> str | None:
    """Which model an incoming event is read with: its built-in type's, or the registered
    types' (a name not built in, or none: that model says what is missing). A body that was
    not parsed as JSON (bytes) fits none, and is answered 415 (``errors.py``)."""
    if isinstance(value, bytes):
        return None
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in catalog.EVENT_TYPES else REGISTERED_TAG


_EVENT_MODELS = (
    *(Annotated[_event_model(t), Tag(t.name)] for t in catalog.EVENT_TYPES.values()),
    Annotated[RegisteredEvent, Tag(REGISTERED_TAG)],
)
if TYPE_CHECKING:
    EventIn = Any
else:
    EventIn = Annotated[Union[_EVENT_MODELS], Discriminator(_tag)]  # noqa: UP007


def _example(event_type: catalog.EventType) -> dict[str, Any]:
    return {"type": event_type.name, "location_id": "loc-1042", "data": dict(event_type.sample)}


EXAMPLES = {
    t.name: {"summary": t.description, "value": _example(t)} for t in catalog.EVENT_TYPES.values()
}


BATCH_EXAMPLE = {"events": [EXAMPLES[name]["value"] for name in list(EXAMPLES)[:2]]}


def complete_examples(openapi: dict[str, Any]) -> None:
    """Put the null fields back into the examples: FastAPI drops every null from the OpenAPI
    document, but a receiver sees each field of its type, nulls included, in this order."""
    for path, examples in (
        ("/v1/events", {name: e["value"] for name, e in EXAMPLES.items()}),
        ("/v1/events/batch", {"two events": BATCH_EXAMPLE}),
    ):
        documented = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        for name, value in examples.items():
            documented["examples"][name]["value"] = value


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(max_length=MAX_BATCH)


def _request(event: Any) -> EmitRequest:
    data = event.data if isinstance(event, RegisteredEvent) else event.data.model_dump()
    return EmitRequest(event.type, event.location_id, data, event.id)


@router.post("", status_code=202, responses=CONFLICT_RESPONSE)
async def emit(
    event: Annotated[EventIn, Body(openapi_examples=EXAMPLES)],
    service: ServiceDep,
    caller: CallerDep,
) -> EmitResult:
    """Store the event with one delivery per enabled matching webhook, then answer. An `id`
    that exists changes nothing and answers the original result with `duplicate: true`."""
    return (await service.events.emit_many([_request(event)], single=True, caller=caller))[0]


@router.post("/batch", status_code=202, responses=CONFLICT_RESPONSE)
async def emit_batch(
    batch: Annotated[
        EventBatch,
        Body(
            openapi_examples={
                "two events": {
                    "summary": "Several events in one transaction",
                    "value": BATCH_EXAMPLE,
                }
            }
        ),
    ],
    service: ServiceDep,
    caller: CallerDep,
) -> EmitBatchResult:
    """Up to 1000 events, stored together (all or none) before the answer."""
    results = await service.events.emit_many([_request(e) for e in batch.events], caller=caller)
    return EmitBatchResult(data=results)


@router.get("")
async def list_events(
    service: ServiceDep,
    caller: CallerDep,
    location_id: Annotated[str | None, id_in_query("Only this location's events.")] = None,
    type: Annotated[str | None, Query(json_schema_extra=EVENT_TYPE_ENUM)] = None,
    cursor: Annotated[str | None, id_in_query("`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Page[Event]:
    """Newest first, `limit` at a time; follow `next_cursor` for more."""
    return await service.events.get_all(
        location_id=location_id, type=type, cursor=cursor, limit=limit, caller=caller
    )


@router.get("/{event_id}")
async def get_event(
    event_id: Annotated[str, id_in_path("The event's id.")], service: ServiceDep, caller: CallerDep
) -> Event:
    return await service.events.get(event_id, caller=caller)
