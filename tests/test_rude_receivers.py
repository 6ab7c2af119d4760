"""Receivers that answer and then misbehave (issue 25, F8): what was received is recorded,
and only real failures count toward an endpoint's circuit. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.delivery.dispatcher import running_dispatcher
from hotspot_webhooks.delivery.sender import Sender
from hotspot_webhooks.service import EmitRequest, Service
from tests.receivers import ImpoliteReceiver

BACKENDS = ("sqlite", "postgresql")
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
BODY = b'{"id":"evt-1"}'


async def test_a_200_whose_body_trickles_past_the_timeout_is_recorded_as_answered_200() -> None:
    receiver = await ImpoliteReceiver("trickle", trickle_every=0.2).start()
    sender = Sender(timeout=1.5, allow_private=True)
    try:
        result = await sender.send(receiver.url, BODY, {})
    finally:
        await sender.close()
        await receiver.stop()
    assert result.status == 200
    assert result.error is None and not result.unreachable
    assert result.response_excerpt and set(result.response_excerpt) == {"x"}  # what came


@pytest.mark.parametrize("mode", ["reset", "reset-unframed"])
async def test_a_receiver_that_resets_every_connection_after_answering_is_heard_each_time(
    mode: str,
) -> None:
    receiver = await ImpoliteReceiver(mode).start()
    sender = Sender(timeout=5, allow_private=True)
    try:
        one_by_one = [await sender.send(receiver.url, BODY, {}) for _ in range(20)]
        side_by_side = await asyncio.gather(
            *(sender.send(receiver.url, BODY, {}) for _ in range(40))
        )
    finally:
        await sender.close()
        await receiver.stop()
    for result in [*one_by_one, *side_by_side]:
        assert (result.status, result.error, result.unreachable) == (200, None, False)
        assert result.response_excerpt == "OK"
    assert receiver.requests == 60  # each answered once: nothing was sent twice


async def test_an_endpoint_that_closes_every_connection_after_200_keeps_its_circuit_closed(
    service: Service, location: str, make_settings: Callable[..., Settings]
) -> None:
    receiver = await ImpoliteReceiver("reset").start()
    try:
        webhook = await service.webhooks.create(location, EVENT, receiver.url)
        await service.events.emit_many([EmitRequest(EVENT, location, dict(SAMPLE))] * 60)
        settings = make_settings(interval=0.2, circuit_threshold=3, circuit_wait=60)
        async with running_dispatcher(service.store.queue, settings, service.cipher) as dispatcher:
            deadline = asyncio.get_running_loop().time() + 30
            while (await service.deliveries.get_all(webhook_id=webhook.id, status="pending")).data:
                assert asyncio.get_running_loop().time() < deadline, "still pending after 30 s"
                await asyncio.sleep(0.05)
            assert dispatcher.lanes.open_circuits() == []
        shown = (await service.deliveries.get_all(webhook_id=webhook.id, limit=500)).data
        assert len(shown) == 60
        assert all((d.status, d.attempt_count) == ("succeeded", 1) for d in shown)
    finally:
        await receiver.stop()
