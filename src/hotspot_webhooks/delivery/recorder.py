"""Writing outcomes in batches: each write takes all that piled up since the last.

While one batch is being written the next piles up, so recording costs a few statements per
batch, never one per attempt. A write has a fixed cost (its transaction, two statements, four
round trips: about 0.9 ms of the worker's CPU on PostgreSQL) beside its cost per outcome, so
an outcome waits up to ``RECORD_LINGER`` for others to share its write, unless
``RECORD_BATCH`` are already waiting or everything must be written now (``drain``). Without
the wait a fast database made small batches: 47 outcomes per write on the throughput bench,
a third of the worker's CPU per delivery spent on writes' fixed cost.

The wait does not delay any request: it only adds to the moment between an answer and its
record, during which a worker that dies has its delivery sent again with the same attempt
number (``liveness.py``), a duplicate the receiver dedupes. A write that fails (the database
is away) is kept and written again, with backoff: these attempts happened and must not be
lost from the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import metrics
from ..errors import DatabaseUnavailable
from ..store.queue import Queue
from ..store.records import Outcome
from .attempt import log_disabled
from .fence import LeaseFence

log = logging.getLogger(__name__)
MAX_BACKOFF = 5.0  # seconds between tries while the database is away: back soon after it is
# outcomes waiting that are written at once, and how long (s) an outcome may wait for others
# to share its write: at 256 and 25 ms the throughput bench wrote 275 a time and spent 3.3 µs
# per delivery on writes' fixed cost; at these, about 500 a time and half that
RECORD_BATCH = 512
RECORD_LINGER = 0.05


@dataclass
class PassStats:
    claimed: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    held: int = 0  # handed back unsent by an open circuit
    lost_leases: int = 0
    seconds: float = 0.0

    @property
    def attempted(self) -> int:
        return self.succeeded + self.retrying + self.failed


@dataclass
class Recorder:
    """Buffers one lease owner's outcomes and hand-backs and writes them in batches."""

    queue: Queue
    owner: str
    stats: PassStats
    counted: metrics.Outcomes | None = None  # the metrics' counts, published with each batch
    # told when writes fail and succeed again: no request goes out while its on-wire mark
    # could not be written (fence.py)
    fence: LeaseFence | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    released: dict[datetime, list[str]] = field(default_factory=dict)
    disable: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)  # write without lingering
    written: asyncio.Event = field(default_factory=asyncio.Event)
    writing: bool = False

    def add(self, outcome: Outcome, disable: dict[str, str] | None = None) -> None:
        self.outcomes.append(outcome)
        if disable:
            self.disable.update(disable)
        self.wake.set()
        if len(self.outcomes) >= RECORD_BATCH:
            self.hurry.set()

    def release(self, delivery_id: str, due: datetime) -> None:
        """Hand a claimed delivery back to the queue unsent, due at ``due``."""
        self.released.setdefault(due, []).append(delivery_id)
        self.wake.set()

    @property
    def pending(self) -> bool:
        """Is anything handed in not yet written (waiting, or being written now)?"""
        return self.writing or bool(self.outcomes or self.released or self.disable)

    async def run(self) -> None:
        """Write whatever piles up, until cancelled."""
        backoff = 0.5
        while True:
            await self.wake.wait()
            if not self.hurry.is_set():  # let a batch gather
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), RECORD_LINGER)
            self.wake.clear()
            self.hurry.clear()
            try:
                await self.flush()
                backoff = 0.5
            except Exception as exc:  # kept and tried again: a recorder that died would hang
                if isinstance(exc, DatabaseUnavailable):
                    if self.fence is not None:
                        self.fence.suspend()
                    metrics.record_database_error("record")
                    log.warning(
                        "recording attempts failed (%s); trying again in %.1f s", exc, backoff
                    )
                else:
                    log.exception("recording attempts failed; trying again in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self.wake.set()
                continue
            if self.fence is not None:
                self.fence.resume()
            if not self.pending:
                self.written.set()

    async def flush(self) -> None:
        if self.counted is not None:
            self.counted.publish()
        if not (self.outcomes or self.released or self.disable):
            return
        self.writing = True
        try:
            await self._write()
        finally:
            self.writing = False

    async def _write(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        released, self.released = self.released, {}
        disable, self.disable = self.disable, {}
        try:
            kept = await self.queue.record(
                self.owner,
                outcomes,
                released=released,
                now=datetime.now(UTC),
                disable_webhooks=disable,
            )
        except BaseException:
            self.outcomes[:0] = outcomes
            for due, ids in released.items():
                self.released.setdefault(due, [])[:0] = ids
            self.disable = {**disable, **self.disable}
            raise
        self.stats.lost_leases += len(outcomes) - kept
        log_disabled(disable)
        self.stats.released += sum(len(ids) for ids in released.values())

    async def drain(self) -> None:
        """Wait until everything handed in so far is written (``run`` must be running)."""
        while self.pending:
            self.written.clear()
            self.wake.set()
            self.hurry.set()
            await self.written.wait()
