"""The options of ``webhooks create`` and ``webhooks update`` for what a webhook does beyond
SPEC §2 (§9): description, metadata, headers, auth, filter, template, preset.

A value that holds a secret (``--auth``, a ``--header`` value) can come from a file
(``@path``) or standard input (``-``), so it stays out of the shell's history and the process
list. ``--preset NAME --set FIELD=VALUE ...`` fills what the preset needs (its callback URL,
template and auth) from the fields ``integrations list`` names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..models import WebhookOptions
from .common import fail

OPTION_FIELDS = tuple(name for name in WebhookOptions.model_fields if name != "preset_values")

Description = Annotated[
    str | None, typer.Option("--description", help="What this webhook is for (≤ 500 chars).")
]
Metadata = Annotated[
    list[str] | None, typer.Option("--metadata", help="KEY=VALUE of your own; repeat.")
]
Headers = Annotated[
    list[str] | None,
    typer.Option(
        "--header", help="NAME=VALUE added to every request (VALUE @file or - for stdin); repeat."
    ),
]
AuthOption = Annotated[
    str | None,
    typer.Option(
        "--auth",
        help='JSON, @file or - (stdin): {"type": "basic", "username", "password"}, '
        '{"type": "bearer", "token"} or {"type": "oauth2", "token_url", "client_id", '
        '"client_secret", "scope"}.',
    ),
]
FilterOption = Annotated[
    str | None,
    typer.Option(
        "--filter", help='MongoDB-style JSON over the payload, or @file: {"newsletter": "1"}.'
    ),
]
TemplateOption = Annotated[
    str | None,
    typer.Option("--template", help="The body's Jinja2 template: @file, - (stdin) or the text."),
]
ContentType = Annotated[
    str | None, typer.Option("--content-type", help="Of the template's output (application/json).")
]
PresetOption = Annotated[
    str | None, typer.Option("--preset", help="A built-in integration (`integrations list`).")
]
PresetValues = Annotated[
    list[str] | None,
    typer.Option("--set", help="FIELD=VALUE a preset asks for (VALUE @file or -); repeat."),
]
SuccessStatuses = Annotated[
    str | None,
    typer.Option(
        "--success-statuses", help='What counts as success here: "200", "2xx", "201,409".'
    ),
]
Clear = Annotated[
    list[str] | None,
    typer.Option("--clear", help=f"Remove one of: {', '.join(OPTION_FIELDS)}; repeat."),
]


def read_value(text: str, what: str) -> str:
    """``text``, or what ``@path`` or ``-`` (standard input) holds, without its last newline."""
    if text == "-":
        return sys.stdin.read().removesuffix("\n")
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text().removesuffix("\n")
        except OSError as exc:
            fail(f"{what}: cannot read {text[1:]}: {exc.strerror}", 2)
    return text


def _pairs(items: list[str] | None, what: str, *, secret: bool = False) -> dict[str, str] | None:
    if not items:
        return None
    pairs: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            fail(
                f"{what}: give NAME=VALUE, not {item!r}"
                if not secret
                else f"{what}: give NAME=VALUE",
                2,
            )
        pairs[name] = read_value(value, f"{what} {name}") if secret else value
    return pairs


def _json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(read_value(text, what))
    except ValueError as exc:
        fail(f"{what}: not JSON: {exc}", 2)


def options_from(
    *,
    description: str | None = None,
    metadata: list[str] | None = None,
    header: list[str] | None = None,
    auth: str | None = None,
    filter_json: str | None = None,
    template: str | None = None,
    content_type: str | None = None,
    preset: str | None = None,
    preset_values: list[str] | None = None,
    success_statuses: str | None = None,
    clear: list[str] | None = None,
) -> WebhookOptions | None:
    """The options given, or None. A preset's answers (``--set``) go to the service, which
    fills the callback URL, template and auth from them (``Integrations.expand``)."""
    given: dict[str, Any] = {}
    for name in clear or ():
        if name not in OPTION_FIELDS:
            fail(f"--clear {name}: expected one of {', '.join(OPTION_FIELDS)}", 2)
        given[name] = None
    if preset is not None:
        given["preset"] = preset
        if preset_values:
            given["preset_values"] = _pairs(preset_values, "--set", secret=True)
    elif preset_values:
        fail("--set gives a preset's fields: name the preset with --preset", 2)
    if success_statuses is not None:
        given["success_statuses"] = success_statuses
    if description is not None:
        given["description"] = description
    if metadata:
        given["metadata"] = _pairs(metadata, "--metadata")
    if header:
        given["headers"] = _pairs(header, "--header", secret=True)
    if auth is not None:
        given["auth"] = _json(auth, "--auth")
    if filter_json is not None:
        given["filter"] = _json(filter_json, "--filter")
    if template is not None:
        given["template"] = {
            "body": read_value(template, "--template"),
            "content_type": content_type or "application/json",
        }
    elif content_type is not None:
        fail("--content-type goes with --template", 2)
    return WebhookOptions.model_validate(given) if given else None
