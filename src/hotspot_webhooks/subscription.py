"""What a webhook subscribes to: some of its operator's locations, or all (``"*"``), times some
event types, or all. Pure: no I/O.

The original platform's webhook, one location and one type, is the special case: given as
``location_id`` + ``event_type`` (or as one-element lists), it is stored, matched and shown as
exactly that. Each dimension is given in one form or the other, never both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InvalidInput, field_error
from .validation import check_id

ANY = "*"  # all of the operator's locations (present and future), or all event types
MAX_LOCATIONS = 1000  # beyond that, "*" says it better
MAX_EVENT_TYPES = 100
MAX_PAIRS = 10_000  # rows a subscription is stored as (locations x types)


@dataclass(frozen=True)
class Subscription:
    location_ids: tuple[str, ...]  # (ANY,) for all
    event_types: tuple[str, ...]  # (ANY,) for all

    @property
    def all_locations(self) -> bool:
        return self.location_ids == (ANY,)

    def pairs(self) -> list[tuple[str, str]]:
        """The (location, type) pairs it is stored and matched as."""
        return [(loc, event_type) for loc in self.location_ids for event_type in self.event_types]


def subscription_from(
    *,
    location_id: str | None,
    location_ids: Sequence[str] | None,
    event_type: str | None,
    event_types: Sequence[str] | None,
    check_event_type: Callable[[str, str], str],
) -> Subscription:
    """The subscription a request describes, checked: ids in the id alphabet, types known
    (``check_event_type(name, field)`` raises for an unknown one), ``"*"`` alone, bounded."""
    locations = _one_form(
        location_id, location_ids, "location_id", "location_ids", MAX_LOCATIONS, "locations"
    )
    types = _one_form(
        event_type, event_types, "event_type", "event_types", MAX_EVENT_TYPES, "event types"
    )
    checked_locations = tuple(
        loc if loc == ANY else check_id(loc, field) for field, loc in locations
    )
    checked_types = tuple(
        name if name == ANY else check_event_type(name, field) for field, name in types
    )
    subscription = Subscription(_unique(checked_locations), _unique(checked_types))
    pairs = len(subscription.location_ids) * len(subscription.event_types)
    if pairs > MAX_PAIRS:
        raise _invalid(
            "location_ids",
            f"{len(subscription.location_ids)} locations x {len(subscription.event_types)} "
            f'types is over {MAX_PAIRS:,} pairs; subscribe to "*" instead',
        )
    return subscription


def _one_form(
    single: str | None,
    listed: Sequence[str] | None,
    single_field: str,
    list_field: str,
    most: int,
    what: str,
) -> list[tuple[str, str]]:
    """(field, value) for each value given, in whichever form it was given."""
    if single is not None and listed is not None:
        raise _invalid(list_field, f"give {single_field} or {list_field}, not both")
    if single is not None:
        if single == ANY:
            return [(single_field, ANY)]
        return [(single_field, single)]
    if listed is None:
        raise _invalid(
            single_field,
            f'required: give {single_field} (one) or {list_field} (a list, or ["*"])',
        )
    if not listed:
        raise _invalid(list_field, f'must name at least one, or be ["*"] for all {what}')
    if len(listed) > most:
        raise _invalid(list_field, f'at most {most} {what}; use ["*"] for all')
    if ANY in listed and len(listed) > 1:
        raise _invalid(list_field, f'"*" stands for all {what}: give it alone')
    return [(f"{list_field}[{index}]", value) for index, value in enumerate(listed)]


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[field_error(field, message)])
