"""The FastAPI application: the REST face of ``service``, one router per resource.

``serve`` runs it with the dispatcher in the same process; ``api`` runs it alone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline

from .. import metrics
from .._version import __version__
from ..config import Settings
from ..errors import DatabaseUnavailable, HotspotWebhooksError, Unauthorized
from ..service import Service
from ..web import control_center
from . import deliveries, event_types, events, integrations, locations, operators, tokens, webhooks
from .errors import install_error_handlers
from .limits import BodyLimit, BodyTimeout
from .lockout import FailedAuthLimit
from .openapi import published

log = logging.getLogger(__name__)

DESCRIPTION = """\
Durable, signed webhook delivery for Wi-Fi hotspot platforms.

Authenticate with `Authorization: Bearer <token>` or the original platform's
`sn-apikey: <token>`. The admin token manages operators; an operator's token sees and
changes only its own locations, webhooks, events and deliveries (anything else is 404).

Every error answers `{"success": false, "error": {"code", "message", "details"}}`, where
`details` names each bad field.

Ids (of locations and events, which you choose, and ours) are 1 to 200 of `A-Z a-z 0-9 _ . : -`,
starting with a letter, a digit or `_`. Any other id is refused (422); in a path it names
nothing (404).
"""


def create_app(settings: Settings, *, dispatch: bool = True, migrate: bool = True) -> FastAPI:
    """The app; with ``dispatch`` it also runs the dispatcher for as long as it serves.

    With ``migrate`` it upgrades the schema at start-up; ``serve`` and ``api`` have done that
    already (before printing the first admin token) and pass False.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            service = await Service.open(settings, migrate=migrate)
            stack.push_async_callback(service.close)
            if dispatch:  # stopped first on the way out: in-flight attempts are recorded
                await stack.enter_async_context(service.running_dispatcher())
            app.state.service = service
            yield

    # Swagger UI and ReDoc served from the package, not a CDN: self-hosted docs work offline
    app = FastAPIOffline(
        title="hotspot-webhooks",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    count_database_errors(app)
    app.state.failed_auth = FailedAuthLimit()  # per process (see ``lockout``)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: (
            settings.max_batch_body_bytes if path == "/v1/events/batch" else settings.max_body_bytes
        ),
    )
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout)
    for router in (
        event_types.router,
        operators.router,
        tokens.router,
        locations.router,
        webhooks.router,
        integrations.router,
        events.router,
        deliveries.router,
    ):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            events.complete_examples(FastAPI.openapi(app))
        built: dict[str, Any] = app.openapi_schema  # type: ignore[assignment]
        service: Service | None = getattr(app.state, "service", None)
        registered = {} if service is None else service.event_types.known.loaded()
        samples = {name: dict(t.sample) for name, t in registered.items()}
        return published(built, list(registered), samples)

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(KnowRegisteredTypes, path=app.openapi_url or "", state=app.state)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Database down."}})
    async def readyz() -> JSONResponse:
        """Readiness: the database answers."""
        service: Service = app.state.service
        try:
            await service.ping()
        except HotspotWebhooksError as exc:
            if isinstance(exc, DatabaseUnavailable):
                metrics.record_database_error("api")
            return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
        return JSONResponse({"status": "ok"})

    metrics.mark_exported()

    # not in the OpenAPI document: Prometheus' text format, not the API's JSON
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics (counts only, no secrets; ``METRICS_TOKEN`` asks for a token)."""
        if not metrics.token_matches(request.headers.get("authorization"), settings.metrics_token):
            raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>")
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # the control center: its own pages under /ui (outside the OpenAPI document), same service
    app.mount("/ui", control_center(settings, app.state))

    @app.get("/", include_in_schema=False)
    def control_center_home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return app


class KnowRegisteredTypes:
    """ASGI middleware: before the OpenAPI document is built (synchronously, ``openapi``),
    read the registered event types. A plain ASGI class, not ``@app.middleware``: that one
    would cost every request a task and a copy of its body."""

    def __init__(self, app: Any, *, path: str, state: Any) -> None:
        self.app, self.path, self.state = app, path, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            service: Service | None = getattr(self.state, "service", None)
            if service is not None:
                await service.event_types.known.custom()
        await self.app(scope, receive, send)


def count_database_errors(app: FastAPI) -> None:
    """Count each request that found the database away, then answer as every error does."""
    answer = app.exception_handlers[HotspotWebhooksError]

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        metrics.record_database_error("api")
        response = answer(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(DatabaseUnavailable, database_unavailable)
