"""Pure helpers every part of the service shares: the clock, pages, the one not-found error,
and a delivery as the resource shows it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from ..errors import NotFound
from ..models import Attempt, Delivery, DeliveryWithAttempts, Event, Page

T = TypeVar("T")
P = TypeVar("P", Event, Delivery)


def now() -> datetime:
    return datetime.now(UTC)


def stamp() -> str:
    """Now, as a reason for disabling shows it."""
    return f"{now():%Y-%m-%d %H:%M:%S} UTC"


def found(value: T | None, kind: str, key: str) -> T:
    """``value``, or the one not-found error every face shows for a missing ``kind``.

    Ids that cannot exist (``validation.is_id``) are not looked up, and are answered here too:
    a malformed id in a path names nothing, and never reaches the database."""
    if value is None:
        shown = repr(key) if len(key) <= 60 else f"{key[:50]!r}..."
        raise NotFound(f"{kind} {shown} does not exist")
    return value


def page(fetched: list[P], limit: int) -> Page[P]:
    """A page from ``limit + 1`` rows fetched: the extra one only says that more follow."""
    data = fetched[:limit]
    return Page[P](data=data, next_cursor=data[-1].id if len(fetched) > limit else None)


def delivery_resource(row: object, attempts: Iterable[object]) -> DeliveryWithAttempts:
    """A delivery with its attempts (the store's rows), as every face shows one."""
    return DeliveryWithAttempts(
        **Delivery.model_validate(row).model_dump(),
        attempts=[Attempt.model_validate(a) for a in attempts],
    )
