"""``integrations list``: the built-in presets a webhook can be made from (SPEC §9)."""

from __future__ import annotations

import typer

from .backend import with_backend
from .common import Db, Json
from .output import show

integrations_app = typer.Typer(
    help="Built-in integrations (presets): Slack, Discord, Teams, Mailchimp, HubSpot, ...",
    no_args_is_help=True,
)


@integrations_app.command("list")
def integrations_list(db: Db = None, as_json: Json = False) -> None:
    """The presets, the event types each fits, the auth it needs and the fields it asks for
    (give them to `webhooks create --preset NAME --set FIELD=VALUE`)."""
    found = with_backend(db, lambda s: s.integrations.get_all())
    show(found, as_json, ("name", "title", "auth", "event_types"))
