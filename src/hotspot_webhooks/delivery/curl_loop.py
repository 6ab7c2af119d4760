"""libcurl's multi handle on the running asyncio loop, through an epoll set of its own.

``pycurl.AsyncCurlMulti`` registers every socket curl wants watched with the loop's selector,
and curl stops watching a connection each time it goes back to the pool: one Python-level
``add_reader``/``remove_reader`` pair per request, about 30 µs of the dispatcher's CPU per
delivery on the development machine (py-spy on ``bench/dispatch.py``). Here curl's sockets
come and go from a private ``select.epoll`` with one C call each, and the loop watches only
that set's own descriptor. Same contract as ``AsyncCurlMulti``: ``perform`` resolves when the
transfer ends or raises ``pycurl.error``; a cancelled ``perform`` takes its handle out.
Linux only (epoll); elsewhere ``open_curl_loop`` returns ``AsyncCurlMulti``.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from typing import Protocol

import pycurl


class CurlLoop(Protocol):
    async def perform(self, curl: pycurl.Curl) -> pycurl.Curl: ...

    async def aclose(self) -> None: ...


def open_curl_loop(loop: asyncio.AbstractEventLoop) -> CurlLoop:
    if hasattr(select, "epoll"):
        return EpollCurlLoop(loop)
    return pycurl.AsyncCurlMulti()


class EpollCurlLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
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
        self._multi.add_handle(curl)
        try:
            await future
        except asyncio.CancelledError:
            if self._running.pop(curl, None) is not None:
                self._multi.remove_handle(curl)
            raise
        return curl

    async def aclose(self) -> None:
        if self._epoll.closed:
            return
        self._loop.remove_reader(self._epoll.fileno())
        if self._timer is not None:
            self._timer.cancel()
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
        future = self._running.pop(curl, None)
        self._multi.remove_handle(curl)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
