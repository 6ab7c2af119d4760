"""How commands print: a resource as ``key  value`` lines, a list as a table, a delivery with
its attempts; with ``--json``, the REST API's shapes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from ..models import DeliveryWithAttempts, Page
from .common import err, out


def show(
    value: BaseModel | Sequence[BaseModel] | dict[str, Any],
    as_json: bool,
    columns: Sequence[str] = (),
    title: str | None = None,
) -> None:
    """Print a resource (key: value lines), a list (a table) or, with --json, their JSON: the
    REST API's shapes, a list as ``{"data": [...], "next_cursor": null}``."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [v.model_dump(mode="json") for v in value]
    if as_json:
        shaped = {"data": data, "next_cursor": None} if isinstance(data, list) else data
        print(json.dumps(shaped, indent=2, ensure_ascii=False))
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
        if _is_id(column):
            # an id is for copying: never cut or wrapped, whatever the terminal's width
            widest = max((len(_cell(row.get(column))) for row in data), default=len(column))
            table.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
        else:
            table.add_column(column, overflow="fold")
    for row in data:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    _table_console().print(table)
    if not data:
        out.print("(none)")


def _is_id(column: str) -> bool:
    return column == "id" or column.endswith("_id")


def _table_console() -> Console:
    """The terminal's console; piped, one as wide as the table needs, so that what a script
    reads holds every value whole (a pipe has no width, and Rich would assume 80 columns)."""
    if out.is_terminal:
        return out
    return Console(width=10_000, no_color=True, highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


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
        if attempt.request_headers:
            out.print("  request headers:", highlight=False)
            for name, value in attempt.request_headers.items():
                out.print(f"    {name}: {value}", highlight=False, soft_wrap=True)
        if attempt.response_excerpt:
            out.print(f"  response: {attempt.response_excerpt[:200]!r}", highlight=False)
