"""The tables. One place describes the data; migrations under ``migrations/`` create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ID = String(64)
DUE = "status = 'pending' AND lease_owner IS NULL"  # waiting for a worker: ix_deliveries_due
ROTATED = "previous_key_expires_at IS NOT NULL"  # a previous key to erase: ix_webhooks_previous...
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

operators = Table(
    "operators",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default="enabled"),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", ID, primary_key=True),
    # NULL operator = an admin token
    Column("operator_id", ID, ForeignKey("operators.id", ondelete="CASCADE"), nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

locations = Table(
    "locations",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("operator_id", ID, ForeignKey("operators.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False, server_default="enabled"),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", ID, primary_key=True),
    # whose it is: what "*" in its subscription stands for (never another operator's)
    Column(
        "operator_id",
        ID,
        ForeignKey("operators.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("callback_url", Text, nullable=False),
    Column("api_key_encrypted", Text, nullable=False),
    # the key a rotation replaced, still signing beside the new one until it expires
    Column("previous_api_key_encrypted", Text, nullable=True),
    Column("previous_key_expires_at", UTCDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # what a webhook does beyond SPEC §2 (§9), each null when not used: a description and
    # metadata for people; the filter an emit applies (JSON, read in the emit's transaction);
    # the template an attempt renders its body with (JSON); the preset that filled it; and the
    # custom headers and auth, sealed under SECRET_KEY like the API keys (never in clear)
    Column("description", Text, nullable=True),
    Column("metadata_json", Text, nullable=True),
    Column("filter_json", Text, nullable=True),
    Column("template_json", Text, nullable=True),
    Column("preset", String(64), nullable=True),
    Column("success_statuses", String(200), nullable=True),  # SUCCESS_STATUSES, for this one
    Column("secrets_sealed", Text, nullable=True),
    Index(
        "ix_webhooks_previous_key_expires_at",
        "previous_key_expires_at",
        sqlite_where=text(ROTATED),
        postgresql_where=text(ROTATED),
    ),
)

# A webhook's subscription, location_ids x event_types, one row per pair; "*" stands for all
# (of the operator's locations, present and future; of the types). An emit finds the webhooks
# an event matches with one lookup of ix_subscriptions_match: (owner, location or "*", type
# or "*").
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("webhook_id", ID, ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", String(200), primary_key=True),
    Column("event_type", String(64), primary_key=True),
    Column("operator_id", ID, nullable=False),  # the webhook's, so "*" is matched within it
    Index("ix_subscriptions_match", "operator_id", "location_id", "event_type"),
)

# Event types an admin registered beside the six built-ins (catalog.py), with the JSON Schema
# (Draft 2020-12) their payloads are validated against.
event_types = Table(
    "event_types",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("json_schema", JSON, nullable=False),
    Column("sample", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("location_id", String(200), ForeignKey("locations.id"), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("delivery_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_events_location_created", "location_id", "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column("event_id", String(200), ForeignKey("events.id"), nullable=False, index=True),
    Column("webhook_id", ID, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False),
    # While leased (lease_owner set), next_attempt_at is the backstop lease's end; with the
    # owner it names one claim's rows. Leased rows are never claimed: a dead worker's come
    # back through a takeover (delivery/liveness.py).
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    # set while an attempt of this delivery is on the wire (its worker marks requests that
    # outlive a moment): if the worker dies, only these get an attempt of unknown outcome
    Column("on_wire_since", UTCDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    # the queue: only deliveries waiting for a worker are in it, so a claim's update and an
    # outcome's take no entry here (a pending row leaves it when claimed; a finished one
    # never comes back), and the oldest due are the index's first entries
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        sqlite_where=text(DUE),
        postgresql_where=text(DUE),
    ),
    Index("ix_deliveries_webhook_created", "webhook_id", "created_at"),
    # the few rows workers hold right now: a claim's rows (by lease end), expired leases and a
    # dead worker's deliveries are found among them; one partial index, written by every claim
    Index(
        "ix_deliveries_leased",
        "next_attempt_at",
        sqlite_where=text("lease_owner IS NOT NULL"),
        postgresql_where=text("lease_owner IS NOT NULL"),
    ),
)

# The dispatchers alive now: each registers and heartbeats; one silent for longer than the
# liveness timeout is dead, and any other worker hands its deliveries back.
workers = Table(
    "workers",
    metadata,
    Column("id", ID, primary_key=True),  # its lease owner name
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

attempts = Table(
    "attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "delivery_id",
        ID,
        ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("number", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("request_headers", JSON, nullable=False),
    Column("status", Integer, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("error", Text, nullable=True),
    # recorded after its lease had been taken over (its worker stalled or lost the database):
    # kept, and it changed no delivery; the attempts that count are unique per number
    Column("late", Boolean, nullable=False, server_default=false()),
    Index(
        "uq_attempts_delivery_number",
        "delivery_id",
        "number",
        unique=True,
        sqlite_where=text("NOT late"),
        postgresql_where=text("NOT late"),
    ),
)
