"""``/v1/deliveries``: one per (event, webhook), with every attempt made."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..models import Delivery, DeliveryWithAttempts, Page
from ..states import DeliveryStatus
from ..validation import MAX_PAGE
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import id_in_path, id_in_query
from .json_body import StrictJSONRoute

router = APIRouter(
    prefix="/v1/deliveries",
    tags=["deliveries"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
DeliveryId = Annotated[str, id_in_path("The delivery's id.")]


@router.get("")
async def list_deliveries(
    service: ServiceDep,
    caller: CallerDep,
    webhook_id: Annotated[str | None, id_in_query("Only this webhook's deliveries.")] = None,
    event_id: Annotated[str | None, id_in_query("Only this event's deliveries.")] = None,
    status: DeliveryStatus | None = None,
    cursor: Annotated[str | None, id_in_query("`next_cursor` of the previous page.")] = None,
    limit: Limit = 50,
) -> Page[Delivery]:
    """Newest first, `limit` at a time; follow `next_cursor` for more."""
    return await service.deliveries.get_all(
        webhook_id=webhook_id,
        event_id=event_id,
        status=None if status is None else status.value,
        cursor=cursor,
        limit=limit,
        caller=caller,
    )


@router.get("/{delivery_id}")
async def get_delivery(
    delivery_id: DeliveryId, service: ServiceDep, caller: CallerDep
) -> DeliveryWithAttempts:
    """The delivery with every attempt: request headers, status, response excerpt, error."""
    return await service.deliveries.get(delivery_id, caller=caller)


@router.post("/{delivery_id}/retry", status_code=202, responses=CONFLICT_RESPONSE)
async def retry_delivery(
    delivery_id: DeliveryId, service: ServiceDep, caller: CallerDep
) -> Delivery:
    """Make the delivery due now, whatever its state; the next pass sends it."""
    return await service.deliveries.retry(delivery_id, caller=caller)
