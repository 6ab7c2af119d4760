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
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import DatabaseUnavailable
from ..ids import new_id
from ..keys import KeyCipher
from ..signing import DeliveryRequest, Signer, delivery_headers
from ..store import ClaimedDelivery, Outcome, Store
from .lanes import HostLanes
from .outcome import Decision, decide
from .retry import RetryPolicy
from .sender import AttemptResult, Sender

log = logging.getLogger(__name__)
KEY_CACHE_LIMIT = 10_000


@dataclass
class PassStats:
    claimed: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    lost_leases: int = 0
    seconds: float = 0.0

    @property
    def attempted(self) -> int:
        return self.succeeded + self.retrying + self.failed


@dataclass
class _Recorder:
    """Buffers outcomes and writes them in batches: each write takes all that piled up."""

    store: Store
    owner: str
    stats: PassStats
    outcomes: list[Outcome] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    disable: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    def add(self, outcome: Outcome, disable: tuple[str, str] | None = None) -> None:
        self.outcomes.append(outcome)
        if disable:
            self.disable[disable[0]] = disable[1]
        self.wake.set()

    def release(self, delivery_id: str) -> None:
        self.released.append(delivery_id)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.flush()
            except DatabaseUnavailable as exc:
                # keep the batch and write it again: these attempts happened and must be kept
                log.warning("recording attempts failed (%s); retrying in 1 s", exc)
                await asyncio.sleep(1)
                self.wake.set()
                continue
            if self.closing and not (self.outcomes or self.released):
                return

    async def flush(self) -> None:
        if not (self.outcomes or self.released or self.disable):
            return
        outcomes, self.outcomes = self.outcomes, []
        released, self.released = self.released, []
        disable, self.disable = self.disable, {}
        try:
            kept = await self.store.record(
                self.owner,
                outcomes,
                released=released,
                release_at=datetime.now(UTC),
                disable_webhooks=disable,
            )
        except BaseException:
            self.outcomes[:0] = outcomes
            self.released[:0] = released
            self.disable = {**disable, **self.disable}
            raise
        if kept is not None:
            self.stats.lost_leases += len(outcomes) - kept
        self.stats.released += len(released)

    async def close(self) -> None:
        self.closing = True
        self.wake.set()


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, cipher: KeyCipher) -> None:
        self.store = store
        self.settings = settings
        self.cipher = cipher
        self.policy = retry_policy(settings)
        self.sender = sender_for(settings)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{new_id('w')[-6:]}"
        self.stopping = asyncio.Event()
        self._signers: dict[str, Signer] = {}
        # claimed but not yet recorded: enough to keep every slot busy while the next batch
        # is claimed, few enough that nothing waits long on its lease
        self._max_claimed = settings.concurrency + settings.batch_size

    def stop(self) -> None:
        """Ask the dispatcher to finish in-flight attempts and return."""
        self.stopping.set()

    async def close(self) -> None:
        await self.sender.close()

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
            result = AttemptResult(
                started_at=lease.lease_end - timedelta(seconds=self.settings.lease),
                duration_ms=0,
                status=None,
                response_excerpt=None,
                error=f"outcome unknown: worker {lease.owner} stopped before recording this "
                "attempt (the request may or may not have been sent)",
            )
            decision = decide(
                delivery_id=lease.delivery_id,
                attempt_number=lease.attempt_count + 1,
                result=result,
                request_headers={},
                policy=self.policy,
                is_success=self.settings.is_success,
                now=datetime.now(UTC),
            )
            by_mark.setdefault(lease.mark, []).append(decision.outcome)
        for mark, outcomes in by_mark.items():
            log.warning("%d deliveries left unrecorded by %s: recorded as unknown outcomes",
                        len(outcomes), mark)  # fmt: skip
            await self.store.record(mark, outcomes)

    def _signer(self, encrypted: str) -> Signer:
        """The signer of an encrypted API key, decrypted and keyed once per process."""
        signer = self._signers.get(encrypted)
        if signer is None:
            if len(self._signers) >= KEY_CACHE_LIMIT:
                self._signers.clear()
            signer = self._signers[encrypted] = Signer(self.cipher.decrypt(encrypted))
        return signer


class _Pass:
    """One pass's deliveries in flight: lanes to send them, a recorder to write outcomes."""

    def __init__(self, dispatcher: Dispatcher, refill_below: int) -> None:
        self.dispatcher = dispatcher
        self.refill_below = refill_below
        self.settings = dispatcher.settings
        self.stats = PassStats()
        self.recorder = _Recorder(dispatcher.store, dispatcher.owner, self.stats)
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
        dispatcher = self.dispatcher
        headers: dict[str, str] = {}
        try:
            if not claimed.webhook_enabled:
                self.recorder.add(_webhook_disabled(claimed))
                self.stats.failed += 1
                return
            # never send on a lease that may run out mid-request: another worker may be
            # about to claim the delivery
            if (
                dispatcher.stopping.is_set()
                or time.monotonic() + self.settings.timeout > lease_deadline
            ):
                self.recorder.release(claimed.id)
                return
            headers = signed_headers(claimed, dispatcher._signer(claimed.api_key_encrypted))
            result = await dispatcher.sender.send(claimed.callback_url, claimed.body, headers)
        except Exception as exc:
            result = _internal_error(claimed, exc)
        finally:
            self.unfinished -= 1
            if self.unfinished <= self.refill_below:
                self.progress.set()  # wakes the claiming loop once, not once per delivery
        self.decide(claimed, headers, result)

    def decide(
        self, claimed: ClaimedDelivery, headers: dict[str, str], result: AttemptResult
    ) -> None:
        decision = _decide(claimed, headers, result, self.dispatcher.policy, self.settings)
        status = decision.outcome.status
        if status == "succeeded":
            self.stats.succeeded += 1
        elif status == "pending":
            self.stats.retrying += 1
        else:
            self.stats.failed += 1
        disable = (claimed.webhook_id, decision.disable_reason) if decision.disable_reason else None
        self.recorder.add(decision.outcome, disable)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        kind=settings.retry_policy,
        interval=settings.interval,
        max_retries=settings.max_retries,
        max_delay=settings.max_retry_delay,
    )


def sender_for(settings: Settings) -> Sender:
    return Sender(
        timeout=settings.timeout,
        allow_private=settings.allow_private_targets,
        excerpt_bytes=settings.response_excerpt_bytes,
    )


def signed_headers(claimed: ClaimedDelivery, signer: Signer) -> dict[str, str]:
    """The headers of this attempt of ``claimed``, signed now."""
    return delivery_headers(
        DeliveryRequest(
            claimed.event_id,
            claimed.event_type,
            claimed.location_id,
            claimed.id,
            claimed.attempt_number,
        ),
        claimed.body,
        [signer],
        int(time.time()),
    )


async def deliver_now(
    claimed: ClaimedDelivery, signer: Signer, sender: Sender, settings: Settings
) -> Decision:
    """Attempt one delivery at once (``webhooks test``) and decide what it became."""
    headers: dict[str, str] = {}
    try:
        headers = signed_headers(claimed, signer)
        result = await sender.send(claimed.callback_url, claimed.body, headers)
    except Exception as exc:
        result = _internal_error(claimed, exc)
    return _decide(claimed, headers, result, retry_policy(settings), settings)


def _decide(
    claimed: ClaimedDelivery,
    headers: dict[str, str],
    result: AttemptResult,
    policy: RetryPolicy,
    settings: Settings,
) -> Decision:
    return decide(
        delivery_id=claimed.id,
        attempt_number=claimed.attempt_number,
        result=result,
        request_headers=headers,
        policy=policy,
        is_success=settings.is_success,
        now=datetime.now(UTC),
    )


def _internal_error(claimed: ClaimedDelivery, exc: Exception) -> AttemptResult:
    """A bug while sending, counted as a failed attempt: a delivery that keeps failing this
    way still ends after its retries instead of looping unrecorded."""
    log.exception("delivery %s: internal error", claimed.id)
    return AttemptResult(
        started_at=datetime.now(UTC),
        duration_ms=0,
        status=None,
        response_excerpt=None,
        error=f"internal error: {type(exc).__name__}: {exc}",
    )


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


def _webhook_disabled(claimed: ClaimedDelivery) -> Outcome:
    """A delivery whose webhook was disabled fails unsent; `recover` can re-queue it."""
    return Outcome(
        delivery_id=claimed.id,
        status="failed",
        attempt_count=claimed.attempt_number - 1,
        next_attempt_at=None,
        last_status=None,
        last_error="webhook is disabled; not sent",
        delivered_at=None,
        attempt=None,
    )
