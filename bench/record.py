"""Claiming and recording on PostgreSQL, by batch size: the worker's CPU per delivery.

    .venv/bin/python bench/record.py [--deliveries 20000] [--batches 30,60,120,250,500]
        [--rounds 2]

Fills a database on the machine's PostgreSQL with pending deliveries (as ``bench/dispatch.py``
does), then, in a fresh process per measurement, claims them as a worker does (250 at a time)
and records a successful attempt for each (its eleven signed headers, as sent), in batches of
each size given. This process's CPU is timed around each call to the store, and, apart, the
CPU of the PostgreSQL backends serving the database (read from ``/proc`` before and after
each call, outside the timed windows). Rounds interleave the sizes, on a fresh copy of the
filled database each.

Prints µs of CPU per delivery for claiming and for recording at each batch size (the server's
beside each), then the
least-squares fit of ``record = per outcome + per write / batch``: what one write costs
whatever its size (its transaction and round trips), and what each outcome adds. That fixed
cost is why the recorder lets a batch gather (``delivery/recorder.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _rig

sys.path.insert(0, str(_rig.SRC))

CLAIM = 250  # what a worker of the default settings claims at a time, about
OWNER = "bench-record:1"


async def measure(database_url: str, batch: int) -> dict[str, float]:
    """Claim everything, recording each claim's outcomes in writes of ``batch``."""
    from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers
    from hotspot_webhooks.states import DeliveryStatus
    from hotspot_webhooks.store.records import AttemptRecord, Outcome
    from hotspot_webhooks.store.store import Store

    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # as the dispatcher runs (tune_process_for_throughput)
    store = await Store.open(database_url)
    probe = await _rig.Probe.open(database_url)
    signers = [Signer("k" * 40)]
    claiming = recording = claiming_server = recording_server = 0.0
    claimed = 0
    try:
        while True:
            before = await backend_ticks(probe)
            started = time.process_time()
            now = datetime.now(UTC)
            got = await store.queue.claim_due(
                owner=OWNER,
                due_by=now,
                lease_until=now + timedelta(seconds=300),
                limit=CLAIM,
                per_webhook=CLAIM,
            )
            claiming += time.process_time() - started
            claiming_server += ticks_since(before, await backend_ticks(probe))
            if not got:
                break
            claimed += len(got)
            outcomes = []
            for each in got:
                request = DeliveryRequest(
                    each.event_id, each.event_type, each.location_id, each.id, each.attempt_number
                )
                attempt = AttemptRecord(
                    delivery_id=each.id,
                    number=each.attempt_number,
                    started_at=now,
                    duration_ms=1,
                    request_headers=delivery_headers(request, each.body, signers, int(time.time())),
                    status=200,
                    response_excerpt="OK",
                    error=None,
                )
                outcomes.append(
                    Outcome(
                        delivery_id=each.id,
                        status=DeliveryStatus.SUCCEEDED,
                        attempt_count=each.attempt_number,
                        next_attempt_at=None,
                        last_status=200,
                        last_error=None,
                        delivered_at=now,
                        attempt=attempt,
                    )
                )
            for start in range(0, len(outcomes), batch):
                before = await backend_ticks(probe)
                started = time.process_time()
                kept = await store.queue.record(OWNER, outcomes[start : start + batch], now=now)
                recording += time.process_time() - started
                recording_server += ticks_since(before, await backend_ticks(probe))
                if kept != len(outcomes[start : start + batch]):
                    raise SystemExit(f"only {kept} of a batch were still leased")
    finally:
        await store.close()
        await probe.close()
    return {
        "claimed": claimed,
        "claim_us": claiming / claimed * 1e6,
        "record_us": recording / claimed * 1e6,
        "claim_server_us": claiming_server * _rig.TICK / claimed * 1e6,
        "record_server_us": recording_server * _rig.TICK / claimed * 1e6,
    }


async def backend_ticks(probe: _rig.Probe) -> dict[int, int]:
    """CPU so far, in clock ticks, of each PostgreSQL backend serving the database (the
    probe's own left out)."""
    ticks = {pid: _rig.cpu_ticks(pid) for pid in await probe.sessions()}
    return {pid: t for pid, t in ticks.items() if t is not None}


def ticks_since(before: dict[int, int], after: dict[int, int]) -> int:
    """The backends' CPU between two readings; one that started between them counts whole."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def fill(database_url: str, deliveries: int) -> None:
    """``deliveries`` pending deliveries, as ``bench/dispatch.py`` fills its databases."""
    _rig.run_step(str(Path(__file__).with_name("dispatch.py")), "--step", "fill",
                  "--database-url", database_url, "--urls", "http://127.0.0.1:9/hook",
                  "--deliveries", str(deliveries), "--concurrency", "100")  # fmt: skip


def fit(batches: list[int], costs: list[float]) -> tuple[float, float]:
    """Least squares of ``cost = per_outcome + per_write / batch``: (per outcome, per write),
    both in µs."""
    xs = [1 / b for b in batches]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(costs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, costs, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return mean_y - slope * mean_x, slope


async def run(args: argparse.Namespace) -> None:
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as tmp:
        async with _rig.Databases("postgresql", Path(tmp)) as databases:
            template = await databases.create()
            fill(template, args.deliveries)
            print(
                f"{args.deliveries} deliveries on PostgreSQL, claimed {CLAIM} at a time and "
                f"recorded in writes of {args.batches} outcomes; this process's CPU per delivery "
                "(and the database backends' beside it)"
            )
            figures: dict[int, list[dict[str, float]]] = {b: [] for b in batches}
            for number in range(1, args.rounds + 1):
                for batch in batches:
                    url = await databases.create(template)
                    measured = _rig.run_step(__file__, "--step", "measure", "--database-url",
                                             url, "--batch", str(batch))  # fmt: skip
                    await databases.drop(url)
                    figures[batch].append(measured)
                    print(
                        f"  round {number}, writes of {batch:4d}: claim "
                        f"{measured['claim_us']:5.1f} us (server "
                        f"{measured['claim_server_us']:5.1f} us) · record "
                        f"{measured['record_us']:5.1f} us (server "
                        f"{measured['record_server_us']:5.1f} us)",
                        flush=True,
                    )
    medians = {b: statistics.median(m["record_us"] for m in figures[b]) for b in batches}
    claims = [m["claim_us"] for b in batches for m in figures[b]]
    print(f"medians of {args.rounds} rounds:")
    for batch in batches:
        server = statistics.median(m["record_server_us"] for m in figures[batch])
        print(
            f"  writes of {batch:4d}: record {medians[batch]:5.1f} us per delivery "
            f"(server {server:5.1f} us)"
        )
    server = statistics.median(m["claim_server_us"] for b in batches for m in figures[b])
    print(
        f"  claim ({CLAIM} at a time): {statistics.median(claims):5.1f} us per delivery "
        f"(server {server:5.1f} us)"
    )
    if len(batches) > 1:
        per_outcome, per_write = fit(batches, [medians[b] for b in batches])
        print(
            f"fit: a write costs {per_write:.0f} us whatever its size, and each outcome "
            f"{per_outcome:.1f} us more"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--batches", default="30,60,120,250,500", help="outcomes per write")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--step", choices=["measure"], help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "measure":
        print(json.dumps(asyncio.run(measure(args.database_url, args.batch))))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    os.chdir(_rig.ROOT)
    main()
