"""A webhook's template: the request body rendered from the event, for receivers that want
their own shape (SPEC §9). Without one, a webhook sends the payload's bytes as §2 says.

A template is ``{"body": "<Jinja2 text>", "content_type": "application/json"}``. The body
renders in Jinja2's sandbox with exactly these values::

    event     {"id", "type", "location_id", "created_at"}   created_at as ISO 8601 text
    data      the payload, a dict (data.email, data["UserName"], data.items())
    location  {"id", "name"}

plus the ``tojson`` filter (compact JSON of any value: ``{{ data|tojson }}``,
``{"text": {{ ("New guest " ~ data.email)|tojson }}}``), Jinja's other filters and tests,
and the globals ``range dict namespace cycler joiner``. Autoescaping is off (bodies are not
HTML). ``null`` prints and joins (``~``) as nothing, not ``None``; a filter still gets it as
``None``: ``(data.city or "")|urlencode``. A name that is not there is an error, not
an empty string: ``{{ data.emial }}`` fails against the sample, at create, rather than sending
blanks for ever; ``data.get("field")`` or ``is defined`` reads a field that may be missing.

A JSON content type (``application/json``, or any ``+json`` one) must render valid JSON, checked on
every render. ``content_type`` is sent as the request's ``Content-Type``; a ``charset``, if
any, must be ``utf-8`` (the body is UTF-8).

Bounds, each an error naming what was exceeded, never a hung or swollen process: source at
most ``MAX_SOURCE`` (64 KiB), output at most ``MAX_OUTPUT`` (256 KiB), ``TIME_LIMIT`` (50 ms)
of CPU per render, ``MEMORY_LIMIT`` (256 MiB) of memory. Renders happen in sandbox processes
(``sandbox.py`` says why a process and not a thread, a trace function or the sandbox alone).

Use: ``compile_template`` checks the shape and syntax (422 naming ``template.body`` and the
line; it parses in the caller's thread: up to a tenth of a second of CPU for a large
template, half a second for a hostile 64 KiB one, so the service may well run it in a
thread); ``check_template`` renders it against each subscribed type's sample (the service's
create and update; ``sample_contexts`` builds them from ``catalog.EVENT_TYPES`` or registered
types); ``TemplateRenderer.render`` renders for the dispatcher, off the event loop, and
``render`` does the same synchronously. A ``RenderError`` is the delivery's failure, without
retry. The signatures are the caller's, over the bytes returned.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson

from ..errors import InvalidInput, field_error
from ..strict_json import text_problem
from ..validation import invalid
from .sandbox import (
    MAX_OUTPUT,
    MAX_SOURCE,
    MEMORY_LIMIT,
    TIME_LIMIT,
    RenderError,
    SandboxUnavailable,
    WebhookEnvironment,
    check_syntax,
)
from .sandbox_pool import SandboxPool, SandboxProcess

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_OUTPUT",
    "MAX_SOURCE",
    "MEMORY_LIMIT",
    "TIME_LIMIT",
    "RenderContext",
    "RenderError",
    "SandboxUnavailable",
    "Template",
    "TemplateRenderer",
    "check_template",
    "compile_template",
    "render",
    "sample_contexts",
]

DEFAULT_CONTENT_TYPE: Final = "application/json"
MAX_CONTENT_TYPE: Final = 200  # characters
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_CONTENT_TYPE = re.compile(
    rf"(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})"
    rf"(?P<parameters>(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*)"
)
_CHARSET = re.compile(r";[ \t]*charset=\"?([^\";]*)", re.IGNORECASE)
_FIELDS = ("body", "content_type")
SAMPLE_EVENT_ID: Final = "evt_sample"
SAMPLE_CREATED_AT: Final = datetime(2022, 8, 27, 13, 35, 53, tzinfo=UTC)


@dataclass(frozen=True)
class Template:
    """A checked template. ``key`` names its body (the sandbox keeps it compiled by key)."""

    body: str
    content_type: str = DEFAULT_CONTENT_TYPE
    key: str = field(init=False, repr=False)
    is_json: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", hashlib.sha256(self.body.encode()).hexdigest())
        object.__setattr__(self, "is_json", _is_json(self.content_type))

    def to_json(self) -> dict[str, str]:
        """The template as stored and shown back."""
        return {"body": self.body, "content_type": self.content_type}


@dataclass(frozen=True)
class RenderContext:
    """What a template sees of one event. ``data`` is the payload, or its stored JSON bytes
    (the dispatcher's case: they go to the sandbox as they are, never parsed here)."""

    event_id: str
    event_type: str
    location_id: str
    created_at: datetime | str
    data: Mapping[str, object] | bytes
    location_name: str

    def variables(self) -> dict[str, Any]:
        created_at = self.created_at
        if isinstance(created_at, datetime):
            created_at = created_at.isoformat()
        return {
            "event": {
                "id": self.event_id,
                "type": self.event_type,
                "location_id": self.location_id,
                "created_at": created_at,
            },
            "data": orjson.Fragment(self.data) if isinstance(self.data, bytes) else self.data,
            "location": {"id": self.location_id, "name": self.location_name},
        }


class HasSample(Protocol):
    """An event type as the catalog (``EventType``) and registered types describe it."""

    @property
    def name(self) -> str: ...
    @property
    def sample(self) -> Mapping[str, Any]: ...


def sample_contexts(
    event_types: Iterable[HasSample],
    *,
    location_id: str = "1",
    location_name: str = "Sample location",
) -> dict[str, RenderContext]:
    """A context per type, around its sample payload: what ``check_template`` renders."""
    return {
        each.name: RenderContext(
            event_id=SAMPLE_EVENT_ID,
            event_type=each.name,
            location_id=location_id,
            created_at=SAMPLE_CREATED_AT,
            data=dict(each.sample),
            location_name=location_name,
        )
        for each in event_types
    }


def stored_template(template_json: str) -> Template:
    """A template as a webhook stores it (``Template.to_json`` as JSON text; checked when it
    was stored), ready to render again."""
    return compile_template(json.loads(template_json))


def compile_template(value: object, *, field: str = "template") -> Template:
    """Check ``value``'s shape, content type and syntax; ``InvalidInput`` names what is
    wrong (``template.body``: ``line 3: unexpected '}'``)."""
    if not isinstance(value, Mapping):
        raise invalid(field, 'must be an object: {"body": ..., "content_type": ...}')
    for key in value:
        if key not in _FIELDS:
            raise invalid(f"{field}.{key}", "unknown field (known: body, content_type)")
    body = value.get("body")
    if not isinstance(body, str) or not body.strip():
        raise invalid(f"{field}.body", "must be a non-empty string")
    if len(body) > MAX_SOURCE:
        raise invalid(f"{field}.body", f"must be at most {MAX_SOURCE // 1024} KiB")
    problem = text_problem(body)
    if problem is not None:
        raise invalid(f"{field}.body", problem)
    content_type = value.get("content_type", DEFAULT_CONTENT_TYPE)
    _check_content_type(content_type, f"{field}.content_type")
    try:
        check_syntax(_environment(), body)
    except RenderError as exc:
        raise _invalid_body(field, str(exc)) from None
    return Template(body, content_type)


def _check_content_type(value: object, field: str) -> None:
    if (
        not isinstance(value, str)
        or len(value) > MAX_CONTENT_TYPE
        or not _CONTENT_TYPE.fullmatch(value)
    ):
        raise invalid(field, "must be a media type such as application/json or text/plain")
    charset = _CHARSET.search(value)
    if charset is not None and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise invalid(field, "charset must be utf-8: the body is sent as UTF-8")


def _is_json(content_type: str) -> bool:
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def _invalid_body(field: str, message: str) -> InvalidInput:
    return invalid(f"{field}.body", message, headline=f"{field}.body: {message}")


@functools.cache
def _environment() -> WebhookEnvironment:
    return WebhookEnvironment()  # the syntax check's; renders happen in the sandbox


def check_template(
    template: Template,
    samples: Mapping[str, RenderContext],
    *,
    field: str = "template",
    pool: SandboxPool | None = None,
) -> None:
    """Render ``template`` against each type's sample; ``InvalidInput`` names each type it
    fails for, with the template's error and line."""
    failures = []
    for event_type, context in samples.items():
        try:
            render(template, context, pool=pool)
        except RenderError as exc:
            failures.append(f"{event_type}: {exc}")
    _refuse(failures, field)


def _refuse(failures: list[str], field: str) -> None:
    if failures:
        where = f"{field}.body"
        raise InvalidInput(
            f"{where} does not render for {failures[0]}",
            details=[field_error(where, failure) for failure in failures],
        )


_default: SandboxPool | None = None
_default_lock = threading.Lock()


def _default_pool() -> SandboxPool:
    global _default
    with _default_lock:
        if _default is None:
            _default = SandboxPool(1)
            atexit.register(_default.close)
        return _default


def render(template: Template, context: RenderContext, *, pool: SandboxPool | None = None) -> bytes:
    """The body ``template`` renders for ``context``, as UTF-8 bytes; ``RenderError`` if it
    does not. Blocks (at most ``TIME_LIMIT`` of the sandbox's CPU, about): the dispatcher
    uses ``TemplateRenderer``."""
    pool = pool or _default_pool()
    return pool.render(template.key, template.body, context.variables(), template.is_json)


class TemplateRenderer:
    """Renders for the dispatcher in ``processes`` sandbox processes, waiting for their
    replies on the event loop (no thread); as many renders run at once as there are
    processes, the others wait their turn. ``close()`` ends the processes."""

    def __init__(self, processes: int = 2) -> None:
        self._processes = [SandboxProcess() for _ in range(processes)]
        self._idle: asyncio.LifoQueue[SandboxProcess] = asyncio.LifoQueue()  # the warmest first
        for process in self._processes:
            self._idle.put_nowait(process)
        self._closed = False

    async def render(self, template: Template, context: RenderContext) -> bytes:
        """``render``, off the event loop."""
        if self._closed:
            raise SandboxUnavailable("the template renderer is closed")
        process = await self._idle.get()
        try:
            return await process.render_async(
                template.key, template.body, context.variables(), template.is_json
            )
        finally:
            self._idle.put_nowait(process)

    async def check(
        self, template: Template, samples: Mapping[str, RenderContext], *, field: str = "template"
    ) -> None:
        """``check_template``, off the event loop."""
        failures = []
        for event_type, context in samples.items():
            try:
                await self.render(template, context)
            except RenderError as exc:
                failures.append(f"{event_type}: {exc}")
        _refuse(failures, field)

    def close(self) -> None:
        self._closed = True
        for process in self._processes:
            process.close()
