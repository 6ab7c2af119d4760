"""``locations``: the hotspots an operator owns."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    Db,
    Json,
    settings,
    with_service,
)
from .output import show

locations_app = typer.Typer(help="Locations (hotspots) of an operator.", no_args_is_help=True)


@locations_app.command("create")
def locations_create(
    location_id: Annotated[str, typer.Argument(metavar="ID", help="The platform's location id.")],
    name: Annotated[str, typer.Option("--name", help="A name people recognise.")],
    operator: Annotated[str, typer.Option("--operator", help="Owning operator (id or name).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a location owned by an operator."""
    show(
        with_service(settings(db), lambda s: s.create_location(location_id, name, operator)),
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
        with_service(settings(db), lambda s: s.list_locations(operator)),
        as_json,
        ("id", "name", "operator_id", "created_at"),
    )
