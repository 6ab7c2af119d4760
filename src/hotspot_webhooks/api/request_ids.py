"""A request id per HTTP request: on every log line the request causes, and in its answer.

A client (or the reverse proxy in front) may send ``X-Request-Id``; a sane one (1 to 100 of
``A-Z a-z 0-9 _ . : -``, nothing that looks like a secret) is kept, so one id follows a request
through the proxy's log and ours. Otherwise one is made. It is echoed as ``X-Request-Id`` and
set in ``logs.request_id`` for the request's task, where every log line, uvicorn's access line
included, picks it up.

It wraps the whole application (``server.py``), outside FastAPI's own error handling, so even
an answer to a bug carries the id.
"""

from __future__ import annotations

import re
from typing import Any

from .. import logs
from ..ids import new_id
from ..redaction import redact

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
Scope = dict[str, Any]
Message = dict[str, Any]


def incoming_id(value: bytes) -> str | None:
    """The client's request id if it is one we may log and echo, else None."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    if _SANE.fullmatch(text) is None or redact(text) != text:
        return None
    return text


class RequestIds:
    """ASGI middleware: sets the request id, and answers with it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                request_id = incoming_id(value)
                break
        request_id = request_id or new_id("req")
        encoded = request_id.encode()
        # not reset afterwards: uvicorn runs each request in a task of its own, and logs an
        # exception that escapes the app after this returns
        logs.request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, encoded)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
