"""Request body limits, enforced before a byte reaches the application.

A declared ``Content-Length`` over the limit is refused at once; a body sent without one
(chunked) is counted as it arrives and refused when it crosses the limit, so memory stays
bounded whatever the client claims.
"""

from __future__ import annotations

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
