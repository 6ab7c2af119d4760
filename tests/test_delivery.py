"""End to end: emit → store → dispatcher → real receivers on 127.0.0.1 → recorded attempts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.delivery.attempt import Attempts
from hotspot_webhooks.delivery.dispatcher import Dispatcher
from hotspot_webhooks.delivery.recorder import PassStats
from hotspot_webhooks.receiver import parse
from hotspot_webhooks.service import Service
from tests.receivers import PhpReceiver, PythonReceiver, RawSocketReceiver, serving

SAMPLE = catalog.EVENT_TYPES["customer.create"].sample

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both


async def deliver_until_settled(
    dispatcher: Dispatcher, service: Service, max_passes: int = 40
) -> list[PassStats]:
    """Run passes until nothing is pending (or ``max_passes``), as the worker would."""
    passes = []
    for _ in range(max_passes):
        passes.append(await dispatcher.run_pass())
        if not (await service.deliveries.get_all(status="pending")).data:
            break
    return passes


@pytest.fixture
async def dispatcher(service: Service) -> Dispatcher:
    made = Dispatcher(service.store.queue, service.settings, service.cipher)
    yield made  # type: ignore[misc]
    await made.close()


async def test_python_receiver_gets_a_signed_delivery_that_verifies(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    webhook = await service.webhooks.create(location, "customer.create", python_receiver.url)
    emitted = await service.events.emit("customer.create", location, SAMPLE, id="evt-1")

    stats = await dispatcher.run_pass()

    assert (stats.claimed, stats.succeeded) == (1, 1)
    [request] = python_receiver.requests
    event = parse(request.header_dict, request.body, webhook.api_key)
    assert event.data == SAMPLE
    assert (event.id, event.type, event.location_id, event.attempt) == (
        "evt-1",
        "customer.create",
        location,
        1,
    )
    assert request.body == catalog.serialize(SAMPLE)
    assert request.header("Content-Type") == "application/json"
    assert request.header(
        "User-Agent",
    ).startswith("hotspot-webhooks/")  # type: ignore[union-attr]
    delivery = (await service.deliveries.get_all(event_id=emitted.id)).data[0]
    assert delivery.status == "succeeded" and delivery.last_status == 200
    assert request.header("X-Hotspotsystem-Delivery") == delivery.id
    shown = await service.deliveries.get(delivery.id)
    assert [a.status for a in shown.attempts] == [200]
    assert shown.attempts[0].response_excerpt == "answer 200"
    assert shown.attempts[0].request_headers["webhook-id"] == "evt-1"


async def test_raw_socket_sees_the_literal_header_name_in_its_exact_case(
    service: Service, location: str, raw_receiver: RawSocketReceiver, dispatcher: Dispatcher
) -> None:
    webhook = await service.webhooks.create(location, "customer.create", raw_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()

    [request] = raw_receiver.requests
    names = [name for name, _ in request.headers]
    assert "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256" in names
    assert "X-Hotspotsystem-Hmac-Sha256" in names
    expected = catalog_signature(request.body, webhook.api_key)
    assert request.header_dict["HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"] == expected
    assert request.header_dict["X-Hotspotsystem-Hmac-Sha256"] == expected
    for name in (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Hotspotsystem-Event",
        "X-Hotspotsystem-Location",
        "X-Hotspotsystem-Delivery",
        "X-Hotspotsystem-Attempt",
    ):
        assert name in names, name


def catalog_signature(body: bytes, api_key: str) -> str:
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(api_key.encode(), body, hashlib.sha256).digest()).decode()


async def test_php_receiver_verifies_like_the_original_sample(
    service: Service, location: str, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    """Every event type reaches PHP's built-in server and verifies through getallheaders()."""
    probe = await service.webhooks.create(location, "customer.create", "http://127.0.0.1:1/")
    await service.webhooks.delete(probe.id)
    receivers = []
    try:
        for event_type in catalog.EVENT_TYPES:
            webhook = await service.webhooks.create(location, event_type, "http://127.0.0.1:1/")
            php = PhpReceiver(webhook.api_key, tmp_path / f"{event_type}.log")
            receivers.append(php)
            await service.store.webhooks.update_webhook(webhook.id, {"callback_url": php.url})
            await service.events.emit(event_type, location, catalog.EVENT_TYPES[event_type].sample)

        stats = await dispatcher.run_pass()

        assert stats.succeeded == len(catalog.EVENT_TYPES)
        for event_type, php in zip(catalog.EVENT_TYPES, receivers, strict=True):
            [entry] = php.entries()
            assert entry["literal_header_verified"] is True
            assert entry["server_var_verified"] is True
            assert entry["event"] == event_type
            assert entry["payload"] == dict(catalog.EVENT_TYPES[event_type].sample)
    finally:
        for php in receivers:
            php.stop()


async def test_php_receiver_rejects_a_delivery_signed_with_another_key(
    service: Service, location: str, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    webhook = await service.webhooks.create(location, "customer.create", "http://127.0.0.1:1/")
    php = PhpReceiver("not-the-api-key", tmp_path / "php.log")
    try:
        await service.store.webhooks.update_webhook(webhook.id, {"callback_url": php.url})
        await service.events.emit("customer.create", location, SAMPLE)
        stats = await dispatcher.run_pass()
        assert (stats.succeeded, stats.retrying) == (0, 1)
        [entry] = php.entries()
        assert entry["literal_header_verified"] is False
        delivery = (await service.deliveries.get_all()).data[0]
        assert delivery.status == "pending" and delivery.last_status == 401
    finally:
        php.stop()


async def test_receiver_failing_three_times_then_succeeding_gets_four_attempts(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    python_receiver.respond = lambda n: 500 if n <= 3 else 200
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    await deliver_until_settled(dispatcher, service)

    delivery = (await service.deliveries.get_all()).data[0]
    shown = await service.deliveries.get(delivery.id)
    assert delivery.status == "succeeded" and delivery.attempt_count == 4
    assert [a.status for a in shown.attempts] == [500, 500, 500, 200]
    assert [a.number for a in shown.attempts] == [1, 2, 3, 4]
    assert [r.header("X-Hotspotsystem-Attempt") for r in python_receiver.requests] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert len({r.header("webhook-id") for r in python_receiver.requests}) == 1
    assert delivery.delivered_at is not None


async def test_receiver_that_always_fails_ends_failed_after_exactly_21_attempts(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    python_receiver.respond = lambda n: 500
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    passes = await deliver_until_settled(dispatcher, service)
    extra = await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    assert delivery.status == "failed"
    assert delivery.attempt_count == 21
    assert len(python_receiver.requests) == 21
    assert len(passes) == 21  # one attempt per pass under next-pass
    assert extra.claimed == 0
    assert delivery.last_error == "receiver answered HTTP 500"
    assert len((await service.deliveries.get(delivery.id)).attempts) == 21


async def test_backoff_schedules_the_retry_one_interval_later(
    service: Service, location: str, python_receiver: PythonReceiver, make_settings
) -> None:
    python_receiver.respond = lambda n: 500
    settings = make_settings(retry_policy="backoff", interval=60)
    dispatcher = Dispatcher(service.store.queue, settings, service.cipher)
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)
    before = datetime.now(UTC)

    await dispatcher.run_pass()
    second = await dispatcher.run_pass()
    await dispatcher.close()

    delivery = (await service.deliveries.get_all()).data[0]
    assert second.claimed == 0
    wait = (delivery.next_attempt_at - before).total_seconds()  # type: ignore[operator]
    assert 54 <= wait <= 67


async def test_retry_after_on_429_pushes_the_next_attempt_later(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    python_receiver.respond = lambda n: (429, {"Retry-After": "120"})
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)
    before = datetime.now(UTC)

    await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    wait = (delivery.next_attempt_at - before).total_seconds()  # type: ignore[operator]
    assert delivery.status == "pending" and 119 <= wait <= 125


async def test_410_gone_disables_the_webhook_and_fails_its_deliveries(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    python_receiver.respond = lambda n: 410
    webhook = await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()

    found = await service.webhooks.get(webhook.id)
    assert found.status == "disabled"
    assert "410" in (found.disabled_reason or "")
    delivery = (await service.deliveries.get_all()).data[0]
    assert delivery.status == "failed" and delivery.attempt_count == 1
    # a disabled webhook gets no new deliveries
    assert (await service.events.emit("customer.create", location, SAMPLE)).deliveries == 0


async def test_deliveries_pending_when_their_webhook_is_disabled_fail_unsent(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    webhook = await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)
    await service.store.webhooks.update_webhook(webhook.id, {"status": "disabled"})

    await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    assert python_receiver.requests == []
    assert delivery.status == "failed" and "disabled" in (delivery.last_error or "")
    assert (await service.deliveries.get(delivery.id)).attempts == []


async def test_redirects_are_not_followed(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    python_receiver.respond = lambda n: (302, {"Location": "http://127.0.0.1:1/elsewhere"})
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    assert delivery.status == "pending" and delivery.last_status == 302
    assert "redirect" in (delivery.last_error or "")
    assert len(python_receiver.requests) == 1


async def test_slow_receiver_times_out_and_is_retried(
    service: Service, location: str, python_receiver: PythonReceiver, make_settings
) -> None:
    python_receiver.delay = 2.0
    dispatcher = Dispatcher(service.store.queue, make_settings(timeout=0.3), service.cipher)
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()
    await dispatcher.close()

    delivery = (await service.deliveries.get_all()).data[0]
    assert delivery.status == "pending" and delivery.last_status is None
    assert delivery.last_error == "timed out after 0.3 s"
    [attempt] = (await service.deliveries.get(delivery.id)).attempts
    assert 250 <= attempt.duration_ms < 1500


async def test_unreachable_receiver_is_a_failed_attempt_with_the_error(
    service: Service, location: str, dispatcher: Dispatcher
) -> None:
    from tests.receivers import free_port

    await service.webhooks.create(
        location, "customer.create", f"http://127.0.0.1:{free_port()}/nobody"
    )
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    assert delivery.status == "pending" and delivery.attempt_count == 1
    assert "connect" in (delivery.last_error or "").lower()


async def test_response_excerpt_keeps_only_the_first_4_kib(
    service: Service, location: str, dispatcher: Dispatcher
) -> None:
    from aiohttp import web

    async def big(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="x" * 100_000, status=500)

    async with serving(big) as port:
        await service.webhooks.create(location, "customer.create", f"http://127.0.0.1:{port}/")
        await service.events.emit("customer.create", location, SAMPLE)
        await dispatcher.run_pass()

    delivery = (await service.deliveries.get_all()).data[0]
    [attempt] = (await service.deliveries.get(delivery.id)).attempts
    assert attempt.response_excerpt == "x" * 4096


async def test_private_target_is_refused_at_connect_time_when_not_allowed(
    service: Service, location: str, python_receiver: PythonReceiver, make_settings
) -> None:
    """A URL that passed the creation check but now points inside (DNS rebinding)."""
    strict = make_settings(allow_private_targets=False)
    dispatcher = Dispatcher(service.store.queue, strict, service.cipher)
    by_ip = await service.webhooks.create(location, "customer.create", python_receiver.url)
    by_name = await service.webhooks.create(
        location, "customer.create", f"http://localhost:{python_receiver.port}/hook"
    )
    await service.events.emit("customer.create", location, SAMPLE)

    await dispatcher.run_pass()
    await dispatcher.close()

    assert python_receiver.requests == []
    errors = {d.webhook_id: d.last_error for d in (await service.deliveries.get_all()).data}
    assert "refused" in (errors[by_ip.id] or "") and "loopback" in (errors[by_ip.id] or "")
    assert "refused" in (errors[by_name.id] or "")


async def test_per_host_concurrency_is_never_exceeded(
    service: Service, location: str, make_settings
) -> None:
    from aiohttp import web

    active = peak = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal active, peak
        await request.read()
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.Response(text="ok")

    settings = make_settings(per_host_concurrency=3, concurrency=50)
    dispatcher = Dispatcher(service.store.queue, settings, service.cipher)
    async with serving(handle) as port:
        await service.webhooks.create(location, "customer.create", f"http://127.0.0.1:{port}/")
        for _ in range(30):
            await service.events.emit("customer.create", location, SAMPLE)
        stats = await dispatcher.run_pass()
    await dispatcher.close()

    assert stats.succeeded == 30
    assert peak == 3


async def test_one_event_reaches_every_matching_webhook(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    first = await service.webhooks.create(location, "customer.create", python_receiver.url)
    second = await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.webhooks.create(location, "subscriber.create", python_receiver.url)

    result = await service.events.emit("customer.create", location, SAMPLE)
    await dispatcher.run_pass()

    assert result.deliveries == 2
    keys = {first.api_key, second.api_key}
    verified = set()
    for request in python_receiver.requests:
        for key in keys:
            try:
                parse(request.header_dict, request.body, key)
                verified.add(key)
            except Exception:  # noqa: S112 - the other key
                continue
    assert verified == keys


async def test_a_lease_left_by_a_dead_worker_is_recorded_as_an_attempt_of_unknown_outcome(
    service: Service, location: str, python_receiver: PythonReceiver, dispatcher: Dispatcher
) -> None:
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)
    now = datetime.now(UTC)
    # a worker claims it and dies; its lease has run out by the next pass
    [claimed] = await service.store.queue.claim_due(
        owner="dead-worker", due_by=now, lease_until=now - timedelta(seconds=1), limit=10
    )

    first = await dispatcher.run_pass()  # records the lost attempt; the retry is due next pass
    second = await dispatcher.run_pass()

    assert (first.claimed, second.succeeded) == (0, 1)
    shown = await service.deliveries.get(claimed.id)
    assert [a.number for a in shown.attempts] == [1, 2]
    assert shown.attempts[0].status is None
    assert "outcome unknown" in (shown.attempts[0].error or "")
    assert "dead-worker" in (shown.attempts[0].error or "")
    assert shown.attempts[1].status == 200
    assert python_receiver.requests[0].header("X-Hotspotsystem-Attempt") == "2"
    assert shown.status == "succeeded" and shown.attempt_count == 2


async def test_an_expired_lease_is_taken_over_by_exactly_one_worker(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    await service.events.emit("customer.create", location, SAMPLE)
    now = datetime.now(UTC)
    await service.store.queue.claim_due(
        owner="dead-worker", due_by=now, lease_until=now - timedelta(seconds=1), limit=10
    )

    attempts = Attempts(service.settings, service.cipher)
    first = await service.store.queue.workers.take_expired_leases(
        now, lambda lease: attempts.lost(lease).outcome
    )
    second = await service.store.queue.workers.take_expired_leases(
        now, lambda lease: attempts.lost(lease).outcome
    )

    assert [lease.owner for lease in first] == ["dead-worker"]
    assert second == []
