"""The one error shape every answer uses: ``{"success": false, "error": {code, message, details}}``.

Our own errors carry their status; FastAPI's request validation becomes 400 (not JSON) or 422
with each bad field named the way a caller writes it (``events[3].data.email``); routing errors
keep their status; anything else is a bug, logged, and answered 500 without its insides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from .. import catalog
from ..custom_types import REGISTERED_TAG
from ..errors import HotspotWebhooksError, TooManyRequests, field_error
from ..strict_json import shown
from .redaction import redact

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: int
    message: str
    details: list[FieldProblem]


class ErrorBody(BaseModel):
    success: Literal[False]
    error: ErrorInfo


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The error answers of every authenticated route, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("The body is not valid JSON."),
    401: _described("No token, or an unknown one."),
    403: _described("An operator token asked for an admin action."),
    404: _described("No such object, or another operator's."),
    408: _described("The request body did not arrive in time; the connection is closed."),
    413: _described("The body is larger than the configured limit."),
    415: _described("The body is not JSON."),
    422: _described("A field is missing or wrong; `details` names each."),
    429: _described(
        "Too many tokens that are not valid from this address; wait `Retry-After` seconds."
    ),
    503: _described("The database is unavailable; nothing was written."),
}
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: _described("The request conflicts with the current state (message says which)."),
}


def error_response(
    status: int,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"success": False, "error": {"code": status, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HotspotWebhooksError, _our_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _bug)


async def _our_error(request: Request, exc: HotspotWebhooksError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, redact(request.url.path), exc.message)
    return error_response(exc.status, exc.message, exc.details, headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        message = (
            f"{request.method} is not allowed on {request.url.path}; "
            f"use {' or '.join(allowed)} (see /docs)"
        )
        return error_response(405, message, headers={"Allow": ", ".join(allowed)})
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API answers on this path, from the OpenAPI document's paths; a path
    written out literally (``/v1/events/batch``) wins over a template it also fits."""
    fitting: dict[str, set[str]] = {}
    for template, operations in request.app.openapi()["paths"].items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
        )
        if re.fullmatch(pattern, request.url.path):
            fitting[template] = {method.upper() for method in operations}
    literal = fitting.get(request.url.path)
    return sorted(literal if literal is not None else set().union(*fitting.values()))


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, redact(request.url.path), exc_info=exc)
    return error_response(500, "internal error; it has been logged")


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        reason = next(e for e in errors if e["type"] == "json_invalid").get("ctx", {}).get("error")
        message = f"request body is not valid JSON ({reason})" if reason else "not valid JSON"
        return error_response(400, message, [field_error("body", "not valid JSON")])
    if any(_is_not_json(e) for e in errors):
        return error_response(
            415,
            "request body must be JSON: send it with Content-Type: application/json",
            [field_error("body", "not JSON")],
        )
    details = [field_error(_field_name(_location(e)), _problem(e)) for e in errors]
    listed = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return error_response(422, f"invalid request: {listed}", details)


def _is_not_json(error: Any) -> bool:
    """A body FastAPI did not parse as JSON (a form or text content type) arrives as bytes."""
    return tuple(error["loc"]) == ("body",) and isinstance(error.get("input"), bytes)


def _location(error: Any) -> tuple[Any, ...]:
    """Where the error is; a missing or unknown event type is the ``type`` field's."""
    loc = tuple(error["loc"])
    return (*loc, "type") if error["type"].startswith("union_tag") else loc


def _field_name(loc: Sequence[Any]) -> str:
    """``("body", "events", 3, "customer.create", "data", "email")`` → ``events[3].data.email``.

    The event type a tagged union adds to the location is dropped: callers never write it.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part not in catalog.EVENT_TYPES and part != REGISTERED_TAG:
            part = shown(str(part))  # a key as sent: NUL and lone surrogates escaped
            name += f".{part}" if name else part
    return name or "body"


def _problem(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "string_type":
        return "must be a string"
    if kind in ("dict_type", "model_attributes_type", "model_type"):
        return "must be a JSON object"
    if kind == "union_tag_not_found":
        return "is required: it names the event type"
    if kind == "union_tag_invalid":
        known = ", ".join(catalog.EVENT_TYPES)
        return f"unknown event type {ctx.get('tag')!r}; expected one of: {known}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind.startswith(("datetime", "timezone")):
        return "must be a date-time with a time zone, like 2026-11-29T00:00:00Z"
    message = str(error.get("msg", "is invalid"))
    return message[:1].lower() + message[1:]
