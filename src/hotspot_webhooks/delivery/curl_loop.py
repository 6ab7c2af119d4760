"""libcurl's multi handle on the running asyncio loop, through an epoll set of its own.

``pycurl.AsyncCurlMulti`` registers every socket curl wants watched with the loop's selector,
and curl stops watching a connection each time it goes back to the pool: one Python-level
``add_reader``/``remove_reader`` pair per request, about 30 µs of the dispatcher's CPU per
delivery on the development machine (py-spy on ``bench/dispatch.py``). Here curl's sockets
come and go from a private ``select.epoll`` with one C call each, and the loop watches only
that set's own descriptor. Same contract as ``AsyncCurlMulti``: ``perform`` resolves when the
transfer ends or raises ``pycurl.error``; a cancelled ``perform`` takes its handle out.
Linux only (epoll); elsewhere ``open_curl_loop`` returns ``AsyncCurlMulti``.

The total timeout is this loop's, not curl's: curl's runs by the wall clock, so a worker that
was stopped (SIGSTOP, a stalled loop, a paused container) for longer than the timeout found,
when it ran again, every request it had on the wire "timed out", before reading the answers
waiting on their sockets. Here a watchdog ticks while requests run; a tick that comes more
than ``STALL`` late is a stall of this process, and the time stalled is not counted against
any request: the loop reads what arrived meanwhile, and a request times out only after
``timeout`` seconds of the worker's own attention (``attention``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from typing import Protocol

import pycurl

log = logging.getLogger(__name__)
TICK = 0.1  # seconds between the watchdog's looks at the running requests
STALL = 0.5  # a tick this much late: this process was stopped or its loop was blocked


class CurlLoop(Protocol):
    async def perform(self, curl: pycurl.Curl) -> pycurl.Curl: ...

    async def aclose(self) -> None: ...


def open_curl_loop(loop: asyncio.AbstractEventLoop, timeout: float) -> tuple[CurlLoop, bool]:
    """A curl loop, and whether it enforces ``timeout`` itself (else curl's own must)."""
    if hasattr(select, "epoll"):
        return EpollCurlLoop(loop, timeout), True
    return pycurl.AsyncCurlMulti(), False


class EpollCurlLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None = None) -> None:
        """With ``timeout`` (seconds) it times transfers out itself; without, it never does."""
        self._loop = loop
        self._timeout = timeout
        # each running transfer's deadline on the attention clock; all share one timeout,
        # so deadlines come in the order transfers started (the dict's order)
        self._deadlines: dict[pycurl.Curl, float] = {}
        self.stalled = 0.0  # seconds this process was seen stalled while requests ran
        self._watchdog: asyncio.TimerHandle | None = None
        self._expected = 0.0  # when the watchdog's next tick is due
        self._multi = pycurl.CurlMulti()
        self._epoll = select.epoll()
        self._watched: set[int] = set()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._running: dict[pycurl.Curl, asyncio.Future[None]] = {}
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    async def perform(self, curl: pycurl.Curl) -> pycurl.Curl:
        future = self._loop.create_future()
        self._running[curl] = future
        if self._timeout is not None:
            self._deadlines[curl] = self.attention() + self._timeout
            if self._watchdog is None:
                self._expected = time.monotonic() + TICK
                self._watchdog = self._loop.call_at(self._loop.time() + TICK, self._tick)
        self._multi.add_handle(curl)
        try:
            await future
        except asyncio.CancelledError:
            self._deadlines.pop(curl, None)
            if self._running.pop(curl, None) is not None:
                self._multi.remove_handle(curl)
            raise
        return curl

    def attention(self) -> float:
        """The worker's own clock: monotonic seconds, less the time it was seen stalled."""
        return time.monotonic() - self.stalled

    def _tick(self) -> None:
        """Count a stall of this process, then time out the transfers past their deadline."""
        now = time.monotonic()
        late = now - self._expected
        if late > STALL:
            self.stalled += late
            log.warning(
                "this worker was stalled for %.1f s (stopped, or its loop blocked): not counted "
                "against the %d requests on the wire", late, len(self._running),
            )  # fmt: skip
        attention = now - self.stalled
        expired = []
        for curl, deadline in self._deadlines.items():
            if deadline > attention:
                break
            expired.append(curl)
        for curl in expired:
            del self._deadlines[curl]
            future = self._running.pop(curl, None)
            self._multi.remove_handle(curl)  # curl closes its connection: the answer is late
            if future is not None and not future.done():
                future.set_exception(
                    pycurl.error(pycurl.E_OPERATION_TIMEDOUT, "the total timeout passed")
                )
        if self._running:
            self._expected = now + TICK
            self._watchdog = self._loop.call_at(self._loop.time() + TICK, self._tick)
        else:
            self._watchdog = None

    async def aclose(self) -> None:
        if self._epoll.closed:
            return
        self._loop.remove_reader(self._epoll.fileno())
        if self._timer is not None:
            self._timer.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._deadlines.clear()
        for curl, future in self._running.items():
            with contextlib.suppress(pycurl.error):
                self._multi.remove_handle(curl)
            future.cancel()
        self._running.clear()
        self._multi.close()
        self._epoll.close()

    # ---- curl's callbacks: which sockets to watch, when to wake it ----------------------------

    def _on_socket(self, what: int, fd: int, multi: pycurl.CurlMulti, socketp: object) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in self._watched:
                self._watched.discard(fd)
                with contextlib.suppress(OSError):  # already closed: epoll dropped it
                    self._epoll.unregister(fd)
            return
        events = (select.EPOLLIN if what & pycurl.POLL_IN else 0) | (
            select.EPOLLOUT if what & pycurl.POLL_OUT else 0
        )
        if fd in self._watched:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
            self._watched.add(fd)

    def _on_timer(self, milliseconds: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if milliseconds == 0:  # after this libcurl call returns, never inside it
            self._timer = self._loop.call_soon(self._on_timeout)
        elif milliseconds > 0:
            self._timer = self._loop.call_later(milliseconds / 1000, self._on_timeout)

    # ---- the loop's callbacks: drive curl ---------------------------------------------------

    def _on_ready(self) -> None:
        for fd, events in self._epoll.poll(0):
            mask = (pycurl.CSELECT_IN if events & select.EPOLLIN else 0) | (
                pycurl.CSELECT_OUT if events & select.EPOLLOUT else 0
            )
            if events & (select.EPOLLERR | select.EPOLLHUP):
                mask |= pycurl.CSELECT_ERR
            self._multi.socket_action(fd, mask)
        self._finish()

    def _on_timeout(self) -> None:
        self._timer = None
        self._multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        self._finish()

    def _finish(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._done(curl, None)
            for curl, number, message in failed:
                self._done(curl, pycurl.error(number, message))
            if not queued:
                return

    def _done(self, curl: pycurl.Curl, error: pycurl.error | None) -> None:
        self._deadlines.pop(curl, None)
        future = self._running.pop(curl, None)
        self._multi.remove_handle(curl)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
