"""``webhooks`` and ``recover``: location + event type → callback URL, and what to do to one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ..states import DeliveryStatus, WebhookStatus
from .common import (
    Db,
    Json,
    fail,
    settings,
    with_service,
)
from .output import show, show_delivery, shown_once

webhooks_app = typer.Typer(
    help="Webhooks: location + event type → callback URL.", no_args_is_help=True
)

WEBHOOK_COLUMNS = ("id", "location_id", "event_type", "callback_url", "status")


@webhooks_app.command("create")
def webhooks_create(
    location: Annotated[str, typer.Option("--location", help="Location id.")],
    event: Annotated[str, typer.Option("--event", help="Event type, e.g. customer.create.")],
    url: Annotated[str, typer.Option("--url", help="Callback URL (http or https).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a webhook; prints its API key and signing secret once."""
    created = with_service(settings(db), lambda s: s.create_webhook(location, event, url))
    show(created, as_json)
    if not as_json:
        shown_once("api_key", "encrypted")


@webhooks_app.command("list")
def webhooks_list(
    location: Annotated[str | None, typer.Option("--location")] = None,
    event: Annotated[str | None, typer.Option("--event")] = None,
    status: Annotated[str | None, typer.Option("--status", help="enabled or disabled")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List webhooks, optionally filtered."""
    found = with_service(
        settings(db),
        lambda s: s.list_webhooks(location_id=location, event_type=event, status=status),
    )
    show(found, as_json, WEBHOOK_COLUMNS)


@webhooks_app.command("show")
def webhooks_show(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Show one webhook."""
    show(with_service(settings(db), lambda s: s.get_webhook(webhook_id)), as_json)


@webhooks_app.command("delete")
def webhooks_delete(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Delete a webhook with its deliveries and attempts."""
    with_service(settings(db), lambda s: s.delete_webhook(webhook_id))
    show({"id": webhook_id, "deleted": True}, as_json)


@webhooks_app.command("update")
def webhooks_update(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str | None, typer.Option("--url", help="New callback URL.")] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Enable or disable.")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a webhook's callback URL, or enable/disable it."""
    if url is None and enable is None:
        fail("nothing to change: give --url URL, --enable or --disable", 2)
    status = (
        None if enable is None else (WebhookStatus.ENABLED if enable else WebhookStatus.DISABLED)
    )
    updated = with_service(
        settings(db), lambda s: s.update_webhook(webhook_id, callback_url=url, status=status)
    )
    show(updated, as_json)


@webhooks_app.command("rotate-key")
def webhooks_rotate_key(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Give a webhook a new API key (printed once); later attempts are signed with it."""
    show(with_service(settings(db), lambda s: s.rotate_key(webhook_id)), as_json)
    if not as_json:
        shown_once("api_key", "encrypted")


@webhooks_app.command("test")
def webhooks_test(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    dev: Annotated[bool, typer.Option("--dev", help="Allow loopback/private receivers.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Send the webhook's sample event now and show the attempt."""
    config = settings(db, allow_private_targets=True if dev else None)
    delivery = with_service(config, lambda s: s.test_webhook(webhook_id))
    show_delivery(delivery, as_json)
    # scripts can tell: `webhooks test ID && ...`
    if delivery.status is not DeliveryStatus.SUCCEEDED:
        fail(f"the test delivery did not succeed ({delivery.last_error}); it stays queued")


def recover(
    webhook_id: Annotated[str, typer.Argument(metavar="WEBHOOK")],
    since: Annotated[
        datetime,
        typer.Option(
            "--since",
            help="Re-queue failed deliveries created since this UTC time.",
            formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
        ),
    ],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Re-queue a webhook's failed deliveries since a time (after the receiver is fixed)."""
    aware = since.replace(tzinfo=UTC) if since.tzinfo is None else since
    show(with_service(settings(db), lambda s: s.recover(webhook_id, aware)), as_json)
