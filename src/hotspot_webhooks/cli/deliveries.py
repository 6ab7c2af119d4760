"""``deliveries``: one per (event, webhook), with every attempt made."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import with_backend
from .common import (
    Cursor,
    Db,
    Json,
    Limit,
)
from .output import show, show_delivery, show_page

deliveries_app = typer.Typer(help="Deliveries and their attempts.", no_args_is_help=True)


@deliveries_app.command("list")
def deliveries_list(
    webhook: Annotated[str | None, typer.Option("--webhook", help="Webhook id.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Event id.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, succeeded or failed")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List deliveries, newest first."""
    page = with_backend(
        db,
        lambda s: s.deliveries.get_all(
            webhook_id=webhook, event_id=event, status=status, cursor=cursor, limit=limit
        ),
    )
    show_page(
        page,
        as_json,
        (
            "id",
            "event_type",
            "status",
            "attempt_count",
            "last_status",
            "last_error",
            "next_attempt_at",
        ),
    )


@deliveries_app.command("show")
def deliveries_show(
    delivery_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Show a delivery with every attempt."""
    show_delivery(with_backend(db, lambda s: s.deliveries.get(delivery_id)), as_json)


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Send a delivery again at the next pass, whatever its state."""
    show(with_backend(db, lambda s: s.deliveries.retry(delivery_id)), as_json)
