"""The service methods behind the control center: the overview's health figures (success rate,
p50/p95 latency, attempts over time by outcome, last failure, open circuits), the delivery
browser's filters and the event body bytes, each narrowed to the caller's operator. Real
attempts (``test_webhook``) against real receivers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.errors import InvalidInput, NotFound
from hotspot_webhooks.receiver import verify_signature
from hotspot_webhooks.service import Caller, Service
from tests.receivers import PythonReceiver, free_port

BACKENDS = ("sqlite", "postgresql")


def sample(event_type: str) -> dict[str, str | None]:
    return dict(catalog.EVENT_TYPES[event_type].sample)


@pytest.fixture
async def strict_service(make_settings: Callable[..., Settings]) -> Any:
    """A service where one failed attempt fails a delivery for good (no retries)."""
    opened = await Service.open(make_settings(max_retries=0, circuit_threshold=3), migrate=True)
    yield opened
    await opened.close()


async def operator_with(service: Service, name: str, *location_ids: str) -> Caller:
    created = await service.operators.create(name)
    caller = await service.access.authenticate(created.token)
    for location_id in location_ids:
        await service.locations.create(location_id, f"{name} {location_id}", None, caller=caller)
    return caller


async def test_overview_reports_rate_latency_and_outcomes_per_webhook(
    strict_service: Service,
) -> None:
    service = strict_service
    acme = await operator_with(service, "acme", "loc-1")
    slow_once = PythonReceiver(respond=lambda n: 200 if n <= 9 else 500)
    await slow_once.start()
    try:
        webhook = await service.webhooks.create(
            "loc-1", "customer.create", slow_once.url, caller=acme
        )
        for _ in range(9):
            await service.webhooks.test(webhook.id, caller=acme)
        slow_once.delay = 0.3  # the tenth is slow and answers 500
        await service.webhooks.test(webhook.id, caller=acme)
    finally:
        await slow_once.stop()

    overview = await service.health.overview(caller=acme)
    [health] = overview.webhooks
    assert health.webhook.id == webhook.id
    assert (health.attempts, health.succeeded) == (10, 9)
    assert health.success_rate == pytest.approx(0.9)
    assert health.p50_ms is not None and health.p95_ms is not None
    assert health.p50_ms < 250 <= health.p95_ms  # nearest rank: the 10th of 10 is the p95
    assert sum(b.succeeded for b in health.timeline) == 9
    assert sum(b.failed for b in health.timeline) == 1  # max_retries=0: failed for good
    assert health.timeline[-1].total == 10  # all in the last hour
    assert len(health.timeline) == 24
    assert health.last_failure is not None
    assert health.last_failure.status == 500
    assert health.last_failure.reason == "HTTP 500: answer 500"
    assert health.attention is not None and "failed for good" in health.attention
    assert not health.circuit_open


async def test_retrying_attempts_are_told_apart_from_failed_ones(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-1")
    failing = await PythonReceiver(respond=lambda n: 503).start()
    try:
        webhook = await service.webhooks.create(
            "loc-1", "customer.create", failing.url, caller=acme
        )
        await service.webhooks.test(webhook.id, caller=acme)
        await service.webhooks.test(webhook.id, caller=acme)
    finally:
        await failing.stop()
    [health] = (await service.health.overview(caller=acme)).webhooks
    assert sum(b.retrying for b in health.timeline) == 2  # 20 retries are left to each
    assert sum(b.failed for b in health.timeline) == 0
    assert health.pending == 2
    assert health.success_rate == 0
    assert health.attention is not None and "0%" in health.attention


async def test_an_unreachable_endpoint_shows_an_open_circuit_first(
    strict_service: Service,
) -> None:
    service = strict_service
    acme = await operator_with(service, "acme", "loc-1", "loc-2")
    healthy = await PythonReceiver().start()
    try:
        good = await service.webhooks.create("loc-1", "customer.create", healthy.url, caller=acme)
        await service.webhooks.test(good.id, caller=acme)
    finally:
        await healthy.stop()
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    down = await service.webhooks.create("loc-2", "customer.create", closed, caller=acme)
    for _ in range(3):  # circuit_threshold=3
        await service.webhooks.test(down.id, caller=acme)
    # a delivery waiting for the endpoint: what the open circuit holds
    await service.events.emit("customer.create", "loc-2", sample("customer.create"), caller=acme)

    overview = await service.health.overview(caller=acme)
    first, second = overview.webhooks
    assert first.webhook.id == down.id  # what needs attention comes first
    assert first.unreachable_in_a_row == 3
    assert first.circuit_open
    assert [h.webhook.id for h in overview.open_circuits] == [down.id]
    assert first.last_failure is not None and first.last_failure.status is None
    assert "127.0.0.1" in first.last_failure.reason  # the connection error, as recorded
    assert second.webhook.id == good.id and second.attention is None
    assert second.success_rate == 1


async def test_an_answer_ends_the_unreachable_streak(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-1")
    port = free_port()
    webhook = await service.webhooks.create(
        "loc-1", "customer.create", f"http://127.0.0.1:{port}/hook", caller=acme
    )
    for _ in range(6):
        await service.webhooks.test(webhook.id, caller=acme)
    receiver = await PythonReceiver(port=port).start()
    try:
        await service.webhooks.test(webhook.id, caller=acme)
    finally:
        await receiver.stop()
    [health] = (await service.health.overview(caller=acme)).webhooks
    assert health.unreachable_in_a_row == 0
    assert not health.circuit_open


async def test_the_overview_shows_only_the_callers_webhooks(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-a")
    other = await operator_with(service, "other", "loc-b")
    receiver = await PythonReceiver().start()
    try:
        mine = await service.webhooks.create("loc-a", "customer.create", receiver.url, caller=acme)
        theirs = await service.webhooks.create(
            "loc-b", "customer.create", receiver.url, caller=other
        )
        await service.webhooks.test(mine.id, caller=acme)
        await service.webhooks.test(theirs.id, caller=other)
        await service.webhooks.test(theirs.id, caller=other)
    finally:
        await receiver.stop()
    [seen] = (await service.health.overview(caller=acme)).webhooks
    assert seen.webhook.id == mine.id and seen.attempts == 1
    everyone = await service.health.overview()  # the admin
    assert {h.webhook.id: h.attempts for h in everyone.webhooks} == {mine.id: 1, theirs.id: 2}


async def test_an_idle_webhook_has_no_figures(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-1")
    await service.webhooks.create("loc-1", "customer.create", "http://127.0.0.1:9/x", caller=acme)
    [health] = (await service.health.overview(caller=acme)).webhooks
    assert (health.attempts, health.success_rate, health.p50_ms, health.p95_ms) == (
        0,
        None,
        None,
        None,
    )
    assert health.last_failure is None and health.attention is None
    assert all(b.total == 0 for b in health.timeline)


async def test_deliveries_filter_by_location_type_status_and_time(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-1", "loc-2")
    other = await operator_with(service, "other", "loc-x")
    receiver = await PythonReceiver().start()
    try:
        everything = await service.webhooks.create(
            callback_url=receiver.url, location_ids=["*"], event_types=["*"], caller=acme
        )
        theirs = await service.webhooks.create(
            "loc-x", "customer.create", receiver.url, caller=other
        )
        sent = await service.webhooks.test(everything.id, caller=acme)  # succeeded, at loc-1
    finally:
        await receiver.stop()
    for type_, location in (
        ("customer.create", "loc-1"),
        ("subscriber.create", "loc-2"),
        ("transaction.paid.create", "loc-2"),
    ):
        await service.events.emit(type_, location, sample(type_), caller=acme)
    await service.events.emit("customer.create", "loc-x", sample("customer.create"), caller=other)

    async def ids(**filters: Any) -> set[str]:
        page = await service.deliveries.search(caller=acme, **filters)
        return {d.event_type + "@" + d.location_id for d in page.data}

    assert await ids(location_id="loc-2") == {
        "subscriber.create@loc-2",
        "transaction.paid.create@loc-2",
    }
    assert await ids(event_type="customer.create") == {"customer.create@loc-1"}
    assert (
        len((await service.deliveries.search(event_type="customer.create", caller=acme)).data) == 2
    )
    succeeded = await service.deliveries.search(status="succeeded", caller=acme)
    assert [d.id for d in succeeded.data] == [sent.id]
    now = datetime.now(UTC)
    assert await ids(until=now - timedelta(hours=1)) == set()
    recent = await service.deliveries.search(since=now - timedelta(hours=1), caller=acme)
    assert len(recent.data) == 4
    assert await ids(webhook_id=theirs.id) == set()  # another operator's: nothing
    assert await ids(location_id="loc-x") == set()
    page = await service.deliveries.search(limit=3, caller=acme)
    rest = await service.deliveries.search(limit=3, cursor=page.next_cursor, caller=acme)
    assert len(page.data) == 3 and len(rest.data) == 1 and rest.next_cursor is None
    with pytest.raises(InvalidInput) as refused:
        await service.deliveries.search(status="lost", caller=acme)
    assert refused.value.details[0]["field"] == "status"
    with pytest.raises(InvalidInput) as refused:
        await service.deliveries.search(since=datetime(2026, 1, 1), caller=acme)
    assert refused.value.details[0]["field"] == "since"


async def test_the_event_body_is_the_bytes_that_were_signed(service: Service) -> None:
    acme = await operator_with(service, "acme", "loc-1")
    other = await operator_with(service, "other", "loc-2")
    receiver = await PythonReceiver().start()
    try:
        webhook = await service.webhooks.create(
            "loc-1", "customer.create", receiver.url, caller=acme
        )
        delivery = await service.webhooks.test(webhook.id, caller=acme)
    finally:
        await receiver.stop()
    body = await service.events.body(delivery.event_id, caller=acme)
    assert body == receiver.requests[0].body
    signature = delivery.attempts[0].request_headers["X-Hotspotsystem-Hmac-Sha256"]
    assert verify_signature(body, signature, webhook.api_key)
    with pytest.raises(NotFound):
        await service.events.body(delivery.event_id, caller=other)


async def test_an_operator_makes_its_own_further_token(service: Service) -> None:
    acme = await operator_with(service, "acme")
    created = await service.tokens.create_own(caller=acme)
    assert created.operator_id == acme.operator_id
    assert await service.access.authenticate(created.token) == acme
    operator = await service.operators.of_caller(acme)
    assert operator is not None and operator.name == "acme"
    assert await service.operators.of_caller(Caller()) is None
