"""The HTTP side of delivery: one signed POST per attempt, bounded in every direction.

Requests go through libcurl's multi interface, driven by the running asyncio loop
(``curl_loop.py``): on our request it costs about half the CPU of aiohttp, which the
sender used before (``bench/senders.py`` has the comparison). What the sender promises:

* the headers go out in the case we give them (the literal ``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256``
  that the original platform's receivers read), over HTTP/1.1, and curl adds only ``Host`` and
  ``Content-Length`` (no ``Accept``, no ``Expect: 100-continue``);
* the SSRF guard judges every address at the moment curl opens a socket to it, so a name that
  resolves, or later rebinds, to an internal address is refused (``_Exchange._open_socket``);
* one total timeout, kept by the curl loop against the worker's own attention (a worker that
  was stopped or stalled does not count that time against its requests: ``curl_loop.py``);
  redirects are not followed; only http and https; no proxy taken from the
  environment; TLS verified against this system's CA bundle (``SSL_CERT_FILE`` honoured);
* the answer is read up to an excerpt, and a little more so the connection stays reusable;
  past that the connection is dropped, the status kept;
* once a request has its connection its bytes go out at once, so that moment is reported
  (``on_wire``): the dispatcher needs it to tell, after a crash, a delivery that may have
  reached its receiver from one that was merely claimed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pycurl

from .curl_loop import CurlLoop, open_curl_loop
from .fence import LeaseFence
from .outcome import AttemptResult
from .retry import RETRY_AFTER_STATUSES
from .targets import forbidden_reason

DRAIN_LIMIT = 64 * 1024  # read this much more to keep the connection reusable
# curl's errors that say the endpoint could not be reached (or vanished mid-request): they feed
# the circuit breaker. A malformed answer or a refused certificate is the endpoint's fault too,
# but it answered: those are plain failures.
_UNREACHABLE = frozenset(
    {
        pycurl.E_COULDNT_RESOLVE_HOST,
        pycurl.E_COULDNT_CONNECT,
        pycurl.E_OPERATION_TIMEDOUT,
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_GOT_NOTHING,
        pycurl.E_SEND_ERROR,
        pycurl.E_RECV_ERROR,
    }
)

# how a request fails on a kept-alive connection that its receiver has closed meanwhile
_DIED_ON_REUSE = frozenset({pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR, pycurl.E_GOT_NOTHING})


@functools.lru_cache(maxsize=10_000)
def _host_port(url: str) -> tuple[str, int]:
    """The host and port a callback URL names, for error messages (parsed once per URL)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "?", port or (443 if parts.scheme == "https" else 80)


class _Exchange:
    """One reusable curl handle (its connection stays alive in the multi's pool) and what the
    request it is carrying has received so far."""

    def __init__(self, sender: Sender) -> None:
        self.excerpt_limit = sender.excerpt_bytes
        self.guarded = not sender.allow_private
        self.on_wire = sender.on_wire
        self.fence = sender.fence
        self.fence_run: int | None = None  # the run its delivery was claimed in (fence.py)
        self.fenced = False  # refused at the fence: nothing went out
        self.delivery_id: str | None = None
        self.kept: list[bytes] = []
        self.received = 0
        self.capped = False
        self.header_lines: list[bytes] = []
        self.refused: list[str] = []  # the SSRF guard's reasons, for this request's error
        curl = self.curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)
        if not sender.loop_times_out:  # else the curl loop enforces it (curl_loop.py)
            curl.setopt(pycurl.TIMEOUT_MS, round(sender.timeout * 1000))
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.PROXY, "")  # never a proxy from http_proxy & co.
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)  # names keep their case
        cafile, capath = _ca_locations()
        if cafile:
            curl.setopt(pycurl.CAINFO, cafile)
        if capath:
            curl.setopt(pycurl.CAPATH, capath)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)
        curl.setopt(pycurl.PREREQFUNCTION, self._prerequest)
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.HEADERFUNCTION, self.header_lines.append)

    def prepare(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        delivery_id: str | None,
        fence_run: int | None = None,
    ) -> None:
        self.delivery_id = delivery_id
        self.fence_run = fence_run
        self.fenced = False
        self.kept.clear()
        self.header_lines.clear()
        self.refused.clear()
        self.received = 0
        self.capped = False
        curl = self.curl
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.POSTFIELDS, body)
        # an empty "Expect:" and "Accept:" keep curl from adding them (100-continue would stall
        # every body over 1 KiB a round trip)
        curl.setopt(
            pycurl.HTTPHEADER,
            [f"{name}: {value}" for name, value in headers.items()] + ["Expect:", "Accept:"],
        )

    def _open_socket(self, purpose: int, address: Any) -> Any:
        """The SSRF guard, on the very address curl is about to connect to."""
        family, kind, protocol, sockaddr = address
        if self.guarded:
            reason = forbidden_reason(str(sockaddr[0]))
            if reason is None and sockaddr[1] == 0:
                reason = "port 0"
            if reason is not None:
                self.refused.append(reason)
                return pycurl.SOCKET_BAD
        return socket.socket(family, kind, protocol)

    def _prerequest(self, *_: Any) -> int:
        """The connection is open (or reused) and the request goes out now, unless the lease
        it is sent under may have been taken over meanwhile (``fence.py``)."""
        fence = self.fence
        if self.fence_run is not None and fence is not None and not fence.holds(self.fence_run):
            self.fenced = True
            return pycurl.PREREQFUNC_ABORT
        if self.on_wire is not None and self.delivery_id is not None:
            self.on_wire(self.delivery_id)
        return pycurl.PREREQFUNC_OK

    def _write(self, chunk: bytes) -> int | None:
        received = self.received
        if received < self.excerpt_limit:
            self.kept.append(chunk[: self.excerpt_limit - received])
        self.received = received = received + len(chunk)
        if received > self.excerpt_limit + DRAIN_LIMIT:
            self.capped = True
            return 0  # curl stops reading and closes this connection; the status stands
        return None

    def excerpt(self) -> str:
        return b"".join(self.kept).decode("utf-8", errors="replace")

    def answer(self) -> int | None:
        """The status of a final response whose status line and headers came in full (a
        blank line ended them), or None: what the receiver answered, whatever the body did."""
        status: int | None = None
        for line in self.header_lines:
            if line.startswith(b"HTTP/"):
                status = None
                parts = line.split(None, 2)
                if len(parts) >= 2 and parts[1].isdigit() and not parts[1].startswith(b"1"):
                    status = int(parts[1])
            elif line in (b"\r\n", b"\n") and status is not None:
                return status
        return None

    def header(self, name: bytes) -> str | None:
        """A header of the last response received (curl hands over every response's lines,
        an interim 1xx's included), or None."""
        found = None
        prefix = name.lower() + b":"
        for line in self.header_lines:
            if line.startswith(b"HTTP/"):
                found = None  # a new response begins
            elif line.lower().startswith(prefix):
                found = line[len(prefix) :].strip().decode("latin-1")
        return found


def _died_unheard(exchange: _Exchange, number: int) -> bool:
    """Did the transfer fail on a reused connection before any answer came back (the receiver
    closed it while it waited in the pool)?"""
    return (
        number in _DIED_ON_REUSE
        and not exchange.header_lines
        and exchange.curl.getinfo(pycurl.NUM_CONNECTS) == 0
    )


def _curl_error(exc: pycurl.error) -> tuple[int, str]:
    """(curl's error number, its message); an error raised before a transfer has no number."""
    if len(exc.args) == 2:
        return exc.args[0], exc.args[1]
    return -1, str(exc.args[0])


@functools.cache
def _ca_locations() -> tuple[str | None, str | None]:
    """The CA bundle and directory this system's OpenSSL uses (``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` first): the curl bundled with pycurl was built elsewhere, and its own
    default may not exist here."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


class Sender:
    """Sends attempts on the running loop; open one per process side and ``close`` it."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        excerpt_bytes: int = 4096,
        on_wire: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.excerpt_bytes = excerpt_bytes
        self.on_wire = on_wire
        self.fence: LeaseFence | None = None  # the dispatcher's: what it may still send
        self._multi: CurlLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Exchange] = []
        self.loop_times_out = False  # does the curl loop enforce the timeout (not curl)?

    async def close(self) -> None:
        if self._multi is not None:
            await self._multi.aclose()
            self._multi = None
        for exchange in self._idle:
            exchange.curl.close()
        self._idle.clear()

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> CurlLoop:
        """A multi handle for ``loop``: a sender used from a new loop starts anew (handles and
        their sockets belong to one loop)."""
        if self._multi is not None:
            await self.close()
        self._multi, self.loop_times_out = open_curl_loop(loop, self.timeout)
        self._loop = loop
        return self._multi

    async def send(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        delivery_id: str | None = None,
        fence_run: int | None = None,
    ) -> AttemptResult:
        """POST once; every outcome, including errors, becomes an ``AttemptResult``. With
        ``fence_run`` the request goes out only while the fence holds that run; if it did
        not, the result says it was not sent."""
        multi = self._multi
        if multi is None or self._loop is not asyncio.get_running_loop():
            multi = await self._bind(asyncio.get_running_loop())
        exchange = self._idle.pop() if self._idle else _Exchange(self)
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        status: int | None = None
        retry_after: str | None = None
        error: str | None = None
        unreachable = False
        number, message = 0, ""
        try:
            exchange.prepare(url, body, headers, delivery_id, fence_run)
            try:
                await multi.perform(exchange.curl)
            except pycurl.error as exc:
                number, message = _curl_error(exc)
                if _died_unheard(exchange, number):
                    # a kept-alive connection that the receiver had closed: the request never
                    # reached it. Once more on a connection of its own; that result stands.
                    exchange.prepare(url, body, headers, delivery_id, fence_run)
                    number, message = await self._perform_fresh(multi, exchange)
        except BaseException:
            exchange.curl.close()  # cancelled mid-request: the handle is not reused
            raise
        if exchange.fenced:
            error = "not sent: this worker's lease may have been taken over (fence.py)"
        elif (
            number
            and not (exchange.capped and number == pycurl.E_WRITE_ERROR)
            and exchange.answer() is None
        ):
            # (a transfer cut on purpose after the excerpt keeps its status; so does one that
            # failed after the receiver answered in full, status line and headers: a body
            # trickling past the timeout, a reset after the answer. The answer is what it
            # said; the body is what came of it.)
            error = self._describe(exchange, url, number, message)
            unreachable = number in _UNREACHABLE
        if error is None:
            status = exchange.curl.getinfo(pycurl.RESPONSE_CODE)
            if status in RETRY_AFTER_STATUSES:
                retry_after = exchange.header(b"Retry-After")
            elif 300 <= status < 400:
                error = f"redirect to {exchange.header(b'Location') or '?'} not followed"
        excerpt = exchange.excerpt() if status is not None else None
        self._idle.append(exchange)
        return AttemptResult(
            started_at=started_at,
            duration_ms=round((time.perf_counter() - clock) * 1000),
            status=status,
            response_excerpt=excerpt,
            error=error,
            retry_after=retry_after,
            unreachable=unreachable,
            sent=not exchange.fenced,
        )

    @staticmethod
    async def _perform_fresh(multi: CurlLoop, exchange: _Exchange) -> tuple[int, str]:
        """Run the prepared transfer on a new connection: (0, "") or curl's error."""
        exchange.curl.setopt(pycurl.FRESH_CONNECT, 1)
        try:
            await multi.perform(exchange.curl)
        except pycurl.error as exc:
            return _curl_error(exc)
        finally:
            exchange.curl.setopt(pycurl.FRESH_CONNECT, 0)
        return 0, ""

    def _describe(self, exchange: _Exchange, url: str, number: int, message: str) -> str:
        """An attempt's error in words an operator can act on, not curl's own."""
        host, port = _host_port(url)
        if number == pycurl.E_OPERATION_TIMEDOUT:
            return f"timed out after {self.timeout:g} s"
        if number == pycurl.E_COULDNT_CONNECT and exchange.refused:
            reasons = ", ".join(dict.fromkeys(exchange.refused))
            return f"refused to connect to {host}: {reasons}"
        if number == pycurl.E_COULDNT_CONNECT:
            errno = exchange.curl.getinfo(pycurl.OS_ERRNO)
            reason = os.strerror(errno) if errno else message
            return f"cannot connect to {host}:{port}: {reason}"
        if number == pycurl.E_COULDNT_RESOLVE_HOST:
            return f"cannot connect to {host}:{port}: cannot resolve host name {host}"
        if number == pycurl.E_GOT_NOTHING:
            return "the server closed the connection without answering"
        if number == pycurl.E_SSL_CONNECT_ERROR and "wrong version number" in message:
            return f"TLS handshake with {host}:{port} failed: it answers plain http, not https"
        text = message or f"curl error {number}"
        return text if len(text) < 500 else text[:497] + "..."
