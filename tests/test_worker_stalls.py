"""A worker that stalls (SIGSTOP, a blocked loop) is not a slow receiver (issue 25, F3):
the stall is the worker's own, so no attempt times out for it, no retry is burned and no
circuit opens. A real worker process, a real receiver."""

from __future__ import annotations

import asyncio
import signal

from hotspot_webhooks import catalog
from hotspot_webhooks.service import Service
from tests.receivers import PythonReceiver
from tests.test_worker_process import db_rows, eventually, start_worker

EVENT = "transaction.paid.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample


async def test_a_worker_paused_past_the_timeout_records_the_answers_it_was_sent(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 2.0  # answers 200 in 2 s, within the 3 s timeout
    await service.create_webhook(location, EVENT, python_receiver.url)
    for _ in range(10):
        await service.emit(EVENT, location, SAMPLE)

    worker = await start_worker(
        service, interval="0.2", timeout="3", circuit_threshold="3", circuit_wait="60"
    )
    try:
        await eventually(lambda: _received(python_receiver, 10), within=30)
        worker.send_signal(signal.SIGSTOP)  # every request is on the wire, unanswered
        await asyncio.sleep(8)  # the answers come meanwhile; the worker reads none of them
        worker.send_signal(signal.SIGCONT)
        await eventually(lambda: _none_pending(service), within=60)
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.terminate()
        _, stderr = await asyncio.wait_for(worker.communicate(), 30)

    attempts = db_rows(service, "SELECT delivery_id, number, status, error FROM attempts")
    timed_out = [row for row in attempts if "timed out" in str(row[3])]
    assert timed_out == []  # the receiver answered in 2 s: nobody timed out
    assert sorted((number, status) for _, number, status, _ in attempts) == [(1, 200)] * 10
    counts = db_rows(service, "SELECT status, attempt_count FROM deliveries")
    assert counts == [("succeeded", 1)] * 10  # no retry burned
    assert len(python_receiver.requests) == 10  # nothing sent again
    assert b"circuit open" not in stderr, stderr.decode()


async def _received(receiver: PythonReceiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def _none_pending(service: Service) -> bool:
    return not (await service.list_deliveries(status="pending")).data
