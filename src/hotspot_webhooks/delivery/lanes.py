"""Concurrency per endpoint: one lane per receiver host, a bounded share each, a circuit each.

Each endpoint's deliveries queue in its lane, drained by at most ``per_endpoint`` workers; a
new lane starts with a few and gains one per answer (a slow start), so an endpoint that never
answers ties up a few requests, not its whole share, before its circuit opens.
Every request also takes one of ``concurrency`` global slots, which bound the requests that are
moving: a request still unanswered after one to two ``LINGER`` periods gives its slot back and
counts against its endpoint's share alone (a ticker hands back, every ``LINGER``, the slots
taken before its previous turn: no timer per request). A slow or hanging endpoint therefore
holds its own share and no more, however many endpoints hang at once.

The claim skips endpoints whose lane is full (as many queued as it may send at once, so its
workers never run dry while the next claim is made): their backlog waits in the database, not
in memory. Behind an open circuit (``circuit.py``) a lane sends nothing: what it holds is
handed back to wait until the probe, and one request probes. Workers are long-lived coroutines
per lane, not one task per delivery, which keeps the scheduling cost per delivery to a deque
pop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .. import metrics
from .circuit import Circuit, CircuitState

CLOSED = CircuitState.CLOSED

Item = TypeVar("Item")
LINGER = 0.25  # seconds after which an unanswered request stops taking a global slot
# a new lane sends this many at once, and one more for each answer, up to its share: an
# endpoint that never answers holds a few requests (and global slots), not a whole share
SLOW_START = 8  # above the default circuit threshold: the first timeouts open the circuit
LOGGED_WEBHOOKS = 50
log = logging.getLogger(__name__)


class _GlobalSlot:
    """One request's global slot, given back once: when it lingers, or when it is done."""

    __slots__ = ("_held", "_semaphore")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


class Lane(Generic[Item]):
    __slots__ = ("allowed", "circuit", "key", "queue", "sending", "webhooks", "workers")

    def __init__(self, key: str, circuit: Circuit, allowed: int) -> None:
        self.key = key
        self.queue: deque[Item] = deque()
        self.sending = 0
        self.workers = 0
        self.allowed = allowed  # workers now: grows from SLOW_START to the share with answers
        self.webhooks: set[str] = set()  # seen in this lane: what the claim must skip
        self.circuit = circuit

    @property
    def busy(self) -> int:
        return len(self.queue) + self.sending

    @property
    def full(self) -> bool:
        """As many queued as it may send at once: claims skip it until it is down to that
        (then it says it has room, so claims stay batches and its workers never run dry)."""
        return self.busy >= 2 * self.allowed


def _endpoint_fields(lane: Lane[Any]) -> dict[str, object]:
    """A circuit line's fields: the endpoint, and the webhooks seen sending to it (the first
    ``LOGGED_WEBHOOKS`` of them: a shared receiver may serve thousands)."""
    return {
        "endpoint": lane.key,
        "webhook_ids": sorted(lane.webhooks)[:LOGGED_WEBHOOKS],
        "webhooks": len(lane.webhooks),
    }


class EndpointLanes(Generic[Item]):
    """``send`` makes one attempt and says whether the endpoint was unreachable; ``hold``
    hands an item back, to wait until the given ``time.monotonic()`` moment."""

    def __init__(
        self,
        *,
        concurrency: int,
        per_endpoint: int,
        new_circuit: Callable[[], Circuit],
        send: Callable[[Item], Awaitable[bool]],
        hold: Callable[[Item, float | None], None],
        on_room: Callable[[], None],
        on_open: Callable[[set[str], float], None],
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._per_endpoint = per_endpoint
        self._new_circuit = new_circuit
        self._send = send
        self._hold = hold
        self._on_room = on_room
        self._on_open = on_open
        self._fresh_slots: list[_GlobalSlot] = []  # taken since the ticker's last turn
        self._aging_slots: list[_GlobalSlot] = []  # taken before it: given back next turn
        self._ticker: asyncio.Task[None] | None = None
        self._lanes: dict[str, Lane[Item]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, key: str, webhook_id: str, item: Item) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            allowed = min(SLOW_START, self._per_endpoint)
            lane = self._lanes[key] = Lane(key, self._new_circuit(), allowed)
        lane.webhooks.add(webhook_id)
        lane.queue.append(item)
        self.idle.clear()
        self._staff(lane)

    def blocked_webhooks(self) -> set[str]:
        """Webhooks whose endpoint takes no more now: its share is full, or its circuit is
        open (until the probe is due) or probing."""
        now = time.monotonic()
        blocked: set[str] = set()
        for lane in self._lanes.values():
            circuit = lane.circuit
            if (
                lane.full
                or circuit.state is CircuitState.PROBING
                or (circuit.state is CircuitState.OPEN and now < circuit.retry_at)
            ):
                blocked |= lane.webhooks
        return blocked

    def any_full(self) -> bool:
        """Does some endpoint hold its whole share (so its due deliveries wait unclaimed)?"""
        return any(lane.full for lane in self._lanes.values())

    def open_circuits(self) -> list[str]:
        return [key for key, lane in self._lanes.items() if lane.circuit.state is not CLOSED]

    def hand_back_queued(self) -> None:
        """Hand back everything not yet sent, due at once (the dispatcher is stopping)."""
        for lane in self._lanes.values():
            while lane.queue:
                self._hold(lane.queue.popleft(), None)

    def _staff(self, lane: Lane[Item]) -> None:
        """Start workers for what the lane holds: up to what it is allowed while the circuit
        is closed, one otherwise (it probes, or hands the queue back)."""
        allowed = lane.allowed if lane.circuit.state is CircuitState.CLOSED else 1
        while lane.workers < min(allowed, len(lane.queue) + lane.workers):
            lane.workers += 1
            task = asyncio.create_task(self._drain(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, lane: Lane[Item]) -> None:
        circuit = lane.circuit
        try:
            while lane.queue:
                if not circuit.may_send(time.monotonic()):
                    if circuit.state is CircuitState.OPEN:
                        while lane.queue:  # nothing goes out before the probe: hand it back
                            self._hold(lane.queue.popleft(), circuit.retry_at)
                    return  # probing: the probe's worker goes on once it knows
                item = lane.queue.popleft()
                lane.sending += 1
                await self._slots.acquire()
                slot = _GlobalSlot(self._slots)
                self._fresh_slots.append(slot)
                if self._ticker is None:
                    self._ticker = asyncio.create_task(self._hand_back_lingering())
                try:
                    unreachable = await self._send(item)
                finally:
                    slot.give_back()
                    lane.sending -= 1
                    if lane.busy == lane.allowed:  # room for a batch again
                        self._on_room()
                was_closed = circuit.state is CLOSED
                changed = circuit.record(unreachable=unreachable, now=time.monotonic())
                if not unreachable and lane.allowed < self._per_endpoint:
                    lane.allowed += 1  # it answers: one more at once, up to the share
                    if lane.busy == lane.allowed:
                        # the share grew onto what it holds: room too. Without this, a lane
                        # that held an even number more than its share stepped over the
                        # line (busy down one, share up one) and never said it had room:
                        # `worker --once` waited for it forever
                        self._on_room()
                    self._staff(lane)
                if changed is CircuitState.OPEN:
                    wait = circuit.retry_at - time.monotonic()
                    asyncio.get_running_loop().call_later(wait, self._on_room)
                    self._on_open(set(lane.webhooks), circuit.retry_at)
                    if was_closed:
                        metrics.CIRCUITS_OPENED.inc()
                        metrics.OPEN_CIRCUITS.inc()
                    log.warning(
                        "circuit open for %s after %d unreachable in a row: its deliveries "
                        "wait unsent; one probe in %.0f s",
                        lane.key, circuit.failures, circuit.retry_at - time.monotonic(),
                        extra=_endpoint_fields(lane),
                    )  # fmt: skip
                elif changed is CircuitState.CLOSED:
                    metrics.OPEN_CIRCUITS.dec()
                    log.info(
                        "circuit closed for %s: it answered again", lane.key,
                        extra=_endpoint_fields(lane),
                    )  # fmt: skip
                    self._staff(lane)
        finally:
            lane.workers -= 1
            if not lane.workers and not lane.queue and not lane.sending:
                if lane.circuit.state is CLOSED and not lane.circuit.failures:
                    del self._lanes[lane.key]  # an empty lane of a healthy endpoint is forgotten
                if not any(lane.busy for lane in self._lanes.values()):
                    self.idle.set()

    async def _hand_back_lingering(self) -> None:
        """Every ``LINGER``: the slots of requests started before the previous turn and still
        unanswered go back to the pool; stops once no slot was taken for two turns."""
        try:
            while self._fresh_slots or self._aging_slots:
                await asyncio.sleep(LINGER)
                for slot in self._aging_slots:
                    slot.give_back()
                self._aging_slots, self._fresh_slots = self._fresh_slots, []
        finally:
            self._ticker = None

    async def close(self) -> None:
        # this dispatcher's circuits go with it
        metrics.OPEN_CIRCUITS.dec(len(self.open_circuits()))
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or being sent."""
        await self.idle.wait()
