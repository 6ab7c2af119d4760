"""``emit`` and ``events``: putting events in, and looking at the stored ones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import catalog
from ..errors import InvalidInput, NotFound
from ..models import EmitResult
from .backend import Backend, with_backend
from .common import (
    Cursor,
    Db,
    Json,
    Limit,
    fail,
)
from .output import show, show_page

events_app = typer.Typer(help="Stored events.", no_args_is_help=True)


def emit(
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="An event type (`event-types list`).")
    ],
    location: Annotated[str, typer.Option("--location", help="Location id.")],
    data: Annotated[str | None, typer.Option("--data", help="Payload as a JSON object.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Payload from a JSON file (- = stdin).", allow_dash=True),
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Use the type's sample payload.")
    ] = False,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key (event id).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Emit an event: stored with one delivery per matching webhook before this returns."""
    if sum(x is not None and x is not False for x in (data, file, sample)) != 1:
        fail("give exactly one of --data JSON, --file F or --sample", 2)
    if sample:
        result = with_backend(db, lambda s: _emit_sample(s, event_type, location, event_id))
        show(result, as_json)
        return
    try:
        text = (
            data
            if data is not None
            else (sys.stdin.read() if str(file) == "-" else Path(str(file)).read_text())
        )
    except OSError as exc:
        fail(f"cannot read --file {file}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"--file {file} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    what = "--data" if data is not None else f"--file {file}"
    try:
        payload = catalog.parse_json(text, what=what)
    except InvalidInput as exc:
        fail(exc.message)
    result = with_backend(db, lambda s: s.events.emit(event_type, location, payload, id=event_id))
    show(result, as_json)


async def _emit_sample(
    service: Backend, event_type: str, location: str, event_id: str | None
) -> EmitResult:
    """The type's sample (a built-in's, or a registered type's), emitted."""
    try:
        found = await service.event_types.get(event_type)
    except NotFound as exc:
        raise InvalidInput(exc.message) from None
    return await service.events.emit(event_type, location, found.sample, id=event_id)


@events_app.command("list")
def events_list(
    location: Annotated[str | None, typer.Option("--location", help="Location id.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Event type.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List events, newest first."""
    page = with_backend(
        db,
        lambda s: s.events.get_all(
            location_id=location, type=event_type, cursor=cursor, limit=limit
        ),
    )
    show_page(page, as_json, ("id", "type", "location_id", "deliveries", "created_at"))


@events_app.command("show")
def events_show(
    event_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Show one event with its payload."""
    show(with_backend(db, lambda s: s.events.get(event_id)), as_json)
