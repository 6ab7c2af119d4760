"""``webhooks`` and ``recover``: locations x event types → callback URL, and what to do to one."""

from __future__ import annotations

from typing import Annotated

import typer

from ..states import DeliveryStatus, WebhookStatus
from ..terminal import plain
from .backend import with_backend
from .common import (
    Db,
    Json,
    Yes,
    confirm_deletion,
    fail,
    out,
    parse_since,
)
from .output import show, show_delivery, shown_once
from .webhook_options import (
    AuthOption,
    Clear,
    ContentType,
    Description,
    FilterOption,
    Headers,
    Metadata,
    PresetOption,
    PresetValues,
    SuccessStatuses,
    TemplateOption,
    options_from,
)

webhooks_app = typer.Typer(
    help="Webhooks: locations x event types → callback URL.", no_args_is_help=True
)

WEBHOOK_COLUMNS = ("id", "location_ids", "event_types", "callback_url", "status")
Locations = Annotated[
    list[str] | None,
    typer.Option("--location", help="A location id; repeat for several."),
]
AllLocations = Annotated[
    bool,
    typer.Option(
        "--all-locations", help='All of the operator\'s locations, present and future ("*").'
    ),
]
Events = Annotated[
    list[str] | None,
    typer.Option("--event", help="An event type (e.g. customer.create), or '*' for all; repeat."),
]


def _locations(location: list[str] | None, all_locations: bool) -> list[str] | None:
    if all_locations and location:
        fail("give --location (one or more) or --all-locations, not both", 2)
    return ["*"] if all_locations else location


@webhooks_app.command("create")
def webhooks_create(
    url: Annotated[str | None, typer.Option("--url", help="Callback URL (http or https).")] = None,
    location: Locations = None,
    all_locations: AllLocations = False,
    event: Events = None,
    operator: Annotated[
        str | None, typer.Option("--operator", help="Owner, for --all-locations (id or name).")
    ] = None,
    description: Description = None,
    metadata: Metadata = None,
    header: Headers = None,
    auth: AuthOption = None,
    filter_json: FilterOption = None,
    template: TemplateOption = None,
    content_type: ContentType = None,
    preset: PresetOption = None,
    preset_values: PresetValues = None,
    success_statuses: SuccessStatuses = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a webhook for some locations (or --all-locations) and event types (or '*');
    prints its API key and signing secret once. --preset NAME --set FIELD=VALUE fills the
    callback URL, template and auth of a built-in integration (`integrations list`)."""
    options = options_from(
        description=description,
        metadata=metadata,
        header=header,
        auth=auth,
        filter_json=filter_json,
        template=template,
        content_type=content_type,
        preset=preset,
        preset_values=preset_values,
        success_statuses=success_statuses,
    )
    if url is None and not preset_values:
        fail("give --url URL (or --preset NAME with the --set fields it asks for)", 2)
    locations = _locations(location, all_locations)
    if not locations:
        fail("give --location ID (repeat for several) or --all-locations", 2)
    if not event:
        fail("give --event TYPE (repeat for several), or --event '*' for all", 2)
    created = with_backend(
        db,
        lambda s: s.webhooks.create(
            callback_url=url,
            location_ids=locations,
            event_types=event,
            operator=operator,
            options=options,
        ),
    )
    show(created, as_json)
    if not as_json:
        shown_once("api_key", "encrypted")


@webhooks_app.command("list")
def webhooks_list(
    location: Annotated[
        str | None, typer.Option("--location", help="Only webhooks subscribed to this location.")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Only webhooks subscribed to this event type.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="enabled or disabled")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List webhooks, optionally filtered."""
    found = with_backend(
        db,
        lambda s: s.webhooks.get_all(location_id=location, event_type=event, status=status),
    )
    show(found, as_json, WEBHOOK_COLUMNS)


@webhooks_app.command("show")
def webhooks_show(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Show one webhook."""
    show(with_backend(db, lambda s: s.webhooks.get(webhook_id)), as_json)


@webhooks_app.command("delete")
def webhooks_delete(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    yes: Yes = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Delete a webhook with its deliveries and attempts (asks first; --yes in scripts)."""
    confirm_deletion(f"webhook {webhook_id} with its deliveries and attempts", yes)
    with_backend(db, lambda s: s.webhooks.delete(webhook_id))
    show({"id": webhook_id, "deleted": True}, as_json)


@webhooks_app.command("update")
def webhooks_update(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str | None, typer.Option("--url", help="New callback URL.")] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Enable or disable.")
    ] = None,
    location: Locations = None,
    all_locations: AllLocations = False,
    event: Events = None,
    description: Description = None,
    metadata: Metadata = None,
    header: Headers = None,
    auth: AuthOption = None,
    filter_json: FilterOption = None,
    template: TemplateOption = None,
    content_type: ContentType = None,
    preset: PresetOption = None,
    preset_values: PresetValues = None,
    success_statuses: SuccessStatuses = None,
    clear: Clear = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a webhook's callback URL, subscription (the locations and/or event types given
    replace the old ones) or what it does beyond the original contract (--header, --auth,
    --filter, --template, ...; --clear NAME removes one), or enable/disable it."""
    options = options_from(
        description=description,
        metadata=metadata,
        header=header,
        auth=auth,
        filter_json=filter_json,
        template=template,
        content_type=content_type,
        preset=preset,
        preset_values=preset_values,
        success_statuses=success_statuses,
        clear=clear,
    )
    locations = _locations(location, all_locations)
    if url is None and enable is None and not locations and not event and options is None:
        fail(
            "nothing to change: give --url URL, --enable, --disable, --location/--all-locations, "
            "--event, or an option (--description, --header, --auth, --filter, --template, "
            "--preset, --clear ...)",
            2,
        )
    status = (
        None if enable is None else (WebhookStatus.ENABLED if enable else WebhookStatus.DISABLED)
    )
    updated = with_backend(
        db,
        lambda s: s.webhooks.update(
            webhook_id,
            callback_url=url,
            status=status,
            location_ids=locations or None,
            event_types=event or None,
            options=options,
        ),
    )
    show(updated, as_json)


@webhooks_app.command("preview")
def webhooks_preview(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    event: Annotated[
        str | None, typer.Option("--event", help="Which type's sample (default: its first).")
    ] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="From which location (default: its first).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Show the request this webhook would send for a sample event: its body rendered
    through its template, its headers signed (own values and Authorization redacted).
    Nothing is sent (`webhooks test` sends one)."""
    preview = with_backend(
        db, lambda s: s.webhooks.preview(webhook_id, event_type=event, location_id=location)
    )
    if as_json:
        show(preview, as_json)
        return
    out.print(plain(f"POST {preview.url}"))
    for name, value in preview.headers.items():
        out.print(plain(f"{name}: {value}"))
    out.print("")
    out.print(plain(preview.body))


@webhooks_app.command("rotate-key")
def webhooks_rotate_key(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Give a webhook a new API key (printed once); later attempts are signed with it."""
    show(with_backend(db, lambda s: s.webhooks.rotate_key(webhook_id)), as_json)
    if not as_json:
        shown_once("api_key", "encrypted")


@webhooks_app.command("test")
def webhooks_test(
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    event: Annotated[
        str | None, typer.Option("--event", help="Which type's sample (default: the first).")
    ] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="From which location (default: the first).")
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Allow loopback/private receivers (a database used directly; a server "
            "decides with its own settings).",
        ),
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Send a sample event to this webhook now and show the attempt."""
    delivery = with_backend(
        db,
        lambda s: s.webhooks.test(webhook_id, event_type=event, location_id=location),
        **({"allow_private_targets": True} if dev else {}),
    )
    show_delivery(delivery, as_json)
    # scripts can tell: `webhooks test ID && ...`
    if delivery.status is not DeliveryStatus.SUCCEEDED:
        fail(f"the test delivery did not succeed ({delivery.last_error}); it stays queued")


def recover(
    webhook_id: Annotated[str, typer.Argument(metavar="WEBHOOK")],
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Re-queue failed deliveries created since then: a UTC time (2026-11-28, "
            '"2026-11-28 13:00") or an age (1h, 2d, "1 hour ago").',
        ),
    ],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Re-queue a webhook's failed deliveries since a time (after the receiver is fixed)."""
    try:
        moment = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    show(with_backend(db, lambda s: s.webhooks.recover(webhook_id, moment)), as_json)
