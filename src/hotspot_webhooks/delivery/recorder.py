"""Writing a pass's outcomes in batches: each write takes all that piled up since the last.

While one batch is being written the next piles up, so recording costs a few statements per
batch, never one per attempt. A write that fails (the database is away) is kept and written
again: these attempts happened and must not be lost from the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import DatabaseUnavailable
from ..store.records import Outcome
from ..store.store import Store

log = logging.getLogger(__name__)


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
class Recorder:
    """Buffers one lease owner's outcomes and hand-backs and writes them in batches."""

    store: Store
    owner: str
    stats: PassStats
    outcomes: list[Outcome] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    disable: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    def add(self, outcome: Outcome, disable: dict[str, str] | None = None) -> None:
        self.outcomes.append(outcome)
        if disable:
            self.disable.update(disable)
        self.wake.set()

    def release(self, delivery_id: str) -> None:
        """Hand a claimed delivery back to the queue unsent."""
        self.released.append(delivery_id)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.flush()
            except DatabaseUnavailable as exc:
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
        """Write what is left, then let ``run`` return."""
        self.closing = True
        self.wake.set()
