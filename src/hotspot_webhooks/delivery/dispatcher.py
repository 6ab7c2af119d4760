"""The dispatcher: passes that claim due deliveries, send them, and record every attempt.

A pass claims, in batches and under a lease, every delivery due when the pass began (so a retry
scheduled during the pass waits for the next one), sends them concurrently and records the
outcomes in batches, one transaction each. Claiming, sending and recording overlap: while one
batch is in flight the next is claimed and finished attempts are written together, so the
database costs a few statements per batch, never one per attempt.

Stopping (Ctrl-C, SIGTERM) lets in-flight attempts finish and be recorded, and hands the
claimed but unsent deliveries straight back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from ..config import Settings
from ..keys import KeyCipher
from ..states import DeliveryStatus
from ..store.records import ClaimedDelivery, Outcome, worker_lease_owner
from ..store.store import Store
from .attempt import Attempts, unsent_webhook_disabled, webhooks_to_disable
from .lanes import HostLanes
from .outcome import Decision
from .recorder import PassStats, Recorder

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, cipher: KeyCipher) -> None:
        self.store = store
        self.settings = settings
        self.attempts = Attempts(settings, cipher)
        self.owner = worker_lease_owner()
        self.stopping = asyncio.Event()
        # claimed but not yet recorded: enough to keep every slot busy while the next batch
        # is claimed, few enough that nothing waits long on its lease
        self._max_claimed = settings.concurrency + settings.batch_size

    def stop(self) -> None:
        """Ask the dispatcher to finish in-flight attempts and return."""
        self.stopping.set()

    async def close(self) -> None:
        await self.attempts.close()

    async def run(self) -> None:
        """Run a pass every ``interval`` seconds until ``stop()``."""
        log.info("dispatcher %s: a pass every %g s", self.owner, self.settings.interval)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                stats = await self.run_pass()
                if stats.claimed:
                    log.info(
                        "pass: %d sent (%d ok, %d to retry, %d failed) in %.2f s",
                        stats.attempted,
                        stats.succeeded,
                        stats.retrying,
                        stats.failed,
                        stats.seconds,
                    )
            except Exception:  # a bad pass must not end the dispatcher; the next one retries
                log.exception("dispatcher pass failed; retrying at the next pass")
            wait = self.settings.interval - (time.monotonic() - started)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), wait)

    async def run_pass(self) -> PassStats:
        """Claim and deliver everything due now; return what happened."""
        clock = time.monotonic()
        due_by = datetime.now(UTC)
        await self._record_lost_attempts(due_by)
        refill_below = self._max_claimed - min(self.settings.batch_size, self._max_claimed) // 2
        current = _Pass(self, refill_below)
        recording = asyncio.create_task(current.recorder.run())
        try:
            while not self.stopping.is_set():
                if current.unfinished > refill_below:
                    current.progress.clear()
                    await current.progress.wait()
                    continue
                now = datetime.now(UTC)
                batch = await self.store.claim_due(
                    owner=self.owner,
                    due_by=due_by,
                    lease_until=now + timedelta(seconds=self.settings.lease),
                    limit=min(self.settings.batch_size, self._max_claimed - current.unfinished),
                )
                if not batch:
                    break
                current.add(batch, lease_deadline=time.monotonic() + self.settings.lease)
            await current.lanes.join()
        finally:
            await current.recorder.close()
            await recording
        current.stats.seconds = time.monotonic() - clock
        return current.stats

    async def _record_lost_attempts(self, expired_by: datetime) -> None:
        """Record an attempt of unknown outcome for each lease that ran out unrecorded.

        A worker that died (killed, power lost) between sending and recording leaves its
        deliveries leased. The request may or may not have gone out; the audit trail says so,
        the attempt counts against the retries, and the delivery is free to claim again.
        """
        lost = await self.store.take_expired_leases(expired_by)
        by_mark: dict[str, list[Outcome]] = {}
        for lease in lost:
            by_mark.setdefault(lease.mark, []).append(self.attempts.lost(lease).outcome)
        for mark, outcomes in by_mark.items():
            log.warning("%d deliveries left unrecorded by %s: recorded as unknown outcomes",
                        len(outcomes), mark)  # fmt: skip
            await self.store.record(mark, outcomes)


class _Pass:
    """One pass's deliveries in flight: lanes to send them, a recorder to write outcomes."""

    def __init__(self, dispatcher: Dispatcher, refill_below: int) -> None:
        self.dispatcher = dispatcher
        self.refill_below = refill_below
        self.settings = dispatcher.settings
        self.stats = PassStats()
        self.recorder = Recorder(dispatcher.store, dispatcher.owner, self.stats)
        self.unfinished = 0  # claimed, not yet decided
        self.progress = asyncio.Event()  # set once few enough are unfinished to claim more
        self.lanes: HostLanes[tuple[ClaimedDelivery, float]] = HostLanes(
            concurrency=self.settings.concurrency,
            per_host=self.settings.per_host_concurrency,
            work=self.deliver,
        )

    def add(self, batch: list[ClaimedDelivery], lease_deadline: float) -> None:
        self.stats.claimed += len(batch)
        self.unfinished += len(batch)
        for claimed in batch:
            self.lanes.put(_host(claimed.callback_url), (claimed, lease_deadline))

    async def deliver(self, item: tuple[ClaimedDelivery, float]) -> None:
        """Attempt one delivery (or hand it back) and hand its outcome to the recorder."""
        claimed, lease_deadline = item
        try:
            if not claimed.webhook_enabled:
                self.recorder.add(unsent_webhook_disabled(claimed))
                self.stats.failed += 1
                return
            # never send on a lease that may run out mid-request: another worker may be
            # about to claim the delivery
            if (
                self.dispatcher.stopping.is_set()
                or time.monotonic() + self.settings.timeout > lease_deadline
            ):
                self.recorder.release(claimed.id)
                return
            decision = await self.dispatcher.attempts.make(claimed)
        finally:
            self.unfinished -= 1
            if self.unfinished <= self.refill_below:
                self.progress.set()  # wakes the claiming loop once, not once per delivery
        self.record(claimed, decision)

    def record(self, claimed: ClaimedDelivery, decision: Decision) -> None:
        status = decision.outcome.status
        if status is DeliveryStatus.SUCCEEDED:
            self.stats.succeeded += 1
        elif status is DeliveryStatus.PENDING:
            self.stats.retrying += 1
        else:
            self.stats.failed += 1
        self.recorder.add(decision.outcome, webhooks_to_disable(claimed, decision))


@asynccontextmanager
async def open_dispatcher(
    store: Store, settings: Settings, cipher: KeyCipher
) -> AsyncIterator[Dispatcher]:
    """A dispatcher for this process, closed (its HTTP client too) when the block ends."""
    dispatcher = Dispatcher(store, settings, cipher)
    tune_process_for_throughput()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()


@asynccontextmanager
async def running_dispatcher(
    store: Store, settings: Settings, cipher: KeyCipher
) -> AsyncIterator[Dispatcher]:
    """A dispatcher running its passes in the background for as long as the block lasts;
    leaving the block stops it the graceful way (in-flight attempts finish and are recorded,
    the rest is handed back)."""
    async with open_dispatcher(store, settings, cipher) as dispatcher:
        task = asyncio.create_task(dispatcher.run())
        try:
            yield dispatcher
        finally:
            dispatcher.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def tune_process_for_throughput() -> None:
    """Make the garbage collector cheap for a long-running dispatcher.

    A pass allocates a few short-lived objects per delivery; with CPython's default threshold
    the collector runs every 700 allocations and costs ~10 % of a pass. Objects that exist at
    start-up (modules, settings) are frozen out of the collector's scans altogether.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()
