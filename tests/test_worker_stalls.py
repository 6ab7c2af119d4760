"""A worker that stalls (SIGSTOP, a blocked loop) is not a slow receiver (issue 25, F3):
the stall is the worker's own, so no attempt times out for it, no retry is burned and no
circuit opens. A real worker process, a real receiver."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.delivery.sender import Sender
from hotspot_webhooks.service import Service
from tests.receivers import MisbehavingReceiver, PythonReceiver
from tests.test_worker_process import db_rows, eventually, start_worker

EVENT = "transaction.paid.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample


async def test_a_worker_paused_past_the_timeout_records_the_answers_it_was_sent(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = 2.0  # answers 200 in 2 s, within the 3 s timeout
    await service.webhooks.create(location, EVENT, python_receiver.url)
    for _ in range(10):
        await service.events.emit(EVENT, location, SAMPLE)

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


class _SlowOK(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.3)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def threaded_receiver() -> Iterator[str]:
    """A receiver on a thread of its own: it answers while the test's loop is blocked."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowOK)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


async def test_a_blocked_loop_is_not_counted_against_the_timeout(threaded_receiver: str) -> None:
    sender = Sender(timeout=1.0, allow_private=True)
    hanging = await MisbehavingReceiver("hang").start()
    try:
        sending = asyncio.ensure_future(sender.send(threaded_receiver, b"{}", {}))
        await asyncio.sleep(0.1)  # the request is out; the answer comes 0.3 s later
        time.sleep(2.5)  # noqa: ASYNC251 - the worker's loop blocked past the 1 s timeout
        result = await sending
        unanswered = await sender.send(hanging.url, b"{}", {})  # a real timeout still holds
    finally:
        await sender.close()
        await hanging.stop()
    assert (result.status, result.error) == (200, None)
    assert unanswered.error == "timed out after 1 s" and unanswered.unreachable


async def _received(receiver: PythonReceiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def _none_pending(service: Service) -> bool:
    return not (await service.deliveries.get_all(status="pending")).data
