"""The control center's reads: each webhook's health, in aggregate."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
)

from ..states import DeliveryStatus
from .db import Database
from .schema import attempts, deliveries, webhooks
from .scoping import Query, webhooks_of


class HealthRows(NamedTuple):
    """The overview's reads (``Reports.webhook_health``), each a list of rows per webhook."""

    stats: Sequence[Row[Any]]  # webhook_id, attempts, succeeded, p50_ms, p95_ms
    timeline: Sequence[Row[Any]]  # webhook_id, bucket, outcome, attempts
    last_failures: Sequence[Row[Any]]  # webhook_id, delivery_id, started_at, status, error, ...
    unreachable: Sequence[Row[Any]]  # webhook_id, in_a_row, last_at
    pending: Sequence[Row[Any]]  # webhook_id, pending


class Reports:
    """The overview's aggregate reads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def webhook_health(
        self,
        since: datetime,
        success: Collection[int],
        bucket_seconds: int,
        operator_id: str | None = None,
    ) -> HealthRows:
        """What the overview shows of each webhook's attempts since ``since``, in one read:
        counts and p50/p95 duration (nearest rank), attempts per time bucket by outcome, the
        last failure, the unreachable attempts in a row (what opens a circuit) and the pending
        deliveries. ``success`` is the statuses that count as delivered."""
        ok = attempts.c.status.in_(list(success))
        recent = attempts.c.started_at >= since

        def of_webhooks(query: Query) -> Query:
            joined = query.join(deliveries, deliveries.c.id == attempts.c.delivery_id).join(
                webhooks, webhooks.c.id == deliveries.c.webhook_id
            )
            return webhooks_of(joined.where(recent), operator_id)

        ranked = of_webhooks(
            select(
                deliveries.c.webhook_id.label("webhook_id"),
                attempts.c.duration_ms.label("duration_ms"),
                case((ok, 1), else_=0).label("succeeded"),
                func.row_number()
                .over(partition_by=deliveries.c.webhook_id, order_by=attempts.c.duration_ms)
                .label("rank"),
                func.count().over(partition_by=deliveries.c.webhook_id).label("total"),
            ).select_from(attempts)
        ).subquery()
        stats = select(
            ranked.c.webhook_id,
            func.count().label("attempts"),
            func.sum(ranked.c.succeeded).label("succeeded"),
            func.min(
                case((ranked.c.rank * 100 >= ranked.c.total * 50, ranked.c.duration_ms))
            ).label("p50_ms"),
            func.min(
                case((ranked.c.rank * 100 >= ranked.c.total * 95, ranked.c.duration_ms))
            ).label("p95_ms"),
        ).group_by(ranked.c.webhook_id)

        seconds = extract("epoch", attempts.c.started_at) - int(since.timestamp())
        bucket: ColumnElement[Any] = (
            cast(seconds / bucket_seconds, Integer)  # integers: SQLite divides exactly so
            if self.db.engine.dialect.name == "sqlite"
            else cast(func.floor(seconds / bucket_seconds), Integer)
        )
        outcome = case(
            (ok, literal("succeeded")),
            (
                and_(
                    deliveries.c.status == DeliveryStatus.FAILED.value,
                    attempts.c.number == deliveries.c.attempt_count,
                ),
                literal("failed"),
            ),
            else_=literal("retrying"),
        )
        classified = of_webhooks(
            select(
                deliveries.c.webhook_id.label("webhook_id"),
                bucket.label("bucket"),
                outcome.label("outcome"),
            ).select_from(attempts)
        ).subquery()
        timeline = select(
            classified.c.webhook_id,
            classified.c.bucket,
            classified.c.outcome,
            func.count().label("attempts"),
        ).group_by(classified.c.webhook_id, classified.c.bucket, classified.c.outcome)

        last_failed = of_webhooks(
            select(func.max(attempts.c.id))
            .select_from(attempts)
            .where(~ok | attempts.c.status.is_(None))
        ).group_by(deliveries.c.webhook_id)
        failures: Select[Any] = (
            select(
                deliveries.c.webhook_id,
                attempts.c.delivery_id,
                attempts.c.started_at,
                attempts.c.status,
                attempts.c.error,
                attempts.c.response_excerpt,
            )
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(attempts.c.id.in_(last_failed))
        )

        answered = (
            of_webhooks(
                select(
                    deliveries.c.webhook_id.label("webhook_id"),
                    func.max(attempts.c.started_at).label("at"),
                )
                .select_from(attempts)
                .where(attempts.c.status.is_not(None))
            )
            .group_by(deliveries.c.webhook_id)
            .subquery()
        )
        unreachable = (
            of_webhooks(
                select(
                    deliveries.c.webhook_id,
                    func.count().label("in_a_row"),
                    func.max(attempts.c.started_at).label("last_at"),
                ).select_from(attempts)
            )
            .outerjoin(answered, answered.c.webhook_id == deliveries.c.webhook_id)
            .where(
                attempts.c.status.is_(None),
                or_(answered.c.at.is_(None), attempts.c.started_at > answered.c.at),
            )
            .group_by(deliveries.c.webhook_id)
        )

        pending = webhooks_of(
            select(deliveries.c.webhook_id, func.count().label("pending"))
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .where(deliveries.c.status == DeliveryStatus.PENDING.value),
            operator_id,
        ).group_by(deliveries.c.webhook_id)

        async with self.db.read() as conn:
            return HealthRows(
                stats=(await conn.execute(stats)).all(),
                timeline=(await conn.execute(timeline)).all(),
                last_failures=(await conn.execute(failures)).all(),
                unreachable=(await conn.execute(unreachable)).all(),
                pending=(await conn.execute(pending)).all(),
            )
