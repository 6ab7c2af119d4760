"""Deliveries: a live list (polled by htmx, new rows appear without reload) with filters,
and one delivery with every attempt, "retry now" and "copy as curl"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..states import DeliveryStatus
from ..validation import invalid
from .pages import PREFIX, Visit, render, see_other, visit
from .snippets import curl_command

FILTERS = ("location_id", "webhook_id", "event_type", "status", "since", "until")
POLL_SECONDS = 2


def _time(value: str, field: str) -> datetime | None:
    """A filter's time from the form (``datetime-local``, in UTC as every time shown)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(
            field,
            "a date and time, like 2026-11-29T08:00",
            headline=f"{field}: {value!r} is not a date and time (like 2026-11-29T08:00)",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def _found(current: Visit) -> tuple[dict[str, str], Any]:
    query = current.request.query_params
    chosen = {name: query.get(name, "").strip() for name in FILTERS}
    page = await current.service.deliveries.search(
        location_id=chosen["location_id"] or None,
        webhook_id=chosen["webhook_id"] or None,
        event_type=chosen["event_type"] or None,
        status=chosen["status"] or None,
        since=_time(chosen["since"], "since"),
        until=_time(chosen["until"], "until"),
        cursor=query.get("cursor") or None,
        limit=50,
        caller=current.caller,
    )
    return chosen, page


async def deliveries_page(request: Request) -> Response:
    current = await visit(request)
    chosen, page = await _found(current)
    service = current.service
    webhooks = await service.webhooks.get_all(caller=current.caller)
    return render(
        request,
        "deliveries.html",
        urls={w.id: w.callback_url for w in webhooks},
        chosen=chosen,
        page=page,
        live=not request.query_params.get("cursor"),
        poll_seconds=POLL_SECONDS,
        query=request.url.query,
        locations=await service.locations.get_all(caller=current.caller),
        webhooks=webhooks,
        event_types=await service.event_types.get_all(),
        statuses=[s.value for s in DeliveryStatus],
    )


async def delivery_rows(request: Request) -> Response:
    """The list's rows alone: what the page polls for."""
    current = await visit(request)
    chosen, page = await _found(current)
    webhooks = await current.service.webhooks.get_all(caller=current.caller)
    return render(
        request,
        "_delivery_rows.html",
        urls={w.id: w.callback_url for w in webhooks},
        page=page,
        chosen=chosen,
        live=True,
        poll_seconds=POLL_SECONDS,
        query=request.url.query,
    )


async def delivery_page(request: Request) -> Response:
    current = await visit(request)
    service = current.service
    delivery = await service.deliveries.get(
        request.path_params["delivery_id"], caller=current.caller
    )
    webhook = await service.webhooks.get(delivery.webhook_id, caller=current.caller)
    body = await service.events.body(delivery.event_id, caller=current.caller)
    event = await service.events.get(delivery.event_id, caller=current.caller)
    curls = {
        attempt.number: curl_command(webhook.callback_url, attempt.request_headers, body)
        for attempt in delivery.attempts
        if attempt.request_headers
    }
    return render(
        request,
        "delivery.html",
        delivery=delivery,
        webhook=webhook,
        event=event,
        body=body,
        curls=curls,
    )


async def retry(request: Request) -> Response:
    current = await visit(request)
    await current.form()
    delivery_id = request.path_params["delivery_id"]
    await current.service.deliveries.retry(delivery_id, caller=current.caller)
    return see_other(
        f"{PREFIX}/deliveries/{delivery_id}",
        "Queued: the next pass sends it again; its attempt appears here.",
    )
