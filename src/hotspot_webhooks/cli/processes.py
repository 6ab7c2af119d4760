"""The long-running processes and the schema: ``serve``, ``api``, ``worker``, ``migrate``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Annotated

import typer

from .._version import __version__
from ..config import Settings
from ..delivery.recorder import PassStats
from ..errors import HotspotWebhooksError
from ..keys import write_private_file
from ..service import Service, admin_token_file_for
from ..store.database import display_url, parse_database_url
from ..supervisor import Supervisor
from .common import (
    Db,
    Host,
    Interval,
    Json,
    Port,
    err,
    fail,
    out,
    settings,
    with_service,
)
from .output import show

log = logging.getLogger(__name__)


def migrate(db: Db = None) -> None:
    """Create the database schema, or upgrade it to this version."""
    config = settings(db)
    with_service(config, lambda service: service.ping(), migrate=True)
    out.print(f"database is up to date: {display_url(config.database_url)}", highlight=False)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass, then exit.")] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="Dispatcher processes to run under one supervisor (default: one per core on "
            "PostgreSQL, 1 on SQLite, which has one writer).",
        ),
    ] = None,
    interval: Interval = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency")] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow loopback/private receivers; low latency.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Run the dispatcher alone (start many, on many hosts, on PostgreSQL)."""
    config = settings(
        db,
        interval=interval,
        concurrency=concurrency,
        allow_private_targets=True if dev else None,
        low_latency=True if dev else None,
    )
    configure_logging()
    if processes is None:
        on_sqlite = parse_database_url(config.database_url).drivername.startswith("sqlite")
        processes = 1 if once or on_sqlite else os.cpu_count() or 1
    if processes > 1:
        if once:
            raise typer.BadParameter("runs one pass in this process", param_hint="--once")
        supervise(config, processes, interval=interval, concurrency=concurrency, dev=dev)
        return

    async def dispatch(service: Service) -> PassStats | None:
        async with service.dispatcher() as dispatcher:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, dispatcher.stop)
            if once:
                return await dispatcher.run_pass()
            await dispatcher.run()
            return None

    stats = with_service(config, dispatch)
    if stats is not None:
        summary = {
            "claimed": stats.claimed,
            "succeeded": stats.succeeded,
            "retrying": stats.retrying,
            "failed": stats.failed,
            "released": stats.released,
            "held_by_open_circuits": stats.held,
            "seconds": round(stats.seconds, 3),
        }
        show(summary, as_json)


def supervise(
    config: Settings,
    processes: int,
    *,
    interval: float | None,
    concurrency: int | None,
    dev: bool,
) -> None:
    """``processes`` workers, each ``hotspot-webhooks worker --processes 1`` with the same
    options (and this environment), kept running by one supervisor until SIGTERM/SIGINT."""
    command = [sys.executable, "-m", "hotspot_webhooks", "worker", "--processes", "1"]
    if interval is not None:
        command += ["--interval", str(interval)]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if dev:
        command.append("--dev")
    # the database URL goes in the environment: on a command line, any password would show
    env = {**os.environ, "HOTSPOT_WEBHOOKS_DATABASE_URL": config.database_url}
    # a child that stops finishes its in-flight attempts first: give it an attempt's time
    supervisor = Supervisor(command, processes, env=env, stop_timeout=config.timeout + 15)
    asyncio.run(supervisor.run())


def serve(
    host: Host = None,
    port: Port = None,
    interval: Interval = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Local development: allow 127.0.0.1 receivers, 2 s passes, low latency.",
        ),
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
        low_latency=True if dev else None,
    )
    if dev:
        err.print(
            "[yellow]development mode:[/yellow] receivers on loopback/private addresses "
            f"are allowed; new events are sent at once, and a pass runs every "
            f"{config.interval:g} s"
        )
    serve_http(config, dispatch=True)


def api(host: Host = None, port: Port = None, db: Db = None) -> None:
    """Run the HTTP API alone (run `worker` processes to deliver)."""
    serve_http(settings(db, host=host, port=port), dispatch=False)


def hand_over_admin_token(token: str, config: Settings) -> None:
    """Show the first admin token once, where only its owner sees it: on the terminal that
    started the service; without one (systemd, docker) stdout is a log, so the token goes to
    a private file instead and only that file's path is logged. It is stored only hashed."""
    again = "`hotspot-webhooks tokens create --admin` makes another"
    if sys.stdout.isatty():
        out.print(
            f"[bold]admin token:[/bold] {token}\n[yellow]Keep it now: it is stored "
            f"hashed and cannot be shown again ({again}).[/yellow]",
            highlight=False,
            soft_wrap=True,
        )
        return
    path = admin_token_file_for(config)
    write_private_file(path, token + "\n")
    log.warning(
        "first start: the admin token is in %s (mode 0600), not in this log; keep it "
        "elsewhere and delete the file (it is stored only hashed; %s)",
        path,
        again,
    )


def serve_http(config: Settings, *, dispatch: bool) -> None:
    """Migrate, hand over the admin token if this is the first start, then serve until
    stopped."""
    import uvicorn

    from ..api.app import create_app
    from ..api.server import server_config

    configure_logging()

    admin_token = with_service(config, lambda s: s.ensure_admin_token(), migrate=True)
    if admin_token:
        hand_over_admin_token(admin_token, config)
    err.print(
        f"hotspot-webhooks {__version__} on http://{config.host}:{config.port} "
        f"(database {display_url(config.database_url)}; docs at /docs)",
        highlight=False,
    )
    app = create_app(config, dispatch=dispatch, migrate=False)
    server = uvicorn.Server(server_config(app, host=config.host, port=config.port))
    try:
        server.run()
    except HotspotWebhooksError as exc:
        fail(exc.message)
    if not server.started:  # it said why (a port taken, the database gone): as uvicorn.run
        raise typer.Exit(3)
