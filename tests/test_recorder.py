"""The recorder's batching on its own: a stand-in store that notes each write (the real
writes are in test_store.py, the dispatcher's in test_delivery.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import cast

import pytest

from hotspot_webhooks.delivery import recorder as recording
from hotspot_webhooks.delivery.recorder import RECORD_BATCH, PassStats, Recorder
from hotspot_webhooks.states import DeliveryStatus
from hotspot_webhooks.store.queue import Queue
from hotspot_webhooks.store.records import Outcome


class Writes:
    """Stands in for ``Queue.record``: notes the size of each batch."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def record(self, owner: str, outcomes: Sequence[Outcome], **_: object) -> int:
        self.batches.append(len(outcomes))
        await asyncio.sleep(0)
        return len(outcomes)


def outcome(number: int) -> Outcome:
    return Outcome(
        delivery_id=f"dlv_{number}",
        status=DeliveryStatus.SUCCEEDED,
        attempt_count=1,
        next_attempt_at=None,
        last_status=200,
        last_error=None,
        delivered_at=datetime.now(UTC),
        attempt=None,
    )


@asynccontextmanager
async def running() -> AsyncIterator[tuple[Recorder, Writes]]:
    """A recorder writing to a ``Writes``, running until the block ends."""
    writes = Writes()
    recorder = Recorder(cast(Queue, writes), "owner", PassStats())
    task = asyncio.create_task(recorder.run())
    try:
        yield recorder, writes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_outcomes_that_come_one_by_one_share_a_write() -> None:
    async with running() as (recorder, writes):
        for number in range(40):  # answers trickling in, each in its own turn of the loop
            recorder.add(outcome(number))
            await asyncio.sleep(0)
        await asyncio.sleep(recording.RECORD_LINGER * 4)
        assert sum(writes.batches) == 40
        assert len(writes.batches) <= 2, writes.batches  # without waiting: a write per turn


async def test_a_full_batch_is_written_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "RECORD_LINGER", 30.0)
    async with running() as (recorder, writes):
        recorder.add(outcome(0))
        await asyncio.sleep(0.05)
        assert writes.batches == []  # one alone waits for company
        for number in range(1, RECORD_BATCH):
            recorder.add(outcome(number))
        for _ in range(100):
            if writes.batches:
                break
            await asyncio.sleep(0.01)
        assert writes.batches == [RECORD_BATCH]


async def test_drain_writes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "RECORD_LINGER", 30.0)
    async with running() as (recorder, writes):
        recorder.add(outcome(0))
        recorder.add(outcome(1))
        await asyncio.wait_for(recorder.drain(), 2)
        assert writes.batches == [2]
        assert not recorder.pending
