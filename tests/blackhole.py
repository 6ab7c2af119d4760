"""A TCP proxy on 127.0.0.1 that can become a black hole, for the database fault tests.

Put in front of a database (a throwaway cluster of ``tests/pg_cluster.py``), it forwards bytes
both ways until ``hold()``: from then on it keeps every connection open but forwards nothing,
in either direction, and sends no FIN and no RST, just as a network link that stops
forwarding without closing does. New connections are accepted (the kernel does that) and
get no answer. ``heal()`` lets everything through again, in order: what a client sent into
the hole reaches the server late, as packets retransmitted over a healed link would, and a
connection its client closed meanwhile is then closed towards the server.

``hold_on(pattern)`` holds from the moment a client sends bytes containing ``pattern`` (e.g.
``b"COMMIT"``), that chunk included: the link fails exactly as that statement leaves. With
``after``, only on a connection that sent ``after`` first (the ``COMMIT`` of a claim).

It runs on the test's own event loop: ``async with BlackHole(port) as hole``.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

CHUNK = 65536


class BlackHole:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._trigger: bytes | None = None
        self._trigger_after: bytes | None = None

    async def __aenter__(self) -> BlackHole:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def holding(self) -> bool:
        return not self._flowing.is_set()

    def hold(self) -> None:
        """Stop forwarding, both ways, on every connection; close nothing."""
        self._flowing.clear()

    def hold_on(self, pattern: bytes, *, after: bytes | None = None) -> None:
        """Hold once a client sends ``pattern`` (not before): that chunk is held too. With
        ``after``: once a client sends ``pattern`` on a connection that sent ``after`` before."""
        self._trigger = pattern
        self._trigger_after = after

    def heal(self) -> None:
        self._trigger = None
        self._flowing.set()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        try:
            await self._flowing.wait()  # held: the client's connection gets no answer
            try:
                server_r, server_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._writers.add(server_w)
            await asyncio.gather(
                self._pump(client_r, server_w, upstream=True),
                self._pump(server_r, client_w, upstream=False),
            )
        finally:
            self._tasks.discard(task)
            for writer in (client_w,):
                writer.transport.abort()
                self._writers.discard(writer)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        armed = False  # this connection sent ``after``
        try:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except OSError:
                    data = b""
                if upstream and self._trigger is not None:
                    if self._trigger in data and (self._trigger_after is None or armed):
                        self._trigger = self._trigger_after = None
                        self.hold()
                    elif self._trigger_after is not None and self._trigger_after in data:
                        armed = True
                await self._flowing.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()
            self._writers.discard(writer)
