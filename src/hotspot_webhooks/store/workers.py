"""Workers and their liveness: registration, heartbeats stamped by the database's clock, and
taking over what a dead worker or an expired lease left."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, insert, literal, select, update

from ..states import DeliveryStatus
from .clock import database_ago, database_now
from .db import Database
from .outcomes import write_outcomes
from .records import LOST, DeadWorkerTakeover, ExpiredLease, Outcome
from .schema import deliveries, workers


class Workers:
    """Worker registration, heartbeats and takeovers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def register_worker(
        self, worker_id: str, host: str, pid: int, now: datetime | None = None
    ) -> None:
        """Register ``worker_id``, stamped by the database's clock (or ``now``, for tests)."""
        stamp = database_now(self.db.engine.dialect) if now is None else now
        async with self.db.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker_id))
            await conn.execute(
                insert(workers).values(
                    id=worker_id, host=host, pid=pid, started_at=stamp, heartbeat_at=stamp
                )
            )

    async def heartbeat(self, worker_id: str, now: datetime | None = None) -> bool:
        """Say ``worker_id`` is alive, at the database's time of the write (or ``now``, for
        tests); False if it had been declared dead (its row is gone)."""
        stamp = database_now(self.db.engine.dialect) if now is None else now
        async with self.db.write() as conn:
            result = await conn.execute(
                update(workers).where(workers.c.id == worker_id).values(heartbeat_at=stamp)
            )
            return bool(result.rowcount)

    async def deregister_worker(self, worker_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker_id))

    async def list_workers(self) -> Sequence[Row[Any]]:
        async with self.db.read() as conn:
            return (await conn.execute(select(workers).order_by(workers.c.started_at))).all()

    async def take_over_dead_workers(
        self,
        silent_since: datetime | timedelta,
        now: datetime,
        lost: Callable[[ExpiredLease], Outcome],
        *,
        judge: str | None = None,
    ) -> list[DeadWorkerTakeover]:
        """Declare dead every worker whose last heartbeat is older than ``silent_since`` (a
        timedelta: that long before the database's time) and hand its deliveries back: those
        merely claimed go back to the queue untouched (due ``now``); each one on the wire gets
        the attempt of unknown outcome that ``lost`` makes of it, recorded in the same
        transaction. Deleting the worker's row decides which of several workers looking at
        once does it. The ``judge`` (the worker looking) never declares itself dead.
        """
        taken: list[DeadWorkerTakeover] = []
        dialect = self.db.engine.dialect

        def silent() -> ColumnElement[bool]:
            since = (
                database_ago(dialect, silent_since.total_seconds())
                if isinstance(silent_since, timedelta)
                else silent_since
            )
            return and_(workers.c.heartbeat_at < since, workers.c.id != (judge or ""))

        async with self.db.read() as conn:
            found = (await conn.execute(select(workers.c.id).where(silent()))).scalars().all()
        for worker_id in found:
            async with self.db.write() as conn:
                gone = await conn.execute(
                    delete(workers).where(workers.c.id == worker_id, silent())
                )
                if not gone.rowcount:
                    continue  # it came back, or another worker took it over
                held = deliveries.c.lease_owner == worker_id
                released = await conn.execute(
                    update(deliveries)
                    .where(held, deliveries.c.on_wire_since.is_(None))
                    .values(lease_owner=None, next_attempt_at=now)
                )
                on_wire = await conn.execute(
                    update(deliveries)
                    .where(held, deliveries.c.status == DeliveryStatus.PENDING)
                    .values(lease_owner=LOST + worker_id)
                    .returning(
                        deliveries.c.id,
                        deliveries.c.lease_owner,
                        deliveries.c.attempt_count,
                        deliveries.c.on_wire_since,
                    )
                )
                leases = [ExpiredLease(*row) for row in on_wire]
                await write_outcomes(conn, LOST + worker_id, [lost(lease) for lease in leases])
                taken.append(DeadWorkerTakeover(worker_id, int(released.rowcount or 0), leases))
        return taken

    async def take_expired_leases(
        self, expired_by: datetime, lost: Callable[[ExpiredLease], Outcome]
    ) -> list[ExpiredLease]:
        """Take over the deliveries whose holder let the lease run out before it recorded a
        result, where that holder is no registered worker (a test send whose process died;
        a registered worker's deliveries come back through ``take_over_dead_workers``).

        Each is marked ``lost:<owner>`` in the statement that finds it, so of several workers
        looking at once exactly one takes it, and the attempt of unknown outcome that ``lost``
        makes of it is recorded in the same transaction, which frees it.
        """
        async with self.db.write() as conn:
            rows = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner.is_not(None),
                    deliveries.c.lease_owner.not_like(f"{LOST}%"),
                    deliveries.c.lease_owner.not_in(select(workers.c.id)),
                    deliveries.c.next_attempt_at <= expired_by,
                    deliveries.c.status == DeliveryStatus.PENDING,
                )
                .values(lease_owner=literal(LOST) + deliveries.c.lease_owner)
                .returning(
                    deliveries.c.id,
                    deliveries.c.lease_owner,
                    deliveries.c.attempt_count,
                    func.coalesce(deliveries.c.on_wire_since, deliveries.c.next_attempt_at),
                )
            )
            leases = [ExpiredLease(*row) for row in rows]
            for mark in {lease.mark for lease in leases}:
                mine = [lost(lease) for lease in leases if lease.mark == mark]
                await write_outcomes(conn, mark, mine)
            return leases
