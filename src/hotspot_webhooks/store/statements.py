"""The statements the hot paths run (emit, claim, record), named, in one place.

Each is written with SQLAlchemy and run through the driver directly (``driver_sql.py``: compiled
once per dialect, named parameters mapped to the driver's positions, rows checked against the
columns selected).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    String,
    all_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from ..states import DeliveryStatus, WebhookStatus
from ..subscription import ANY
from .driver_sql import DriverQuery, DriverStatement, RowsStatement, RowType, unnest_rows
from .records import AttemptRecord, ClaimedDelivery
from .schema import (
    attempts,
    deliveries,
    events,
    locations,
    subscriptions,
    webhooks,
)

# ---- emit -----------------------------------------------------------------------------------


class EventParams(NamedTuple):
    id: str
    type: str
    location_id: str
    body: bytes
    delivery_count: int
    created_at: datetime


INSERT_EVENT = DriverStatement(
    insert(events).values({name: bindparam(name) for name in EventParams._fields}),
    EventParams,
    datetimes=["created_at"],
)


class DeliveryParams(NamedTuple):
    id: str
    event_id: str
    webhook_id: str
    next_attempt_at: datetime
    created_at: datetime


# a new delivery is pending and due at once: at its event's creation
INSERT_DELIVERY = DriverStatement(
    insert(deliveries).values(
        id=bindparam("id"),
        event_id=bindparam("event_id"),
        webhook_id=bindparam("webhook_id"),
        status=DeliveryStatus.PENDING.value,
        attempt_count=0,
        next_attempt_at=bindparam("next_attempt_at"),
        created_at=bindparam("created_at"),
    ),
    DeliveryParams,
    datetimes=["next_attempt_at", "created_at"],
)


class ExistingEvent(NamedTuple):
    id: str
    delivery_count: int
    operator_id: str


class LocationOwner(NamedTuple):
    id: str
    operator_id: str
    status: str  # the location's: a disabled one gets events, and no delivery


class Subscription(NamedTuple):
    """One pair of an enabled webhook's subscription that an emit may match."""

    webhook_id: str
    operator_id: str
    location_id: str  # or "*"
    event_type: str  # or "*"
    filter_json: str | None  # the webhook's filter, if it has one (SPEC §9)


class EmitLookups(NamedTuple):
    """What a group commit reads before it writes."""

    existing: Select[Any]  # events that exist among its ids, with count and owner
    owners: Select[Any]  # the owners of its locations
    subscriptions: Select[Any]  # the pairs of enabled webhooks its events may match


def emit_lookups(event_ids: set[str], location_ids: set[str], event_types: set[str]) -> EmitLookups:
    owners_of_its_locations = select(locations.c.operator_id).where(
        locations.c.id.in_(location_ids)
    )
    return EmitLookups(
        select(events.c.id, events.c.delivery_count, locations.c.operator_id)
        .join(locations, locations.c.id == events.c.location_id)
        .where(events.c.id.in_(event_ids)),
        select(locations.c.id, locations.c.operator_id, locations.c.status).where(
            locations.c.id.in_(location_ids)
        ),
        # ix_subscriptions_match: (owner, location or "*", type or "*")
        select(
            subscriptions.c.webhook_id,
            subscriptions.c.operator_id,
            subscriptions.c.location_id,
            subscriptions.c.event_type,
            webhooks.c.filter_json,
        )
        .join(webhooks, webhooks.c.id == subscriptions.c.webhook_id)
        .where(
            subscriptions.c.operator_id.in_(owners_of_its_locations.scalar_subquery()),
            subscriptions.c.location_id.in_([*location_ids, ANY]),
            subscriptions.c.event_type.in_([*event_types, ANY]),
            webhooks.c.status == WebhookStatus.ENABLED.value,
        ),
    )


# ---- claim and record -----------------------------------------------------------------------


class LeaseParams(NamedTuple):
    owner: str
    lease_until: datetime


LEASED_DELIVERY_COLUMNS = ("id", "event_id", "webhook_id", "attempt_count")


def leased_rows(leased: Any) -> Select[Any]:
    """What sending needs of the leased deliveries in ``leased`` (the deliveries table, or a
    claim's ``UPDATE ... RETURNING`` of ``LEASED_DELIVERY_COLUMNS``): the columns of a
    ``ClaimedDelivery``, in order."""
    templated = webhooks.c.template_json.is_not(None)
    return (
        select(
            leased.c.id,
            leased.c.event_id,
            events.c.type.label("event_type"),
            events.c.location_id,
            leased.c.webhook_id,
            (leased.c.attempt_count + 1).label("attempt_number"),
            events.c.body,
            webhooks.c.callback_url,
            webhooks.c.api_key_encrypted,
            # past its grace, a previous key no longer signs, even before it is erased
            case(
                (
                    webhooks.c.previous_key_expires_at > func.now(),
                    webhooks.c.previous_api_key_encrypted,
                ),
                else_=null(),
            ).label("previous_api_key_encrypted"),
            (webhooks.c.status == WebhookStatus.ENABLED.value).label("webhook_enabled"),
            webhooks.c.template_json,
            webhooks.c.secrets_sealed,
            webhooks.c.success_statuses,
            # what only a template reads: looked up for a templated webhook's rows alone
            case((templated, events.c.created_at), else_=null()).label("event_created_at"),
            case(
                (
                    templated,
                    select(locations.c.name)
                    .where(locations.c.id == events.c.location_id)
                    .scalar_subquery(),
                ),
                else_=null(),
            ).label("location_name"),
        )
        .join(events, events.c.id == leased.c.event_id)
        .join(webhooks, webhooks.c.id == leased.c.webhook_id)
    )


class ClaimParams(NamedTuple):
    owner: str
    lease_until: datetime
    due_by: datetime
    window: int  # how many of the oldest due the claim ranks
    per_webhook: int  # at most this many of one webhook among them
    limit: int
    excluded: list[str]  # webhooks whose endpoint takes no more now


# waiting for a worker: what ix_deliveries_due holds
_WAITING = (
    deliveries.c.status == DeliveryStatus.PENDING.value,
    deliveries.c.lease_owner.is_(None),
)


def _chosen(excluded: ColumnElement[bool]) -> Select[Any]:
    """The claim's choice: of the ``window`` oldest due deliveries (of webhooks not
    ``excluded``), the oldest ``limit``, at most ``per_webhook`` of any one webhook. Read
    without locks: locking the window would write a lock per row to the WAL."""
    window = (
        select(deliveries.c.id, deliveries.c.webhook_id, deliveries.c.next_attempt_at)
        .where(*_WAITING, deliveries.c.next_attempt_at <= bindparam("b_due_by"), excluded)
        .order_by(deliveries.c.next_attempt_at)
        .limit(bindparam("b_window", type_=Integer))
        .cte("window")
    )
    rank = (
        func.row_number()
        .over(
            partition_by=window.c.webhook_id,
            order_by=(window.c.next_attempt_at, window.c.id),
        )
        .label("rank")
    )
    ranked = select(window.c.id, window.c.next_attempt_at, rank).subquery()
    return (
        select(ranked.c.id)
        .where(ranked.c.rank <= bindparam("b_per_webhook", type_=Integer))
        .order_by(ranked.c.next_attempt_at)
        .limit(bindparam("b_limit", type_=Integer))
    )


_LEASE = {
    "next_attempt_at": bindparam("b_lease_until"),
    "lease_owner": bindparam("b_owner"),
    "on_wire_since": null(),
}

# SQLite: one writer at a time, so what the claim chose is still waiting; the excluded
# webhooks go as a JSON array. The claimed rows are read back with SELECT_LEASED.
CLAIM_SQLITE = DriverStatement(
    update(deliveries)
    .where(
        deliveries.c.id.in_(
            _chosen(
                deliveries.c.webhook_id.not_in(
                    select(func.json_each(bindparam("b_excluded")).table_valued("value").c.value)
                )
            ).scalar_subquery()
        )
    )
    .values(_LEASE),
    ClaimParams,
    datetimes=["lease_until", "due_by"],
    jsons=["excluded"],
    bind_prefix="b_",
)


def _claim_postgresql() -> Select[Any]:
    """Lease what ``_chosen`` picks, but only rows still waiting and not locked by another
    worker's claim in progress (``SKIP LOCKED``), and return them with what sending needs.
    Rows are found by ``= ANY(ARRAY(...))``, an index lookup each: ``IN (subquery)`` let the
    planner hash-join a scan of the whole table.

    "Still waiting" is checked in two halves, unleased where the rows are locked and pending
    where they are leased, so that neither step names the whole predicate of the due index:
    before autovacuum has analyzed a burst of new deliveries, PostgreSQL's default estimates
    make that index look nearly empty, and a step that could use it scanned the whole backlog
    for the chosen ids (135 ms a claim at 60,000 due). Only the primary key is left to find
    them, whatever the statistics say. A row locked here that another worker recorded
    meanwhile (unleased, no longer pending) is left out by the update, as by the lock before."""
    chosen = _chosen(
        deliveries.c.webhook_id != all_(bindparam("b_excluded", type_=postgresql.ARRAY(String)))
    ).cte("chosen")
    unleased, pending = (
        deliveries.c.lease_owner.is_(None),
        deliveries.c.status == DeliveryStatus.PENDING.value,
    )  # together: _WAITING, the due index's predicate
    locked = (
        select(deliveries.c.id)
        .where(deliveries.c.id == func.any(func.array(select(chosen.c.id).scalar_subquery())))
        .where(unleased)
        .with_for_update(skip_locked=True)
    )
    leased = (
        update(deliveries)
        .where(deliveries.c.id == func.any(func.array(locked.scalar_subquery())), pending)
        .values(_LEASE)
        .returning(*(deliveries.c[name] for name in LEASED_DELIVERY_COLUMNS))
        .cte("leased")
    )
    # one row even when nothing was leased, to say how many were chosen (its last column)
    wanted = select(func.count().label("wanted")).select_from(chosen).subquery()
    found = leased_rows(leased).subquery()
    return (
        select(*found.c, wanted.c.wanted)
        .select_from(wanted.outerjoin(found, literal(True)))
        .order_by(found.c.id)
    )


CLAIM_POSTGRESQL = DriverQuery(
    _claim_postgresql(),
    ClaimParams,
    ClaimedDelivery,
    trailing=["wanted"],  # how many the claim chose: SKIP LOCKED may have skipped some
    datetimes=["lease_until", "due_by"],
    bind_prefix="b_",
)


# (owner, lease end) names exactly one claim's rows, through the leased index
SELECT_LEASED = DriverQuery(
    leased_rows(deliveries)
    .where(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.lease_owner == bindparam("owner"),
        deliveries.c.next_attempt_at == bindparam("lease_until"),
    )
    .order_by(deliveries.c.id),
    LeaseParams,
    ClaimedDelivery,
    datetimes=["lease_until"],
)


def _still_there(delivery_id: ColumnElement[str]) -> ColumnElement[bool]:
    """An attempt is stored only while its delivery exists: deleting a webhook deletes its
    deliveries and attempts, even while one of its requests is on the wire."""
    return exists().where(deliveries.c.id == delivery_id)


INSERT_ATTEMPT = DriverStatement(
    insert(attempts).from_select(
        list(AttemptRecord._fields),
        select(*(bindparam(name) for name in AttemptRecord._fields)).where(
            _still_there(bindparam("delivery_id"))
        ),
    ),
    AttemptRecord,
    datetimes=["started_at"],
    jsons=["request_headers"],
)


class OutcomeParams(NamedTuple):
    delivery_id: str
    owner: str  # the lease must still be this owner's
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


RECORD_OUTCOME = DriverStatement(
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_delivery_id"),
        deliveries.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        status=bindparam("b_status"),
        attempt_count=bindparam("b_attempt_count"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        last_status=bindparam("b_last_status"),
        last_error=bindparam("b_last_error"),
        delivered_at=func.coalesce(bindparam("b_delivered_at"), deliveries.c.delivered_at),
        lease_owner=null(),
        on_wire_since=null(),
    ),
    OutcomeParams,
    datetimes=["next_attempt_at", "delivered_at"],
    bind_prefix="b_",
)


# PostgreSQL records a batch in two executions: its attempts, then its deliveries' new states
ATTEMPT_ROW = RowType(
    "attempt_row",
    AttemptRecord,
    {
        "delivery_id": "character varying",
        "number": "integer",
        "started_at": "timestamp with time zone",
        "duration_ms": "integer",
        "request_headers": "text",  # JSON text, cast back below
        "status": "integer",
        "response_excerpt": "text",
        "error": "text",
        "late": "boolean",  # migration 0009
    },
)
_attempts = unnest_rows(ATTEMPT_ROW)
INSERT_ATTEMPTS = RowsStatement(
    insert(attempts).from_select(
        list(AttemptRecord._fields),
        select(
            *(
                cast(column, JSON) if column.name == "request_headers" else column
                for column in _attempts.c
            )
        ).where(_still_there(_attempts.c.delivery_id)),
    ),
    AttemptRecord,
    jsons=["request_headers"],
)

OUTCOME_ROW = RowType(
    "outcome_row",
    OutcomeParams,
    {
        "delivery_id": "character varying",
        "owner": "character varying",
        "status": "character varying",
        "attempt_count": "integer",
        "next_attempt_at": "timestamp with time zone",
        "last_status": "integer",
        "last_error": "text",
        "delivered_at": "timestamp with time zone",
    },
)
_outcomes = unnest_rows(OUTCOME_ROW)
RECORD_OUTCOMES = RowsStatement(
    update(deliveries)
    .where(
        deliveries.c.id == _outcomes.c.delivery_id,
        deliveries.c.lease_owner == _outcomes.c.owner,
    )
    .values(
        status=_outcomes.c.status,
        attempt_count=_outcomes.c.attempt_count,
        next_attempt_at=_outcomes.c.next_attempt_at,
        last_status=_outcomes.c.last_status,
        last_error=_outcomes.c.last_error,
        delivered_at=func.coalesce(_outcomes.c.delivered_at, deliveries.c.delivered_at),
        lease_owner=null(),
        on_wire_since=null(),
    )
    .returning(deliveries.c.id),  # the leases that were still ours: their attempts count
    OutcomeParams,
)
