"""The FastAPI application: the REST face of ``service``, one router per resource.

``serve`` runs it with the dispatcher in the same process; ``api`` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..config import Settings
from ..delivery.dispatcher import Dispatcher, tune_process_for_throughput
from ..errors import HotspotWebhooksError
from ..service import Service
from . import deliveries, event_types, events, locations, operators, webhooks
from .errors import install_error_handlers
from .limits import BodyLimit

log = logging.getLogger(__name__)

DESCRIPTION = """\
Durable, signed webhook delivery for Wi-Fi hotspot platforms.

Authenticate with `Authorization: Bearer <token>` or the original platform's
`sn-apikey: <token>`. The admin token manages operators; an operator's token sees and
changes only its own locations, webhooks, events and deliveries (anything else is 404).

Every error answers `{"success": false, "error": {"code", "message", "details"}}`, where
`details` names each bad field.
"""


def create_app(settings: Settings, *, dispatch: bool = True) -> FastAPI:
    """The app; with ``dispatch`` it also runs the dispatcher for as long as it serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await Service.open(settings, migrate=True)
        app.state.service = service
        dispatcher = Dispatcher(service.store, settings, service.cipher) if dispatch else None
        if dispatcher:
            tune_process_for_throughput()
        task = asyncio.create_task(dispatcher.run()) if dispatcher else None
        try:
            yield
        finally:
            if dispatcher and task:
                dispatcher.stop()  # in-flight attempts finish and are recorded
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await dispatcher.close()
            await service.close()

    # Swagger UI and ReDoc served from the package, not a CDN: self-hosted docs work offline
    app = FastAPIOffline(
        title="hotspot-webhooks",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: (
            settings.max_batch_body_bytes if path == "/v1/events/batch" else settings.max_body_bytes
        ),
    )
    for router in (
        event_types.router,
        operators.router,
        locations.router,
        webhooks.router,
        events.router,
        deliveries.router,
    ):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            events.complete_examples(FastAPI.openapi(app))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Database down."}})
    async def readyz() -> JSONResponse:
        """Readiness: the database answers."""
        service: Service = app.state.service
        try:
            await service.store.ping()
        except HotspotWebhooksError as exc:
            return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
