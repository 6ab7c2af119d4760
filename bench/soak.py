"""A soak: the service as production runs it, for minutes, watched minute by minute.

Usage::

    .venv/bin/python bench/soak.py [--minutes 20] [--rate 100] [--failing 0.05]
        [--retention 5m] [--processes 2] [--db postgresql|sqlite] [--json FILE]

Starts ``hotspot-webhooks api`` and ``hotspot-webhooks worker --processes N`` as their own
processes on a database of the bench's own (``hw_bench_<hex>`` on the PostgreSQL server at
127.0.0.1:5432, dropped at the end; or a SQLite file), with ``RETENTION`` set and new events
announced at once (``LOW_LATENCY``). Twenty locations, one webhook each; ``--failing`` of them
point at receivers that answer 500 to everything (their deliveries retry, their circuits open),
the rest at receivers that answer 200. This process emits ``--rate`` events a second over the
REST API, spread over the locations, and serves the receivers, which note the first arrival
of each event id.

Each minute it prints: events accepted (202) and refused, how many of the minute's events
reached a receiver, p50 and p99 of event → first request (from just before the POST to the
first byte at the receiver, the same clock), the database's size, and the resident memory of
the API and of each worker process. At the end it stops emitting, waits (bounded) for the last
deliveries to healthy receivers, and says whether every accepted event reached its receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

import _rig

LOCATIONS = 20
ADMIN_TOKEN = "soak-admin-token-" + "x" * 24
DRAIN_SECONDS = 180.0
FAILURE = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope"


@dataclass
class Arrivals:
    """First arrival (unix time) of each event id, at healthy and at failing receivers."""

    first: dict[str, float] = field(default_factory=dict)
    requests: int = 0


class Receiver(asyncio.Protocol):
    """Keep-alive HTTP/1.1: notes each request's ``webhook-id`` and answers 200 (or 500)."""

    def __init__(self, arrivals: Arrivals, answer: bytes) -> None:
        self.arrivals = arrivals
        self.answer = answer
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = re.search(r"(?im)^content-length:\s*(\d+)", head)
            size = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < size:
                return
            event = re.search(r"(?im)^webhook-id:\s*(\S+)", head)
            if event:
                self.arrivals.first.setdefault(event.group(1), time.time())
            self.arrivals.requests += 1
            self.buffer = self.buffer[size:]
            assert self.transport is not None
            self.transport.write(self.answer)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def wait_ready(url: str, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.25)
    raise SystemExit(f"{what} did not answer 200 at {url} within {seconds:.0f} s")


class Soak:
    def __init__(self, args: argparse.Namespace, database_url: str, tmp: Path) -> None:
        self.args = args
        self.database_url = database_url
        self.tmp = tmp
        self.api_port = _rig_free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.healthy = Arrivals()
        self.failing = Arrivals()
        self.sent: dict[str, float] = {}  # event id -> unix time just before its POST
        self.accepted: dict[str, bool] = {}  # event id -> goes to a healthy receiver
        self.refused: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOTSPOT_WEBHOOKS_DATABASE_URL=self.database_url,
            HOTSPOT_WEBHOOKS_SECRET_KEY=_rig.SECRET_KEY,
            HOTSPOT_WEBHOOKS_ADMIN_TOKEN=ADMIN_TOKEN,
            HOTSPOT_WEBHOOKS_RETENTION=self.args.retention,
            HOTSPOT_WEBHOOKS_LOW_LATENCY="true",
            HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
            PYTHONPATH=str(_rig.SRC),
        )
        return env

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", *args],
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    async def setup(self, http: aiohttp.ClientSession) -> tuple[list[tuple[str, bool]], list[Any]]:
        """Migrate, start the API, make the locations and webhooks; (location, healthy) pairs."""
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hotspot_webhooks", "migrate", env=self.env()
        )
        if await migrate.wait() != 0:
            raise SystemExit("migrate failed")
        self.api = self.start(
            "api", "--host", "127.0.0.1", "--port", str(self.api_port), log="api.log"
        )
        await wait_ready(f"{self.base}/readyz", "the API")
        loop = asyncio.get_running_loop()
        servers = []
        healthy_port, failing_port = _rig_free_port(), _rig_free_port()
        servers.append(
            await loop.create_server(
                lambda: Receiver(self.healthy, _rig.RESPONSE), "127.0.0.1", healthy_port
            )
        )
        servers.append(
            await loop.create_server(
                lambda: Receiver(self.failing, FAILURE), "127.0.0.1", failing_port
            )
        )
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with http.post(
            f"{self.base}/v1/operators", json={"name": "soak"}, headers=admin
        ) as r:
            operator = await r.json()
        self.auth = {"Authorization": f"Bearer {operator['token']}"}
        failing_count = round(LOCATIONS * self.args.failing)
        locations = []
        for n in range(LOCATIONS):
            location = f"soak-{n:02d}"
            healthy = n >= failing_count
            port = healthy_port if healthy else failing_port
            async with http.post(
                f"{self.base}/v1/locations",
                json={"id": location, "name": location},
                headers=self.auth,
            ) as r:
                assert r.status == 201, await r.text()
            body = {
                "location_id": location,
                "event_types": ["*"],
                "callback_url": f"http://127.0.0.1:{port}/hook/{location}",
            }
            async with http.post(f"{self.base}/v1/webhooks", json=body, headers=self.auth) as r:
                assert r.status == 201, await r.text()
            locations.append((location, healthy))
        async with http.get(f"{self.base}/v1/event-types", headers=self.auth) as r:
            types = (await r.json())["data"]
        self.worker = self.start(
            "worker", "--processes", str(self.args.processes), log="worker.log"
        )
        return locations, [(t["name"], t["sample"]) for t in types if t.get("builtin", True)]

    async def emit(
        self, http: aiohttp.ClientSession, location: str, healthy: bool, kind: str, data: Any
    ) -> None:
        event_id = f"soak-{secrets.token_hex(8)}"
        body = {"id": event_id, "type": kind, "location_id": location, "data": data}
        self.sent[event_id] = time.time()
        try:
            async with http.post(f"{self.base}/v1/events", json=body, headers=self.auth) as r:
                await r.read()
                if r.status == 202:
                    self.accepted[event_id] = healthy
                else:
                    self.refused.append(f"{r.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.refused.append(type(exc).__name__)

    async def warm_up(
        self, http: aiohttp.ClientSession, locations: list[tuple[str, bool]], samples: list[Any]
    ) -> None:
        """One event to a healthy receiver, awaited: the workers are up before the clock runs."""
        location = next(name for name, healthy in locations if healthy)
        await self.emit(http, location, True, *samples[0])
        deadline = time.monotonic() + 120
        while not self.healthy.first.keys() >= self.accepted.keys():
            if time.monotonic() > deadline:
                raise SystemExit("the workers delivered no warm-up event within 120 s")
            await asyncio.sleep(0.1)
        self.sent.clear()
        self.accepted.clear()

    async def database_bytes(self) -> int:
        if self.database_url.startswith("sqlite:///"):
            path = Path(self.database_url.removeprefix("sqlite:///"))
            return sum(
                p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
            )
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
            return size
        finally:
            await conn.close()

    async def autovacuum(self) -> str:
        """PostgreSQL's autovacuum setting, said: without it a purge's space is not reused."""
        if self.database_url.startswith("sqlite:///"):
            return ""
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            return f" (PostgreSQL's autovacuum: {await conn.fetchval('SHOW autovacuum')})"
        finally:
            await conn.close()

    def memory(self) -> dict[str, float]:
        workers = [p for p in _rig.process_tree(self.worker.pid) if p != self.worker.pid]
        found = {"api": rss_mb(self.api.pid), "supervisor": rss_mb(self.worker.pid)}
        for n, pid in enumerate(sorted(workers)):
            found[f"worker{n + 1}"] = rss_mb(pid)
        return found

    def minute_row(self, minute: int, start: float) -> dict[str, Any]:
        low, high = start + 60 * minute, start + 60 * (minute + 1)
        ids = [i for i, at in self.sent.items() if low <= at < high]
        accepted = [i for i in ids if i in self.accepted]
        latencies = []
        for event_id in accepted:
            book = self.healthy if self.accepted[event_id] else self.failing
            if event_id in book.first:
                latencies.append(book.first[event_id] - self.sent[event_id])
        return {
            "minute": minute + 1,
            "emitted": len(ids),
            "accepted": len(accepted),
            "reached": len(latencies),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        }

    async def run(self) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            locations, samples = await self.setup(http)
            await self.warm_up(http, locations, samples)
            start_size = await self.database_bytes()
            vacuum = await self.autovacuum()
            print(f"database at the start: {start_size / 1e6:.1f} MB{vacuum}", flush=True)
            start = time.time()
            rows: list[dict[str, Any]] = []
            pending: set[asyncio.Task[None]] = set()
            total = int(self.args.minutes * 60 * self.args.rate)
            clock = time.monotonic()
            next_report = 1
            for n in range(total):
                await asyncio.sleep(max(0.0, clock + n / self.args.rate - time.monotonic()))
                location, healthy = locations[n % len(locations)]
                kind, data = samples[n % len(samples)]
                task = asyncio.create_task(self.emit(http, location, healthy, kind, data))
                pending.add(task)
                task.add_done_callback(pending.discard)
                if time.time() >= start + 60 * next_report + 5:  # the minute's stragglers in
                    rows.append(await self.report(next_report - 1, start))
                    next_report += 1
            await asyncio.gather(*pending)
            # the last minutes: wait for the healthy receivers to have every accepted event
            deadline = time.monotonic() + DRAIN_SECONDS
            wanted = {i for i, healthy in self.accepted.items() if healthy}
            while time.monotonic() < deadline and not wanted <= self.healthy.first.keys():  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            while next_report <= self.args.minutes:
                rows.append(await self.report(next_report - 1, start))
                next_report += 1
            missing = sorted(wanted - self.healthy.first.keys())
            failing_wanted = {i for i, healthy in self.accepted.items() if not healthy}
            summary = {
                "minutes": self.args.minutes,
                "rate": self.args.rate,
                "accepted": len(self.accepted),
                "refused": len(self.refused),
                "refusals": sorted(set(self.refused))[:10],
                "healthy_accepted": len(wanted),
                "healthy_delivered": len(wanted & self.healthy.first.keys()),
                "missing": missing[:20],
                "failing_accepted": len(failing_wanted),
                "failing_first_attempts": len(failing_wanted & self.failing.first.keys()),
                "failing_requests": self.failing.requests,
                "database_mb_start": round(start_size / 1e6, 1),
                "database_mb_end": round(await self.database_bytes() / 1e6, 1),
                "rows": rows,
            }
            return summary

    async def report(self, minute: int, start: float) -> dict[str, Any]:
        row = self.minute_row(minute, start)
        row["database_mb"] = round(await self.database_bytes() / 1e6, 1)
        row["rss_mb"] = {k: round(v, 1) for k, v in self.memory().items()}
        print(
            f"min {row['minute']:3d}: emitted {row['emitted']:5d} accepted {row['accepted']:5d} "
            f"reached {row['reached']:5d}  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:8.1f} ms"
            f"  db {row['database_mb']:7.1f} MB  rss "
            + " ".join(f"{k} {v:.0f}" for k, v in row["rss_mb"].items()),
            flush=True,
        )
        return row

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _rig_free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--failing", type=float, default=0.05)
    parser.add_argument("--retention", default="5m")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="PostgreSQL: a throwaway cluster of the bench's own (initdb, autovacuum on as "
        "PostgreSQL ships it) instead of the machine's server",
    )
    parser.add_argument("--json", type=Path, help="write the summary here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-soak-") as tmp, contextlib.ExitStack() as stack:
        async with _rig.Databases(args.db, Path(tmp)) as databases:
            if args.cluster:
                from tests.pg_cluster import PgCluster

                cluster = PgCluster.create()
                stack.callback(cluster.destroy)
                url = await cluster.create_database("soak")
            else:
                url = await databases.create()
            soak = Soak(args, url, Path(tmp))
            try:
                summary = await soak.run()
            finally:
                soak.stop()
                for log in ("api.log", "worker.log"):
                    text = (
                        (Path(tmp) / log).read_text(errors="replace")
                        if (Path(tmp) / log).exists()
                        else ""
                    )
                    errors = [
                        line for line in text.splitlines() if "ERROR" in line or "Traceback" in line
                    ]
                    if errors:
                        print(f"{log}: {len(errors)} error lines, first: {errors[0][:300]}")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    delivered = summary["healthy_delivered"] == summary["healthy_accepted"]
    print("accepted = delivered" if delivered else "SOME ACCEPTED EVENTS WERE NOT DELIVERED")
    sys.exit(0 if delivered else 1)


if __name__ == "__main__":
    asyncio.run(main())
