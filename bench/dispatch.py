"""Delivery throughput: the dispatcher against a bare aiohttp loop, to the same receiver.

    .venv/bin/python bench/dispatch.py [--deliveries 20000] [--pending 100000] [--rounds 3]

Prints, from one run on this machine, in interleaved rounds (machines are noisy):
  * the bare client loop's rate (aiohttp, no database, no signing): the ceiling here;
  * the dispatcher's rate delivering N pending deliveries from a real SQLite file (claim under
    a lease, sign, send, record every attempt), its CPU per delivery, and its ratio to the bare
    loop: on the standard asyncio event loop, then with both clients on uvloop;
  * the dispatcher process's peak RSS while delivering ``--pending`` deliveries.
The receiver runs in its own process (a minimal keep-alive HTTP server answering 200, always on
uvloop), so receiver and sender each get a core, as they would on two machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hotspot_webhooks import catalog  # noqa: E402
from hotspot_webhooks.config import Settings  # noqa: E402
from hotspot_webhooks.service import EmitRequest, Service  # noqa: E402

EVENT = "transaction.paid.create"
BODY = catalog.serialize(catalog.EVENT_TYPES[EVENT].sample)
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK"


# ---- the receiver (own process) ------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = (
                int(
                    head[
                        at + 15 : head.find(b"\r\n", at)
                        if head.find(b"\r\n", at) > 0
                        else len(head)
                    ]
                )
                if at >= 0
                else 0
            )
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(RESPONSE)


def serve_receiver(port: int) -> None:
    _use_uvloop(always=True)  # the receiver is the test rig: as fast as it can be, always

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            _Receiver, "127.0.0.1", port, backlog=1024
        )
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def _use_uvloop(*, always: bool = False) -> None:
    if os.environ.get("BENCH_LOOP", "asyncio") != "uvloop" and not always:
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---- the baseline: a bare aiohttp loop -------------------------------------------------------


async def bare_loop(url: str, count: int, concurrency: int) -> float:
    import aiohttp

    remaining = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.post(
                url, data=BODY, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                assert response.status == 200

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


# ---- the dispatcher ---------------------------------------------------------------------------


def bench_settings(db: Path, concurrency: int) -> Settings:
    return Settings(
        database_url=f"sqlite:///{db}",
        allow_private_targets=True,
        concurrency=concurrency,
        per_host_concurrency=concurrency,
        secret_key="bench-secret-key-0123456789",
        _env_file=None,
    )


async def fill(db: Path, url: str, count: int, concurrency: int) -> None:
    service = await Service.open(bench_settings(db, concurrency), migrate=True)
    try:
        await service.create_operator("bench")
        await service.create_location("bench-1", "Bench", "bench")
        await service.create_webhook("bench-1", EVENT, url)
        sample = dict(catalog.EVENT_TYPES[EVENT].sample)
        for start in range(0, count, 1000):
            await service.emit_many(
                [EmitRequest(EVENT, "bench-1", sample) for _ in range(min(1000, count - start))]
            )
    finally:
        await service.close()


async def drain(db: Path, concurrency: int) -> dict[str, float]:
    service = await Service.open(bench_settings(db, concurrency))
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


def in_subprocess(*args: str) -> dict[str, float]:
    """Run one step in a fresh interpreter, so its peak RSS is its own."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved baseline/dispatcher")
    parser.add_argument(
        "--loops",
        default="asyncio,uvloop",
        help="client event loops to compare on: asyncio (the standard loop), uvloop, or both",
    )
    parser.add_argument(
        "--step", choices=["receiver", "fill", "drain", "bare"], help=argparse.SUPPRESS
    )
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step == "receiver":
        serve_receiver(args.port)
        return
    if args.step == "fill":
        asyncio.run(fill(args.db, args.url, args.deliveries, args.concurrency))
        print(json.dumps({"filled": args.deliveries}))
        return
    if args.step == "drain":
        _use_uvloop()
        print(json.dumps(asyncio.run(drain(args.db, args.concurrency))))
        return
    if args.step == "bare":
        _use_uvloop()
        started = time.process_time()
        rate = asyncio.run(bare_loop(args.url, args.deliveries, args.concurrency))
        cpu = (time.process_time() - started) / args.deliveries * 1e6
        print(json.dumps({"rate": rate, "cpu_us": cpu}))
        return

    from tests.receivers import free_port, wait_for_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--step", "receiver", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    common = ["--url", url, "--concurrency", str(args.concurrency)]
    try:
        wait_for_port(port)
        with tempfile.TemporaryDirectory() as tmp:
            template = Path(tmp) / "template.db"
            in_subprocess("--step", "fill", "--db", str(template),
                          "--deliveries", str(args.deliveries), *common)  # fmt: skip
            print(
                f"{args.deliveries} deliveries to one local receiver (own process, uvloop), "
                f"concurrency {args.concurrency}; each round runs the bare loop, then the "
                "dispatcher, on the same event loop kind"
            )
            for loop in args.loops.split(","):
                os.environ["BENCH_LOOP"] = loop  # read by the step subprocesses
                ratios = []
                print(f"client event loop: {loop}")
                for round_number in range(1, args.rounds + 1):
                    db = Path(tmp) / f"{loop}-{round_number}.db"
                    shutil.copy(template, db)
                    bare = in_subprocess(
                        "--step", "bare", "--deliveries", str(args.deliveries), *common
                    )
                    ours = in_subprocess("--step", "drain", "--db", str(db), *common)
                    ratios.append(ours["rate"] / bare["rate"])
                    print(
                        f"  round {round_number}: bare loop {bare['rate']:6.0f}/s "
                        f"({bare['cpu_us']:.0f} us CPU each) · dispatcher "
                        f"{ours['rate']:6.0f}/s ({ours['cpu_us']:.0f} us CPU each, "
                        f"{ours['main_thread_cpu_us']:.0f} on the event loop) · "
                        f"ratio {ratios[-1]:.2f}"
                    )
                print(
                    f"  ratio on {loop} (median of {args.rounds}): "
                    f"{statistics.median(ratios):.2f}   (target >= 0.5)"
                )
            os.environ.pop("BENCH_LOOP", None)
            if args.pending:
                large = Path(tmp) / "large.db"
                in_subprocess("--step", "fill", "--db", str(large),
                              "--deliveries", str(args.pending), *common)  # fmt: skip
                big = in_subprocess("--step", "drain", "--db", str(large), *common)
                print(
                    f"peak RSS of the dispatcher delivering {args.pending} pending: "
                    f"{big['peak_rss_mb']:.0f} MB   (target <= 300 MB; "
                    f"delivered at {big['rate']:.0f}/s)"
                )
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    main()
