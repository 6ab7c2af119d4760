"""How commands print: a resource as ``key  value`` lines, a list as a table, a delivery with
its attempts; with ``--json``, the REST API's shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..models import DeliveryWithAttempts, Page
from ..terminal import PlainConsole, json_text, line, plain
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
        print(json_text(shaped))
        return
    if isinstance(data, dict):
        width = max(map(len, data), default=0)
        for key, item in data.items():
            if isinstance(item, (dict, list)):
                shown: Text | object = Text(json_text(item))  # its lines, every value escaped
            else:
                shown = "-" if item is None else item
            out.print(line((f"{key:<{width}}", "bold"), "  ", shown), soft_wrap=True)
        return
    table = Table(title=None if title is None else line(title), show_lines=False)
    for column in columns:
        if _is_id(column):
            # an id is for copying: never cut or wrapped, whatever the terminal's width
            widest = max((len(_cell(row.get(column))) for row in data), default=len(column))
            table.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
        else:
            table.add_column(column, overflow="fold")
    for row in data:
        table.add_row(*(line(_cell(row.get(c))) for c in columns))
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
    return PlainConsole(width=10_000, no_color=True, highlight=False)


def _cell(value: Any) -> str:
    """A table cell's text, as shown (control characters escaped)."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return plain(", ".join(map(str, value)))
    return plain(value)


def shown_once(secret: str, stored: str) -> None:
    err.print(
        line((f"Keep the {secret} now: it is stored {stored} and cannot be shown again.", "yellow"))
    )


def show_page(page: Page[Any], as_json: bool, columns: Sequence[str]) -> None:
    """A page as a table with how to get the next one, or with --json the REST shape."""
    if as_json:
        show(page, True)
        return
    show(page.data, False, columns)
    if page.next_cursor:
        out.print(line("more: --cursor ", page.next_cursor))


def show_delivery(found: DeliveryWithAttempts, as_json: bool) -> None:
    if as_json:
        show(found, True)
        return
    show(found.model_dump(mode="json", exclude={"attempts"}), False)
    for attempt in found.attempts:
        when = attempt.started_at.strftime("%Y-%m-%d %H:%M:%S")
        heading = line(
            (f"attempt {attempt.number}", "bold"),
            f" at {when} UTC · {attempt.duration_ms} ms · status {attempt.status or '-'}",
        )
        if attempt.error:
            heading.append_text(line(" · ", (attempt.error, "red")))
        out.print()
        out.print(heading, soft_wrap=True)
        if attempt.request_headers:
            out.print("  request headers:")
            for name, value in attempt.request_headers.items():
                out.print(line(f"    {name}: ", value), soft_wrap=True)
        if attempt.response_excerpt:
            out.print(line(f"  response: {attempt.response_excerpt[:200]!r}"))
