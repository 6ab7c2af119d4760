"""A claim whose COMMIT was on its way when the link to PostgreSQL failed.

The worker gives up on the claim (``DB_TIMEOUT``), but the commit lands at the heal: its rows
are leased to a worker that is alive and heartbeating and holds none of them. The dispatcher
notes the failed claim's lease end and gives back what is leased under it once the database
answers (``delivery/unsure_claims.py``), so the deliveries go out without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from tests.blackhole import BlackHole
from tests.receivers import PythonReceiver
from tests.test_database_restarts import SAMPLE, until

pytestmark = [pytest.mark.postgresql_only, pytest.mark.timeout(180)]

EVENTS = 3


async def test_a_claim_whose_commit_landed_after_the_worker_gave_up_is_given_back(
    make_settings: Callable[..., Settings],
    database_url: str,
    service: Service,
    location: str,
    python_receiver: PythonReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await service.webhooks.create(location, "customer.create", python_receiver.url)
    for n in range(EVENTS):
        await service.events.emit("customer.create", location, SAMPLE, id=f"evt-{n}")
    address = urlsplit(database_url)
    assert address.port is not None
    caplog.set_level(logging.WARNING, logger="hotspot_webhooks")
    async with BlackHole(address.port) as hole:
        settings = make_settings(
            database_url=hole.url(address.path.lstrip("/")),
            db_timeout=2,
            interval=1,
            low_latency=True,
            allow_private_targets=True,
        )
        # the link fails as the first claim's COMMIT leaves: the claim raises, the commit lands
        hole.hold_on(b"COMMIT", after=b"SKIP LOCKED")
        worker = await Service.open(settings)
        try:
            async with worker.running_dispatcher():
                assert await until(lambda: hole.holding, within=30), "no claim committed"
                assert await until(lambda: "claiming failed" in caplog.text, within=30), (
                    "the claim did not fail at the cut"
                )
                hole.heal()
                assert await until(
                    lambda: len(python_receiver.requests) >= EVENTS, within=60, every=0.25
                ), (
                    f"{len(python_receiver.requests)} of {EVENTS} deliveries sent in 60 s "
                    f"after the heal; leases: {await leases(database_url)}"
                )
        finally:
            await worker.close()
    sent = sorted(r.header("webhook-id") for r in python_receiver.requests)
    assert sent == [f"evt-{n}" for n in range(EVENTS)]
    assert "given back to the queue" in caplog.text, "the commit did not land: nothing to show"


async def leases(database_url: str) -> list[tuple[str, str | None, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, lease_owner, status FROM deliveries ORDER BY id")
        return [(r["id"], r["lease_owner"], r["status"]) for r in rows]
    finally:
        await conn.close()
