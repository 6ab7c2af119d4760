"""Liveness: workers heartbeat, and a dead worker's deliveries come back within a minute.

Each dispatcher registers in the ``workers`` table and heartbeats every ``HEARTBEAT`` seconds.
At each heartbeat it also looks for workers silent for longer than ``WORKER_TIMEOUT`` and hands
their deliveries back: one merely claimed goes back to the queue untouched (no attempt is
counted, its receiver never saw it); one whose request was on the wire gets an attempt of
unknown outcome, honestly numbered, because the receiver may have it. No lease needs to outlast
the longest request: a live worker's deliveries are its own for as long as it heartbeats.

Knowing which requests were on the wire costs one small write per few hundred milliseconds,
and only for requests still unanswered by then (``OnWire``): a request answered in time is
recorded with its outcome and never marked. The price is that a request answered less than a
moment before its worker died is sent again with the same attempt number: a duplicate the
receiver dedupes on the event id, never a retry burned.

A worker that was cut off from the database longer than ``WORKER_TIMEOUT`` may find itself
declared dead: it registers again, and what it still records of the deliveries it lost is kept
as attempts but changes no delivery (its lease is gone). After its own outage a worker waits
a full ``WORKER_TIMEOUT`` of good heartbeats before it declares anyone dead, so workers coming
back together do not take each other's work.

Times are the database's: a heartbeat is stamped when the database writes it, and silence is
measured by the same clock (``store/clock.py``), never by a time a worker took before a
statement that then hung. A worker never judges itself. And a heartbeat that comes late
counts as an outage of its own: a worker whose beats were further apart than
``WORKER_TIMEOUT - HEARTBEAT`` (it hung: on the database, or its loop stalled) may have hung
with the others, whose heartbeats are as stale as its own was; it waits a full
``WORKER_TIMEOUT`` of good heartbeats before it judges anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

from .. import metrics
from ..config import Settings
from ..errors import DatabaseUnavailable
from ..store.database import display_url, within
from ..store.queue import Queue
from ..store.records import ExpiredLease, Outcome
from .attempt import Attempts
from .fence import LeaseFence

log = logging.getLogger(__name__)
MARK_EVERY = 0.25  # seconds; a request unanswered for one to two of these is marked


class OnWire:
    """The requests on the wire now and since when, to mark the ones that linger."""

    def __init__(self) -> None:
        self._fresh: dict[str, float] = {}
        self._aging: dict[str, float] = {}

    def sent(self, delivery_id: str) -> None:
        self._fresh[delivery_id] = time.time()

    def answered(self, delivery_id: str) -> None:
        if self._fresh.pop(delivery_id, None) is None:
            self._aging.pop(delivery_id, None)

    def take_lingering(self) -> dict[str, datetime]:
        """Those sent before the previous call and still unanswered; the rest ages a turn."""
        lingering, self._aging, self._fresh = self._aging, self._fresh, {}
        return {key: datetime.fromtimestamp(sent, UTC) for key, sent in lingering.items()}

    def give_back(self, marks: dict[str, datetime]) -> None:
        """Marks that could not be written: try them again at the next turn."""
        for key, since in marks.items():
            self._aging[key] = since.timestamp()


class Liveness:
    """One worker's registration, heartbeat and marks, and its duty to take over the dead."""

    def __init__(
        self, queue: Queue, settings: Settings, attempts: Attempts, owner: str, on_wire: OnWire
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.attempts = attempts
        self.owner = owner
        self.on_wire = on_wire
        # may declare others dead from this moment: not before a worker_timeout of good
        # heartbeats after an outage of its own
        self._judge_from = 0.0
        self._last_beat: float | None = None  # time.monotonic() of the last good heartbeat
        # what this worker may still send (fence.py)
        self.fence = LeaseFence(settings.worker_timeout - settings.heartbeat / 2)

    async def register(self) -> None:
        started = time.monotonic()
        await self.queue.workers.register_worker(
            self.owner, socket.gethostname()[:255], os.getpid()
        )
        self.fence.confirm(started)

    async def deregister(self) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            await self.queue.workers.deregister_worker(self.owner)

    async def heartbeats(self, stopping: asyncio.Event) -> None:
        """Heartbeat and take over the dead every ``heartbeat`` seconds until ``stopping``.

        On PostgreSQL a heartbeat waits at most ``min(DB_TIMEOUT, HEARTBEAT)``: with the
        defaults (5 s each way) a worker says so within 10 s of losing its database, even when
        nothing else of it was asking the database anything."""
        bound = (
            min(self.settings.db_timeout, self.settings.heartbeat)
            if self.queue.db.engine.dialect.name == "postgresql"
            else None  # a file does not go away; a busy writer is only slow
        )
        while not stopping.is_set():
            began = time.monotonic()  # one heartbeat begins every HEARTBEAT, however long each
            try:
                if bound is None:
                    await self.beat()
                else:
                    try:
                        await within(bound, self.beat())
                    except TimeoutError:
                        raise DatabaseUnavailable(
                            f"database unavailable: {display_url(self.settings.database_url)} "
                            f"did not answer a heartbeat within {bound:g} s"
                        ) from None
                await self.take_over_the_dead()
            except DatabaseUnavailable as exc:
                metrics.record_database_error("heartbeat")
                log.warning("heartbeat failed (%s); trying again", exc)
                self._judge_from = time.monotonic() + self.settings.worker_timeout
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), max(0.0, began + self.settings.heartbeat - time.monotonic())
                )

    async def beat(self) -> None:
        started = time.monotonic()
        alive = await self.queue.workers.heartbeat(self.owner)
        beaten, previous = time.monotonic(), self._last_beat
        self._last_beat = beaten
        if previous is not None and beaten - previous > self.late_beat:
            log.warning(
                "worker %s heartbeated %.1f s after its previous heartbeat (every %g s is due): "
                "it declares no worker dead for %g s, as others may have hung with it",
                self.owner, beaten - previous, self.settings.heartbeat,
                self.settings.worker_timeout,
            )  # fmt: skip
            self._judge_from = max(self._judge_from, beaten + self.settings.worker_timeout)
        if alive:
            self.fence.confirm(started)
        else:
            self.fence.lost()
            log.warning(
                "worker %s had been declared dead (silent for over %g s): registering again; "
                "deliveries it held were handed back",
                self.owner, self.settings.worker_timeout,
            )  # fmt: skip
            await self.register()

    @property
    def late_beat(self) -> float:
        """Heartbeats further apart than this are an outage of this worker's own: the others'
        may be as stale (``WORKER_TIMEOUT - HEARTBEAT``, and at least 1.5 heartbeats)."""
        heartbeat, timeout = self.settings.heartbeat, self.settings.worker_timeout
        return max(timeout - heartbeat, 1.5 * heartbeat)

    async def take_over_the_dead(self) -> None:
        """Hand back the deliveries of workers gone silent, and of leases run out."""
        if time.monotonic() < self._judge_from:
            return
        now = datetime.now(UTC)
        silent_for = timedelta(seconds=self.settings.worker_timeout)
        for taken in await self.queue.workers.take_over_dead_workers(
            silent_for, now, self._lost, judge=self.owner
        ):
            log.warning(
                "worker %s is dead (silent for over %g s): %d claimed deliveries back in the "
                "queue, %d that were on the wire recorded as attempts of unknown outcome",
                taken.worker, self.settings.worker_timeout, taken.released, len(taken.on_wire),
            )  # fmt: skip
        expired = await self.queue.workers.take_expired_leases(now, self._lost)
        if expired:
            log.warning("%d leases ran out unrecorded: recorded as unknown outcomes", len(expired))

    def _lost(self, lease: ExpiredLease) -> Outcome:
        return self.attempts.lost(lease).outcome

    async def marks(self, stopping: asyncio.Event) -> None:
        """Write, every ``MARK_EVERY`` seconds, which requests linger on the wire."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), MARK_EVERY)
            await self.write_marks()

    async def write_marks(self) -> None:
        lingering = self.on_wire.take_lingering()
        if not lingering:
            return
        try:
            await self.queue.mark_on_wire(self.owner, lingering)
        except DatabaseUnavailable as exc:
            metrics.record_database_error("mark")
            log.warning("marking requests on the wire failed (%s); trying again", exc)
            self.on_wire.give_back(lingering)
