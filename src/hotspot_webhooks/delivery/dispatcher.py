"""The dispatcher: claims due deliveries continuously, sends them, records every attempt.

Work flows without passes that wait on each other: deliveries are claimed while there is
room, each into its endpoint's lane (``lanes.py``: a bounded share and a circuit breaker per
receiver host), and each outcome goes to the recorder as soon as it is known, to be written
with the others that piled up meanwhile. A slow or dead endpoint holds only its own share; the
claim skips endpoints that are full or whose circuit is open, and ranks the oldest due
deliveries fairly across webhooks, so one endpoint's backlog cannot fill a claim.

When everything due is claimed the dispatcher waits for the next tick (every ``INTERVAL``:
the original's rhythm and the safety net), for room in a lane, or, with ``LOW_LATENCY``, for
the store's announcement of new work (an in-process wake-up, or PostgreSQL's ``NOTIFY``).

Liveness (``liveness.py``): the dispatcher registers as a worker and heartbeats; the deliveries
of a worker that died come back within ``WORKER_TIMEOUT`` + ``HEARTBEAT``. When the database
goes away it waits and tries again with backoff; nothing it has sent is forgotten, because the
recorder keeps what it could not write. Stopping (Ctrl-C, SIGTERM) lets in-flight attempts
finish and be recorded, and hands the claimed but unsent deliveries straight back.
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

from .. import logs, metrics
from ..config import Settings
from ..errors import DatabaseUnavailable
from ..keys import KeyCipher
from ..states import DeliveryStatus
from ..store.queue import Queue
from ..store.records import ClaimedDelivery, worker_lease_owner
from .attempt import Attempts, unsent_webhook_disabled, webhooks_to_disable
from .backlog import measure_periodically
from .circuit import Circuit
from .lanes import EndpointLanes
from .liveness import Liveness, OnWire
from .outcome import Decision
from .recorder import MAX_BACKOFF, PassStats, Recorder
from .retention import erase_expired_keys, purge_periodically
from .unsure_claims import UnsureClaims

log = logging.getLogger(__name__)
# the outcome label of ``hotspot_webhooks_deliveries_total``
SUCCEEDED, RETRYING, FAILED = "succeeded", "retrying", "failed"


class Dispatcher:
    def __init__(self, queue: Queue, settings: Settings, cipher: KeyCipher) -> None:
        self.queue = queue
        self.settings = settings
        self.owner = worker_lease_owner()
        on_wire = OnWire()
        self.attempts = Attempts(settings, cipher, on_wire=on_wire.sent)
        self.liveness = Liveness(queue, settings, self.attempts, self.owner, on_wire)
        self.fence = self.attempts.sender.fence = self.liveness.fence
        self.fence.on_new_run = self._hand_back_claimed_before
        self.fence.on_reopen = self._nudge
        self.stats = PassStats()
        self.counted = metrics.Outcomes()  # published with each batch the recorder writes
        self.recorder = Recorder(
            queue, self.owner, self.stats, counted=self.counted, fence=self.fence
        )
        self.lanes: EndpointLanes[ClaimedDelivery] = EndpointLanes(
            concurrency=settings.concurrency,
            per_endpoint=settings.per_host_concurrency,
            new_circuit=lambda: Circuit(
                threshold=settings.circuit_threshold,
                first_wait=settings.circuit_wait,
                max_wait=settings.circuit_max_wait,
            ),
            send=self._send,
            hold=self._hold,
            on_room=self._nudge,
            on_open=self._defer,
        )
        self.stopping = asyncio.Event()
        self._work = asyncio.Event()  # something to claim may be there: room, or new work
        # claimed but not yet decided: enough to keep every slot busy while the next claim
        # is made, few enough that little waits in memory
        self._max_claimed = settings.concurrency + settings.batch_size
        self._refill_below = self._max_claimed - min(settings.batch_size, self._max_claimed) // 2
        self.unfinished = 0
        self._background: list[asyncio.Task[None]] = []
        self._deferrals: set[asyncio.Task[None]] = set()
        self._registered = False
        self.unsure_claims = UnsureClaims(queue, self.owner, settings.db_timeout)

    def stop(self) -> None:
        """Ask the dispatcher to finish in-flight attempts and return."""
        self.stopping.set()
        self._work.set()

    def _nudge(self) -> None:
        self._work.set()

    async def close(self) -> None:
        await asyncio.gather(*self._deferrals, return_exceptions=True)
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.lanes.close()
        if self._registered:
            await self.liveness.deregister()
            self._registered = False
            metrics.DISPATCHERS.dec()
        await self.attempts.close()

    # ---- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver continuously until ``stop()``."""
        log.info(
            "dispatcher %s: claiming continuously, a pass every %g s%s",
            self.owner, self.settings.interval,
            ", low latency (woken by new events)" if self.settings.low_latency else "",
        )  # fmt: skip
        await self._start(continuous=True)
        backoff = 0.5
        next_tick = time.monotonic()
        report_at = time.monotonic() + self.settings.interval
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.settings.interval
                self._work.clear()
                started = time.perf_counter()
                try:
                    if self.unsure_claims:
                        await self.unsure_claims.give_back()
                    await self._claim_while_room(datetime.now(UTC))
                    backoff = 0.5
                    metrics.PASS_SECONDS.observe(time.perf_counter() - started)
                except DatabaseUnavailable as exc:
                    metrics.record_database_error("claim")
                    self.unsure_claims.note(self.queue.last_lease_end)
                    log.warning("claiming failed (%s); trying again in %.1f s", exc, backoff)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                except Exception:  # a bug must not end the dispatcher; the next tick retries
                    log.exception("claiming failed; trying again at the next pass")
                    await self._sleep(self.settings.interval)
                    continue
                if time.monotonic() >= report_at:
                    self._report()
                    report_at = time.monotonic() + self.settings.interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._work.wait(), max(0.0, next_tick - time.monotonic())
                    )
        finally:
            await self._finish()

    async def run_pass(self) -> PassStats:
        """Claim everything due now, deliver it and wait until each is decided and recorded:
        one pass, as ``worker --once`` runs it (and the tests)."""
        clock = time.monotonic()
        stats = self.stats = self.recorder.stats = PassStats()
        due_by = datetime.now(UTC)  # what the dead left is due at the next pass
        await self._start(continuous=False)
        await self.liveness.take_over_the_dead()
        while not self.stopping.is_set():
            self._work.clear()
            if await self._claim_while_room(due_by) and not self.lanes.any_full():
                break
            await self._work.wait()
        if self.stopping.is_set():
            self.lanes.hand_back_queued()
        await self.lanes.wait_idle()
        await self.recorder.drain()
        stats.seconds = time.monotonic() - clock
        metrics.PASS_SECONDS.observe(stats.seconds)
        return stats

    async def _start(self, *, continuous: bool) -> None:
        """Register, and start what runs beside the claims: the recorder, the heartbeat, the
        marks of requests on the wire and (``run``) the erasing of rotated keys past their grace,
        the periodic purge (``RETENTION``) and the
        wake-up (``LOW_LATENCY``)."""
        backoff = 0.5
        while not self._registered:
            try:
                await self.liveness.register()
                self._registered = True
                metrics.DISPATCHERS.inc()
            except DatabaseUnavailable as exc:
                metrics.record_database_error("register")
                if not continuous:
                    raise
                log.warning("registering failed (%s); trying again in %.1f s", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                if self.stopping.is_set():
                    return
        if not self._background:
            self._background = [
                asyncio.create_task(self.recorder.run()),
                asyncio.create_task(self.liveness.heartbeats(self.stopping)),
                asyncio.create_task(self.liveness.marks(self.stopping)),
            ]
        if continuous:
            erasing = erase_expired_keys(
                self.queue.retention, self.settings.heartbeat, self.stopping
            )
            self._background.append(asyncio.create_task(erasing))
        if continuous and metrics.exported():  # someone reads the backlog gauges
            measuring = measure_periodically(self.queue, self.settings.heartbeat, self.stopping)
            self._background.append(asyncio.create_task(measuring))
        if continuous and self.settings.retention is not None:
            purging = purge_periodically(
                self.queue.retention, self.settings.retention, self.stopping
            )
            self._background.append(asyncio.create_task(purging))
        if continuous and self.settings.low_latency:
            self.queue.db.new_work.listeners.append(self._nudge)
            listening = self.queue.db.listen_for_new_work(self._nudge, self.stopping)
            if listening is not None:
                self._background.append(asyncio.create_task(listening))

    async def _finish(self) -> None:
        """Stop gracefully: hand back what waits, let in-flight attempts finish, record."""
        self.stopping.set()
        if self._nudge in self.queue.db.new_work.listeners:
            self.queue.db.new_work.listeners.remove(self._nudge)
        self.lanes.hand_back_queued()
        await self.lanes.wait_idle()
        await self.recorder.drain()
        self._report()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _report(self) -> None:
        stats = self.stats
        if stats.attempted or stats.held:
            open_circuits = ", ".join(self.lanes.open_circuits())
            log.info(
                "%d sent (%d ok, %d to retry, %d failed), %d held by open circuits%s",
                stats.attempted, stats.succeeded, stats.retrying, stats.failed, stats.held,
                f" ({open_circuits})" if open_circuits else "",
            )  # fmt: skip
            self.stats = self.recorder.stats = PassStats()

    # ---- claiming ----------------------------------------------------------------------------

    async def _claim_while_room(self, due_by: datetime) -> bool:
        """Claim what is due by ``due_by`` while there is room; True once a claim came back
        short (everything due, of the endpoints that take more, is claimed)."""
        while not self.stopping.is_set():
            room = self._max_claimed - self.unfinished
            if self.unfinished > self._refill_below:
                return False  # a claim is worth its statement only with room for a batch
            limit = min(self.settings.batch_size, room)
            run = self.fence.run
            if not self.fence.holds(run):
                return False  # nothing may go out now: claim once a heartbeat confirms it
            now = datetime.now(UTC)
            batch = await self.queue.claim_due(
                owner=self.owner,
                due_by=due_by,
                lease_until=now + timedelta(seconds=self.settings.lease),
                limit=limit,
                per_webhook=2 * self.settings.per_host_concurrency,  # what a lane takes
                exclude_webhooks=self.lanes.blocked_webhooks(),
            )
            self.stats.claimed += len(batch)
            self.unfinished += len(batch)
            if self.fence.run != run:  # claimed before a gap: perhaps no longer ours
                for claimed in batch:
                    self._hold(claimed, None)
                return False
            for claimed in batch:
                self.lanes.put(_endpoint(claimed.callback_url), claimed.webhook_id, claimed)
            if len(batch) < limit:
                return True
        return True

    # ---- one delivery --------------------------------------------------------------------

    async def _send(self, claimed: ClaimedDelivery) -> bool:
        """Attempt one delivery and hand its outcome to the recorder; True if the endpoint
        could not be reached (its circuit counts that). Every line logged meanwhile names the
        webhook and the delivery (``logs.delivery``)."""
        context = logs.delivery.set((claimed.webhook_id, claimed.id))
        try:
            return self._count_and_record(claimed, await self._attempt(claimed))
        finally:
            logs.delivery.reset(context)

    async def _attempt(self, claimed: ClaimedDelivery) -> Decision | None:
        """The attempt's decision; None for a delivery whose webhook is disabled (it fails
        unsent)."""
        try:
            if not claimed.webhook_enabled:
                self.recorder.add(unsent_webhook_disabled(claimed))
                self.stats.failed += 1
                self.counted.add(claimed.event_type, FAILED, None)
                return None
            decision = await self.attempts.make(claimed, self.fence.run)
            self.liveness.on_wire.answered(claimed.id)
            if decision is None:  # refused at the fence: not sent, handed back (fence.py)
                self.recorder.release(claimed.id, datetime.now(UTC))
            return decision
        finally:
            self._decided()

    def _count_and_record(self, claimed: ClaimedDelivery, decision: Decision | None) -> bool:
        """Count the outcome (the pass's stats, the metrics) and hand it to the recorder."""
        if decision is None:
            return False
        outcome = decision.outcome
        status = outcome.status
        if status is DeliveryStatus.SUCCEEDED:
            self.stats.succeeded += 1
            label = SUCCEEDED
        elif status is DeliveryStatus.PENDING:
            self.stats.retrying += 1
            label = RETRYING
        else:
            self.stats.failed += 1
            label = FAILED
            if decision.disable_reason is None:
                log.info(
                    "delivery %s failed for good after %d attempts: %s",
                    claimed.id, outcome.attempt_count, outcome.last_error,
                    extra={"event_type": claimed.event_type},
                )  # fmt: skip
        attempt = outcome.attempt
        self.counted.add(
            claimed.event_type, label, attempt.duration_ms / 1000 if attempt is not None else None
        )
        self.recorder.add(outcome, webhooks_to_disable(claimed, decision))
        return decision.unreachable

    def _hold(self, claimed: ClaimedDelivery, until: float | None) -> None:
        """Hand a claimed delivery back unsent: due at once (stopping), or when its
        endpoint's circuit is due to be probed (a ``time.monotonic()`` moment)."""
        due = datetime.now(UTC)
        if until is not None:
            due += timedelta(seconds=max(0.0, until - time.monotonic()))
            self.stats.held += 1
            self.counted.held += 1
        self.recorder.release(claimed.id, due)
        self._decided()

    def _hand_back_claimed_before(self) -> None:
        """The fence began a new run (a gap in the heartbeats, or this worker was found
        declared dead): what waits unsent was claimed before it and may have been taken
        over, so it goes back (a no-op for the leases that were)."""
        self.lanes.hand_back_queued()

    def _defer(self, webhook_ids: set[str], until: float) -> None:
        """An endpoint's circuit opened: move its due deliveries out of the claims' way until
        the probe (one statement), so its backlog costs no claim anything meanwhile."""
        due = datetime.now(UTC) + timedelta(seconds=max(0.0, until - time.monotonic()))
        task = asyncio.create_task(self._write_deferral(webhook_ids, due))
        self._deferrals.add(task)
        task.add_done_callback(self._deferrals.discard)

    async def _write_deferral(self, webhook_ids: set[str], due: datetime) -> None:
        try:
            moved = await self.queue.defer_due(webhook_ids, due)
        except DatabaseUnavailable as exc:  # only a cost: claims skip them anyway
            metrics.record_database_error("defer")
            log.warning("could not move the deliveries of an open circuit aside (%s)", exc)
            return
        if moved:
            log.info("%d due deliveries wait for the probe at %s", moved, f"{due:%H:%M:%S}")

    def _decided(self) -> None:
        self.unfinished -= 1
        if self.unfinished == self._refill_below:
            self._work.set()  # room for a batch again: wakes the claiming loop once


@asynccontextmanager
async def open_dispatcher(
    queue: Queue, settings: Settings, cipher: KeyCipher
) -> AsyncIterator[Dispatcher]:
    """A dispatcher for this process, closed (its HTTP client too) when the block ends."""
    dispatcher = Dispatcher(queue, settings, cipher)
    tune_process_for_throughput()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()


@asynccontextmanager
async def running_dispatcher(
    queue: Queue, settings: Settings, cipher: KeyCipher
) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in the background for as long as the block lasts; leaving the
    block stops it the graceful way (in-flight attempts finish and are recorded, the rest is
    handed back)."""
    async with open_dispatcher(queue, settings, cipher) as dispatcher:
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


def _endpoint(url: str) -> str:
    """The endpoint a delivery's lane and circuit belong to: its callback's host and port."""
    return urlsplit(url).netloc.lower()
