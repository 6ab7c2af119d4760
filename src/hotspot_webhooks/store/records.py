"""The typed records the store reads and writes for the delivery engine, and who holds a lease.

Plain data, no I/O and no SQL: the pure state machine (``delivery/outcome.py``) builds these,
the store writes them. Every field is named; where rows become records by position, the
statement's columns were checked against the fields' names once (``statements.py``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ..errors import NotFound
from ..ids import new_id
from ..states import DeliveryStatus


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store: validated, its payload serialized once for every attempt."""

    id: str
    type: str
    location_id: str
    body: bytes
    created_at: datetime


Pair = tuple[str, str]  # (location id or "*", event type or "*"): one of a subscription's


class SubscribedWebhook(NamedTuple):
    """A webhook's row and its subscription, as (location, type) pairs."""

    row: Any
    pairs: list[Pair]

    @property
    def location_ids(self) -> list[str]:
        return sorted({location for location, _ in self.pairs})

    @property
    def event_types(self) -> list[str]:
        return sorted({event_type for _, event_type in self.pairs})


@dataclass(frozen=True, slots=True)
class Backlog:
    """The due backlog, measured for the metrics."""

    due: int
    oldest_due_age: float  # seconds past its due time; 0 when nothing is due
    disabled_webhooks: int


class ClaimedDelivery(NamedTuple):
    """A leased delivery with everything needed to send it.

    Its fields are also the columns a claim selects, in order: a claimed row becomes one with
    a single C-level copy, a few hundred per claim."""

    id: str
    event_id: str
    event_type: str
    location_id: str
    webhook_id: str
    attempt_number: int  # of the attempt about to be made, 1-based
    body: bytes
    callback_url: str
    api_key_encrypted: str
    previous_api_key_encrypted: str | None  # a rotated key still in its grace period
    webhook_enabled: bool
    # SPEC §9, null for a webhook that uses neither: the body's template (JSON), and the
    # custom headers and auth, sealed (``integrations/auth.py``)
    template_json: str | None
    secrets_sealed: str | None
    success_statuses: str | None  # this webhook's, when not SUCCESS_STATUSES
    # for a template only (null otherwise): when the event was stored (a datetime, or on
    # SQLite its stored text) and its location's name
    event_created_at: Any
    location_name: str | None


class AttemptRecord(NamedTuple):
    """One attempt as the audit trail keeps it (SPEC §4): written once, never changed.

    Its fields are also the parameters of the statement that stores it."""

    delivery_id: str
    number: int
    started_at: datetime
    duration_ms: int
    request_headers: dict[str, str]
    status: int | None
    response_excerpt: str | None
    error: str | None
    late: bool = False  # recorded after its lease was taken over: it changed no delivery


@dataclass(slots=True)
class Outcome:
    """What one claimed delivery became: its new state, and the attempt made (if one was)."""

    delivery_id: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempt: AttemptRecord | None


# ---- leases ---------------------------------------------------------------------------------
# A claimed delivery is leased: ``lease_owner`` names who holds it and ``next_attempt_at`` is
# moved to the lease's end. Owners are spelled here and nowhere else.

LOST = "lost:"  # marks a lease taken over from a worker that did not record its attempt
TEST_SEND = "test:"


def worker_lease_owner() -> str:
    """A dispatcher's name on its leases: host, process and a random tail, so two
    dispatchers never share one, even in one process."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{new_id('w')[-6:]}"


def test_send_lease_owner() -> str:
    """The owner of a test send's delivery: leased from birth, so no dispatcher sends it."""
    return TEST_SEND + new_id("t")[-12:]


@dataclass(frozen=True, slots=True)
class ExpiredLease:
    """A delivery whose holder stopped (died, or let its lease run out) while an attempt of it
    may have been on the wire, before the holder recorded a result."""

    delivery_id: str
    mark: str  # ``lost:<owner>``: the lease owner to record the lost attempt under
    attempt_count: int
    started_at: datetime  # when the attempt went on the wire, as far as is known

    @property
    def owner(self) -> str:
        """The worker that held the lease."""
        return self.mark.removeprefix(LOST)


@dataclass(frozen=True, slots=True)
class DeadWorkerTakeover:
    """What handing a dead worker's deliveries back did: how many went back untouched (merely
    claimed), and the ones that were on the wire, now to be recorded as unknown outcomes."""

    worker: str
    released: int
    on_wire: list[ExpiredLease]


@dataclass(slots=True)
class Purged:
    """What a purge deleted, and its longest transaction (how long it held the writer)."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    transactions: int = 0
    longest_transaction: float = 0.0  # seconds

    def add(self, other: Purged) -> None:
        self.deliveries += other.deliveries
        self.attempts += other.attempts
        self.events += other.events
        self.transactions += other.transactions
        self.longest_transaction = max(self.longest_transaction, other.longest_transaction)


# ---- emitting -------------------------------------------------------------------------------


class EmitRules(Protocol):
    """Who may emit what: decided by the service (its ``Caller``), applied by the store inside
    the emit's transaction, where the owners it asks about are read."""

    def may_emit_at(self, location_owner: str | None) -> bool:
        """May emit at a location owned by ``location_owner`` (None: it does not exist)."""
        ...

    def may_reuse_event_id(self, event_owner: str) -> bool:
        """May emit under an id already used by an event at ``event_owner``'s location (and so
        hear the original result), rather than be told the id is taken."""
        ...


class UnknownLocation(NotFound):
    """An emitted event names a location that does not exist (for this caller)."""

    def __init__(self, location_id: str, index: int) -> None:
        super().__init__(f"location {location_id!r} does not exist; create it first")
        self.location_id = location_id
        self.index = index  # of the event within the emit


class EventIdTaken(Exception):
    """An emitted event's id is used by an event the caller may not see."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id


class EmitCounts(NamedTuple):
    """What storing an emit did: each event's delivery count, and which ids existed already
    (those were left exactly as they were and report their original count)."""

    deliveries: dict[str, int]
    existing: frozenset[str]
