"""Claims whose outcome is unknown: given back once the database answers again.

A claim is one transaction that leases a batch to this worker under a lease end no other
claim of the process shares (``Queue.claim_due``). When the link to the database fails while
its ``COMMIT`` is on the way, the claim raises, but the commit may still land: the rows are then
leased to a worker that is alive, heartbeating and holding none of them in memory, and no one
would send them until it stopped (``take_expired_leases`` spares registered workers).

So the dispatcher notes each failed claim's lease end here, and gives back whatever is leased
under it (unsent, due at once) at every chance, at most once a second, until the claim is
surely settled: a ``COMMIT`` lost in the network can reach the server only while the client's
socket lives (``TCP_USER_TIMEOUT`` = ``DB_TIMEOUT``), and the server ends a session idle in its
transaction after six ``DB_TIMEOUT`` (``store/database.py``), rolling it back. A claim older
than that and given back once more since is forgotten.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from ..errors import DatabaseUnavailable
from ..store.queue import Queue

log = logging.getLogger(__name__)
EVERY = 1.0  # seconds between two tries to give back


class UnsureClaims:
    def __init__(self, queue: Queue, owner: str, db_timeout: float) -> None:
        self.queue = queue
        self.owner = owner
        self.settled_after = 6 * db_timeout + 2 * EVERY
        self._failed: dict[datetime, float] = {}  # lease end -> time.monotonic() it failed at
        self._next_try = 0.0

    def note(self, lease_end: datetime | None) -> None:
        """The claim made under ``lease_end`` failed: its outcome is unknown."""
        if lease_end is not None:
            self._failed.setdefault(lease_end, time.monotonic())

    def __bool__(self) -> bool:
        return bool(self._failed)

    async def give_back(self) -> None:
        """Give back what the failed claims leased, if a second has passed since the last try;
        forget the claims settled before this try began."""
        began = time.monotonic()
        if not self._failed or began < self._next_try:
            return
        self._next_try = began + EVERY
        try:
            released = await self.queue.release_claims(self.owner, list(self._failed))
        except DatabaseUnavailable:
            return  # the database is still away: at the next chance
        if released:
            log.warning(
                "%d deliveries leased by a claim whose outcome was unknown (the database "
                "stopped answering as it committed) were given back to the queue",
                released,
            )
        self._failed = {
            end: failed for end, failed in self._failed.items()
            if began - failed < self.settled_after
        }  # fmt: skip
