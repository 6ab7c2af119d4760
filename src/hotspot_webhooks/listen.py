"""``hotspot-webhooks listen``: a local receiver that verifies and pretty-prints deliveries.

It verifies exactly as a receiver should (``hotspot_webhooks.receiver``), answers 200 to a
correctly signed delivery and 401 otherwise, so it doubles as a reference for receivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from .receiver import InvalidSignature, parse
from .terminal import json_text, line

MAX_BODY = 1024 * 1024


def make_app(
    api_key: str,
    console: Console,
    *,
    respond: int = 200,
    on_event: Callable[..., None] | None = None,
) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = parse(request.headers, body, api_key)
        except InvalidSignature as exc:
            sender = request.headers.get("X-Hotspotsystem-Delivery", "")
            # every value as text: a header or a path holding markup or control characters
            # is shown, never obeyed (nor a crash answered 500)
            rejected = f"✗ rejected {request.method} {request.path}"
            console.print(
                line(
                    (f"{rejected}{f' ({sender})' if sender else ''}: {exc}", "red"),
                    " — answered 401, so it will be retried. Each webhook signs with its own "
                    "API key: was this listener started with the key of the webhook that "
                    "sent it?",
                ),
                soft_wrap=True,
            )
            return web.json_response({"ok": False, "error": str(exc)}, status=401)
        title = line(
            ("✓ verified", "green"),
            f" {event.type} · location {event.location_id} · attempt {event.attempt}",
        )
        panel = Panel(
            Syntax(json_text(event.data), "json", word_wrap=True),
            title=title,
            # below, where a long id is not cut by the title
            subtitle=None if event.delivery_id is None else line(event.delivery_id),
            expand=False,
        )
        console.print(panel)
        if on_event is not None:
            on_event(event)
        return web.json_response({"ok": respond == 200}, status=respond)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("POST", "/{tail:.*}", receive)
    return app


async def serve(host: str, port: int, api_key: str, console: Console, respond: int) -> None:
    runner = web.AppRunner(make_app(api_key, console, respond=respond), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    console.print(
        line(
            f"listening on http://{host}:{port}/ — deliveries signed with this API key are "
            f"verified and answered {respond}; Ctrl-C to stop"
        )
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
