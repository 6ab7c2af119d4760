"""Does ``RETENTION`` keep a busy database at its size? A short soak, on SQLite.

Usage::

    .venv/bin/python bench/retention_soak.py [--retention 2m] [--minutes 8] [--rate 100]

Runs a real ``hotspot-webhooks worker`` (``RETENTION`` set) against a SQLite file in a
temporary directory, delivering to a receiver on 127.0.0.1 that answers 200 at once, while this
process emits ``--rate`` events a second. Every 30 s it prints the database's size (the file and
its -wal) and its rows; at the end, the growth over the second half of the run. With purges
every tenth of the retention (at least 30 s apart), the size levels off after about the
retention plus one period and stays there: pages purged are reused, not given back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import EmitRequest, Service

MiB = 1 << 20
EVENT = "customer.create"


async def receiver() -> tuple[web.AppRunner, int]:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def measure(db: Path) -> tuple[float, dict[str, int]]:
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("events", "deliveries", "attempts")
        }
    return size / MiB, rows


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", "worker"], env=env, stderr=stderr
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retention", default="2m")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=100, help="events a second")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hw-soak-"))
    db = home / "hooks.db"
    url = f"sqlite:///{db}"
    runner, port = await receiver()
    service = await Service.open(
        Settings(_env_file=None, database_url=url, allow_private_targets=True), migrate=True
    )
    await service.create_operator("acme")
    await service.create_location("loc-1", "Soak", "acme")
    await service.create_webhook("loc-1", EVENT, f"http://127.0.0.1:{port}/hook")
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": url,
        "HOTSPOT_WEBHOOKS_RETENTION": args.retention,
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_INTERVAL": "0.5",  # the emits are another process's: claim often
    }
    worker = start_worker(env, home / "worker.log")
    sample = catalog.EVENT_TYPES[EVENT].sample
    began = time.monotonic()
    samples: list[tuple[float, float]] = []
    next_report, emitted = 0.0, 0
    print(f"RETENTION={args.retention}, {args.rate} events/s, {args.minutes} min; {db}")
    print(" minute  MiB (db+wal)   events  deliveries  attempts")
    try:
        while (elapsed := time.monotonic() - began) < args.minutes * 60:
            due = int(elapsed * args.rate) - emitted
            if due > 0:
                batch = [EmitRequest(EVENT, "loc-1", sample, None) for _ in range(min(due, 1000))]
                await service.emit_many(batch)
                emitted += len(batch)
            if elapsed >= next_report:
                size, rows = await asyncio.to_thread(measure, db)
                samples.append((elapsed, size))
                print(
                    f"{elapsed / 60:7.1f}  {size:12.1f}  {rows['events']:7d}  "
                    f"{rows['deliveries']:10d}  {rows['attempts']:8d}",
                    flush=True,
                )
                next_report += 30
            await asyncio.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(60)
        await service.close()
        await runner.cleanup()
    half = [size for at, size in samples if at >= args.minutes * 30]
    print(
        f"emitted {emitted}; second half: {min(half):.1f} to {max(half):.1f} MiB "
        f"(growth {max(half) - half[0]:+.1f} MiB); log {home / 'worker.log'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
