"""The presets' bodies rendered as a delivery renders them: by the sandboxed renderer
(``integrations/templates.py``, a child process with its bounds), for one event of a type (its
catalog sample unless ``data`` is given), from location ``1`` named "Lobby Café".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotspot_webhooks.catalog import EVENT_TYPES
from hotspot_webhooks.integrations.templates import RenderContext, compile_template
from hotspot_webhooks.integrations.templates import render as render_sandboxed

LOCATION = {"id": "1", "name": "Lobby Café"}
MAX_OUTPUT = 256 * 1024


def context(
    event_type: str, data: Mapping[str, str | None] | None = None, **location: str
) -> dict[str, Any]:
    """The template context for one event of ``event_type`` (its catalog sample by default)."""
    payload = dict(EVENT_TYPES[event_type].sample if data is None else data)
    return {
        "event": {
            "id": "evt_2Jx8kQ1a",
            "type": event_type,
            "location_id": LOCATION["id"],
            "created_at": "2022-08-27T13:41:09Z",
        },
        "data": payload,
        "location": {**LOCATION, **location},
    }


def render(
    body: str,
    event_type: str,
    data: Mapping[str, str | None] | None = None,
    *,
    location_name: str | None = None,
) -> str:
    """``body`` rendered for one event (its type's sample unless ``data`` is given)."""
    place = context(event_type, data, **({} if location_name is None else {"name": location_name}))
    rendered = render_sandboxed(
        compile_template({"body": body}),
        RenderContext(
            event_id=place["event"]["id"],
            event_type=event_type,
            location_id=place["location"]["id"],
            created_at=place["event"]["created_at"],
            data=place["data"],
            location_name=place["location"]["name"],
        ),
    )
    # §9: a template renders at most 256 KiB (the sandbox refuses more)
    assert len(rendered) <= MAX_OUTPUT, f"{len(rendered)} bytes rendered"
    return rendered.decode()
