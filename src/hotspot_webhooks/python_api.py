"""``hotspot_webhooks.emit``: emitting from the platform's own Python code."""

from __future__ import annotations

import asyncio
from typing import Any

from .config import Settings
from .models import EmitResult
from .service import Service


def emit(
    type: str,
    location_id: str,
    data: dict[str, str | None],
    *,
    id: str | None = None,
    settings: Settings | None = None,
) -> EmitResult:
    """Store an event and its deliveries durably; returns once they are committed.

    For code already running an event loop, use ``await service.events.emit(...)`` instead.
    """

    async def run() -> EmitResult:
        service = await Service.open(settings or Settings())
        try:
            return await service.events.emit(type, location_id, data, id=id)
        finally:
            await service.close()

    return asyncio.run(run())


__all__: list[Any] = ["emit"]
