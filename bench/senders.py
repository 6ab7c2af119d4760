"""Delivery clients on our real request: which one costs closest to a bare request.

    .venv/bin/python bench/senders.py [--requests 20000] [--concurrency 100] [--rounds 3]
        [--candidates bare,plain,sender,tuned,pyreqwest,rnet,pycurl]
    .venv/bin/python bench/senders.py --wire         # header names as they arrive
    .venv/bin/python bench/senders.py --guarantees   # each guarantee of Sender, tried

Every candidate POSTs to the same loopback receiver (``bench/_rig.py``'s: its own process,
uvloop, a minimal keep-alive HTTP/1.1 server answering ``200``), ``--concurrency`` requests in
flight (as the dispatcher's lanes keep them), keep-alive, a total timeout, the response read up
to an excerpt. The request is ours: the eleven headers of ``signing.delivery_headers`` in their
exact case, bodies the catalog's samples (294-672 bytes, cycled) and, in a second size, one of
about 8 KiB. Signing is done before the clock starts: only the client is measured. Each
candidate runs in a fresh interpreter, one after the other inside each round, rounds
interleaved, so all meet the same moments of a noisy machine. Printed per candidate and body
size: requests/s (median of the rounds), its ratio to the fastest candidate, and CPU µs per
request (the client process's CPU time / requests: the stable figure here).

* ``bare``: the loop ``bench/dispatch.py`` calls the ceiling: aiohttp, one header;
* ``plain``: aiohttp's defaults with our eleven headers and a total timeout;
* ``sender``: our ``delivery.sender.Sender`` as the dispatcher uses it (``on_wire`` reported);
* ``tuned``: ``Sender`` given a ``CIMultiDict`` of the headers instead of a dict, and a
  ``request_class`` deciding aiohttp's automatic headers once instead of per request (the
  profile's ``update_auto_headers``); the same bytes on the wire;
* ``pyreqwest``, ``rnet``: Rust (reqwest/hyper) clients from PyPI, if installed;
* ``pycurl``: libcurl's multi interface driven by the asyncio loop (socket and timer
  callbacks), if installed: an SSRF check in ``OPENSOCKETFUNCTION`` (on the very address it
  connects to) and ``PREREQFUNCTION`` as the on-wire report.

``--wire`` sends one request with each candidate to a raw-socket receiver and prints the header
names as they arrived, byte for byte: ``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256`` must arrive in
exactly that case (the original platform's PHP receivers read it case-sensitively).
``--guarantees`` tries, on real sockets, what ``Sender`` promises: the on-wire report, no
redirects, a capped read (1 MiB answered, 4 KiB kept), a total timeout (1 s against a receiver
dripping a byte every 0.2 s), and the SSRF guard at connect time (``localhost`` and
``127.0.0.1`` refused with private targets disallowed, nothing reaching the receiver).

Figures, 2026-11-30, on 677cb94, this machine (2 cores shared with other work, so CPU µs run
high: the bare loop costs 100-160 µs a request here, not issue 14's ~70), ``--rounds 4``:

    body     candidate   req/s ratio CPU us/req vs sender
    catalog  bare         7412  0.53      137.6      0.87
             plain        7805  0.56      127.8      0.81
             sender       6359  0.45      158.1      1.00
             tuned        6355  0.45      158.0      1.00
             pyreqwest    8877  0.63      146.8      0.93
             rnet         3513  0.25      360.8      2.28
             pycurl      14014  1.00       71.2      0.45
    8k       bare         7645  0.66      132.2      0.78
             plain        7289  0.63      139.2      0.82
             sender       5875  0.51      170.2      1.00
             tuned        6039  0.52      165.5      0.97
             pyreqwest    8196  0.71      157.0      0.92
             rnet         3256  0.28      387.6      2.28
             pycurl      11522  1.00       87.3      0.51

Two earlier full runs agree on the order (all three: pycurl at 0.45-0.70 of ``sender``'s CPU
and 1.4-2.2 x its rate; pyreqwest at 0.81-1.07; rnet at 2.2-2.5, and one of its processes once
exited non-zero without a word). ``tuned`` is not clearly cheaper: 0.85-0.86 in one 3-round run,
0.97-1.00 here, and 0.94-1.04 against the old ``Sender`` itself (8 interleaved rounds with the
tuned code in its place), so ``Sender`` stays as it is (the bar was 10 % less CPU).

``--wire``: bare (one header), plain, sender, tuned and pycurl send every name in its own case;
pyreqwest and rnet send ``Http_x_hotspotsystem_hmac_sha256``, ``Webhook-Id`` and so on (hyper
title-cases HTTP/1 names; pyreqwest's only other choice is all lower case) and add
Accept-Encoding (pyreqwest also Accept): disqualified. ``--guarantees``: sender and pycurl keep
all six. pyreqwest and rnet are not tried: neither has a hook at connect time to pin the SSRF
check to the address connected (pyreqwest's ``resolve`` is a static map fixed when the client
is built; rnet has none), nor an on-wire report.
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
from multidict import CIMultiDict

import _rig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_rig.SRC))

from hotspot_webhooks import catalog  # noqa: E402
from hotspot_webhooks.delivery.sender import DRAIN_LIMIT, Sender  # noqa: E402
from hotspot_webhooks.delivery.targets import forbidden_reason  # noqa: E402
from hotspot_webhooks.receiver import ORIGINAL_HEADER_LITERAL  # noqa: E402
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers  # noqa: E402

CANDIDATES = ("bare", "plain", "sender", "tuned", "pyreqwest", "rnet", "pycurl")
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


class _DeliveryRequest(aiohttp.ClientRequest):
    """aiohttp's request with its automatic headers settled once: given ``skip_auto_headers``,
    aiohttp builds a CIMultiDict of the skipped names and copies the request's headers on every
    request (the profile's ``update_auto_headers``). The wire is the same as ``Sender``'s."""

    def update_auto_headers(self, skip_auto_headers: Any) -> None:
        self._skip_auto_headers = _SKIPPED


_SKIPPED: CIMultiDict[None] = CIMultiDict((("Accept", None), ("Accept-Encoding", None)))


class _TunedSender(Sender):
    def _open(self) -> aiohttp.ClientSession:
        session = super()._open()
        session._request_class = _DeliveryRequest
        session._skip_auto_headers = frozenset()
        return session


async def open_tuned() -> tuple[Send, Callable[[], Awaitable[None]]]:
    wired: list[str] = []
    sender = _TunedSender(
        timeout=TIMEOUT, allow_private=True, excerpt_bytes=EXCERPT, on_wire=wired.append
    )

    async def send(url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        result = await sender.send(url, body, CIMultiDict(headers), delivery_id)  # type: ignore[arg-type]
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


class CurlMulti:
    """libcurl's multi interface on the running asyncio loop: curl says which sockets to watch
    and when to wake it; the loop calls ``socket_action`` back. Easy handles are reused, so
    their connections stay alive."""

    def __init__(
        self, allow_private: bool, on_wire: Callable[[str], None], timeout: float = TIMEOUT
    ) -> None:
        import pycurl  # type: ignore[import-untyped]

        self.pycurl = pycurl
        self.loop = asyncio.get_running_loop()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._timer)
        self.timer: asyncio.TimerHandle | None = None
        self.waiting: dict[Any, asyncio.Future[int]] = {}
        self.capped: set[Any] = set()  # handles whose answer was cut after the excerpt
        self.idle: list[Any] = []
        self.allow_private = allow_private
        self.on_wire = on_wire
        self.timeout = timeout

    def _watch(self, event: int, fd: int, multi: Any, data: Any) -> None:
        p = self.pycurl
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        if event in (p.POLL_IN, p.POLL_INOUT):
            self.loop.add_reader(fd, self._act, fd, p.CSELECT_IN)
        if event in (p.POLL_OUT, p.POLL_INOUT):
            self.loop.add_writer(fd, self._act, fd, p.CSELECT_OUT)

    def _timer(self, ms: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if ms >= 0:
            self.timer = self.loop.call_later(ms / 1000, self._act, self.pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        self.multi.socket_action(fd, event)
        while True:
            queued, done, failed = self.multi.info_read()
            for handle in done:
                self._finish(handle, None)
            for handle, _number, message in failed:
                self._finish(handle, message)
            if not queued:
                break

    def _finish(self, handle: Any, error: str | None) -> None:
        self.multi.remove_handle(handle)
        future = self.waiting.pop(handle)
        if error is None or handle in self.capped:  # cut on purpose: the status stands
            self.capped.discard(handle)
            future.set_result(handle.getinfo(self.pycurl.RESPONSE_CODE))
        else:
            future.set_exception(OSError(error))

    def _open_socket(self, purpose: int, address: Any) -> Any:
        """Refuses a forbidden address at the moment curl would connect to it (so a DNS
        answer that rebinds later cannot slip past), else opens the socket curl asked for."""
        family, kind, protocol, sockaddr = address
        if not self.allow_private and forbidden_reason(str(sockaddr[0])):
            return self.pycurl.SOCKET_BAD
        return socket.socket(family, kind, protocol)

    def _handle(self) -> Any:
        if self.idle:
            return self.idle.pop()
        p, handle = self.pycurl, self.pycurl.Curl()
        handle.setopt(p.TIMEOUT_MS, int(self.timeout * 1000))
        handle.setopt(p.FOLLOWLOCATION, 0)
        handle.setopt(p.NOSIGNAL, 1)
        handle.setopt(p.OPENSOCKETFUNCTION, self._open_socket)
        return handle

    async def deliver(
        self, url: str, body: bytes, headers: dict[str, Any], delivery_id: str
    ) -> tuple[int | None, bytes, str | None]:
        """(status, the answer's first bytes, error): as ``Sender.send`` reads an answer, up
        to an excerpt and ``DRAIN_LIMIT`` more, then the connection is dropped."""
        p, handle = self.pycurl, self._handle()
        kept: list[bytes] = []
        size = 0

        def keep(chunk: bytes) -> int | None:
            nonlocal size
            if size < EXCERPT:
                kept.append(chunk[: EXCERPT - size])
            size += len(chunk)
            if size > EXCERPT + DRAIN_LIMIT:
                self.capped.add(handle)
                return 0  # curl stops reading and closes this connection
            return None

        def wired(*_: Any) -> int:
            self.on_wire(delivery_id)
            return int(p.PREREQFUNC_OK)

        handle.setopt(p.URL, url)
        handle.setopt(p.POSTFIELDS, body)
        # "Expect:" and "Accept:" empty: curl adds neither (100-continue stalls a body > 1 KiB)
        handle.setopt(
            p.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:", "Accept:"]
        )
        handle.setopt(p.WRITEFUNCTION, keep)
        handle.setopt(p.PREREQFUNCTION, wired)
        future = self.loop.create_future()
        self.waiting[handle] = future
        self.multi.add_handle(handle)
        try:
            return int(await future), b"".join(kept), None
        except OSError as exc:
            return None, b"".join(kept), str(exc)
        finally:
            self.idle.append(handle)

    async def send(self, url: str, body: bytes, headers: dict[str, Any], delivery_id: str) -> int:
        status, _, error = await self.deliver(url, body, headers, delivery_id)
        if status is None:
            raise OSError(error)
        return status

    async def close(self) -> None:
        for handle in self.idle:
            handle.close()
        self.multi.close()


async def open_pycurl() -> tuple[Send, Callable[[], Awaitable[None]]]:
    client = CurlMulti(allow_private=True, on_wire=lambda _: None)
    return client.send, client.close


OPENERS: dict[str, Callable[[], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]] = {
    "bare": open_bare,
    "plain": open_plain,
    "sender": open_sender,
    "tuned": open_tuned,
    "pyreqwest": open_pyreqwest,
    "rnet": open_rnet,
    "pycurl": open_pycurl,
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


# ---- today's guarantees, tried --------------------------------------------------------------

Deliver = Callable[
    [str, bytes, dict[str, Any], str], Awaitable[tuple[int | None, bytes, str | None]]
]


async def guarded(
    candidate: str, allow_private: bool, seconds: float, wired: list[str]
) -> tuple[Deliver, Callable[[], Awaitable[None]]]:
    """A candidate that can carry every guarantee, as (status, excerpt, error) per request."""
    if candidate == "pycurl":
        client = CurlMulti(allow_private, wired.append, seconds)
        return client.deliver, client.close
    sender = Sender(
        timeout=seconds, allow_private=allow_private, excerpt_bytes=EXCERPT, on_wire=wired.append
    )

    async def deliver(
        url: str, body: bytes, headers: dict[str, Any], delivery_id: str
    ) -> tuple[int | None, bytes, str | None]:
        result = await sender.send(url, body, headers, delivery_id)
        return result.status, (result.response_excerpt or "").encode(), result.error

    return deliver, sender.close


async def try_guarantees(candidate: str) -> list[tuple[str, bool, str]]:
    """Each guarantee of ``Sender`` tried on real sockets: (guarantee, kept, what happened)."""
    sys.path.insert(0, str(ROOT))
    from aiohttp import web
    from tests.receivers import MisbehavingReceiver, serving

    body, headers, _ = requests("catalog")[0]
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        await request.read()
        if request.path == "/redirect":
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        if request.path == "/big":
            return web.Response(body=b"x" * (1 << 20))
        return web.Response(text="ok")

    found = []
    async with serving(handle) as port:
        base, wired = f"http://127.0.0.1:{port}", list[str]()
        deliver, close = await guarded(candidate, True, 1.0, wired)
        try:
            status, kept, error = await deliver(f"{base}/ok", body, headers, "dlv_ok")
            found.append(("on-wire report", wired == ["dlv_ok"], f"{status}, reported {wired}"))
            status, kept, error = await deliver(f"{base}/redirect", body, headers, "dlv_r")
            followed = "/elsewhere" in seen
            found.append(("no redirects", status == 302 and not followed, f"{status}, {seen}"))
            status, kept, error = await deliver(f"{base}/big", body, headers, "dlv_big")
            found.append(
                (
                    "capped read",
                    status == 200 and len(kept) <= EXCERPT,
                    f"{status}, kept {len(kept)}",
                )
            )
            drip = await MisbehavingReceiver("drip", 0.2).start()
            try:
                started = time.monotonic()
                status, kept, error = await deliver(drip.url, body, headers, "dlv_drip")
                took = time.monotonic() - started
            finally:
                await drip.stop()
            found.append(
                ("total timeout 1 s (drip)", status is None and took < 2, f"{took:.2f} s: {error}")
            )
        finally:
            await close()
        before = len(seen)
        deliver, close = await guarded(candidate, False, 1.0, [])
        try:
            for host in ("localhost", "127.0.0.1"):
                status, _, error = await deliver(f"http://{host}:{port}/x", body, headers, "d")
                refused = status is None and len(seen) == before
                found.append((f"SSRF guard at connect ({host})", refused, str(error)))
        finally:
            await close()
    return found


def guarantees(candidates: Sequence[str]) -> None:
    for candidate in candidates:
        if candidate not in ("sender", "pycurl"):
            print(
                f"{candidate:9} not tried (only sender and pycurl are built with every guarantee)"
            )
            continue
        for name, kept, what in asyncio.run(try_guarantees(candidate)):
            print(f"{candidate:9} {name:34} {'kept' if kept else 'LOST'}  ({what[:90]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--wire", action="store_true", help="show header names as they arrive")
    parser.add_argument("--guarantees", action="store_true", help="try each guarantee")
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
    elif args.guarantees:
        guarantees([c for c in args.candidates.split(",") if c])
    else:
        run(args)


if __name__ == "__main__":
    main()
