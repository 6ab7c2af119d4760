"""``hotspot-webhooks simulate`` as a user runs it: against a real ``serve`` over REST, with every
event delivered to a real receiver, and straight into the database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.receiver import (
    ORIGINAL_HEADER,
    ORIGINAL_HEADER_LITERAL,
    verify_signature,
    verify_standard_signature,
)
from hotspot_webhooks.service import Service
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver, free_port


async def simulate(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start the real command; the test's event loop (and the receiver in it) keeps running."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "simulate", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=tempfile.mkdtemp(prefix="hw-sim-"),
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


async def finished(process: asyncio.subprocess.Process, within: float) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    """``hotspot-webhooks serve`` in its own process, on SQLite, passes every 0.5 s."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hotspot_webhooks", "serve", "--port", str(port),
            "--interval", "0.5", "--db", f"sqlite:///{tmp_path / 'serve.db'}",
            stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN_TOKEN,
                 "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.returncode is None, log.read_text()
                await asyncio.sleep(0.05)
        yield url
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 20)


def verified(request: Any, api_key: str) -> dict[str, Any]:
    """The delivery checked as a receiver checks it: both HMAC header names and Standard
    Webhooks; its payload as the catalog defines its type."""
    assert verify_signature(request.body, request.header(ORIGINAL_HEADER), api_key)
    assert verify_signature(request.body, request.header_dict[ORIGINAL_HEADER_LITERAL], api_key)
    assert verify_standard_signature(request.header_dict, request.body, api_key)
    data = json.loads(request.body)
    event_type = catalog.EVENT_TYPES[str(request.header("X-Hotspotsystem-Event"))]
    assert catalog.validate(event_type, data) == data
    return data


@pytest.mark.timeout(240)
async def test_simulate_for_30s_at_100_per_second_and_every_event_is_delivered(
    served: str, python_receiver: PythonReceiver
) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = await client.post("/v1/operators", json={"name": "acme"}, headers=admin)
        token = created.json()["token"]
        hook = await client.post(
            "/v1/webhooks",
            json={"location_ids": ["*"], "event_types": ["*"], "callback_url": python_receiver.url},
            headers={"Authorization": f"Bearer {token}"},
        )  # every location of acme, present and future, every type
        assert hook.status_code == 201, hook.text
    api_key = hook.json()["api_key"]

    process = await simulate(
        "--locations", "3", "--rate", "100", "--duration", "30s", "--seed", "13", "--json",
        env={"HOTSPOT_WEBHOOKS_URL": served, "HOTSPOT_WEBHOOKS_TOKEN": token},
    )  # fmt: skip
    code, out, err = await finished(process, 120)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["events"] == 3000
    assert summary["failed_events"] == 0 and summary["errors"] == []
    assert summary["deliveries"] == 3000  # one webhook subscribed to every simulated location
    assert summary["locations"] == ["sim-001", "sim-002", "sim-003"]
    assert set(summary["by_type"]) == set(catalog.EVENT_TYPES)
    assert sum(summary["by_type"].values()) == 3000
    assert 29 <= summary["seconds"] < 45, "the rate is held: 3,000 events take about 30 s"
    assert summary["rate"]["achieved"] > 70
    assert summary["latency_ms"]["requests"] >= 150  # batches of what falls due each 0.1 s

    deadline = asyncio.get_running_loop().time() + 90
    while len({r.header("webhook-id") for r in python_receiver.requests}) < 3000:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{len(python_receiver.requests)} of 3000 delivered"
        )
        await asyncio.sleep(0.2)
    received: dict[str, str] = {}  # event id → type (a retried delivery comes twice)
    for request in python_receiver.requests:
        verified(request, api_key)
        event_id = str(request.header("webhook-id"))
        assert event_id.startswith(summary["run"] + "-")
        assert request.header("X-Hotspotsystem-Location") in summary["locations"]
        received[event_id] = str(request.header("X-Hotspotsystem-Event"))
    assert len(received) == summary["events"] == 3000
    assert Counter(received.values()) == summary["by_type"]


async def test_simulate_into_the_database_repeats_its_payloads_with_a_seed(
    service: Service, database_url: str
) -> None:
    await service.operators.create("acme")
    await service.webhooks.create(
        location_ids=["*"], event_types=["*"], callback_url="http://127.0.0.1:9/hook",
        operator="acme",
    )  # fmt: skip
    runs = []
    for _ in range(2):
        process = await simulate(
            "--db", database_url, "--locations", "1", "--rate", "40", "--duration", "2",
            "--seed", "5", "--operator", "acme", "--json",
        )  # fmt: skip
        code, out, err = await finished(process, 60)
        assert code == 0, err
        runs.append(json.loads(out))
    first, second = runs
    assert first["events"] == second["events"] == 80
    assert first["deliveries"] == 80 and first["failed_events"] == 0
    assert first["by_type"] == second["by_type"]
    assert [loc.id for loc in await service.locations.get_all("acme")] == ["sim-001"]

    stored: dict[str, list[dict[str, Any]]] = {first["run"]: [], second["run"]: []}
    cursor = None
    while True:
        page = await service.events.get_all(cursor=cursor, limit=1000)
        for event in page.data:
            stored[event.id.rsplit("-", 1)[0]].append(event.data)
            assert event.deliveries == 1
        if not (cursor := page.next_cursor):
            break
    assert len(stored[first["run"]]) == len(stored[second["run"]]) == 80

    def undated(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in ("registered_at", "action_date_gmt")}

    # (one location: with several, which is busiest follows the hour at each of them)
    same_seed = [sorted(map(json.dumps, map(undated, events))) for events in stored.values()]
    assert same_seed[0] == same_seed[1], "the same seed makes the same payloads"


async def test_ctrl_c_stops_cleanly_with_the_summary_of_what_was_stored(
    service: Service, database_url: str
) -> None:
    process = await simulate(
        "--db", database_url, "--rate", "30", "--duration", "5m", "--json",
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 60
    while not (await service.events.get_all(limit=1)).data:
        assert asyncio.get_running_loop().time() < deadline, "nothing was emitted"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    process.send_signal(signal.SIGINT)
    code, out, err = await finished(process, 30)
    assert code == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["failed_events"] == 0
    stored = (await service.events.get_all(limit=1000)).data
    assert summary["events"] == len(stored) > 0
    assert [loc.id for loc in await service.locations.get_all("simulator")] == [
        "sim-001", "sim-002", "sim-003",
    ]  # fmt: skip


async def test_server_errors_are_counted_and_shown_with_their_message(api: LiveAPI) -> None:
    token = await api.operator_at("loc-gone", "loc-stays")
    process = await simulate(
        "--url", api.url, "--token", token, "--location", "loc-gone", "--location", "loc-stays",
        "--rate", "20", "--duration", "6", "--batch", "1",
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 60
    while not (await api.ok("GET", "/v1/events?location_id=loc-gone", token))["data"]:
        assert asyncio.get_running_loop().time() < deadline, "nothing was emitted"
        await asyncio.sleep(0.05)
    await api.ok("DELETE", "/v1/locations/loc-gone", token)
    code, out, err = await finished(process, 60)
    assert code == 1, out + err
    assert "events refused" in out
    assert "location 'loc-gone' does not exist" in out, out  # the server's own words
    assert "no errors" not in out


BAD_OPTIONS = {
    "unknown event type 'session.start'": ["--types", "customer.create,session.start"],
    "'soon' is not a duration": ["--duration", "soon"],
    "not both": ["--locations", "2", "--location", "x"],
    "--url needs --token": ["--url", "http://127.0.0.1:9"],
}


async def test_bad_options_are_refused_naming_the_option() -> None:
    started = [await simulate(*args) for args in BAD_OPTIONS.values()]  # side by side
    answers = await asyncio.gather(*(finished(process, 60) for process in started))
    for message, (code, _, err) in zip(BAD_OPTIONS, answers, strict=True):
        assert code == 2, err
        assert message in " ".join(err.split()), err
