"""The ``hotspot-webhooks`` command: a thin Typer face over ``service``, one module per group.

This module is the command table: it builds the app and says which command lives where.
Every command takes ``--db`` (else ``HOTSPOT_WEBHOOKS_DATABASE_URL``) and, where it prints a
resource, ``--json`` for the REST shapes. Expected errors print one line and exit 1; a usage
error exits 2; nothing prints a traceback unless ``HOTSPOT_WEBHOOKS_DEBUG=1``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .._version import __version__
from . import (
    deliveries,
    event_types,
    events,
    locations,
    maintenance,
    operators,
    processes,
    receiving,
    webhooks,
)

app = typer.Typer(
    help="Durable, signed webhook delivery for Wi-Fi hotspot platforms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for command in (
    processes.serve,
    processes.api,
    processes.worker,
    processes.migrate,
    maintenance.purge,
    maintenance.backup,
    maintenance.restore,
    events.emit,
    webhooks.recover,
    receiving.listen,
    receiving.verify,
):
    app.command()(command)
app.add_typer(operators.operators_app, name="operators")
app.add_typer(operators.tokens_app, name="tokens")
app.add_typer(locations.locations_app, name="locations")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(events.events_app, name="events")
app.add_typer(event_types.event_types_app, name="event-types")
app.add_typer(deliveries.deliveries_app, name="deliveries")


def _print_version(value: bool) -> None:
    if value:
        print(f"hotspot-webhooks {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Durable, signed webhook delivery for Wi-Fi hotspot platforms."""


def main() -> None:
    app()


__all__ = ["app", "main"]
