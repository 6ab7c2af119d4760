"""Ingest throughput: events accepted over REST, each durably committed with its deliveries
before the answer.

    .venv/bin/python bench/ingest.py [--batches 30] [--singles 6000] [--clients 32] [--rounds 3]
                                     [--fanout none|exact|wildcard]

Each round starts, in its own process, ``hotspot-webhooks api`` on a fresh SQLite file (WAL,
``synchronous=FULL``: every answer waits for its fsync) with one webhook per event type at the
location, so every event is stored with one delivery. It measures:
  * batched: ``POST /v1/events/batch`` with 1000 events each, 2 clients;
  * single: ``POST /v1/events`` from ``--clients`` concurrent clients.
With ``--fanout`` the operator has 50 locations and the events are spread over them; each
event is stored with 11 deliveries: ``wildcard`` subscribes 10 webhooks to all locations and
types (``["*"]``) and 300 to one location and one type each (one per pair); ``exact`` makes
the same 11 deliveries per event with one-location webhooks only (10 per location, and the
300), the only way before subscriptions, so ``bench/versus.py REV --script-from-here
--before "--fanout exact" -- --fanout wildcard`` compares the two ways in one run.
Then, interleaved, the same load against a ceiling: a bare FastAPI app on the same uvicorn
that reads the body, parses the JSON and answers 202 (no validation, no database). Figures are
events/s and their ratio to the ceiling's; machines are noisy, so compare ratios.
After each round the database is opened and counted: every accepted event is there with its
delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from fastapi import FastAPI, Request, Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("HW_BENCH_SRC") or str(ROOT / "src"))  # bench/versus.py

from hotspot_webhooks import catalog  # noqa: E402
from hotspot_webhooks.traffic import Traffic  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
TYPES = list(catalog.EVENT_TYPES)
FANOUT_LOCATIONS = [f"loc-{n:02d}" for n in range(50)]
FANOUT_WIDE = 10  # webhooks on every location and type
PER_EVENT = {"none": 1, "exact": FANOUT_WIDE + 1, "wildcard": FANOUT_WIDE + 1}
DISTINCT_EVENTS = 1000  # generated payloads, sent in turn


def events_for(fanout: str) -> list[dict[str, object]]:
    """The events sent, in turn: realistic, seeded traffic (``traffic.py``; the same in every
    round and run) at the one location or, fan-out, across the 50. Without ids, so the server
    makes one for each and an event sent again is a new event."""
    locations = ["loc-bench"] if fanout == "none" else FANOUT_LOCATIONS
    traffic = Traffic(locations, seed=2026, operator="bench")
    return [
        {"type": e.type, "location_id": e.location_id, "data": e.data}
        for e in traffic.events(DISTINCT_EVENTS)
    ]


# ---- the ceiling: the same server stack with nothing behind it ------------------------------


def ceiling_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/events")
    async def single(request: Request) -> Response:
        json.loads(await request.body())
        return Response(
            b'{"id":"evt","deliveries":1,"duplicate":false}', 202, media_type="application/json"
        )

    @app.post("/v1/events/batch")
    async def batch(request: Request) -> Response:
        events = json.loads(await request.body())["events"]
        answer = [{"id": "evt", "deliveries": 1, "duplicate": False} for _ in events]
        return Response(json.dumps({"data": answer}).encode(), 202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_ceiling(port: int) -> None:
    import uvicorn

    uvicorn.run(ceiling_app(), host="127.0.0.1", port=port, log_level="warning")


# ---- servers ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def start_product(port: int, db: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN,
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hotspot_webhooks", "api", "--port", str(port), "--db",
         f"sqlite:///{db}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_ceiling(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--ceiling-server", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


async def set_up(url: str, fanout: str) -> str:
    """Operator, locations and webhooks (to a port nobody listens on): one per type at one
    location, or the fan-out case (see the module's docstring)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(base_url=url) as session:
        async with session.post("/v1/operators", json={"name": "bench"}, headers=admin) as r:
            token = str((await r.json())["token"])
        headers = {"Authorization": f"Bearer {token}"}

        async def post(path: str, body: dict[str, object]) -> None:
            async with session.post(path, json=body, headers=headers) as r:
                assert r.status == 201, await r.text()

        hook = "http://127.0.0.1:9/hook"
        locations = ["loc-bench"] if fanout == "none" else FANOUT_LOCATIONS
        for location in locations:
            await post("/v1/locations", {"id": location, "name": "Bench"})
            for event_type in TYPES:  # one webhook per (location, type)
                await post(
                    "/v1/webhooks",
                    {"location_id": location, "event_type": event_type, "callback_url": hook},
                )
        if fanout == "wildcard":
            for _ in range(FANOUT_WIDE):
                await post(
                    "/v1/webhooks",
                    {"location_ids": ["*"], "event_types": ["*"], "callback_url": hook},
                )
        elif fanout == "exact":  # the same deliveries without "*": a copy per location and type
            for _ in range(FANOUT_WIDE):
                for location in locations:
                    for event_type in TYPES:
                        await post(
                            "/v1/webhooks",
                            {"location_id": location, "event_type": event_type,
                             "callback_url": hook},
                        )  # fmt: skip
    return token


# ---- load ---------------------------------------------------------------------------------


async def batched(
    url: str, token: str, batches: int, events: list[dict[str, object]], clients: int = 2
) -> float:
    """Events/s through POST /v1/events/batch (1000 events per request)."""
    bodies = [
        json.dumps({"events": [events[(b + i) % len(events)] for i in range(1000)]}).encode()
        for b in range(batches)
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue = list(bodies)
    accepted = 0
    answers: list[tuple[int, int]] = []  # (status, results) of each request

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while queue:
            body = queue.pop()
            async with session.post("/v1/events/batch", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()
                results = len((await r.json())["data"])
                answers.append((r.status, results))
                accepted += results

    async with aiohttp.ClientSession(base_url=url) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    assert accepted == batches * 1000, f"{accepted} of {batches * 1000} accepted: {answers}"
    return accepted / elapsed


async def singles(
    url: str, token: str, count: int, clients: int, events: list[dict[str, object]]
) -> float:
    """Events/s through POST /v1/events from ``clients`` concurrent clients."""
    bodies = [json.dumps(event).encode() for event in events]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    remaining = count

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            body = bodies[remaining % len(bodies)]
            async with session.post("/v1/events", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()
                await r.read()

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return count / elapsed


def count_stored(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    return int(events), int(deliveries)


async def product_round(args: argparse.Namespace, workdir: Path, n: int) -> tuple[float, float]:
    db = workdir / f"round-{n}.db"
    port = free_port()
    process = start_product(port, db)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        token = await set_up(url, args.fanout)
        events = events_for(args.fanout)
        batch_rate = await batched(url, token, args.batches, events)
        single_rate = await singles(url, token, args.singles, args.clients, events)
    finally:
        stop(process)
    stored, deliveries = count_stored(db)
    expected = args.batches * 1000 + args.singles
    assert stored == expected, "an accepted event is missing"
    assert deliveries == expected * PER_EVENT[args.fanout], "a delivery is missing"
    return batch_rate, single_rate


async def ceiling_round(args: argparse.Namespace) -> tuple[float, float]:
    port = free_port()
    process = start_ceiling(port)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        events = events_for(args.fanout)
        return (
            await batched(url, "x", args.batches, events),
            await singles(url, "x", args.singles, args.clients, events),
        )
    finally:
        stop(process)


async def main(args: argparse.Namespace) -> None:
    print(
        f"ingest over REST: {args.batches} batches of 1000 events (2 clients), "
        f"{args.singles} single events ({args.clients} clients); SQLite, synchronous=FULL; "
        f"{os.cpu_count()} cores; fan-out {args.fanout} ({PER_EVENT[args.fanout]} deliveries "
        "per event)"
    )
    results: dict[str, list[float]] = {k: [] for k in ("batch", "single", "cb", "cs")}
    with tempfile.TemporaryDirectory(prefix="hw-ingest-") as tmp:
        for n in range(1, args.rounds + 1):
            batch_rate, single_rate = await product_round(args, Path(tmp), n)
            ceiling_batch, ceiling_single = await ceiling_round(args)
            results["batch"].append(batch_rate)
            results["single"].append(single_rate)
            results["cb"].append(ceiling_batch)
            results["cs"].append(ceiling_single)
            print(
                f"round {n}: batched {batch_rate:8,.0f} ev/s (ceiling {ceiling_batch:8,.0f}, "
                f"ratio {batch_rate / ceiling_batch:.2f}) | single {single_rate:6,.0f} ev/s "
                f"(ceiling {ceiling_single:6,.0f}, ratio {single_rate / ceiling_single:.2f})"
            )
    median = statistics.median
    batch_ratio = median(b / c for b, c in zip(results["batch"], results["cb"], strict=True))
    single_ratio = median(s / c for s, c in zip(results["single"], results["cs"], strict=True))
    print(
        f"median: batched {median(results['batch']):,.0f} events/s (ratio {batch_ratio:.2f}); "
        f"single {median(results['single']):,.0f} events/s (ratio {single_ratio:.2f})"
    )
    print("every accepted event was found stored with its delivery after each round")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--singles", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fanout", choices=sorted(PER_EVENT), default="none")
    parser.add_argument("--ceiling-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.ceiling_server:
        run_ceiling(arguments.ceiling_server)
    else:
        asyncio.run(main(arguments))
