"""The lanes' scheduling on its own: a stand-in ``send`` (an endpoint that answers after a
moment, one that never does) instead of HTTP; the real receivers are in test_isolation.py."""

from __future__ import annotations

import asyncio
from collections import Counter

from hotspot_webhooks.delivery.circuit import Circuit
from hotspot_webhooks.delivery.lanes import SLOW_START, EndpointLanes

SHARE = 30


class Endpoints:
    """Sends to two endpoints: ``fast`` answers after 5 ms, ``dead`` never answers (until
    released); counts what is on the wire to each, and the most ever at once."""

    def __init__(self) -> None:
        self.on_wire: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def send(self, key: str) -> bool:
        self.sent[key] += 1
        self.on_wire[key] += 1
        self.most[key] = max(self.most[key], self.on_wire[key])
        try:
            if key == "dead":
                await self.release.wait()
                return True  # unreachable (a timeout)
            await asyncio.sleep(0.005)
            self.answered[key] += 1
            return False
        finally:
            self.on_wire[key] -= 1


def lanes(endpoints: Endpoints, held: list[str]) -> EndpointLanes[str]:
    return EndpointLanes(
        concurrency=100,
        per_endpoint=SHARE,
        new_circuit=lambda: Circuit(threshold=5, first_wait=10, max_wait=60),
        send=endpoints.send,
        hold=lambda item, until: held.append(item),
        on_room=lambda: None,
        on_open=lambda webhooks, until: None,
    )


async def test_a_new_lane_starts_with_a_few_requests_and_grows_to_its_share_with_answers() -> None:
    endpoints, held = Endpoints(), list[str]()
    scheduler = lanes(endpoints, held)
    for _ in range(4 * SHARE):
        scheduler.put("fast", "wh-fast", "fast")
        scheduler.put("dead", "wh-dead", "dead")
    # the fast endpoint's deliveries all go out, up to a share at once
    for _ in range(200):
        if endpoints.answered["fast"] == 4 * SHARE:
            break
        await asyncio.sleep(0.01)
    assert endpoints.answered["fast"] == 4 * SHARE
    assert SLOW_START < endpoints.most["fast"] <= SHARE
    # the endpoint that never answered never got more than the slow start on the wire
    assert endpoints.most["dead"] == SLOW_START
    assert "wh-dead" in scheduler.blocked_webhooks()  # its queue is full: claims skip it
    endpoints.release.set()  # its requests time out: the circuit opens, the queue goes back
    for _ in range(100):
        if len(held) + endpoints.sent["dead"] == 4 * SHARE:
            break
        await asyncio.sleep(0.01)
    assert len(held) + endpoints.sent["dead"] == 4 * SHARE
    assert endpoints.sent["dead"] < SLOW_START + 5  # what went out before the 5th timeout
    assert scheduler.open_circuits() == ["dead"]
    await scheduler.close()


async def test_a_lane_says_it_has_room_once_it_is_down_to_its_share_whatever_it_held() -> None:
    """A full lane that answers shrinks by one and grows its share by one per answer: the
    two meet whether it held an odd or an even number more than its share, and then it says
    it has room (a pass waits for that before it ends: `worker --once` hung on 30 due)."""
    for queued in (2 * SLOW_START, 2 * SLOW_START + 1, 30, 31, 4 * SHARE):
        endpoints, rooms = Endpoints(), []
        scheduler = EndpointLanes(
            concurrency=100,
            per_endpoint=SHARE,
            new_circuit=lambda: Circuit(threshold=5, first_wait=10, max_wait=60),
            send=endpoints.send,
            hold=lambda item, until: None,
            on_room=lambda rooms=rooms: rooms.append(1),  # type: ignore[misc]
            on_open=lambda webhooks, until: None,
        )
        for _ in range(queued):
            scheduler.put("fast", "wh-fast", "fast")
        assert scheduler.any_full()
        await asyncio.wait_for(scheduler.wait_idle(), 30)
        assert endpoints.answered["fast"] == queued
        assert rooms, f"holding {queued}, the lane never said it had room"
