"""The link to PostgreSQL stops forwarding without closing (a black hole), then heals.

Real processes (``hotspot-webhooks api`` and ``worker``, as in ``test_database_restarts.py``)
reach a throwaway cluster through ``tests/blackhole.py``, a proxy that can hold every byte
both ways without a FIN or a RST. With the default ``DB_TIMEOUT`` (10 s) nothing may wait on
the hole for longer than that: the API answers emits and ``/readyz`` 503 with a reason, the
worker says so in its log, and at the heal everything resumes by itself.

What each answer promises: a 202 was committed (delivered later, exactly once recorded as
succeeded); a 503 saying "nothing was stored" was not stored, even though its bytes reach the
server at the heal; a 503 saying the commit's outcome is unknown may be either.

The test takes about a minute: 25 s of black hole, then the heal and the drain.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.errors import DatabaseUnavailable
from hotspot_webhooks.service import Service
from tests.blackhole import BlackHole
from tests.pg_cluster import PgCluster, pg_cluster_fixture  # noqa: F401  (the pg_cluster fixture)
from tests.receivers import PythonReceiver
from tests.test_database_restarts import SAMPLE as CUSTOMER_SAMPLE
from tests.test_database_restarts import (
    Answer,
    App,
    Emitter,
    answered_so_far,
    deliveries_of,
    log_excerpts,
    set_up_operator,
    until,
)

pytestmark = [pytest.mark.postgresql_only, pytest.mark.timeout(240)]

DB_TIMEOUT = 10.0  # the default setting, which the test does not set
SLACK = 10.0  # a loaded machine's margin on top of it
HOLE_FOR = 25.0  # seconds the link forwards nothing
TIMED_OUT = "did not answer within 10 s"


async def test_a_black_holed_database_is_answered_503_within_the_timeout_and_recovered_from(
    pg_cluster: PgCluster, python_receiver: PythonReceiver, tmp_path: Path
) -> None:
    await pg_cluster.create_database("hooks")
    async with BlackHole(pg_cluster.port) as hole:
        app = App(pg_cluster, hole.url("hooks"), tmp_path)
        await app.migrate()
        try:
            await scenario(app, hole, pg_cluster.database_url("hooks"), python_receiver)
        finally:
            await app.close()


async def scenario(app: App, hole: BlackHole, direct_url: str, receiver: PythonReceiver) -> None:
    api = await app.api()
    token = await set_up_operator(api, receiver.url)
    worker = await app.worker("worker-1")
    client = httpx.AsyncClient(base_url=api.url, timeout=120)  # never the client's timeout
    app.clients.append(client)
    emitters = [Emitter(client, token, f"evt-{n}") for n in (1, 2)]
    emitting = [asyncio.create_task(emitter.run()) for emitter in emitters]
    problems: list[str] = []
    try:
        assert await until(
            lambda: sum(a.accepted for a in answered_so_far(emitters)) >= 10, within=30
        ), f"no emits accepted before the cut: {answered_so_far(emitters)[:3]}"

        hole.hold()
        cut = time.monotonic()

        said_at: list[float] = []

        def worker_said_so() -> bool:  # a heartbeat's, a claim's or a record's timeout
            if not said_at and "did not answer" in worker.output():
                said_at.append(time.monotonic())
            return bool(said_at)

        noticing = asyncio.create_task(until(worker_said_so, within=DB_TIMEOUT + SLACK))
        await asyncio.sleep(1.0)
        ready_sent = time.monotonic()
        ready = await client.get("/readyz")
        ready_took = time.monotonic() - ready_sent
        worker_noticed = await noticing
        worker_noticed_after = (said_at[0] if said_at else time.monotonic()) - cut
        await asyncio.sleep(max(0.0, cut + HOLE_FOR - time.monotonic()))
        hole.heal()
        healed = time.monotonic()

        def accepted_again() -> bool:
            return any(a.accepted and a.sent > healed for a in answered_so_far(emitters))

        recovered = await until(accepted_again, within=30)
        ready_after = await client.get("/readyz")
    finally:
        for emitter in emitters:
            emitter.stopping.set()
        await asyncio.gather(*emitting)

    answers = answered_so_far(emitters)
    held = [a for a in answers if a.answered > cut and a.sent < healed]
    summary = [
        f"{len(answers)} emits: {dict(Counter(a.status for a in answers))}",
        f"during the hole: {dict(Counter(a.status for a in held))}, slowest answer "
        f"{max((a.answered - a.sent for a in held), default=0):.1f} s",
        f"503 messages: {dict(Counter(a.message() for a in answers if a.status == 503))}",
        f"/readyz in the hole: {ready.status_code} {ready.text} after {ready_took:.1f} s",
        f"the worker noticed {worker_noticed_after:.1f} s after the cut",
    ]

    # the API answers within the timeout, 503 with the reason, /readyz too
    if not (ready.status_code == 503 and TIMED_OUT in ready.text):
        problems.append(f"/readyz in the hole answered {ready.status_code} {ready.text}")
    if ready_took > DB_TIMEOUT + SLACK:
        problems.append(f"/readyz took {ready_took:.1f} s to answer in the hole")
    if not any(a.status == 503 for a in held):
        problems.append("no emit was answered 503 during the hole")
    slow = [a for a in held if a.answered - a.sent > DB_TIMEOUT + SLACK]
    if slow:
        problems.append(
            f"{len(slow)} emits waited over {DB_TIMEOUT + SLACK:g} s, e.g. "
            + "; ".join(f"{a.describe()} after {a.answered - a.sent:.1f} s" for a in slow[:3])
        )
    wrong = [a for a in held if not a.accepted and TIMED_OUT not in a.message()]
    if wrong:
        problems.append(f"503s without the reason: {[a.describe() for a in wrong[:3]]}")
    if not worker_noticed:
        problems.append(
            f"the worker did not log that the database did not answer within "
            f"{DB_TIMEOUT + SLACK:g} s of the cut"
        )
    if not recovered:
        problems.append("no emit was accepted in the 30 s after the heal")
    if ready_after.status_code != 200:
        problems.append(f"/readyz after the heal: {ready_after.status_code} {ready_after.text}")

    # every accepted event is delivered and recorded as such; "nothing stored" means it
    accepted = [a for a in answers if a.accepted]

    async def all_delivered() -> bool:
        found = await deliveries_of(direct_url, [a.event_id for a in accepted])
        return all(
            found.get(a.event_id) and all(d["status"] == "succeeded" for d in found[a.event_id])
            for a in accepted
        )

    if not await until(all_delivered, within=60, every=0.5):
        found = await deliveries_of(direct_url, [a.event_id for a in accepted])
        states = Counter(
            "missing" if a.event_id not in found else d["status"]
            for a in accepted
            for d in found.get(a.event_id, [{"status": "missing"}])
        )
        problems.append(f"accepted events not delivered in 60 s after the heal: {dict(states)}")
    await asyncio.sleep(2)  # anything in flight at the heal has landed by now
    refused = [a for a in answers if a.status == 503]
    nothing_stored = [a for a in refused if "nothing was stored" in a.message()]
    stored = await deliveries_of(direct_url, [a.event_id for a in refused])
    stored_anyway = [a for a in nothing_stored if a.event_id in stored]
    unknown: list[Answer] = [a for a in refused if "unknown" in a.message()]
    summary.append(
        f"503s: {len(nothing_stored)} said nothing was stored, {len(unknown)} an unknown "
        f"outcome ({sum(a.event_id in stored for a in unknown)} of those were stored)"
    )
    if stored_anyway:
        problems.append(
            f"{len(stored_anyway)} emits answered 503 'nothing was stored' were stored: "
            + "; ".join(a.describe() for a in stored_anyway[:3])
        )
    received = Counter(r.header("webhook-id") for r in receiver.requests)
    not_received = [a.event_id for a in accepted if a.event_id not in received]
    if not_received:
        problems.append(f"accepted events never received: {not_received[:5]}")
    for process in (api.process, worker):
        if not process.alive:
            problems.append(f"{process.name} died: {process.output()[-2000:]}")
    summary.append("--- worker ---\n" + log_excerpts(worker.output(), tracebacks=1))
    print("\n".join(summary))
    assert not problems, "\n".join(problems) + "\n\n" + "\n".join(summary)


async def events_named(database_url: str, event_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE id = $1", event_id))
    finally:
        await conn.close()


async def emit_into_the_hole(
    make_settings: Callable[..., Settings], database_url: str, pattern: bytes, event_id: str
) -> str:
    """Emit ``event_id`` through a link that fails as the client sends ``pattern``; the 503's
    message, once the link has healed and the server has had what was sent into the hole."""
    address = urlsplit(database_url)
    assert address.port is not None
    async with BlackHole(address.port) as hole:
        settings = make_settings(database_url=hole.url(address.path.lstrip("/")), db_timeout=2)
        service = await Service.open(settings)
        try:
            hole.hold_on(pattern)
            began = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as refused:
                await service.events.emit("customer.create", "loc-1", CUSTOMER_SAMPLE, id=event_id)
            took = time.monotonic() - began
            assert hole.holding, "the emit failed before it sent what the link was to fail on"
            assert took < 2 + SLACK, f"answered after {took:.1f} s"
            hole.heal()
            await asyncio.sleep(2)  # what was sent into the hole reaches the server
        finally:
            await service.close()
    return refused.value.message


@pytest.mark.parametrize("pattern", [b"INSERT INTO events", b"SELECT"])
async def test_an_emit_given_up_before_its_commit_was_sent_is_not_stored(
    make_settings: Callable[..., Settings], database_url: str, location: str, pattern: bytes
) -> None:
    message = await emit_into_the_hole(make_settings, database_url, pattern, "evt-held")
    assert "did not answer within 2 s (nothing was stored)" in message, message
    assert await events_named(database_url, "evt-held") == 0


async def test_an_emit_given_up_after_its_commit_was_sent_says_its_outcome_is_unknown(
    make_settings: Callable[..., Settings], database_url: str, location: str, service: Service
) -> None:
    message = await emit_into_the_hole(make_settings, database_url, b"COMMIT", "evt-unknown")
    assert "its commit was sent, so whether it was stored is unknown" in message, message
    # the promise that makes the unknown harmless: emitted again, the event is stored once
    again: Any = await service.events.emit(
        "customer.create", location, CUSTOMER_SAMPLE, id="evt-unknown"
    )
    assert again.id == "evt-unknown"
    assert await events_named(database_url, "evt-unknown") == 1
