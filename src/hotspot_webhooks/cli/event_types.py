"""``event-types``: the six built-ins, and the types an admin registers beside them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import catalog
from ..errors import InvalidInput
from .backend import with_backend
from .common import Db, Json, Yes, confirm_deletion, fail
from .output import show

event_types_app = typer.Typer(
    help="Event types: the six built-ins and registered ones (JSON Schema).",
    no_args_is_help=True,
)
TYPE_COLUMNS = ("name", "builtin", "fields", "description")


def _json_option(value: str, option: str) -> Any:
    """A JSON option given inline, or ``@FILE`` (``@-`` for stdin)."""
    if value.startswith("@"):
        name = value[1:]
        try:
            value = sys.stdin.read() if name == "-" else Path(name).read_text()
        except OSError as exc:
            fail(f"cannot read {option} {name}: {exc.strerror}")
    try:
        return catalog.parse_json(value, what=option)
    except InvalidInput as exc:
        fail(exc.message)


@event_types_app.command("list")
def event_types_list(db: Db = None, as_json: Json = False) -> None:
    """List the event types: the six built-ins, then the registered ones."""
    show(with_backend(db, lambda s: s.event_types.get_all()), as_json, TYPE_COLUMNS)


@event_types_app.command("show")
def event_types_show(
    name: Annotated[str, typer.Argument(metavar="NAME")], db: Db = None, as_json: Json = False
) -> None:
    """Show one event type: fields, JSON Schema and sample."""
    show(with_backend(db, lambda s: s.event_types.get(name)), as_json)


@event_types_app.command("create")
def event_types_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="e.g. session.start")],
    description: Annotated[str, typer.Option("--description", help="When it fires.")],
    schema: Annotated[
        str, typer.Option("--schema", help="JSON Schema (Draft 2020-12): JSON, or @FILE.")
    ],
    sample: Annotated[
        str, typer.Option("--sample", help="A payload the schema accepts: JSON, or @FILE.")
    ],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Register an event type: its events are validated against its schema, and webhooks
    subscribe to it by name."""
    parsed_schema = _json_option(schema, "--schema")
    parsed_sample = _json_option(sample, "--sample")
    created = with_backend(
        db,
        lambda s: s.event_types.register(name, description, parsed_schema, parsed_sample),
    )
    show(created, as_json)


@event_types_app.command("remove")
def event_types_remove(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    yes: Yes = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Remove a registered event type that no event and no webhook uses."""
    confirm_deletion(f"event type {name!r}", yes)
    with_backend(db, lambda s: s.event_types.remove(name))
    show({"name": name, "removed": True}, as_json)
