"""The lease fence (delivery/fence.py): what a worker may still put on the wire."""

from __future__ import annotations

import time

from hotspot_webhooks.delivery.fence import LeaseFence
from hotspot_webhooks.delivery.sender import Sender
from tests.receivers import RawSocketReceiver


def test_a_delivery_goes_out_while_heartbeats_keep_coming_within_the_window() -> None:
    fence = LeaseFence(window=25)
    fence.confirm(time.monotonic())
    run = fence.run
    fence.confirm(time.monotonic())  # the next heartbeat, in time
    assert fence.run == run and fence.holds(run)


def test_nothing_goes_out_once_the_last_heartbeat_is_older_than_the_window() -> None:
    fence = LeaseFence(window=25)
    fence.confirm(time.monotonic() - 30)  # began 30 s ago: others may judge this worker dead
    assert not fence.holds(fence.run)


def test_a_gap_in_heartbeats_hands_back_what_was_claimed_before_it() -> None:
    fence = LeaseFence(window=25)
    handed_back: list[int] = []
    reopened: list[int] = []
    fence.on_new_run = lambda: handed_back.append(fence.run)
    fence.on_reopen = lambda: reopened.append(fence.run)
    fence.confirm(time.monotonic() - 40)
    before = fence.run
    fence.confirm(time.monotonic())  # the first heartbeat after a 40 s stop
    assert fence.run == before + 1 and handed_back[-1] == fence.run
    assert not fence.holds(before) and fence.holds(fence.run)
    assert reopened[-1] == fence.run  # and it may claim again


def test_being_found_declared_dead_voids_every_lease_held() -> None:
    fence = LeaseFence(window=25)
    fence.confirm(time.monotonic())
    before = fence.run
    fence.lost()
    assert not fence.holds(before)
    fence.confirm(time.monotonic())  # registered again
    assert fence.holds(fence.run) and not fence.holds(before)


def test_nothing_goes_out_while_the_workers_writes_fail() -> None:
    fence = LeaseFence(window=25)
    reopened: list[bool] = []
    fence.on_reopen = lambda: reopened.append(True)
    fence.confirm(time.monotonic())
    fence.suspend()  # the recorder could not write: no mark could be written either
    assert not fence.holds(fence.run)
    fence.resume()
    assert fence.holds(fence.run) and reopened


async def test_a_request_refused_at_the_fence_never_reaches_the_receiver() -> None:
    receiver = await RawSocketReceiver().start()
    sender = Sender(timeout=5, allow_private=True)
    fence = sender.fence = LeaseFence(window=25)
    fence.confirm(time.monotonic() - 30)  # a worker that wakes from a 30 s stop
    stale = fence.run
    try:
        refused = await sender.send(receiver.url, b"{}", {}, "dlv_1", stale)
        fence.confirm(time.monotonic())  # its next heartbeat: a new run
        sent = await sender.send(receiver.url, b"{}", {}, "dlv_2", fence.run)
        again = await sender.send(receiver.url, b"{}", {}, "dlv_1", stale)
    finally:
        await sender.close()
        await receiver.stop()
    assert (refused.sent, refused.status) == (False, None)
    assert (sent.sent, sent.status) == (True, 200)
    assert not again.sent  # claimed before the gap: never sent, even with the fence open
    assert len(receiver.requests) == 1
