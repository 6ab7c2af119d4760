"""The control center's routes, served under ``/ui`` by the API's app (``api.app``).

A Starlette app of its own, mounted: its pages are not part of the REST API's OpenAPI
document, and its errors are pages, not the API's JSON. Its service is the API app's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..config import Settings
from ..errors import HotspotWebhooksError, TooManyRequests
from . import access, deliveries, integrations, overview, webhooks
from .access import ENDED
from .pages import HERE, PREFIX, Center, CsrfRefused, SignInNeeded, hx_redirect, render, see_other
from .sessions import forget


def control_center(settings: Settings, app_state: Any) -> ASGIApp:
    """The control center, over the service in ``app_state`` (set by the API's lifespan)."""
    post = ["POST"]
    routes = [
        Route("/", overview.overview_page),
        Route("/sign-in", access.sign_in_page),
        Route("/sign-in", access.sign_in, methods=post),
        Route("/sign-out", access.sign_out, methods=post),
        Route("/locations", webhooks.locations_page),
        Route("/locations", webhooks.create_location, methods=post),
        Route("/locations/{location_id}/status", webhooks.set_location_status, methods=post),
        Route("/webhooks", webhooks.webhooks_page),
        Route("/webhooks", webhooks.create_webhook, methods=post),
        Route("/webhooks/new", integrations.new_webhook_page),
        Route("/webhooks/new", integrations.create_from_preset, methods=post),
        Route("/webhooks/{webhook_id}", webhooks.webhook_page),
        Route("/webhooks/{webhook_id}", webhooks.update_webhook, methods=post),
        Route("/webhooks/{webhook_id}/status", webhooks.set_webhook_status, methods=post),
        Route("/webhooks/{webhook_id}/rotate-key", webhooks.rotate_key, methods=post),
        Route("/webhooks/{webhook_id}/key", webhooks.secret_page),
        Route("/webhooks/{webhook_id}/delete", webhooks.confirm_delete),
        Route("/webhooks/{webhook_id}/delete", webhooks.delete_webhook, methods=post),
        Route("/webhooks/{webhook_id}/test", webhooks.test_webhook, methods=post),
        Route("/webhooks/{webhook_id}/preview", integrations.preview),
        Route("/webhooks/{webhook_id}/recover", webhooks.recover, methods=post),
        Route("/deliveries", deliveries.deliveries_page),
        Route("/deliveries/rows", deliveries.delivery_rows),
        Route("/deliveries/{delivery_id}", deliveries.delivery_page),
        Route("/deliveries/{delivery_id}/retry", deliveries.retry, methods=post),
        Route("/event-types", overview.event_types_page),
        Route("/tokens", access.tokens_page),
        Route("/tokens", access.create_token, methods=post),
        Route("/tokens/{token_id}/revoke", access.revoke_token, methods=post),
        Route("/operators", access.operators_page),
        Route("/operators", access.create_operator, methods=post),
        Route("/operators/{operator_id}/tokens", access.create_operator_token, methods=post),
        Route("/operators/{operator_id}/status", access.set_operator_status, methods=post),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            SignInNeeded: _sign_in_needed,
            CsrfRefused: _csrf_refused,
            HotspotWebhooksError: _error_page,
            404: _not_found,
        },
    )
    app.state.center = Center(settings, app_state)
    return SecurityHeaders(app)


class SecurityHeaders:
    """ASGI middleware: every answer of the control center says that it loads nothing from
    elsewhere, runs no inline script, posts forms only to itself and is never framed."""

    HEADERS = (
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    target = f"{PREFIX}/sign-in"
    if exc.ended:
        target += f"?why={ENDED}"
    elif request.method == "GET" and "HX-Request" not in request.headers:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(wanted)
    response = hx_redirect(target) if "HX-Request" in request.headers else see_other(target)
    if exc.ended:
        forget(response, request)
    return response


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return render(
        request,
        _error_template(request),
        status=403,
        title="This form was refused",
        message="It came without the security token of your session (CSRF protection), so "
        "nothing was done. Go back, reload the page and send the form again.",
        details=[],
    )


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HotspotWebhooksError)
    titles = {404: "Not found", 403: "Not allowed", 409: "Not now", 422: "Please check"}
    response = render(
        request,
        _error_template(request),
        status=exc.status,
        title=titles.get(exc.status, "Something went wrong"),
        message=exc.message,
        details=exc.details,
    )
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _error_template(request: Request) -> str:
    """A whole page, or for htmx the message alone, to show where the answer was to go."""
    return "_error.html" if "HX-Request" in request.headers else "error.html"


async def _not_found(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        status=404,
        title="Not found",
        message=f"There is no page at {request.url.path}.",
        details=[],
    )
