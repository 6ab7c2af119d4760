"""``locations``: the hotspots an operator owns."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import is_remote, with_backend
from .common import (
    Db,
    Json,
    Yes,
    confirm_deletion,
    deleted,
    fail,
)
from .output import show

locations_app = typer.Typer(help="Locations (hotspots) of an operator.", no_args_is_help=True)


@locations_app.command("create")
def locations_create(
    location_id: Annotated[str, typer.Argument(metavar="ID", help="The platform's location id.")],
    name: Annotated[str, typer.Option("--name", help="A name people recognise.")],
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="Owning operator (id or name): needed as the admin (and on the database); "
            "an operator's token implies its own.",
        ),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a location owned by an operator."""
    if operator is None and not is_remote(db):
        fail("give --operator (id or name): on the database, commands act as the admin", 2)
    show(
        with_backend(db, lambda s: s.locations.create(location_id, name, operator)),
        as_json,
    )


@locations_app.command("list")
def locations_list(
    operator: Annotated[
        str | None, typer.Option("--operator", help="Only this operator's.")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List locations."""
    show(
        with_backend(db, lambda s: s.locations.get_all(operator)),
        as_json,
        ("id", "name", "operator_id", "status", "created_at"),
    )


LocationId = Annotated[str, typer.Argument(metavar="ID", help="The location's id.")]


@locations_app.command("disable")
def locations_disable(location_id: LocationId, db: Db = None, as_json: Json = False) -> None:
    """Disable a location: its webhooks are disabled (queued deliveries fail unsent; events
    there are still accepted, with no delivery)."""
    show(
        with_backend(db, lambda s: s.locations.set_status(location_id, "disabled")),
        as_json,
    )


@locations_app.command("enable")
def locations_enable(location_id: LocationId, db: Db = None, as_json: Json = False) -> None:
    """Enable a location again, and the webhooks its disabling disabled."""
    show(
        with_backend(db, lambda s: s.locations.set_status(location_id, "enabled")),
        as_json,
    )


@locations_app.command("delete")
def locations_delete(
    location_id: LocationId, yes: Yes = False, db: Db = None, as_json: Json = False
) -> None:
    """Delete a location with its webhooks and its events, their deliveries and attempts."""
    confirm_deletion(f"location {location_id!r} with its webhooks and events", yes)
    purged = with_backend(db, lambda s: s.locations.delete(location_id))
    show(deleted(location_id, purged), as_json)
