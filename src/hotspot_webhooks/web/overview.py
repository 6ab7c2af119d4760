"""The overview (what needs attention first) and the event types' reference."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .pages import render, visit


async def overview_page(request: Request) -> Response:
    current = await visit(request)
    overview = await current.service.health.overview(caller=current.caller)
    locations = await current.service.locations.get_all(caller=current.caller)
    return render(request, "overview.html", overview=overview, has_locations=bool(locations))


async def event_types_page(request: Request) -> Response:
    current = await visit(request)
    event_types = await current.service.event_types.get_all()
    return render(request, "event_types.html", event_types=event_types)
