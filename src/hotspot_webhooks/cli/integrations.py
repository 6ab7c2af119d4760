"""``integrations list``: the built-in presets a webhook can be made from (SPEC §9)."""

from __future__ import annotations

import typer
from pydantic import BaseModel

from ..catalog import EVENT_TYPES
from ..models import IntegrationInfo
from .backend import with_backend
from .common import Db, Json
from .output import show

integrations_app = typer.Typer(
    help="Built-in integrations (presets): Slack, Discord, Teams, Mailchimp, HubSpot, ...",
    no_args_is_help=True,
)


class _Row(BaseModel):
    """A preset as the table shows it: what to pass to ``--set``, its types in short."""

    name: str
    title: str
    auth: str | None
    event_types: str
    asks: str


def _row(preset: IntegrationInfo) -> _Row:
    every = set(preset.event_types) >= set(EVENT_TYPES)
    return _Row(
        name=preset.name,
        title=preset.title,
        auth=preset.auth,
        event_types="all six" if every else ", ".join(preset.event_types),
        asks=", ".join(f.name if f.required else f"[{f.name}]" for f in preset.fields),
    )


@integrations_app.command("list")
def integrations_list(db: Db = None, as_json: Json = False) -> None:
    """The presets, the event types each fits, the auth it needs and the fields it asks for
    (give them to `webhooks create --preset NAME --set FIELD=VALUE`; [optional])."""
    found = with_backend(db, lambda s: s.integrations.get_all())
    if as_json:
        show(found, as_json)
    else:
        show(
            [_row(each) for each in found],
            as_json,
            ("name", "title", "auth", "event_types", "asks"),
        )
