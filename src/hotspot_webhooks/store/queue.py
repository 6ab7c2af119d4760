"""The queue: the delivery engine's one door to the database.

Claim and lease (each claim under a lease end no other claim of the process shares), the on-wire
marks, recording a batch's outcomes, deferring and giving back, the backlog; with ``workers``
(registration, heartbeats, takeovers: ``workers.py``) and ``retention`` (purges) beside it. The
engine (``delivery/``) is handed a ``Queue`` and never sees the resources' repositories, so the
queue can be redesigned without touching them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..states import DeliveryStatus, WebhookStatus
from .db import Database
from .outcomes import write_outcomes
from .records import Backlog, ClaimedDelivery, NewEvent, Outcome, UnknownLocation
from .retention import Retention
from .schema import DUE, deliveries, events, locations, webhooks
from .statements import CLAIM_POSTGRESQL, CLAIM_SQLITE, SELECT_LEASED, ClaimParams, LeaseParams
from .workers import Workers

# a fair claim ranks this many times its size of the oldest due deliveries
CLAIM_WINDOW = 2
# how often a claim on PostgreSQL chooses again when other workers took some of its choice
CLAIM_TRIES = 3


class Queue:
    """Claims, leases and outcomes, with the workers' liveness and the purges beside."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_lease_end: datetime | None = None
        self.workers = Workers(db)  # registration, heartbeats, takeovers
        self.retention = Retention(db)  # purges

    async def insert_leased_delivery(
        self,
        new: NewEvent,
        webhook_id: str,
        delivery_id: str,
        owner: str,
        lease_until: datetime,
    ) -> ClaimedDelivery:
        """Store an event with one delivery, to this webhook alone, already leased to ``owner``.

        For a test send: the caller attempts it at once, and no dispatcher can claim it first.
        The event's location must be one of the webhook's operator (held until the commit),
        else ``UnknownLocation`` and nothing is stored.
        """
        async with self.db.write() as conn:
            its_location = (
                select(locations.c.id)
                .join(webhooks, webhooks.c.operator_id == locations.c.operator_id)
                .where(locations.c.id == new.location_id, webhooks.c.id == webhook_id)
                .with_for_update(read=True, key_share=True)
            )
            if (await conn.execute(its_location)).first() is None:
                raise UnknownLocation(new.location_id, 0)
            await conn.execute(
                insert(events),
                {
                    "id": new.id,
                    "type": new.type,
                    "location_id": new.location_id,
                    "body": new.body,
                    "delivery_count": 1,
                    "created_at": new.created_at,
                },
            )
            await conn.execute(
                insert(deliveries),
                {
                    "id": delivery_id,
                    "event_id": new.id,
                    "webhook_id": webhook_id,
                    "status": DeliveryStatus.PENDING,
                    "attempt_count": 0,
                    "next_attempt_at": lease_until,
                    "lease_owner": owner,
                    "created_at": new.created_at,
                },
            )
            rows = await SELECT_LEASED.fetchall(conn, LeaseParams(owner, lease_until))
        return rows[0]

    async def claim_due(
        self,
        *,
        owner: str,
        due_by: datetime,
        lease_until: datetime,
        limit: int,
        per_webhook: int | None = None,
        exclude_webhooks: Collection[str] = (),
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries, oldest first, for ``owner``.

        Fair: of the oldest due deliveries (a window of a few times ``limit``), at most
        ``per_webhook`` of any one webhook are taken, so one endpoint's backlog cannot fill a
        claim; ``exclude_webhooks`` (endpoints that are full or whose circuit is open) are
        skipped altogether. The lease is ``next_attempt_at`` moved to ``lease_until``, a
        backstop for holders that do not heartbeat. ``SKIP LOCKED`` lets workers on PostgreSQL
        claim side by side; SQLite serializes writers anyway.
        """
        # (owner, lease end) must name one claim alone: never reuse a lease end
        if self._last_lease_end is not None and lease_until <= self._last_lease_end:
            lease_until = self._last_lease_end + timedelta(microseconds=1)
        self._last_lease_end = lease_until
        params = ClaimParams(
            owner=owner,
            lease_until=lease_until,
            due_by=due_by,
            window=limit if per_webhook is None else limit * CLAIM_WINDOW,
            per_webhook=limit if per_webhook is None else per_webhook,
            limit=limit,
            excluded=list(exclude_webhooks),
        )
        async with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                return await _claim_skipping_locked(conn, params)
            # one writer at a time: what the claim chose is still waiting
            if not await CLAIM_SQLITE.execute(conn, params):
                return []
            # (owner, lease end) names exactly this claim's rows, through the leased index
            return await SELECT_LEASED.fetchall(conn, LeaseParams(owner, lease_until))

    @property
    def last_lease_end(self) -> datetime | None:
        """The lease end of this process's latest claim (each claim's own)."""
        return self._last_lease_end

    async def release_claims(self, owner: str, lease_ends: Collection[datetime]) -> int:
        """Give back, unsent and due at once, what ``owner`` leased under these lease ends:
        claims that failed as they committed (``delivery/unsure_claims.py``), whose rows no one
        holds. Not what is on the wire: a claim that failed was never sent from."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner == owner,
                    deliveries.c.next_attempt_at.in_(list(lease_ends)),
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.on_wire_since.is_(None),
                )
                .values(lease_owner=None, next_attempt_at=datetime.now(UTC))
            )
            return int(result.rowcount or 0)

    async def defer_due(self, webhook_ids: Collection[str], until: datetime) -> int:
        """Make these webhooks' unclaimed pending deliveries due no sooner than ``until`` (their
        endpoint's circuit is open: nothing goes out before its probe). No attempt is counted."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.webhook_id.in_(list(webhook_ids)),
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.lease_owner.is_(None),
                    deliveries.c.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )
            return int(result.rowcount or 0)

    async def mark_on_wire(self, owner: str, since: Mapping[str, datetime]) -> None:
        """Note that attempts of these deliveries (delivery id → when the request went out,
        still leased by ``owner``) are on the wire: should ``owner`` die now, each gets an
        attempt of unknown outcome, where a merely claimed one goes back untouched."""
        async with self.db.write() as conn:
            await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == bindparam("b_id"),
                    deliveries.c.lease_owner == bindparam("b_owner"),
                )
                .values(on_wire_since=bindparam("b_since")),
                [{"b_id": i, "b_owner": owner, "b_since": t} for i, t in since.items()],
            )

    async def backlog(self, now: datetime) -> Backlog:
        """How many deliveries are due by ``now`` and how late the oldest is, and how many
        webhooks are disabled: two small reads (the due ones are the entries of the partial
        index ``ix_deliveries_due``, its predicate spelled as it is so both databases use it)."""
        due = (
            select(func.count(), func.min(deliveries.c.next_attempt_at))
            .where(text(DUE))
            .where(deliveries.c.next_attempt_at <= now)
        )
        disabled = select(func.count()).where(webhooks.c.status == WebhookStatus.DISABLED.value)
        async with self.db.read() as conn:
            count, oldest = (await conn.execute(due)).one()
            disabled_count = (await conn.execute(disabled)).scalar_one()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return Backlog(due=count, oldest_due_age=age, disabled_webhooks=disabled_count)

    async def record(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        released: Mapping[datetime, Collection[str]] | None = None,
        now: datetime | None = None,
        disable_webhooks: dict[str, str] | None = None,
    ) -> int:
        """Record a batch of outcomes in one transaction; return how many leases were still ours.

        Attempts are always stored (they happened), unless their delivery is gone (its
        webhook was deleted meanwhile). A delivery is only updated while ``owner`` still holds
        its lease, so a worker whose lease ran out cannot overwrite a newer state.
        ``released`` deliveries (due time → ids) go back to the queue unsent, due then.
        """
        try:
            return await self._record(owner, outcomes, released, now, disable_webhooks)
        except IntegrityError:
            # a webhook was being deleted with its deliveries as the batch was written (its
            # attempt's delivery was there when looked for, gone by the commit): once more,
            # the deleted delivery's attempt is now left out
            return await self._record(owner, outcomes, released, now, disable_webhooks)

    async def _record(
        self,
        owner: str,
        outcomes: Sequence[Outcome],
        released: Mapping[datetime, Collection[str]] | None,
        now: datetime | None,
        disable_webhooks: dict[str, str] | None,
    ) -> int:
        async with self.db.write() as conn:
            kept = await write_outcomes(conn, owner, outcomes)
            for due_at, ids in (released or {}).items():
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
                    .values(lease_owner=None, next_attempt_at=due_at, on_wire_since=None)
                )
            for webhook_id, reason in (disable_webhooks or {}).items():
                await conn.execute(
                    update(webhooks)
                    .where(webhooks.c.id == webhook_id)
                    .values(
                        status=WebhookStatus.DISABLED,
                        disabled_reason=reason,
                        updated_at=now,
                    )
                )
            return kept


async def _claim_skipping_locked(
    conn: AsyncConnection, params: ClaimParams
) -> list[ClaimedDelivery]:
    """PostgreSQL: claim, skipping rows other workers' claims hold. They read the same window,
    so some of the chosen may be taken meanwhile; then the claim chooses again (its own
    leases are out of the window now), a few times at most."""
    taken: list[ClaimedDelivery] = []
    make = CLAIM_POSTGRESQL.make
    for _ in range(CLAIM_TRIES):
        rows = await CLAIM_POSTGRESQL.fetch_rows(
            conn, params._replace(limit=params.limit - len(taken))
        )
        got = [make(row) for row in rows if row[0] is not None]  # id: None if none leased
        taken += got
        if len(got) == rows[0][-1]:  # as many as it chose ("wanted"): none was skipped
            break
    return taken
