"""The ``hotspot-webhooks`` command: a thin Typer face over ``service``, one module per group.

This module is the command table: it builds the app and says which command lives where.
Every command takes ``--db`` (else ``HOTSPOT_WEBHOOKS_DATABASE_URL``) and, where it prints a
resource, ``--json`` for the REST shapes. Expected errors print one line and exit 1; a usage
error exits 2; nothing prints a traceback unless ``HOTSPOT_WEBHOOKS_DEBUG=1``.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from .._version import __version__
from . import (
    conformance,
    deliveries,
    event_types,
    events,
    integrations,
    locations,
    maintenance,
    operators,
    processes,
    receiving,
    simulate,
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
    simulate.simulate,
    conformance.check_endpoint,
):
    app.command()(command)
app.add_typer(operators.operators_app, name="operators")
app.add_typer(operators.tokens_app, name="tokens")
app.add_typer(locations.locations_app, name="locations")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(integrations.integrations_app, name="integrations")
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


# what an option's value is, where its name alone would not say (else: the name, upper-cased)
_VALUE_NAMES = {
    "db": "URL",
    "url": "URL",
    "location": "ID",
    "webhook": "ID",
    "operator": "ID|NAME",
    "event": "TYPE",
    "api_key": "KEY",
    "older_than": "AGE",
    "interval": "SECONDS",
    "cursor": "CURSOR",
    "concurrency": "N",
    "processes": "N",
    "limit": "N",
    "metrics_port": "PORT",
    "port": "PORT",
    "host": "ADDRESS",
}


def _name_the_values(command: Any) -> None:
    """Help that reads ``--url URL`` and ``--json``, not Typer's ``--url <str>`` and
    ``--json <bool>``: each option's value gets a name, and a flag none; and paragraphs of a
    docstring that wrap as the terminal does. (Typer carries its own copy of click, so the
    objects are recognized by what they have.)"""
    for param in command.params:
        if param.param_type_name == "argument":
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None  # the name says it; no "<str>" beside
        elif param.param_type_name == "option" and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif param.name:
                param.metavar = _VALUE_NAMES.get(param.name, param.name.upper())
    if command.help:  # each paragraph one line: Rich re-wraps it to the terminal's width
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:  # made per invocation, so named when made
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _name_the_values(sub)


def main() -> None:
    command = typer.main.get_command(app)
    _name_the_values(command)
    command(prog_name="hotspot-webhooks")


__all__ = ["app", "main"]
