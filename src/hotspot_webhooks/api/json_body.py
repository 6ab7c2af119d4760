"""JSON request bodies read as RFC 8259: what JSON cannot carry is 422, naming the field.

Python's parser (which FastAPI uses) accepts ``NaN``, ``Infinity``, ``-Infinity``, reads
``1e999`` as infinity and a lone surrogate (``"\\ud800"``) as text that has no UTF-8 form.
None of them can be stored or sent on as JSON: every route of the API is a ``StrictJSONRoute``,
which parses the body once (FastAPI then reads the parsed value) and refuses those with 422
in the error shape, naming each field (``events[3].data.price``), before the route runs.
Payloads are checked again, NUL included, by the service (``strict_json``), for every face.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..strict_json import check

# What a body holding NaN, an infinity or a lone surrogate must contain somewhere: the bare
# words; an exponent of 3 digits or a run of 100 (below both, |x| < 1e199); a \uD800-\uDFFF
# escape or such a surrogate's UTF-8-like bytes; or NUL bytes (UTF-16 or UTF-32 text, which
# Python's parser also reads). Bodies without any (nearly all) are not walked.
_SUSPECT = re.compile(rb"NaN|Infinity|[eE][+]?\d{3}|\d{100}|\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]|\x00")


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if _is_json(request.headers.get("content-type")) and await request.body():
                try:
                    body = await request.json()  # kept by the request: parsed once
                except ValueError:  # not JSON at all: FastAPI answers it (400)
                    pass
                else:
                    if _SUSPECT.search(await request.body()):
                        check(body, nul=False, what="request body holds what JSON cannot carry")
            return await handler(request)

        return strict


def _is_json(content_type: str | None) -> bool:
    """As FastAPI decides whether to read a body as JSON (its strict default): the type is
    application/json or application/*+json."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")
