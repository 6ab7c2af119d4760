"""Request body limits, in size and in time, enforced before a byte reaches the application.

A declared ``Content-Length`` over the limit is refused at once; a body sent without one
(chunked) is counted as it arrives and refused when it crosses the limit, so memory stays
bounded whatever the client claims. A body must also arrive whole within ``BODY_TIMEOUT``
of its headers: a client that declares 100 bytes and sends 1 would otherwise hold its
connection (and a slot of the server's) for as long as it likes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import field_error
from .errors import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            not_a_number = error_response(
                400,
                "Content-Length is not a number",
                [field_error("Content-Length", "not a number")],
            )
            await not_a_number(scope, receive, send)
            return
        if declared is not None and declared > limit:
            await error_response(413, _too_large(limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # an HTTPException: FastAPI turns any other error while reading into a 400
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent, -1 when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


def _too_large(limit: int) -> str:
    return (
        f"request body is larger than {limit} bytes; send fewer or smaller events "
        "(the limit is HOTSPOT_WEBHOOKS_MAX_BODY_BYTES / MAX_BATCH_BODY_BYTES)"
    )


class BodyTimeout:
    """Bounds the time from a request's headers to the end of its body: past ``seconds``, a
    route still reading it is answered 408 in the error shape, and the connection closed.

    A route that answers without reading the body (a GET, an unknown path) leaves the rest to
    the server, which discards it and closes the connection once it falls idle (uvicorn's
    keep-alive timeout). It is not closed at once: a client still sending would see the
    connection reset instead of the answer."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_complete = False

        async def timed() -> Message:
            nonlocal body_complete
            if body_complete:  # waiting for a disconnect is not reading the body
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # an HTTPException: FastAPI turns any other error while reading into a 400
                raise HTTPException(
                    408, _too_slow(self.seconds), headers={"Connection": "close"}
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        await self.app(scope, timed, send)


def _too_slow(seconds: float) -> str:
    return (
        f"request body not received within {seconds:g} s of the headers; send it whole "
        "at once (the limit is HOTSPOT_WEBHOOKS_BODY_TIMEOUT)"
    )
