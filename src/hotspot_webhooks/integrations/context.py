"""What a template sees (SPEC §9): ``event``, ``data`` and ``location``, built the same way for
a delivery, a preview and the check of a template against each subscribed type's sample."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def template_context(
    *,
    event_id: str,
    event_type: str,
    location_id: str,
    created_at: datetime | str | None,
    data: Mapping[str, Any],
    location_name: str | None,
) -> dict[str, Any]:
    """The values a template renders with, and nothing else."""
    return {
        "event": {
            "id": event_id,
            "type": event_type,
            "location_id": location_id,
            "created_at": iso(created_at),
        },
        "data": dict(data),
        "location": {"id": location_id, "name": location_name or location_id},
    }


def iso(value: datetime | str | None) -> str:
    """A stored time as the REST API shows it (``2026-12-07T23:01:34.123456Z``): the store
    gives a datetime, or on SQLite's raw rows its stored text (UTC, naive)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
