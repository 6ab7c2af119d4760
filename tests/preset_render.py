"""A stand-in for the sandboxed renderer (``integrations/templates.py``, written in parallel):
the same context and ``tojson`` filter, so the presets' bodies are tested before it lands.

StrictUndefined and no globals make a preset that names a missing value, or leans on a global
like ``dict``, fail here, whichever choices the real renderer makes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hotspot_webhooks.catalog import EVENT_TYPES

_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
# no globals (range, dict, namespace...): a tightened sandbox may drop them, the presets don't
# need them
_ENV.globals.clear()
_ENV.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":"))

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
    place = {} if location_name is None else {"name": location_name}
    out = _ENV.from_string(body).render(context(event_type, data, **place))
    # §9: a template renders at most 256 KiB
    assert len(out.encode()) <= MAX_OUTPUT, f"{len(out.encode())} bytes rendered"
    return out
