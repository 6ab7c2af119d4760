"""What every read applies: the narrowing to one operator's rows, and the columns shared."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from sqlalchemy import Row, Select, select

from .outcomes import shown_error
from .records import AttemptRecord
from .schema import attempts, deliveries, events, locations, webhooks

Query = TypeVar("Query", bound=Select[Any])
DELIVERY_COLUMNS = (*deliveries.c, events.c.type.label("event_type"))
ATTEMPT_COLUMNS = [attempts.c[name] for name in AttemptRecord._fields]


def owned_by(query: Query, operator_id: str | None) -> Query:
    """``query`` over locations, narrowed to one operator's (None: the admin sees all)."""
    return query if operator_id is None else query.where(locations.c.operator_id == operator_id)


def webhooks_of(query: Query, operator_id: str | None) -> Query:
    """``query`` over webhooks, narrowed to one operator's."""
    return query if operator_id is None else query.where(webhooks.c.operator_id == operator_id)


def events_of(query: Query, operator_id: str | None) -> Query:
    """``query`` over events (or joined to them), narrowed to one operator's locations."""
    if operator_id is None:
        return query
    return query.where(
        events.c.location_id.in_(
            select(locations.c.id).where(locations.c.operator_id == operator_id)
        )
    )


def attempt_record(row: Row[Any]) -> AttemptRecord:
    values = row._asdict()
    headers = values["request_headers"]
    # the JSON column decodes on read; text is what a driver that does not hands back
    values["request_headers"] = json.loads(headers) if isinstance(headers, str) else dict(headers)
    values["error"] = shown_error(values["error"], values["late"])
    return AttemptRecord(**values)
