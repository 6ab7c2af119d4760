"""Access that changes while the service runs (SPEC §5, issue 9): a token revoked, an operator
or a location disabled or deleted, takes effect at once on every API process; what happens to
their webhooks and deliveries follows one rule, written in ``Operators.set_status``
(service/operators.py).

Two API processes share each database: one served in the test's loop, one the real
``hotspot-webhooks api`` process. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from hotspot_webhooks.store.schema import (
    attempts,
    deliveries,
    events,
    subscriptions,
    webhooks,
)
from tests.conftest import run_cli
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.postgres import admin_sql
from tests.receivers import PythonReceiver, free_port
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")
MakeAPI = Callable[..., Any]


class OtherProcess:
    """``hotspot-webhooks api`` as a process of its own, on the test's database."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
        env = {
            **clean,
            "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        }
        if settings.secret_key:
            env["HOTSPOT_WEBHOOKS_SECRET_KEY"] = settings.secret_key
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hotspot_webhooks", "api", "--port", str(self.port),
                 "--db", settings.database_url],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=log.parent,
                env=env,
            )  # fmt: skip
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def wait_healthy(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the api process exited: {self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if (await self.client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        pytest.fail("the api process did not answer /healthz in time")

    async def call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def stop(self) -> None:
        await self.client.aclose()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
async def two_processes(
    make_api: MakeAPI, tmp_path: Path
) -> AsyncIterator[tuple[LiveAPI, OtherProcess]]:
    here: LiveAPI = await make_api(dispatch=False)
    there = OtherProcess(here.settings, tmp_path / "other-api.log")
    try:
        await there.wait_healthy()
        yield here, there
    finally:
        await there.stop()


async def refused_within(
    there: OtherProcess, token: str, status: int, within: float = 2.0
) -> float:
    """Seconds until ``there`` answers ``status`` to ``token``; fails after ``within``.

    On SQLite the very next request is refused; on PostgreSQL the announcement travels as a
    notification after the commit, which takes milliseconds."""
    started = time.monotonic()
    while True:
        response = await there.call("GET", "/v1/locations", token)
        if response.status_code == status:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        if time.monotonic() - started > within:
            pytest.fail(f"still accepted {within} s after the change")
        await asyncio.sleep(0.005)


# ---- tokens -------------------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_at_once_by_another_api_process(
    two_processes: tuple[LiveAPI, OtherProcess], backend: str
) -> None:
    """The other process has the token remembered (it just used it) and would keep it for
    ``TOKEN_CACHE_SECONDS`` (300 s) without the announcement."""
    here, there = two_processes
    created = await here.ok("POST", "/v1/operators", json={"name": "alpha"})
    further = await here.ok("POST", f"/v1/operators/{created['id']}/tokens")
    for _ in range(3):
        assert (await there.call("GET", "/v1/locations", further["token"])).status_code == 200

    await here.ok("DELETE", f"/v1/tokens/{further['id']}")

    took = await refused_within(there, further["token"], 401)
    if backend == "sqlite":
        assert took < 0.05  # the first request after the revocation
    error_of(await there.call("GET", "/v1/locations", further["token"]), 401)
    assert (await there.call("GET", "/v1/locations", created["token"])).status_code == 200


@pytest.mark.postgresql_only
async def test_while_its_listener_is_cut_off_a_process_trusts_no_remembered_token(
    make_settings: Callable[..., Settings],
) -> None:
    """The PostgreSQL watch: a notification sent while its connection is down is lost, so
    it trusts nothing remembered from the moment the connection goes until it is back, and
    forgets everything when it is."""
    service = await Service.open(make_settings(), migrate=True)
    forgotten: list[float] = []
    watch = service.store.db.watch_access(lambda: forgotten.append(time.monotonic()))
    try:
        await wait_until(watch.trusted)
        before = len(forgotten)
        database = service.settings.database_url.rsplit("/", 1)[1]
        cut_off = (  # the database's name is the test's own
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608
            f"WHERE datname = '{database}' AND query LIKE 'LISTEN%'"
        )
        await admin_sql(cut_off)
        # forgotten when lost (and untrusted from then), and again when back (trusted again);
        # the reconnection is too quick to watch the untrusted moment by polling
        await wait_until(lambda: len(forgotten) >= before + 2 and watch.trusted(), within=10)
    finally:
        await watch.close()
        await service.close()


async def wait_until(condition: Callable[[], bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{condition} did not hold within {within} s")
        await asyncio.sleep(0.01)


# ---- operators ----------------------------------------------------------------------------------


async def test_a_disabled_operator_is_refused_everywhere_and_its_webhooks_wait(
    two_processes: tuple[LiveAPI, OtherProcess],
) -> None:
    here, there = two_processes
    token = await here.operator_at("loc-1", "loc-2", name="acme")
    first = await here.webhook(token, "loc-1", "http://127.0.0.1:9/a")
    second = await here.webhook(token, "loc-2", "http://127.0.0.1:9/b")
    by_request = await here.webhook(token, "loc-2", "http://127.0.0.1:9/c")
    await here.ok("PATCH", f"/v1/webhooks/{by_request['id']}", token, json={"status": "disabled"})
    other = await here.operator_at("loc-9", name="other")
    assert (await there.call("GET", "/v1/locations", token)).status_code == 200

    disabled = await here.ok("PATCH", "/v1/operators/acme", json={"status": "disabled"})

    assert disabled["status"] == "disabled"
    assert disabled["disabled_reason"].startswith("operator disabled by the admin at ")
    await refused_within(there, token, 403)
    refused = error_of(await here.call("GET", "/v1/locations", token), 403)
    assert "operator" in refused["message"] and "disabled" in refused["message"]
    for webhook in (first, second):
        shown = await here.ok("GET", f"/v1/webhooks/{webhook['id']}")
        assert shown["status"] == "disabled"
        assert shown["disabled_reason"] == disabled["disabled_reason"]
    # events at its locations are still accepted (the platform loses nothing), deliver nowhere
    emitted = await here.ok(
        "POST", "/v1/events", json={"type": "customer.create", "location_id": "loc-1",
                                    "data": sample("customer.create")},
    )  # fmt: skip
    assert emitted["deliveries"] == 0
    # nobody enables a webhook under it, nor one of its locations
    error_of(
        await here.call("PATCH", f"/v1/webhooks/{first['id']}", json={"status": "enabled"}), 409
    )
    error_of(await here.call("PATCH", "/v1/locations/loc-1", json={"status": "enabled"}), 409)
    # the other operator goes on
    await here.ok("GET", "/v1/locations", other)

    enabled = await here.ok("PATCH", "/v1/operators/acme", json={"status": "enabled"})

    assert enabled["status"] == "enabled" and enabled["disabled_reason"] is None
    assert (await there.call("GET", "/v1/locations", token)).status_code == 200
    for webhook in (first, second):
        assert (await here.ok("GET", f"/v1/webhooks/{webhook['id']}"))["status"] == "enabled"
    # the one disabled on its own stays so
    kept = await here.ok("GET", f"/v1/webhooks/{by_request['id']}")
    assert kept["status"] == "disabled" and kept["disabled_reason"].startswith(
        "disabled by request"
    )


async def test_queued_deliveries_of_a_disabled_operator_fail_unsent_and_recover_later(
    make_api: MakeAPI, python_receiver: PythonReceiver
) -> None:
    """The rule of a disabled webhook, applied to all of the operator's: what is queued fails
    unsent at the next pass; once enabled again, ``recover`` sends it."""
    api: LiveAPI = await make_api(dispatch=False)
    hooked = await api.hooked("loc-1", python_receiver.url)
    emitted = await api.ok(
        "POST", "/v1/events", hooked.token,
        json={"type": "customer.create", "location_id": "loc-1", "data": sample("customer.create")},
    )  # fmt: skip
    assert emitted["deliveries"] == 1
    await api.ok("PATCH", "/v1/operators/acme", json={"status": "disabled"})

    service = await Service.open(api.settings)
    try:
        async with service.dispatcher() as dispatcher:
            await dispatcher.run_pass()
    finally:
        await service.close()

    [delivery] = (await api.ok("GET", "/v1/deliveries"))["data"]
    assert delivery["status"] == "failed"
    assert delivery["last_error"] == "webhook is disabled; not sent"
    assert python_receiver.requests == []

    await api.ok("PATCH", "/v1/operators/acme", json={"status": "enabled"})
    recovered = await api.ok(
        "POST", f"/v1/webhooks/{hooked.webhook['id']}/recover", hooked.token,
        json={"since": "2000-01-01T00:00:00Z"},
    )  # fmt: skip
    assert recovered["requeued"] == 1


async def test_deleting_an_operator_deletes_everything_it_owns_and_nothing_else(
    two_processes: tuple[LiveAPI, OtherProcess], python_receiver: PythonReceiver
) -> None:
    here, there = two_processes
    doomed = await here.hooked("loc-1", python_receiver.url, name="doomed")
    await here.location(doomed.token, "loc-2")
    kept = await here.hooked("loc-9", python_receiver.url, name="kept")
    for hooked, location in ((doomed, "loc-1"), (doomed, "loc-2"), (kept, "loc-9")):
        for _ in range(3):
            await here.ok(
                "POST", "/v1/events", hooked.token,
                json={"type": "customer.create", "location_id": location,
                      "data": sample("customer.create")},
            )  # fmt: skip
    assert (await there.call("GET", "/v1/locations", doomed.token)).status_code == 200
    [doomed_id] = [o["id"] for o in (await here.ok("GET", "/v1/operators"))["data"]
                   if o["name"] == "doomed"]  # fmt: skip

    deleted = await here.call("DELETE", "/v1/operators/doomed")

    assert deleted.status_code == 204, deleted.text
    await refused_within(there, doomed.token, 401)
    operators = (await here.ok("GET", "/v1/operators"))["data"]
    assert [o["name"] for o in operators] == ["kept"]
    error_of(await here.call("GET", "/v1/locations/loc-1"), 404)
    error_of(await here.call("GET", f"/v1/webhooks/{doomed.webhook['id']}"), 404)
    error_of(
        await here.call(
            "POST", "/v1/events",
            json={"type": "customer.create", "location_id": "loc-1",
                  "data": sample("customer.create")},
        ),
        404,
    )  # fmt: skip
    # the other operator's data is whole
    assert len((await here.ok("GET", "/v1/events", kept.token))["data"]) == 3
    assert len((await here.ok("GET", "/v1/deliveries", kept.token))["data"]) == 3
    owners = {t["operator_id"] for t in (await here.ok("GET", "/v1/tokens"))["data"]}
    assert doomed_id not in owners and len(owners) == 1
    error_of(await here.call("DELETE", "/v1/operators/doomed"), 404)


async def test_only_the_admin_disables_or_deletes_an_operator(api: LiveAPI) -> None:
    token = await api.operator_at("loc-1", name="acme")
    for method, body in (("PATCH", {"status": "disabled"}), ("DELETE", None)):
        error_of(await api.call(method, "/v1/operators/acme", token, json=body), 403)
    error_of(await api.call("PATCH", "/v1/operators/nobody", json={"status": "disabled"}), 404)
    bad = error_of(await api.call("PATCH", "/v1/operators/acme", json={"status": "paused"}), 422)
    assert "status" in bad["message"]


# ---- locations ----------------------------------------------------------------------------------


async def test_a_disabled_location_disables_its_webhooks_until_enabled(api: LiveAPI) -> None:
    token = await api.operator_at("loc-1", "loc-2", name="acme")
    here = await api.webhook(token, "loc-1", "http://127.0.0.1:9/a")
    elsewhere = await api.webhook(token, "loc-2", "http://127.0.0.1:9/b")

    disabled = await api.ok("PATCH", "/v1/locations/loc-1", token, json={"status": "disabled"})

    assert disabled["status"] == "disabled"
    assert disabled["disabled_reason"].startswith("location disabled by its operator at ")
    assert (await api.ok("GET", f"/v1/webhooks/{here['id']}"))["status"] == "disabled"
    assert (await api.ok("GET", f"/v1/webhooks/{elsewhere['id']}"))["status"] == "enabled"
    emitted = await api.ok(
        "POST", "/v1/events", token,
        json={"type": "customer.create", "location_id": "loc-1", "data": sample("customer.create")},
    )  # fmt: skip
    assert emitted["deliveries"] == 0
    conflict = error_of(
        await api.call(
            "POST", "/v1/webhooks", token,
            json={"location_id": "loc-1", "event_type": "customer.create",
                  "callback_url": "http://127.0.0.1:9/new"},
        ),
        409,
    )  # fmt: skip
    assert "loc-1" in conflict["message"] and "disabled" in conflict["message"]
    error_of(
        await api.call("PATCH", f"/v1/webhooks/{here['id']}", token, json={"status": "enabled"}),
        409,
    )

    await api.ok("PATCH", "/v1/locations/loc-1", token, json={"status": "enabled"})

    assert (await api.ok("GET", f"/v1/webhooks/{here['id']}"))["status"] == "enabled"


async def test_an_operator_manages_only_its_own_locations(api: LiveAPI) -> None:
    await api.operator_at("loc-1", name="acme")
    other = await api.operator_at("loc-9", name="other")
    for method, body in (("PATCH", {"status": "disabled"}), ("DELETE", None)):
        refused = error_of(await api.call(method, "/v1/locations/loc-1", other, json=body), 404)
        assert "loc-1" in refused["message"]
    assert (await api.ok("GET", "/v1/locations/loc-1"))["status"] == "enabled"


async def test_deleting_a_location_in_small_batches_takes_its_events_and_webhooks(
    make_settings: Callable[..., Settings],
) -> None:
    """The store's batched delete: several short transactions, nothing of the location left,
    the neighbouring location untouched."""
    service = await Service.open(make_settings(), migrate=True)
    try:
        await service.operators.create("acme")
        for location in ("loc-1", "loc-2"):
            await service.locations.create(location, "Café", "acme")
            await service.webhooks.create(location, "customer.create", "http://127.0.0.1:9/a")
            for _ in range(7):
                await service.events.emit("customer.create", location, sample("customer.create"))
        async with service.store.db.write() as conn:  # attempts too, as after a few passes
            rows = (await conn.execute(select(deliveries.c.id))).scalars().all()
            for number, delivery_id in enumerate(rows):
                await conn.execute(
                    attempts.insert().values(
                        delivery_id=delivery_id, number=1, started_at=datetime.now(UTC),
                        duration_ms=1, request_headers={}, status=500,
                        response_excerpt=None, error=f"attempt {number}",
                    )
                )  # fmt: skip

        purged = await service.store.locations.delete_location("loc-1", batch=3)

        assert (purged.events, purged.deliveries, purged.attempts) == (7, 7, 7)
        assert purged.transactions == 4  # 3 + 3 + 1 events, then the location itself
        async with service.store.db.read() as conn:
            left = (await conn.execute(select(events.c.location_id))).scalars().all()
            hooks = (await conn.execute(select(subscriptions.c.location_id))).scalars().all()
            count = len((await conn.execute(select(attempts.c.delivery_id))).all())
        assert set(left) == {"loc-2"} and len(left) == 7
        assert hooks == ["loc-2"]
        assert count == 7
        assert [loc.id for loc in await service.locations.get_all()] == ["loc-2"]
    finally:
        await service.close()


def sample(event_type: str) -> Any:
    return dict(catalog.get_event_type(event_type).sample)


# ---- the CLI ------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_cli_disables_enables_and_deletes_operators_and_locations(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    assert run_cli("operators", "create", "acme", db=db).returncode == 0
    for location in ("loc-1", "loc-2"):
        made = run_cli(
            "locations", "create", location, "--name", "Café", "--operator", "acme", db=db
        )
        assert made.returncode == 0, made.stderr

    disabled = run_cli("locations", "disable", "loc-1", db=db)
    assert disabled.returncode == 0, disabled.stderr
    listed = run_cli("locations", "list", db=db)
    assert "disabled" in listed.stdout
    assert run_cli("operators", "disable", "acme", db=db).returncode == 0
    assert "disabled" in run_cli("operators", "list", db=db).stdout
    refused = run_cli("locations", "enable", "loc-1", db=db)
    assert refused.returncode == 1 and "operator 'acme' is disabled" in refused.stderr
    assert run_cli("operators", "enable", "acme", db=db).returncode == 0

    unconfirmed = run_cli("locations", "delete", "loc-1", db=db)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    gone = run_cli("locations", "delete", "loc-1", "--yes", "--json", db=db)
    assert gone.returncode == 0, gone.stderr
    assert '"deleted": true' in gone.stdout
    assert run_cli("operators", "delete", "acme", "--yes", db=db).returncode == 0
    assert "acme" not in run_cli("operators", "list", db=db).stdout


# ---- at rest -------------------------------------------------------------------------------------


async def test_disabling_changes_no_other_operators_webhooks(
    make_settings: Callable[..., Settings],
) -> None:
    service = await Service.open(make_settings(), migrate=True)
    try:
        for name, location in (("acme", "loc-1"), ("other", "loc-9")):
            await service.operators.create(name)
            await service.locations.create(location, "Café", name)
            await service.webhooks.create(location, "customer.create", "http://127.0.0.1:9/a")
        await service.operators.set_status("acme", "disabled")
        async with service.store.db.read() as conn:
            statuses = dict(
                (
                    await conn.execute(
                        select(subscriptions.c.location_id, webhooks.c.status).join(
                            webhooks, webhooks.c.id == subscriptions.c.webhook_id
                        )
                    )
                ).all()
            )
        assert statuses == {"loc-1": "disabled", "loc-9": "enabled"}
    finally:
        await service.close()
