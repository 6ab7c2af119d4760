"""Delivery clients on our real request: which one costs closest to a bare request.

    .venv/bin/python bench/senders.py [--requests 20000] [--concurrency 100] [--rounds 3]
        [--candidates bare,curl,curl-epoll,plain,sender,pyreqwest,rnet]
    .venv/bin/python bench/senders.py --wire         # header names as they arrive

Every candidate POSTs to the same loopback receiver (``bench/_rig.py``'s: its own process,
uvloop, a minimal keep-alive HTTP/1.1 server answering ``200``), ``--concurrency`` requests in
flight (as the dispatcher's lanes keep them), keep-alive, the response read. The request is
ours: the eleven headers of ``signing.delivery_headers`` in their exact case, bodies the
catalog's samples (294-672 bytes, cycled) and, in a second size, one of about 8 KiB. Signing
is done before the clock starts: only the client is measured. Each candidate runs in a fresh
interpreter, one after the other inside each round, rounds interleaved, so all meet the same
moments of a noisy machine. Printed per candidate and body size: requests/s (median of the
rounds), its ratio to the fastest candidate, and CPU µs per request (the client process's CPU
time / requests: the stable figure here).

* ``bare``: aiohttp, one header;
* ``curl``: libcurl's multi interface through pycurl's own ``AsyncCurlMulti``, one header;
* ``curl-epoll``: the same through the sender's ``EpollCurlLoop``, one header: the fastest bare
  client, the ceiling of ``bench/dispatch.py``;
* ``plain``: aiohttp's defaults with our eleven headers and a total timeout;
* ``sender``: our ``delivery.sender.Sender`` as the dispatcher uses it (``on_wire`` reported,
  the SSRF guard's socket hook, the excerpt, Retry-After read);
* ``pyreqwest``, ``rnet``: Rust (reqwest/hyper) clients from PyPI, if installed.

``--wire`` sends one request with each candidate to a raw-socket receiver and prints the header
names as they arrived, byte for byte: ``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256`` must arrive in
exactly that case (the original platform's PHP receivers read it case-sensitively).
``tests/test_sender.py`` tries each guarantee of ``Sender`` on real sockets.

How the sender was chosen (677cb94, ``--rounds 4``, the sender then built on aiohttp): a
libcurl multi prototype cost 71 µs per request against the aiohttp sender's 158 and pyreqwest's
147, at 1.6-2.2x their rate. pyreqwest and rnet were disqualified: hyper title-cases HTTP/1
header names (``Http_x_hotspotsystem_hmac_sha256``; pyreqwest's only other choice is lower
case), they add ``Accept-Encoding``, and neither has a hook at connect time to pin the SSRF
check to the address connected, nor an on-wire report. A tuned aiohttp (prebuilt headers, the
automatic headers decided once) was not clearly cheaper (0.85-1.04 of the sender's CPU).

Figures with the curl sender, 2026-11-30, this machine (2 cores shared with other work; a slow
day for it), ``--rounds 3``:

    body     candidate   req/s ratio CPU us/req vs sender
    catalog  bare         3407  0.37      178.3      2.53
             curl         4913  0.54       83.3      1.18
             curl-epoll   9125  1.00       51.4      0.73
             plain        3823  0.42      175.2      2.49
             sender       7382  0.81       70.5      1.00
             pyreqwest    5109  0.56      163.1      2.31
             rnet         2199  0.24      430.0      6.10
    8k       bare         3601  0.23      181.4      2.77
             curl         8828  0.55       73.8      1.13
             curl-epoll  15945  1.00       45.5      0.70
             plain        4902  0.31      170.0      2.60
             sender      13943  0.87       65.4      1.00
             pyreqwest    5641  0.35      192.0      2.94
             rnet         2344  0.15      474.9      7.26   (2 rounds)

The sender, with every guarantee, costs 1.37-1.44x the bare curl-epoll request and less than
bare curl through ``AsyncCurlMulti``; against the aiohttp clients it is 2.5x cheaper.
``--wire``: plain and sender send every name in its own case; the sender adds only ``Host``
and ``Content-Length``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

import _rig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_rig.SRC))

from hotspot_webhooks import catalog  # noqa: E402
from hotspot_webhooks.delivery.curl_loop import EpollCurlLoop  # noqa: E402
from hotspot_webhooks.delivery.sender import Sender  # noqa: E402
from hotspot_webhooks.receiver import ORIGINAL_HEADER_LITERAL  # noqa: E402
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers  # noqa: E402

CANDIDATES = ("bare", "curl", "curl-epoll", "plain", "sender", "pyreqwest", "rnet")
TIMEOUT = 10.0  # seconds, total, per request
EXCERPT = 4096  # bytes of a response kept
POOL = 64  # distinct signed requests, cycled
Send = Callable[[str, bytes, dict[str, Any], str], Awaitable[int]]


def requests(size: str) -> list[tuple[bytes, dict[str, str], str]]:
    """``POOL`` signed requests: (body, headers, delivery id), as the dispatcher builds them."""
    samples = [catalog.serialize(t.sample) for t in catalog.EVENT_TYPES.values()]
    if size == "8k":
        base = dict(catalog.EVENT_TYPES["transaction.paid.create"].sample)
        samples = [catalog.serialize({**base, "note": "x" * (8192 - len(samples[0]))})]
    signers = [Signer("bench-api-key-0123456789")]
    built = []
    for n, body in zip(range(POOL), itertools.cycle(samples), strict=False):
        request = DeliveryRequest(
            f"evt_{n:026d}", "transaction.paid.create", "bench-1", f"dlv_{n}", 1
        )
        built.append((body, delivery_headers(request, body, signers, int(time.time())), f"dlv_{n}"))
    return built


# ---- the candidates: each opens a client and returns (send, close) ---------------------------


async def open_bare() -> tuple[Send, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            return r.status

    return send, session.close


async def open_plain() -> tuple[Send, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=TIMEOUT)
    )

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as r:
            await r.content.read(EXCERPT)
            return r.status

    return send, session.close


async def open_sender() -> tuple[Send, Callable[[], Awaitable[None]]]:
    wired: list[str] = []
    sender = Sender(
        timeout=TIMEOUT, allow_private=True, excerpt_bytes=EXCERPT, on_wire=wired.append
    )

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        result = await sender.send(url, body, headers, delivery_id)
        if result.error:
            raise RuntimeError(result.error)
        return result.status or 0

    return send, sender.close


async def open_pyreqwest() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().timeout(timedelta(seconds=TIMEOUT)).follow_redirects(False).build()

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        response = await client.post(url).headers(headers).body_bytes(body).build().send()
        await response.bytes()
        return int(response.status)

    return send, client.close


async def open_rnet() -> tuple[Send, Callable[[], Awaitable[None]]]:
    import rnet

    client = rnet.Client(timeout=int(TIMEOUT), allow_redirects=False)

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        response = await client.post(url, headers=headers, body=body)
        await response.bytes()
        status = int(response.status)
        await response.close()
        return status

    async def close() -> None:
        pass

    return send, close


def open_bare_curl(
    epoll: bool,
) -> Callable[[], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]:
    """libcurl's multi interface with one header and nothing else: driven by pycurl's own
    ``AsyncCurlMulti`` (``curl``), or by the sender's ``EpollCurlLoop`` (``curl-epoll``)."""

    async def opened() -> tuple[Send, Callable[[], Awaitable[None]]]:
        import pycurl

        loop: Any = EpollCurlLoop(asyncio.get_running_loop()) if epoll else pycurl.AsyncCurlMulti()
        idle: list[pycurl.Curl] = []

        async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
            curl = idle.pop() if idle else pycurl.Curl()
            answer: list[bytes] = []
            curl.setopt(pycurl.URL, url)
            curl.setopt(pycurl.POSTFIELDS, body)
            curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json", "Expect:"])
            curl.setopt(pycurl.WRITEFUNCTION, answer.append)
            await loop.perform(curl)
            idle.append(curl)
            return int(curl.getinfo(pycurl.RESPONSE_CODE))

        async def close() -> None:
            await loop.aclose()
            for curl in idle:
                curl.close()

        return send, close

    return opened


OPENERS: dict[str, Callable[[], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]] = {
    "bare": open_bare,
    "plain": open_plain,
    "sender": open_sender,
    "pyreqwest": open_pyreqwest,
    "rnet": open_rnet,
    "curl": open_bare_curl(epoll=False),
    "curl-epoll": open_bare_curl(epoll=True),
}


# ---- one measurement (own interpreter) --------------------------------------------------------


async def measure(
    candidate: str, url: str, size: str, count: int, concurrency: int
) -> dict[str, float]:
    pool = requests(size)
    send, close = await OPENERS[candidate]()
    remaining = count
    statuses: dict[int, int] = {}

    async def lane(offset: int) -> None:
        nonlocal remaining
        n = offset
        while remaining > 0:
            remaining -= 1
            body, headers, delivery_id = pool[n % POOL]
            n += 1
            status = await send(url, body, headers, delivery_id)
            statuses[status] = statuses.get(status, 0) + 1

    try:
        await send(url, *pool[0][:2], pool[0][2])  # imports and first connection off the clock
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane(n) for n in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await close()
    if statuses != {200: count}:
        raise SystemExit(f"{candidate}: not every answer was 200: {statuses}")
    return {"rate": count / seconds, "cpu_us": cpu / count * 1e6}


def in_subprocess(*args: str) -> dict[str, Any] | str:
    """One measurement in a fresh interpreter: its figures, or why it failed (a candidate
    that crashes is reported, and the other candidates' rounds go on)."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return f"failed: exit code {done.returncode}: {done.stderr.strip()[-300:]}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> None:
    candidates = [c for c in args.candidates.split(",") if c]
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--step", "receiver", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert receiver.stdout is not None
        receiver.stdout.readline()  # "ready"
        url = f"http://127.0.0.1:{port}/hook"
        print(
            f"{args.requests} requests per candidate and round, {args.concurrency} in flight, "
            f"keep-alive, to one loopback receiver (own process, uvloop); client loop: asyncio"
        )
        figures: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_number in range(1, args.rounds + 1):
            for size in ("catalog", "8k"):
                for candidate in candidates:
                    got = in_subprocess(
                        "--step", "measure", "--candidate", candidate, "--url", url,
                        "--size", size, "--requests", str(args.requests),
                        "--concurrency", str(args.concurrency),
                    )  # fmt: skip
                    if isinstance(got, str):
                        print(f"  round {round_number} {size:7} {candidate:9} {got}", flush=True)
                        continue
                    figures.setdefault((size, candidate), []).append(got)
                    print(
                        f"  round {round_number} {size:7} {candidate:9} {got['rate']:7.0f}/s "
                        f"{got['cpu_us']:6.1f} us CPU each",
                        flush=True,
                    )
        for size in ("catalog", "8k"):
            measured = [c for c in candidates if figures.get((size, c))]
            rates = {c: statistics.median(f["rate"] for f in figures[(size, c)]) for c in measured}
            cpus = {c: statistics.median(f["cpu_us"] for f in figures[(size, c)]) for c in measured}
            fastest = max(rates.values())
            print(f"body {size} (median of the rounds measured, {args.rounds} unless said):")
            print(
                f"  {'candidate':9} {'req/s':>7} {'ratio':>5} {'CPU us/req':>10} {'vs sender':>9}"
            )
            for c in measured:
                rounds = len(figures[(size, c)])
                print(
                    f"  {c:9} {rates[c]:7.0f} {rates[c] / fastest:5.2f} {cpus[c]:10.1f} "
                    f"{cpus[c] / cpus.get('sender', cpus[c]):9.2f}"
                    + ("" if rounds == args.rounds else f"   ({rounds} rounds)")
                )
    finally:
        receiver.terminate()
        receiver.wait()


# ---- header case on the wire -----------------------------------------------------------------


def wire(candidates: Sequence[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.receivers import RawSocketReceiver

    async def main() -> None:
        receiver = await RawSocketReceiver().start()
        try:
            body, headers, delivery_id = requests("catalog")[0]
            for candidate in candidates:
                send, close = await OPENERS[candidate]()
                try:
                    await send(receiver.url, body, headers, delivery_id)
                finally:
                    await close()
                names = [name for name, _ in receiver.requests[-1].headers]
                literal = ORIGINAL_HEADER_LITERAL in names
                print(f"{candidate:9} literal header exact: {'yes' if literal else 'NO '}  {names}")
        finally:
            await receiver.stop()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--wire", action="store_true", help="show header names as they arrive")
    parser.add_argument("--step", choices=["receiver", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--candidate", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "receiver":
        _rig.serve_receivers([args.port])
    elif args.step == "measure":
        figures = asyncio.run(
            measure(args.candidate, args.url, args.size, args.requests, args.concurrency)
        )
        print(json.dumps(figures))
    elif args.wire:
        wire([c for c in args.candidates.split(",") if c])
    else:
        run(args)


if __name__ == "__main__":
    main()
