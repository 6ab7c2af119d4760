"""The long-running processes and the schema: ``serve``, ``api``, ``worker``, ``migrate``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.text import Text

from .. import logs, metrics
from .._version import __version__
from ..config import Settings
from ..delivery.recorder import PassStats
from ..errors import HotspotWebhooksError
from ..keys import write_private_file
from ..service import Service, admin_token_file_for
from ..store.database import display_url, parse_database_url
from ..supervisor import Supervisor
from ..terminal import line
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


def configure_logging(config: Settings) -> None:
    """Every long-running process logs through ``logs.configure``, in ``LOG_FORMAT``."""
    logs.configure(config.log_format)


def announce(config: Settings, text: Text) -> None:
    """A line for the person who started the process (``terminal.line``); with JSON logs, a
    log line like the rest (a collector reads stderr as JSON lines, and a line of anything
    else breaks it)."""
    if config.log_format == "json":
        log.info("%s", text.plain)
    else:
        err.print(text, soft_wrap=True)


MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus /metrics on HOST:this port (all processes of this worker "
        "together). Off by default.",
        show_default=False,
    ),
]


def development(dev: bool) -> dict[str, bool]:
    """What ``--dev`` sets for ``serve``, ``api`` and ``worker``: receivers on loopback and
    private addresses allowed, new events announced (and sent) at once."""
    return {"allow_private_targets": True, "low_latency": True} if dev else {}


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
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="Attempts in flight at once, per process (default 200; each endpoint gets a "
            "bounded share of them).",
            show_default=False,
        ),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow loopback/private receivers; low latency.")
    ] = False,
    metrics_port: MetricsPort = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Run the dispatcher alone (start many, on many hosts, on PostgreSQL)."""
    config = settings(
        db,
        interval=interval,
        concurrency=concurrency,
        **development(dev),
        metrics_port=metrics_port,
    )
    configure_logging(config)
    if processes is None:
        on_sqlite = parse_database_url(config.database_url).drivername.startswith("sqlite")
        processes = 1 if once or on_sqlite else os.cpu_count() or 1
    if processes > 1:
        if once:
            raise typer.BadParameter("runs one pass in this process", param_hint="--once")
        supervise(config, processes, interval=interval, concurrency=concurrency, dev=dev)
        return
    stop_serving_metrics = serve_metrics(config)

    async def dispatch(service: Service) -> PassStats | None:
        async with service.dispatcher() as dispatcher:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, dispatcher.stop)
            if once:
                return await dispatcher.run_pass()
            await dispatcher.run()
            return None

    try:
        stats = with_service(config, dispatch)
    finally:
        stop_serving_metrics()
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
    # the children's metrics meet in files; only the supervisor serves them, once, for all
    # (set, not removed: a .env file must not give it back to them)
    env["HOTSPOT_WEBHOOKS_METRICS_PORT"] = "off"
    on_exit = None
    stop_serving_metrics: Callable[[], None] = _nothing
    directory = None
    if config.metrics_port is not None:
        directory = metrics.new_multiprocess_directory()
        env[metrics.MULTIPROC_DIR] = directory
        stop_serving_metrics = serve_metrics(config, directory)

        def on_exit(pid: int) -> None:
            metrics.forget_process(pid, directory)

    # a child that stops finishes its in-flight attempts first: give it an attempt's time
    supervisor = Supervisor(
        command, processes, env=env, stop_timeout=config.timeout + 15, on_exit=on_exit
    )
    try:
        asyncio.run(supervisor.run())
    finally:
        stop_serving_metrics()
        if directory is not None:
            metrics.remove_multiprocess_directory(directory)


def serve_metrics(config: Settings, directory: str | None = None) -> Callable[[], None]:
    """With ``METRICS_PORT``, serve /metrics from a thread of this process (``directory``:
    aggregating the processes that write there); return what stops it."""
    if config.metrics_port is None:
        return _nothing
    try:
        stop = metrics.serve(
            config.host, config.metrics_port, token=config.metrics_token, directory=directory
        )
    except OSError as exc:
        fail(f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc}", 3)
    log.info("metrics on http://%s:%d/metrics", config.host, config.metrics_port)
    return stop


def _nothing() -> None:
    pass


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
        **development(dev),
    )
    configure_logging(config)
    if dev:
        announce(
            config,
            line(
                ("development mode:", "yellow"),
                " receivers on loopback/private addresses are allowed; new events are sent "
                f"at once, and a pass runs every {config.interval:g} s",
            ),
        )
    serve_http(config, dispatch=True)


def api(
    host: Host = None,
    port: Port = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Local development: webhooks may point at 127.0.0.1 receivers, and new events "
            "are announced to workers at once.",
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Run the HTTP API alone (run `worker` processes to deliver)."""
    config = settings(
        db,
        host=host,
        port=port,
        **development(dev),
    )
    if dev:
        configure_logging(config)
        announce(
            config,
            line(
                ("development mode:", "yellow"),
                " receivers on loopback/private addresses are allowed; new events are "
                "announced to workers at once",
            ),
        )
    serve_http(config, dispatch=False)


def hand_over_admin_token(token: str, config: Settings) -> None:
    """Show the first admin token once, where only its owner sees it: on the terminal that
    started the service; without one (systemd, docker) stdout is a log, so the token goes to
    a private file instead and only that file's path is logged. It is stored only hashed."""
    again = "`hotspot-webhooks tokens create --admin` makes another"
    if sys.stdout.isatty():
        out.print(line(("admin token:", "bold"), " ", token), soft_wrap=True)
        out.print(
            line(
                (f"Keep it now: it is stored hashed and cannot be shown again ({again}).", "yellow")
            ),
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

    configure_logging(config)

    admin_token = with_service(config, lambda s: s.access.ensure_admin_token(), migrate=True)
    if admin_token:
        hand_over_admin_token(admin_token, config)
    announce(
        config,
        line(
            f"hotspot-webhooks {__version__} on http://{config.host}:{config.port} "
            f"(database {display_url(config.database_url)}; control center at "
            f"http://{config.host}:{config.port}/ui/, API docs at /docs)"
        ),
    )
    app = create_app(config, dispatch=dispatch, migrate=False)
    server = uvicorn.Server(
        server_config(
            app,
            host=config.host,
            port=config.port,
            forwarded_allow_ips=config.forwarded_allow_ips,
        )
    )
    try:
        server.run()
    except HotspotWebhooksError as exc:
        fail(exc.message)
    if not server.started:  # it said why (a port taken, the database gone): as uvicorn.run
        raise typer.Exit(3)
