"""Delivery throughput: the dispatcher against the fastest bare client, to the same receiver.

    .venv/bin/python bench/dispatch.py [--deliveries 20000] [--pending 10000,100000] [--rounds 3]
    .venv/bin/python bench/dispatch.py --processes 1,2 [--db postgresql] [--rounds 3]
    .venv/bin/python bench/dispatch.py --db postgresql [--workers 2]
    .venv/bin/python bench/dispatch.py --hanging 0.25 [--db postgresql] [--workers N]
    .venv/bin/python bench/dispatch.py --latency [--db postgresql] [--rate 200] [--seconds 10]

Every round first runs three bare client loops (no database, no signing, one header, each in
its own process): aiohttp; libcurl's multi interface through pycurl's own ``AsyncCurlMulti``
(``curl``); and through the sender's ``EpollCurlLoop`` (``curl-epoll``, on revisions that have
it). The fastest of the round is its ceiling: the dispatcher's rate is given as a ratio to it,
and its CPU per delivery beside the ceiling client's CPU per request (the stable figure on a
noisy machine). Targets (issue 14): ratio >= 0.7, CPU <= 1.4 x.

By default (SQLite, one dispatcher) prints, from one run on this machine, in interleaved rounds
(machines are noisy):
  * the bare clients' rates and CPU per request;
  * the dispatcher's rate delivering N pending deliveries from a real SQLite file (claim under
    a lease, sign, send, record every attempt), its CPU per delivery, and both ratios: on the
    standard asyncio event loop, then with every client on uvloop;
  * the dispatcher process's peak RSS while delivering each of the ``--pending`` backlogs,
    and the largest's over the smallest's (flat: the backlog is streamed).
The receiver runs in its own process (a minimal keep-alive HTTP server answering 200, always on
uvloop), so receiver and sender each get a core, as they would on two machines.

``--processes 1,2`` drains, in each round after the bare clients, with ``hotspot-webhooks
worker --processes N`` for each N given (one supervisor and N dispatcher processes; CPU and
RSS read over the whole process tree), on SQLite or ``--db postgresql``.

The other modes run the dispatcher as ``--workers`` processes of ``hotspot-webhooks worker``
(standard asyncio loop; settings from ``HOTSPOT_WEBHOOKS_*``, a pass every ``--interval``),
filled the same way (the Service Python API), and measure from outside: the deliveries are
held back (due in the year 2999) until every worker has started and idles, then released in
one commit (due at their creation again); the clock runs until the database says every one
is ``succeeded`` (polled every 20 ms; the workers may take up to one ``--interval`` to notice
the release). Each round runs the bare clients first, and every figure is printed beside the
fastest.
  * ``--db postgresql`` / ``--workers N`` (N > 1): N workers draining one database (SQLite
    file, or a PostgreSQL database ``hw_bench_<hex>`` on 127.0.0.1:5432, dropped at the end):
    rate, the workers' summed CPU per delivery (``/proc/<pid>/stat``), their peak RSS, and on
    PostgreSQL the server's CPU per delivery, two ways: the backends serving the bench's
    database (pids sampled from ``pg_stat_activity`` at every poll; the figure to trust), and
    the whole server (its postmaster and every child: WAL writer, checkpointer, autovacuum,
    and anyone else's load on the shared server; exited backends counted through the
    postmaster's reaped-children time). The bench's own probing connection is left out of
    both. Target: <= 50 us per delivery. Also the WAL the server wrote per delivery
    (``pg_current_wal_lsn()`` after the release and at the end: the whole server's).
  * ``--hanging F``: the deliveries spread round-robin over ``--endpoints`` webhooks (one
    location each, a receiver port each); a fraction F of the endpoints accept connections and
    never answer. Attempts time out after ``--timeout`` s. Reports the healthy deliveries'
    throughput (healthy succeeded / time until the last healthy one succeeded, never waiting
    for the hanging ones; at most ``--deadline`` s) and its ratio to the same layout with
    every endpoint answering, run in the same round.
  * ``--latency``: event -> delivered latency with ``HOTSPOT_WEBHOOKS_LOW_LATENCY=true``: events
    emitted at ``--rate``/s for ``--seconds`` through the Service Python API in this process; a
    receiver notes when each ``webhook-id`` arrives; p50/p99/max of (arrival - emit call),
    beside a bare aiohttp client POSTing at the same rate to the same receiver. On SQLite the
    dispatcher runs in this process (``Service.running_dispatcher()``, woken in-process); on
    PostgreSQL in worker processes (woken by LISTEN/NOTIFY). Passes run every ``--interval``
    (1 s here), so without the wake-ups the latency is the pass rhythm. Target: p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _rig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_rig.SRC))

from hotspot_webhooks import catalog  # noqa: E402
from hotspot_webhooks.config import Settings  # noqa: E402
from hotspot_webhooks.service import EmitRequest, Service  # noqa: E402

EVENT = "transaction.paid.create"
CURL_LOOP = "hotspot_webhooks/delivery/curl_loop.py"  # bare curl-epoll runs where it exists
BODY = catalog.serialize(catalog.EVENT_TYPES[EVENT].sample)
POLL = 0.02  # seconds between the bench's looks at the database


# ---- the receiver (own process) ------------------------------------------------------------


def serve_receiver(port: int) -> None:
    _rig.serve_receivers([port])


_use_uvloop = _rig.use_uvloop


# ---- the baselines: bare client loops (aiohttp here, libcurl's multi in _rig) -----------------

BARE_CLIENTS = ("aiohttp", "curl", "curl-epoll")  # the fastest of a round is its ceiling


async def bare_aiohttp_loop(url: str, body: bytes, count: int, concurrency: int) -> float:
    import aiohttp

    remaining = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                assert response.status == 200

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


# ---- the dispatcher ---------------------------------------------------------------------------


def bench_settings(database_url: str, concurrency: int, **more: Any) -> Settings:
    return Settings(
        database_url=database_url,
        allow_private_targets=True,
        concurrency=concurrency,
        per_host_concurrency=concurrency,
        secret_key=_rig.SECRET_KEY,
        _env_file=None,
        **more,
    )


async def fill(database_url: str, urls: Sequence[str], count: int, concurrency: int) -> list[str]:
    """A webhook per URL (a location each), then ``count`` events round-robin over the
    locations: one pending delivery each. Returns the webhook ids, in the order of ``urls``."""
    service = await Service.open(bench_settings(database_url, concurrency), migrate=True)
    try:
        await service.operators.create("bench")
        webhooks = []
        for number, url in enumerate(urls, 1):
            await service.locations.create(f"bench-{number}", f"Bench {number}", "bench")
            webhooks.append((await service.webhooks.create(f"bench-{number}", EVENT, url)).id)
        sample = dict(catalog.EVENT_TYPES[EVENT].sample)
        for start in range(0, count, 1000):
            await service.events.emit_many(
                [
                    EmitRequest(EVENT, f"bench-{n % len(urls) + 1}", sample)
                    for n in range(start, min(start + 1000, count))
                ]
            )
    finally:
        await service.close()
    return webhooks


async def drain(database_url: str, concurrency: int) -> dict[str, float]:
    service = await Service.open(bench_settings(database_url, concurrency))
    try:
        async with service.dispatcher() as dispatcher:  # as the worker command runs one
            started, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
            stats = await dispatcher.run_pass()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            main_cpu = time.thread_time() - main_cpu
    finally:
        await service.close()
    if stats.succeeded != stats.claimed:
        raise SystemExit(f"not every delivery succeeded: {stats}")
    return {
        "delivered": stats.succeeded,
        "seconds": seconds,
        "rate": stats.succeeded / seconds,
        "cpu_us": cpu / stats.succeeded * 1e6,
        "main_thread_cpu_us": main_cpu / stats.succeeded * 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_subprocess(*args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter, so its peak RSS is its own."""
    return _rig.run_step(__file__, *args)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# ---- worker processes draining a database (--db postgresql, --workers N, --hanging) --------------


@dataclass
class Drained:
    """What a set of worker processes did with the released deliveries (``counted`` of them:
    all, or the healthy ones)."""

    counted: int
    succeeded: int
    seconds: float
    worker_cpu: float  # seconds, summed over the workers
    peak_rss_mb: float  # the largest worker's
    pg_database: float | None  # seconds of the backends serving the bench's database
    pg_server: float | None  # seconds of every postgres process on the machine
    wal_bytes: int | None = None  # WAL the server wrote meanwhile (release excluded)

    @property
    def complete(self) -> bool:
        return self.succeeded == self.counted

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds

    def per_delivery_us(self, seconds: float | None) -> float:
        return math.nan if seconds is None else seconds / max(self.succeeded, 1) * 1e6

    def postgres(self) -> str:
        if self.pg_database is None:
            return ""
        wal = "" if self.wal_bytes is None else f", {self.wal_per_delivery:.0f} B of WAL"
        return (
            f" · postgres {self.per_delivery_us(self.pg_database):.0f} us CPU each on this "
            f"database's backends ({self.per_delivery_us(self.pg_server):.0f} the whole "
            f"server){wal}"
        )

    @property
    def wal_per_delivery(self) -> float:
        return math.nan if self.wal_bytes is None else self.wal_bytes / max(self.succeeded, 1)


@dataclass
class Rig:
    """What every round shares: the arguments, the databases and where the logs go."""

    args: argparse.Namespace
    databases: _rig.Databases
    tmp: Path
    receiver: int | None = None  # the receiver's process, whose CPU is read too

    @property
    def postgresql(self) -> bool:
        return bool(self.args.db == "postgresql")

    def worker_env(self, database_url: str, **more: object) -> dict[str, str]:
        return _rig.worker_env(
            database_url,
            interval=self.args.interval,
            concurrency=self.args.concurrency,
            timeout=self.args.timeout,
            **more,
        )

    async def template(self, urls: Sequence[str], count: int) -> tuple[str, list[str]]:
        """A database filled with ``count`` deliveries over ``urls``, held back; its URL and
        webhook ids. Each round drains a copy of it."""
        url = await self.databases.create()
        filled = in_subprocess("--step", "fill", "--database-url", url, "--urls", ",".join(urls),
                               "--deliveries", str(count),
                               "--concurrency", str(self.args.concurrency))  # fmt: skip
        probe = await _rig.Probe.open(url)
        try:
            await probe.hold()
        finally:
            await probe.close()
        return url, list(filled["webhooks"])

    async def drain(
        self,
        template: str,
        env: dict[str, str],
        counted: Sequence[str] | None = None,
        deadline: float = 600.0,
        processes: int = 1,
    ) -> Drained:
        """Workers on a fresh copy of ``template``: release, and measure until every
        delivery of the ``counted`` webhooks (None: all) succeeded, or ``deadline`` s."""
        url = await self.databases.create(template)
        probe = await _rig.Probe.open(url)
        workers = _rig.Workers(
            self.args.workers,
            {**env, "HOTSPOT_WEBHOOKS_DATABASE_URL": url},
            self.tmp / "logs",
            processes,
        )
        try:
            total = await probe.count("pending", counted)
            workers.start()
            await workers.ready()
            if await probe.count("pending", counted) != total:
                raise SystemExit("the deliveries were not held back: workers took some early")
            meter = _rig.PostgresCpu(probe.backend_pid) if probe.backend_pid is not None else None
            await probe.release()
            wal_before = await probe.wal_position()
            started, ticks = time.perf_counter(), workers.ticks()
            if meter is not None:
                meter.start(await probe.sessions())
            while time.perf_counter() - started < deadline:
                left = await probe.count("pending", counted)
                if meter is not None:
                    meter.sample(await probe.sessions())
                if not left:
                    break
                workers.check()
                await asyncio.sleep(POLL)
            seconds = time.perf_counter() - started
            worker_cpu = (workers.ticks() - ticks) * _rig.TICK
            pg = meter.stop(await probe.sessions()) if meter is not None else (None, None)
            wal_after = await probe.wal_position()
            succeeded = await probe.count("succeeded", counted)
            rss = workers.peak_rss_mb()
        finally:
            workers.stop()
            await probe.close()
            await self.databases.drop(url)
        if succeeded < total and seconds < deadline:
            raise SystemExit(
                f"{total - succeeded} deliveries did not succeed:\n{workers.log_tails()}"
            )
        wal = None if wal_before is None or wal_after is None else wal_after - wal_before
        return Drained(total, succeeded, seconds, worker_cpu, rss, *pg, wal_bytes=wal)


def bare(
    url: str, args: argparse.Namespace, receiver: int | None = None
) -> dict[str, dict[str, float]]:
    """Each bare client's rate and CPU per request, measured now (client -> figures); with the
    ``receiver``'s process, what it spent per request too."""
    sizes = ("--deliveries", str(args.deliveries), "--concurrency", str(args.concurrency))
    measured = {}
    for client in BARE_CLIENTS:
        before = _rig.tree_ticks(receiver) if receiver is not None else 0
        figures = in_subprocess("--step", "bare", "--client", client, "--url", url, *sizes)
        if receiver is not None:
            spent = (_rig.tree_ticks(receiver) - before) * _rig.TICK
            figures["receiver_us"] = spent / args.deliveries * 1e6
        measured[client] = figures
    return measured


def ceiling(measured: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    """The fastest bare client of a round: the ceiling its figures are compared with."""
    ran = {client: m for client, m in measured.items() if not math.isnan(m["rate"])}
    return max(ran.items(), key=lambda item: item[1]["rate"])


def describe_bare(measured: dict[str, dict[str, float]]) -> str:
    return " · ".join(
        f"bare {client} {m['rate']:6.0f}/s ({m['cpu_us']:.0f} us CPU each)"
        for client, m in measured.items()
        if not math.isnan(m["rate"])
    )


def describe_workers(args: argparse.Namespace) -> str:
    s = "es" if args.workers > 1 else ""
    return (
        f"{args.workers} worker process{s} (`hotspot-webhooks worker`, asyncio loop, "
        f"a pass every {args.interval:g} s), concurrency {args.concurrency} each"
    )


async def run_workers(rig: Rig, port: int) -> None:
    """--db postgresql / --workers N / --processes P,Q: worker commands draining one database,
    each round beside the bare clients, the fastest of which is the ceiling."""
    args = rig.args
    counts = args.processes or [1]
    url = f"http://127.0.0.1:{port}/hook"
    template, _ = await rig.template([url], args.deliveries)
    env = rig.worker_env(template, per_host_concurrency=args.concurrency)
    print(
        f"{args.deliveries} deliveries from {args.db} to one local receiver (own process, "
        f"uvloop), {describe_workers(args)}; each round runs the bare clients, then the "
        "dispatcher with each --processes; ratios are to the round's fastest bare client"
    )
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    cpu_ratios: dict[int, list[float]] = {n: [] for n in counts}
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    pg_database, pg_server, bare_cpu, wal = [], [], [], []
    bounds: dict[int, list[float]] = {n: [] for n in counts}
    cores = os.cpu_count() or 1
    for number in range(1, args.rounds + 1):
        measured = bare(url, args, rig.receiver)
        best, top = ceiling(measured)
        bare_cpu.append(top["cpu_us"])
        print(f"  round {number}: {describe_bare(measured)} · ceiling: {best}", flush=True)
        for processes in counts:
            before = _rig.tree_ticks(rig.receiver) if rig.receiver is not None else 0
            ours = await rig.drain(template, env, processes=processes)
            receiving = (
                ours.per_delivery_us((_rig.tree_ticks(rig.receiver) - before) * _rig.TICK)
                if rig.receiver is not None
                else math.nan
            )
            cpu = ours.per_delivery_us(ours.worker_cpu)
            ratios[processes].append(ours.rate / top["rate"])
            cpus[processes].append(cpu)
            cpu_ratios[processes].append(cpu / top["cpu_us"])
            pg_database.append(ours.per_delivery_us(ours.pg_database))
            pg_server.append(ours.per_delivery_us(ours.pg_server))
            wal.append(ours.wal_per_delivery)
            # the most these CPU costs allow here: each process fills at most one core, and
            # the workers, PostgreSQL and the receiver share this machine's cores
            shared = cpu + (pg_server[-1] if rig.postgresql else 0) + receiving
            most = min(min(processes, cores) / cpu, cores / shared) * 1e6
            bounds[processes].append(most / top["rate"])
            print(
                f"    --processes {processes}: {ours.rate:6.0f}/s · ratio "
                f"{ratios[processes][-1]:.2f} · {cpu:.0f} us CPU each, "
                f"{cpu_ratios[processes][-1]:.2f} x the ceiling client's · peak RSS "
                f"{ours.peak_rss_mb:.0f} MB{ours.postgres()} · receiver {receiving:.0f} us "
                f"each (for the ceiling client {top.get('receiver_us', math.nan):.0f}) · "
                f"these costs allow at most a ratio of {bounds[processes][-1]:.2f} on "
                f"{cores} cores",
                flush=True,
            )
    print(f"medians of {args.rounds} rounds (ceiling client: {statistics.median(bare_cpu):.0f} us "
          "CPU per request):")  # fmt: skip
    for processes in counts:
        print(
            f"  --processes {processes}: ratio to the ceiling "
            f"{statistics.median(ratios[processes]):.2f} (target >= 0.7) · "
            f"{statistics.median(cpus[processes]):.0f} us CPU per delivery, "
            f"{statistics.median(cpu_ratios[processes]):.2f} x the bare request's "
            "(target <= 1.4) · at these CPU costs this machine allows a ratio of "
            f"{statistics.median(bounds[processes]):.2f} at most"
        )
    if rig.postgresql:
        print(
            f"  postgres CPU per delivery: {statistics.median(pg_database):.0f} us on this "
            f"database's backends, {statistics.median(pg_server):.0f} us the whole server   "
            f"(target <= 50 us); {statistics.median(wal):.0f} bytes of WAL"
        )


async def run_hanging(rig: Rig, healthy_ports: list[int], hanging_ports: list[int]) -> None:
    """--hanging F: the same deliveries over E endpoints, all answering, then F hanging."""
    args = rig.args
    answering = [f"http://127.0.0.1:{p}/hook" for p in healthy_ports]
    hanging = [f"http://127.0.0.1:{p}/hook" for p in hanging_ports]
    stuck = len(hanging)
    calm, calm_hooks = await rig.template(answering, args.deliveries)
    storm, storm_hooks = await rig.template(hanging + answering[stuck:], args.deliveries)
    env = rig.worker_env(calm)  # per-endpoint concurrency: the product's default
    per_endpoint = env.get("HOTSPOT_WEBHOOKS_PER_HOST_CONCURRENCY") or (
        f"{Settings.model_fields['per_host_concurrency'].default} (the default)"
    )
    print(
        f"{args.deliveries} deliveries round-robin over {args.endpoints} endpoints (a webhook "
        f"and a receiver port each, own process, uvloop) from {args.db}; {stuck} of them "
        f"hanging (accept, never answer); attempt timeout {args.timeout:g} s; "
        f"{describe_workers(args)}, per-endpoint concurrency {per_endpoint}; each round runs "
        f"the bare loop, then all {args.endpoints} answering, then {stuck} hanging "
        f"(never waiting for the hanging ones; at most {args.deadline:g} s)"
    )
    ratios = []
    for number in range(1, args.rounds + 1):
        _, baseline = ceiling(bare(answering[0], args))
        all_up = await rig.drain(calm, env, calm_hooks, args.deadline)
        some_down = await rig.drain(storm, env, storm_hooks[stuck:], args.deadline)
        ratios.append(some_down.rate / all_up.rate)
        late = (
            ""
            if some_down.complete
            else f", only {some_down.succeeded} of {some_down.counted} by the deadline"
        )
        print(
            f"  round {number}: bare loop {baseline['rate']:6.0f}/s · all answering "
            f"{all_up.rate:6.0f}/s ({all_up.per_delivery_us(all_up.worker_cpu):.0f} us CPU "
            f"each; ratio {all_up.rate / baseline['rate']:.2f}) · "
            f"{stuck} of {args.endpoints} hanging: healthy {some_down.rate:6.0f}/s "
            f"({some_down.per_delivery_us(some_down.worker_cpu):.0f} us CPU each, "
            f"{some_down.succeeded} in {some_down.seconds:.1f} s{late}; ratio "
            f"{some_down.rate / baseline['rate']:.2f}) · hanging/answering ratio {ratios[-1]:.2f}",
            flush=True,
        )
    print(
        f"  healthy throughput with {stuck} of {args.endpoints} endpoints hanging / all "
        f"answering (median of {args.rounds}): ratio {statistics.median(ratios):.2f}"
    )


# ---- event → delivered latency (--latency) ----------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spread(latencies: Sequence[float]) -> str:
    if not latencies:
        return "nothing arrived"
    return (
        f"p50 {percentile(latencies, 0.5) * 1e3:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"
    )


async def paced(rate: float, seconds: float, send: Any) -> None:
    """Call ``send(n)`` (a coroutine, each in its own task) ``rate`` times a second."""
    count = int(rate * seconds)
    tasks = []
    started = time.perf_counter()
    for n in range(count):
        wait = started + n / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(send(n)))
    await asyncio.gather(*tasks)


async def bare_latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """A bare aiohttp client POSTing at ``rate``: when each request was sent, by its id."""
    import aiohttp

    sent: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def send(n: int) -> None:
            name = f"bare_{n}"
            sent[name] = time.time()
            headers = {"Content-Type": "application/json", "webhook-id": name}
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()

        await paced(rate, seconds, send)
    return sent


async def emit_paced(service: Service, rate: float, seconds: float) -> dict[str, float]:
    """Emit through the Service at ``rate``: when each emit call began, by event id."""
    sample = dict(catalog.EVENT_TYPES[EVENT].sample)
    sent: dict[str, float] = {}

    async def send(n: int) -> None:
        began = time.time()
        result = await service.events.emit(EVENT, "bench-1", sample)
        sent[result.id] = began

    await paced(rate, seconds, send)
    return sent


async def wait_delivered(probe: _rig.Probe, patience: float) -> None:
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        if not await probe.count("pending"):
            return
        await asyncio.sleep(POLL)


@dataclass
class Latency:
    latencies: list[float]
    emitted: int
    worker_cpu_us: float  # per event: the dispatcher's process (SQLite: emitter and dispatcher)
    pg_database_us: float | None = None
    pg_server_us: float | None = None


async def dispatcher_latency(
    rig: Rig, template: str, receiver: subprocess.Popen[bytes], record_file: Path
) -> Latency:
    args = rig.args
    url = await rig.databases.create(template)
    probe = await _rig.Probe.open(url)
    _rig.take_arrivals(receiver, record_file)  # forget the earlier arrivals
    # LOW_LATENCY: the emitter's commits announce new work (in-process, or NOTIFY)
    settings = bench_settings(
        url, args.concurrency, interval=args.interval, low_latency=True, timeout=args.timeout
    )
    patience = args.interval + 10 * args.timeout
    service = await Service.open(settings)
    try:
        if not rig.postgresql:  # one process: the dispatcher wakes in-process
            async with service.running_dispatcher():
                cpu = time.process_time()
                sent = await emit_paced(service, args.rate, args.seconds)
                await wait_delivered(probe, patience)
                cpu = time.process_time() - cpu
            arrivals = _rig.take_arrivals(receiver, record_file)
            latencies = [arrivals[k] - v for k, v in sent.items() if k in arrivals]
            return Latency(latencies, len(sent), cpu / max(len(sent), 1) * 1e6)
        workers = _rig.Workers(args.workers, rig.worker_env(url, low_latency="true"),
                               rig.tmp / "logs")  # fmt: skip
        try:
            workers.start()
            await workers.ready()
            assert probe.backend_pid is not None
            meter = _rig.PostgresCpu(probe.backend_pid)
            meter.start(await probe.sessions())
            ticks = workers.ticks()
            emitting = asyncio.create_task(emit_paced(service, args.rate, args.seconds))
            while not emitting.done():
                meter.sample(await probe.sessions())
                await asyncio.sleep(0.1)
            sent = await emitting
            await wait_delivered(probe, patience)
            worker_cpu = (workers.ticks() - ticks) * _rig.TICK
            pg_database, pg_server = meter.stop(await probe.sessions())
        finally:
            workers.stop()
        arrivals = _rig.take_arrivals(receiver, record_file)
        latencies = [arrivals[k] - v for k, v in sent.items() if k in arrivals]
        each = max(len(sent), 1)
        return Latency(latencies, len(sent), worker_cpu / each * 1e6,
                       pg_database / each * 1e6, pg_server / each * 1e6)  # fmt: skip
    finally:
        await service.close()
        await probe.close()
        await rig.databases.drop(url)


async def run_latency(
    rig: Rig, port: int, record_port: int, receiver: subprocess.Popen[bytes], record_file: Path
) -> None:
    args = rig.args
    record_url = f"http://127.0.0.1:{record_port}/hook"
    template, _ = await rig.template([record_url], 0)
    has_setting = "low_latency" in Settings.model_fields
    where = (
        "the dispatcher in this process (Service.running_dispatcher(), woken in-process)"
        if not rig.postgresql
        else f"{describe_workers(args)}, woken by LISTEN/NOTIFY"
    )
    print(
        f"event -> delivered latency: {int(args.rate * args.seconds)} events at {args.rate:g}/s "
        f"for {args.seconds:g} s, emitted through the Service Python API in this process, on "
        f"{args.db}; {where}; HOTSPOT_WEBHOOKS_LOW_LATENCY=true (a setting of this tree: "
        f"{'yes' if has_setting else 'NO, so this is the pass rhythm'}), a pass every "
        f"{args.interval:g} s; each round runs the bare loop, a bare client at the same rate, "
        "then the dispatcher"
    )
    p99s = []
    for number in range(1, args.rounds + 1):
        _, baseline = ceiling(bare(f"http://127.0.0.1:{port}/hook", args))
        _rig.take_arrivals(receiver, record_file)
        sent = await bare_latency(record_url, args.rate, args.seconds)
        arrivals = _rig.take_arrivals(receiver, record_file)
        plain = [arrivals[k] - v for k, v in sent.items() if k in arrivals]
        ours = await dispatcher_latency(rig, template, receiver, record_file)
        p99s.append(percentile(ours.latencies, 0.99) if ours.latencies else math.inf)
        missing = ours.emitted - len(ours.latencies)
        cpu_of = "emitter and dispatcher" if not rig.postgresql else "workers"
        pg = (
            ""
            if ours.pg_database_us is None
            else f", postgres {ours.pg_database_us:.0f} us on this database's backends "
            f"({ours.pg_server_us:.0f} the whole server)"
        )
        print(
            f"  round {number}: bare loop {baseline['rate']:6.0f}/s · bare client at "
            f"{args.rate:g}/s: {spread(plain)} · dispatcher: {spread(ours.latencies)}"
            f"{f' ({missing} never arrived)' if missing else ''}; CPU per event "
            f"{ours.worker_cpu_us:.0f} us ({cpu_of}){pg} · p99 ratio to the bare client "
            f"{p99s[-1] / percentile(plain, 0.99):.0f}",
            flush=True,
        )
    print(
        f"  dispatcher p99 (median of {args.rounds}): {statistics.median(p99s) * 1e3:.1f} ms"
        "   (target <= 100 ms)"
    )


# ---- the default: one dispatcher on SQLite, in-process pass --------------------------------------


def run_default(args: argparse.Namespace, url: str) -> None:
    common = ["--url", url, "--concurrency", str(args.concurrency)]
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        in_subprocess("--step", "fill", "--database-url", sqlite_url(template), "--urls", url,
                      "--deliveries", str(args.deliveries), *common)  # fmt: skip
        print(
            f"{args.deliveries} deliveries to one local receiver (own process, uvloop), "
            f"concurrency {args.concurrency}; each round runs the bare clients, then the "
            "dispatcher, on the same event loop kind; ratios are to the round's fastest bare client"
        )
        for loop in args.loops.split(",") if args.rounds else []:
            os.environ["BENCH_LOOP"] = loop  # read by the step subprocesses
            ratios, cpu_ratios = [], []
            print(f"client event loop: {loop}")
            for round_number in range(1, args.rounds + 1):
                db = Path(tmp) / f"{loop}-{round_number}.db"
                shutil.copy(template, db)
                measured = bare(url, args)
                best, top = ceiling(measured)
                ours = in_subprocess("--step", "drain", "--database-url", sqlite_url(db), *common)
                ratios.append(ours["rate"] / top["rate"])
                cpu_ratios.append(ours["cpu_us"] / top["cpu_us"])
                print(
                    f"  round {round_number}: {describe_bare(measured)} · dispatcher "
                    f"{ours['rate']:6.0f}/s ({ours['cpu_us']:.0f} us CPU each, "
                    f"{ours['main_thread_cpu_us']:.0f} on the event loop) · "
                    f"ratio {ratios[-1]:.2f} to bare {best}, CPU {cpu_ratios[-1]:.2f} x its"
                )
            print(
                f"  on {loop} (median of {args.rounds}): ratio {statistics.median(ratios):.2f} "
                f"(target >= 0.7), CPU {statistics.median(cpu_ratios):.2f} x the fastest bare "
                "client's (target <= 1.4)"
            )
        os.environ.pop("BENCH_LOOP", None)
        rss: dict[int, float] = {}
        for pending in args.pending:
            large = Path(tmp) / f"pending-{pending}.db"
            in_subprocess("--step", "fill", "--database-url", sqlite_url(large), "--urls", url,
                          "--deliveries", str(pending), *common)  # fmt: skip
            big = in_subprocess("--step", "drain", "--database-url", sqlite_url(large), *common)
            large.unlink()
            rss[pending] = big["peak_rss_mb"]
            print(
                f"peak RSS of the dispatcher delivering {pending} pending: "
                f"{big['peak_rss_mb']:.0f} MB (delivered at {big['rate']:.0f}/s)",
                flush=True,
            )
        if len(rss) > 1:
            least, most = min(rss), max(rss)
            print(
                f"peak RSS at {most} pending / at {least}: {rss[most] / rss[least]:.2f}   "
                "(target <= 1.2: the backlog is streamed, never loaded)"
            )


async def run_measured(
    args: argparse.Namespace, port: int, receiver_pid: int, **ports: Any
) -> None:
    """The modes measured from outside, with the bench's databases dropped at the end."""
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as tmp:
        async with _rig.Databases(args.db, Path(tmp)) as databases:
            rig = Rig(args, databases, Path(tmp), receiver_pid)
            if args.latency:
                await run_latency(rig, port, **ports)
            elif args.hanging is not None:
                await run_hanging(rig, **ports)
            else:
                await run_workers(rig, port)


def run_step(args: argparse.Namespace) -> None:
    if args.step == "receiver":
        serve_receiver(args.port)
    elif args.step == "receivers":
        _rig.serve_receivers(
            ports(args.answering), ports(args.hang), ports(args.record), args.record_file
        )
    elif args.step == "fill":
        urls = args.urls.split(",")
        webhooks = asyncio.run(fill(args.database_url, urls, args.deliveries, args.concurrency))
        print(json.dumps({"filled": args.deliveries, "webhooks": webhooks}))
    elif args.step == "drain":
        _use_uvloop()
        print(json.dumps(asyncio.run(drain(args.database_url, args.concurrency))))
    elif args.step == "bare":
        _use_uvloop()
        if args.client == "curl-epoll" and not Path(_rig.SRC, CURL_LOOP).exists():
            print(json.dumps({"rate": math.nan, "cpu_us": math.nan}))  # an older revision
            return
        loop: Callable[[str, bytes, int, int], Coroutine[Any, Any, float]] = bare_aiohttp_loop
        if args.client == "curl":
            loop = _rig.bare_curl_loop
        elif args.client == "curl-epoll":
            loop = functools.partial(_rig.bare_curl_loop, epoll=True)
        started = time.process_time()
        rate = asyncio.run(loop(args.url, BODY, args.deliveries, args.concurrency))
        cpu = (time.process_time() - started) / args.deliveries * 1e6
        print(json.dumps({"rate": rate, "cpu_us": cpu}))


def ports(text: str | None) -> list[int]:
    return [int(p) for p in text.split(",")] if text else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument(
        "--pending",
        type=lambda text: [int(n) for n in text.split(",") if n.strip() and int(n)],
        default=[10_000, 100_000],
        help="backlogs (comma-separated) to deliver, each measuring the dispatcher's peak RSS "
        "(0: none)",
    )
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved baseline/dispatcher")
    parser.add_argument(
        "--loops",
        default="asyncio,uvloop",
        help="client event loops to compare on: asyncio (the standard loop), uvloop, or both "
        "(the default mode only; worker processes run the standard loop)",
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the store drained: a SQLite file, or a database hw_bench_<hex> on the "
        "PostgreSQL server at 127.0.0.1:5432 (user postgres), dropped at the end",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="dispatcher processes (`hotspot-webhooks worker`) draining the same database; "
        "with 1 on SQLite (and no other mode) the default in-process pass runs",
    )
    parser.add_argument(
        "--processes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="each round, drain with `worker --processes N` for each N given (e.g. 1,2): "
        "one supervisor and N dispatcher processes per worker command",
    )
    parser.add_argument(
        "--hanging",
        type=float,
        metavar="FRACTION",
        help="spread deliveries over --endpoints endpoints, this fraction of them hanging",
    )
    parser.add_argument("--endpoints", type=int, default=8, help="endpoints for --hanging")
    parser.add_argument(
        "--deadline",
        type=float,
        default=60.0,
        help="--hanging: seconds to wait for the healthy deliveries at most",
    )
    parser.add_argument(
        "--latency", action="store_true", help="event -> delivered latency, low-latency mode"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="--latency: events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="--latency: how long")
    parser.add_argument(
        "--interval",
        type=float,
        help="seconds between the workers' passes (default 0.05; 1 with --latency)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="attempt timeout of the workers (s)"
    )
    parser.add_argument(
        "--step", choices=["receiver", "receivers", "fill", "drain", "bare"], help=argparse.SUPPRESS
    )
    parser.add_argument("--client", choices=BARE_CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--answering", help=argparse.SUPPRESS)
    parser.add_argument("--hang", help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    parser.add_argument("--record-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.interval is None:
        args.interval = 1.0 if args.latency else 0.05

    if args.step:
        run_step(args)
        return
    if args.hanging is not None and not 0 <= round(args.hanging * args.endpoints) < args.endpoints:
        parser.error("--hanging is the fraction of the endpoints that hang: 0 <= F < 1")
    if args.latency and args.db == "sqlite" and args.workers != 1:
        parser.error("--latency on SQLite runs the dispatcher in this process: --workers 1")

    from tests.receivers import free_port, wait_for_port

    port = free_port()
    extra: dict[str, Any] = {}
    command = [sys.executable, __file__, "--step", "receivers", "--answering"]
    listening = [port]
    if args.hanging is not None:
        stuck = round(args.hanging * args.endpoints)
        healthy = [port, *(free_port() for _ in range(args.endpoints - 1))]
        hanging = [free_port() for _ in range(stuck)]
        extra = {"healthy_ports": healthy, "hanging_ports": hanging}
        command += [",".join(map(str, healthy))]
        if hanging:
            command += ["--hang", ",".join(map(str, hanging))]
        listening = healthy + hanging
    else:
        command += [str(port)]
    tmp = Path(tempfile.mkdtemp(prefix="hw-bench-receiver-"))
    if args.latency:
        record_port = free_port()
        record_file = tmp / "arrivals.json"
        command += ["--record", str(record_port), "--record-file", str(record_file)]
        listening.append(record_port)
    receiver = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    if args.latency:
        extra = {"record_port": record_port, "receiver": receiver, "record_file": record_file}
    try:
        for listens in listening:
            wait_for_port(listens)
        default = args.db == "sqlite" and args.workers == 1 and args.processes is None
        if default and not args.latency and args.hanging is None:
            run_default(args, f"http://127.0.0.1:{port}/hook")
        else:
            asyncio.run(run_measured(args, port, receiver.pid, **extra))
    finally:
        receiver.terminate()
        receiver.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    main()
