"""``/v1/locations``: an operator's hotspots, named by the platform's own location ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ..models import Location, Page
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import StatusChange, id_field, id_in_path, name_in_query, text_field
from .json_body import StrictJSONRoute

router = APIRouter(
    prefix="/v1/locations",
    tags=["locations"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


class LocationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "loc-1042", "name": "Café Central"}]},
    )

    id: str = id_field("The platform's location id.")
    name: str = text_field()
    operator_id: str | None = Field(
        None, description="Owning operator; only the admin gives it (an operator owns its own)."
    )


@router.post("", status_code=201, responses=CONFLICT_RESPONSE)
async def create_location(body: LocationCreate, service: ServiceDep, caller: CallerDep) -> Location:
    return await service.locations.create(body.id, body.name, body.operator_id, caller=caller)


@router.get("")
async def list_locations(
    service: ServiceDep,
    caller: CallerDep,
    operator_id: Annotated[str | None, name_in_query("The operator's id or name.")] = None,
) -> Page[Location]:
    """The caller's locations (the admin sees all, or one operator's with ``operator_id``)."""
    return Page[Location](data=await service.locations.get_all(operator_id, caller=caller))


LocationId = Annotated[str, id_in_path("The location's id.")]


@router.get("/{location_id}")
async def get_location(location_id: LocationId, service: ServiceDep, caller: CallerDep) -> Location:
    return await service.locations.get(location_id, caller=caller)


@router.patch("/{location_id}", responses=CONFLICT_RESPONSE)
async def change_location(
    location_id: LocationId, body: StatusChange, service: ServiceDep, caller: CallerDep
) -> Location:
    """Disable or enable a location. Disabled: its webhooks are disabled (their queued
    deliveries fail unsent; `recover` re-queues them later) and events there are accepted
    with no delivery. Enabled: the webhooks its disabling disabled are enabled (refused
    while its operator is disabled)."""
    return await service.locations.set_status(location_id, body.status.value, caller=caller)


@router.delete("/{location_id}", status_code=204, response_class=Response)
async def delete_location(
    location_id: LocationId, service: ServiceDep, caller: CallerDep
) -> Response:
    """Delete a location with its webhooks and its events, their deliveries and attempts
    (in short transactions; if interrupted, delete again)."""
    await service.locations.delete(location_id, caller=caller)
    return Response(status_code=204)
