"""What every command shares: the consoles, the common options, settings from flags, and
running an async command body with expected errors turned into one line and an exit code."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from ..config import Settings, parse_duration
from ..errors import HotspotWebhooksError
from ..service import Service
from ..store.records import Purged
from ..terminal import PlainConsole, line, plain

T = TypeVar("T")
# every value is printed as text: no markup, control characters escaped (``terminal``)
out = PlainConsole()
err = PlainConsole(stderr=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (sqlite:///file.db or postgresql://...).", show_default=False
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")]
Cursor = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the last page.")]
Interval = Annotated[
    float | None, typer.Option("--interval", help="Seconds between passes.", show_default=False)
]


Host = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]


Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def confirm_deletion(what: str, yes: bool) -> None:
    """Ask before deleting ``what`` (a terminal), or insist on ``--yes`` (a script)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"deleting {what} cannot be undone: add --yes to confirm", 2)
    if not typer.confirm(f"Delete {plain(what)}? This cannot be undone.", default=False):
        fail("nothing deleted", 1)


def deleted(what_id: str, purged: Purged | None) -> dict[str, object]:
    """What a deletion answers: the id, and how many events, deliveries and attempts went
    (known when the database was used directly; a server answers 204 without counts)."""
    answer: dict[str, object] = {"id": what_id, "deleted": True}
    if purged is not None:
        answer |= {
            "events": purged.events,
            "deliveries": purged.deliveries,
            "attempts": purged.attempts,
        }
    return answer


_SPOKEN_UNITS = {
    "second": "s",
    "sec": "s",
    "minute": "m",
    "min": "m",
    "hour": "h",
    "day": "d",
    "week": "w",
}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A moment as people write it on a command line: a UTC time (``2026-11-28``,
    ``2026-11-28 13:00``, ISO 8601 with an offset), or an age (``1h``, ``90m``, ``2d``,
    ``"1 hour ago"``, ``"30 minutes ago"``)."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    words = value.lower().removesuffix(" ago").split()
    if len(words) == 2 and words[0].isdigit():
        unit = _SPOKEN_UNITS.get(words[1].removesuffix("s"))
        if unit is not None:
            words = [words[0] + unit]
    if len(words) == 1:
        try:
            age = parse_duration(words[0])
        except ValueError:
            pass
        else:
            return (now or datetime.now(UTC)) - age
    raise ValueError(
        f"{text!r} is neither a time (2026-11-28, 2026-11-28 13:00, 2026-11-28T13:00:00+01:00; "
        'UTC unless an offset is given) nor an age (1h, 90m, 2d, "1 hour ago")'
    )


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(line(("error:", "red"), " ", message), soft_wrap=True)
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


def with_service(
    config: Settings, action: Callable[[Service], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Run ``action`` on a service opened for this command (``migrate``: upgrading the schema
    first), closed afterwards; errors as ``run`` says."""

    async def work() -> T:
        service = await Service.open(config, migrate=migrate)
        try:
            return await action(service)
        finally:
            await service.close()

    return run(work)
