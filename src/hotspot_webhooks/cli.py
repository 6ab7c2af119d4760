"""The ``hotspot-webhooks`` command: a thin Typer face over ``service``.

Every command takes ``--db`` (else ``HOTSPOT_WEBHOOKS_DATABASE_URL``) and, where it prints a
resource, ``--json`` for the REST shapes. Expected errors print one line and exit 1; a usage
error exits 2; nothing prints a traceback unless ``HOTSPOT_WEBHOOKS_DEBUG=1``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from . import __version__, catalog
from .config import Settings
from .errors import HotspotWebhooksError, InvalidInput
from .models import DeliveryWithAttempts, Page
from .service import Service
from .store.database import display_url

T = TypeVar("T")
out = Console()
err = Console(stderr=True)

app = typer.Typer(
    help="Durable, signed webhook delivery for Wi-Fi hotspot platforms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
operators_app = typer.Typer(help="Operators: who owns locations.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens of operators.", no_args_is_help=True)
locations_app = typer.Typer(help="Locations (hotspots) of an operator.", no_args_is_help=True)
webhooks_app = typer.Typer(
    help="Webhooks: location + event type → callback URL.", no_args_is_help=True
)
events_app = typer.Typer(help="Stored events.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Deliveries and their attempts.", no_args_is_help=True)
app.add_typer(operators_app, name="operators")
app.add_typer(tokens_app, name="tokens")
app.add_typer(locations_app, name="locations")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(events_app, name="events")
app.add_typer(deliveries_app, name="deliveries")

Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (sqlite:///file.db or postgresql://...).", show_default=False
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")]
Cursor = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the last page.")]


# ---- plumbing -------------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings(db: str | None = None, **overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    if db is not None:
        given["database_url"] = db
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'setting'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid setting: {problems} (from a flag or HOTSPOT_WEBHOOKS_* variable)")


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one async command body, turning expected errors into one line and an exit code."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except HotspotWebhooksError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if os.environ.get("HOTSPOT_WEBHOOKS_DEBUG"):
            raise
        fail(
            f"unexpected {type(exc).__name__}: {exc} (set HOTSPOT_WEBHOOKS_DEBUG=1 for details)", 70
        )


def with_service(config: Settings, action: Callable[[Service], Awaitable[T]]) -> T:
    async def work() -> T:
        service = await Service.open(config)
        try:
            return await action(service)
        finally:
            await service.close()

    return run(work)


def show(
    value: BaseModel | Sequence[BaseModel] | dict[str, Any],
    as_json: bool,
    columns: Sequence[str] = (),
    title: str | None = None,
) -> None:
    """Print a resource (key: value lines), a list (a table) or, with --json, their JSON."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [v.model_dump(mode="json") for v in value]
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if isinstance(data, dict):
        width = max(map(len, data), default=0)
        for key, item in data.items():
            if isinstance(item, (dict, list)):
                item = json.dumps(item, indent=2, ensure_ascii=False)
            out.print(
                f"[bold]{key:<{width}}[/bold]  {'-' if item is None else item}",
                highlight=False,
                soft_wrap=True,
            )
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in data:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)
    if not data:
        out.print("(none)")


def shown_once(secret: str, stored: str) -> None:
    err.print(f"[yellow]Keep the {secret} now: it is stored {stored} and cannot be shown again.")


def show_page(page: Page[Any], as_json: bool, columns: Sequence[str]) -> None:
    """A page as a table with how to get the next one, or with --json the REST shape."""
    if as_json:
        show(page, True)
        return
    show(page.data, False, columns)
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}", highlight=False)


def version_callback(value: bool) -> None:
    if value:
        print(f"hotspot-webhooks {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Durable, signed webhook delivery for Wi-Fi hotspot platforms."""


# ---- schema ---------------------------------------------------------------------------------


@app.command()
def migrate(db: Db = None) -> None:
    """Create the database schema, or upgrade it to this version."""
    config = settings(db)

    async def work() -> None:
        service = await Service.open(config, migrate=True)
        await service.close()

    run(work)
    out.print(f"database is up to date: {config.database_url}", highlight=False)


# ---- operators, tokens, locations -----------------------------------------------------------


@operators_app.command("create")
def operators_create(name: str, db: Db = None, as_json: Json = False) -> None:
    """Create an operator and print its first API token (shown once)."""
    created = with_service(settings(db), lambda s: s.create_operator(name))
    show(created, as_json)
    if not as_json:
        shown_once("token", "hashed")


@operators_app.command("list")
def operators_list(db: Db = None, as_json: Json = False) -> None:
    """List operators."""
    show(
        with_service(settings(db), lambda s: s.list_operators()),
        as_json,
        ("id", "name", "created_at"),
    )


@tokens_app.command("create")
def tokens_create(
    operator: Annotated[str | None, typer.Argument(help="Operator id or name.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin token instead (e.g. the first was lost).")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a further API token for an operator, or with --admin an admin token (shown once)."""
    if (operator is None) == (not admin):
        fail("give an operator (id or name), or --admin, not both", 2)
    show(with_service(settings(db), lambda s: s.create_token(operator)), as_json)
    if not as_json:
        shown_once("token", "hashed")


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


# ---- webhooks -------------------------------------------------------------------------------

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
    status = None if enable is None else ("enabled" if enable else "disabled")
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
    if delivery.status != "succeeded":  # scripts can tell: `webhooks test ID && ...`
        fail(f"the test delivery did not succeed ({delivery.last_error}); it stays queued")


@app.command()
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


# ---- events ---------------------------------------------------------------------------------


@app.command()
def emit(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="One of the six event types.")],
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
        try:
            payload: Any = dict(catalog.get_event_type(event_type).sample)
        except InvalidInput as exc:
            fail(exc.message)
    else:
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
    result = with_service(
        settings(db), lambda s: s.emit(event_type, location, payload, id=event_id)
    )
    show(result, as_json)


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
    page = with_service(
        settings(db),
        lambda s: s.list_events(location_id=location, type=event_type, cursor=cursor, limit=limit),
    )
    show_page(page, as_json, ("id", "type", "location_id", "deliveries", "created_at"))


@events_app.command("show")
def events_show(
    event_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Show one event with its payload."""
    show(with_service(settings(db), lambda s: s.get_event(event_id)), as_json)


# ---- deliveries -----------------------------------------------------------------------------


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
    page = with_service(
        settings(db),
        lambda s: s.list_deliveries(
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
    show_delivery(with_service(settings(db), lambda s: s.get_delivery(delivery_id)), as_json)


def show_delivery(found: DeliveryWithAttempts, as_json: bool) -> None:
    if as_json:
        show(found, True)
        return
    show(found.model_dump(mode="json", exclude={"attempts"}), False)
    for attempt in found.attempts:
        when = attempt.started_at.strftime("%Y-%m-%d %H:%M:%S")
        line = (
            f"\n[bold]attempt {attempt.number}[/bold] at {when} UTC · "
            f"{attempt.duration_ms} ms · status {attempt.status or '-'}"
        )
        if attempt.error:
            line += f" · [red]{attempt.error}[/red]"
        out.print(line, highlight=False)
        if attempt.response_excerpt:
            out.print(f"  response: {attempt.response_excerpt[:200]!r}", highlight=False)


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(metavar="ID")], db: Db = None, as_json: Json = False
) -> None:
    """Send a delivery again at the next pass, whatever its state."""
    show(with_service(settings(db), lambda s: s.retry_delivery(delivery_id)), as_json)


# ---- processes ------------------------------------------------------------------------------

Interval = Annotated[
    float | None, typer.Option("--interval", help="Seconds between passes.", show_default=False)
]


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass, then exit.")] = False,
    interval: Interval = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency")] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Allow loopback/private receivers.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Run the dispatcher alone (start many, on many hosts, on PostgreSQL)."""
    from .delivery.dispatcher import Dispatcher, tune_process_for_throughput

    config = settings(
        db, interval=interval, concurrency=concurrency, allow_private_targets=True if dev else None
    )
    configure_logging()

    async def work() -> Any:
        service = await Service.open(config)
        dispatcher = Dispatcher(service.store, config, service.cipher)
        tune_process_for_throughput()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, dispatcher.stop)
        try:
            if once:
                return await dispatcher.run_pass()
            await dispatcher.run()
            return None
        finally:
            await dispatcher.close()
            await service.close()

    stats = run(work)
    if stats is not None:
        summary = {
            "claimed": stats.claimed,
            "succeeded": stats.succeeded,
            "retrying": stats.retrying,
            "failed": stats.failed,
            "released": stats.released,
            "seconds": round(stats.seconds, 3),
        }
        show(summary, as_json)


Host = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    interval: Interval = None,
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Local development: allow 127.0.0.1 receivers, 2 s passes."),
    ] = False,
    db: Db = None,
) -> None:
    """Run the HTTP API and the dispatcher in one process (the main job)."""
    config = settings(
        db,
        host=host,
        port=port,
        interval=interval if interval is not None else (2.0 if dev else None),
        allow_private_targets=True if dev else None,
    )
    if dev:
        err.print(
            "[yellow]development mode:[/yellow] receivers on loopback/private addresses "
            f"are allowed; a dispatcher pass every {config.interval:g} s"
        )
    serve_http(config, dispatch=True)


@app.command()
def api(host: Host = None, port: Port = None, db: Db = None) -> None:
    """Run the HTTP API alone (run `worker` processes to deliver)."""
    serve_http(settings(db, host=host, port=port), dispatch=False)


def serve_http(config: Settings, *, dispatch: bool) -> None:
    """Migrate, print the admin token if this is the first start, then serve until stopped."""
    import uvicorn

    from .api.app import create_app

    configure_logging()

    async def first_start() -> str | None:
        service = await Service.open(config, migrate=True)
        try:
            return await service.ensure_admin_token()
        finally:
            await service.close()

    admin_token = run(first_start)
    if admin_token:
        # printed once, to the terminal that started the service; it is stored only hashed
        out.print(
            f"[bold]admin token:[/bold] {admin_token}\n[yellow]Keep it now: it is stored "
            "hashed and cannot be shown again (`hotspot-webhooks tokens create --admin` "
            "makes another).[/yellow]",
            highlight=False,
            soft_wrap=True,
        )
    err.print(
        f"hotspot-webhooks {__version__} on http://{config.host}:{config.port} "
        f"(database {display_url(config.database_url)}; docs at /docs)",
        highlight=False,
    )
    try:
        uvicorn.run(
            create_app(config, dispatch=dispatch),
            host=config.host,
            port=config.port,
            log_level="info",
            lifespan="on",
        )
    except HotspotWebhooksError as exc:
        fail(exc.message)


@app.command()
def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 9000,
    api_key: Annotated[
        str,
        typer.Option("--api-key", help="The webhook's API key.", envvar="HOTSPOT_WEBHOOKS_API_KEY"),
    ] = ...,  # type: ignore[assignment]
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    respond: Annotated[
        int, typer.Option("--respond", help="Status to answer valid deliveries with.")
    ] = 200,
) -> None:
    """Receive deliveries locally: verify each signature and pretty-print the event."""
    from .listen import serve as serve_listener

    try:
        asyncio.run(serve_listener(host, port, api_key, out, respond))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def verify(
    api_key: Annotated[str, typer.Option("--api-key", help="The webhook's API key.")],
    signature: Annotated[
        str, typer.Option("--signature", help="X-Hotspotsystem-Hmac-Sha256 value.")
    ],
    file: Annotated[
        Path, typer.Argument(help="Body file, or - for stdin.", allow_dash=True)
    ] = Path("-"),
) -> None:
    """Check one body's signature; exit 0 if valid, 1 if not."""
    from .receiver import verify_signature

    try:
        body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    if verify_signature(body, signature, api_key):
        out.print("[green]valid signature[/green]")
    else:
        fail("signature does not match this body and API key")


def main() -> None:
    app()
