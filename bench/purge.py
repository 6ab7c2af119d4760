"""Retention on a big database: ``purge --older-than 30d`` over ``--rows`` old deliveries.

Usage::

    .venv/bin/python bench/purge.py [--rows 1000000] [--db sqlite|postgresql]

Fills a database (SQLite file, or a ``hw_bench_<hex>`` database on the PostgreSQL server at
127.0.0.1:5432, dropped at the end) with ``--rows`` events 40 days old, each with one
succeeded delivery and its attempt, plus a tenth as many recent ones, written set-based in SQL.
Then runs ``hotspot-webhooks purge --older-than 30d --json`` as its own process and reports
what it deleted, how long it took, the purge process's peak RSS and its longest transaction
(how long it held the writer at most: what an emit or a claim could have waited for it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _rig
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service

SECRET_KEY = _rig.SECRET_KEY


def fill_sql(dialect: str, old: int, recent: int) -> list[str]:
    """Events, deliveries and attempts, ``old`` of them 40 days old, ``recent`` of today."""
    if dialect == "sqlite":
        series = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {k})"
        when = "datetime('now', '-40 days')", "datetime('now')"
        text_of = "CAST(i AS TEXT)"
        rows = "SELECT i FROM n"
    else:
        series = ""
        when = "now() - interval '40 days'", "now()"
        text_of = "i::text"
        rows = "SELECT i FROM generate_series(1, {k}) AS i"
    statements = []
    for prefix, count, created in (("old", old, when[0]), ("new", recent, when[1])):
        head = series.format(k=count)
        source = rows.format(k=count)
        statements += [
            f"{head} INSERT INTO events (id, type, location_id, body, delivery_count, created_at)"
            f" SELECT '{prefix}-' || {text_of}, 'customer.create', 'bench', "
            f"{_body(dialect)}, 1, {created} FROM ({source}) AS s",
            f"{head} INSERT INTO deliveries (id, event_id, webhook_id, status, attempt_count, "
            f"created_at, delivered_at) SELECT 'dlv_{prefix}-' || {text_of}, "
            f"'{prefix}-' || {text_of}, 'wh_bench', 'succeeded', 1, {created}, {created} "
            f"FROM ({source}) AS s",
            f"{head} INSERT INTO attempts (delivery_id, number, started_at, duration_ms, "
            f"request_headers, status, response_excerpt) SELECT 'dlv_{prefix}-' || {text_of}, "
            f"1, {created}, 3, '{_headers()}', 200, 'ok' FROM ({source}) AS s",
        ]
    return statements


def _body(dialect: str) -> str:
    body = '{"id":"1","name":"Jane Doe","email":"jane@example.com","phone":"+44 20 7946 0000"}'
    return f"CAST('{body}' AS BLOB)" if dialect == "sqlite" else f"'{body}'::bytea"


def _headers() -> str:
    names = [f"X-Hotspotsystem-Header-{n}" for n in range(11)]
    return json.dumps({name: "x" * 44 for name in names})


async def prepare(url: str, rows: int) -> None:
    settings = Settings(database_url=url, secret_key=SECRET_KEY, _env_file=None)  # type: ignore[call-arg]
    service = await Service.open(settings, migrate=True)
    try:
        async with service.store.db.write() as conn:
            dialect = conn.dialect.name
            for statement in (
                "INSERT INTO operators (id, name, created_at) VALUES ('op_bench', 'bench', "
                "CURRENT_TIMESTAMP)",
                "INSERT INTO locations (id, name, operator_id, created_at) VALUES ('bench', "
                "'Bench', 'op_bench', CURRENT_TIMESTAMP)",
                "INSERT INTO webhooks (id, location_id, event_type, callback_url, "
                "api_key_encrypted, status, created_at, updated_at) VALUES ('wh_bench', 'bench', "
                "'customer.create', 'http://127.0.0.1:9/hook', 'x', 'enabled', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                *fill_sql(dialect, rows, rows // 10),
            ):
                await conn.exec_driver_sql(statement)
    finally:
        await service.close()


def purge(url: str) -> tuple[dict[str, float], float, float]:
    env = {**os.environ, "HOTSPOT_WEBHOOKS_DATABASE_URL": url,
           "HOTSPOT_WEBHOOKS_SECRET_KEY": SECRET_KEY}  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hotspot_webhooks", "purge", "--older-than", "30d", "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(done.stdout), seconds, peak_mb


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as tmp:
        async with _rig.Databases(args.db, Path(tmp)) as databases:
            url = await databases.create()
            started = time.perf_counter()
            await prepare(url, args.rows)
            filled = time.perf_counter() - started
            print(
                f"{args.db}: {args.rows} old events with a delivery and an attempt each, and "
                f"{args.rows // 10} recent ones (filled in {filled:.0f} s)",
                flush=True,
            )
            purged, seconds, peak_mb = await asyncio.to_thread(purge, url)
            print(
                f"  purge --older-than 30d: {purged['deliveries']} deliveries, "
                f"{purged['attempts']} attempts, {purged['events']} events in {seconds:.1f} s "
                f"({purged['deliveries'] / seconds:.0f} deliveries/s); "
                f"{purged['transactions']} transactions, the longest "
                f"{purged['longest_transaction'] * 1000:.0f} ms; peak RSS {peak_mb:.0f} MB"
            )


if __name__ == "__main__":
    asyncio.run(main())
