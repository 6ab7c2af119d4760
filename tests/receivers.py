"""Real receivers on 127.0.0.1 for the tests: Python (aiohttp), raw socket, and PHP's server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
PHP_RECEIVER = ROOT / "examples" / "php" / "receiver.php"


@dataclass
class Received:
    headers: list[tuple[str, str]]  # names exactly as they arrived
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


Responder = Callable[[int], "tuple[int, dict[str, str]] | int"]


@dataclass
class PythonReceiver:
    """aiohttp server; ``respond(n)`` picks the status of the n-th request (1-based)."""

    respond: Responder = lambda n: 200
    requests: list[Received] = field(default_factory=list)
    delay: float = 0.0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> PythonReceiver:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests.append(Received(list(request.raw_headers_str()), body))
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = self.respond(len(self.requests))
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            return web.Response(status=status, text=f"answer {status}", headers=headers)

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        self._runner, self.port = await start_app(app, self.port)
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


def _raw_headers_str(self: web.Request) -> list[tuple[str, str]]:
    return [(k.decode(), v.decode()) for k, v in self.raw_headers]


web.Request.raw_headers_str = _raw_headers_str  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def serving(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
    *,
    method: str = "POST",
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """Serve ``handle`` for every ``method`` request on 127.0.0.1 (over TLS with
    ``ssl_context``); yields the port."""
    app = web.Application()
    app.router.add_route(method, "/{tail:.*}", handle)
    runner, port = await start_app(app, ssl_context=ssl_context)
    try:
        yield port
    finally:
        await runner.cleanup()


async def start_app(
    app: web.Application, port: int = 0, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1 (``port``, or one the system picks); its runner (to
    ``cleanup``) and its port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class _StreamReceiver:
    """A raw asyncio server on 127.0.0.1 whose subclass answers each connection its own way
    (``_answer``); connections still open are closed at ``stop``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.mode}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            await self._answer(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client gave up, or the test is over
        finally:
            self._open.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            await self._server.wait_closed()


class MisbehavingReceiver(_StreamReceiver):
    """An endpoint that never answers properly: ``hang`` accepts connections, reads the
    requests and says nothing; ``drip`` answers one byte of a status line per ``drip_every``
    seconds, never finishing within any sane timeout. Counts what it was sent."""

    def __init__(self, mode: str = "hang", drip_every: float = 0.5) -> None:
        assert mode in ("hang", "drip")
        super().__init__(mode)
        self.drip_every = drip_every
        self.connections = 0
        self.requests = 0

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        if self.mode == "hang":
            await reader.read()  # until the client gives up
            return
        for byte in b"HTTP/1.1 200 OK\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(self.drip_every)


class RawSocketReceiver:
    """Reads the request bytes off the socket itself, so header names keep their exact case."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/raw"

    async def start(self) -> RawSocketReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = [
                    (name, value.strip())
                    for name, _, value in (line.partition(":") for line in lines if line)
                ]
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
                body = await reader.readexactly(length)
                self.requests.append(Received(headers, body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PhpReceiver:
    """``php -S`` running examples/php/receiver.php, the original platform's way to verify."""

    def __init__(self, api_key: str, log: Path) -> None:
        php = shutil.which("php")
        if php is None:
            raise RuntimeError("php is not installed: `apt-get install php-cli` (.ci/run does)")
        self.port = free_port()
        self.log = log
        env = {
            **os.environ,
            "API_KEY": api_key,
            "RECEIVER_LOG": str(log),
            "INBOX_DIR": str(log.parent / "inbox"),  # its deduplication, kept in the test's dir
        }
        self.process = subprocess.Popen(
            [php, "-S", f"127.0.0.1:{self.port}", str(PHP_RECEIVER)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/receiver.php"

    def entries(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class ImpoliteReceiver(_StreamReceiver):
    """An endpoint that answers, then treats the connection rudely: ``trickle`` sends
    ``HTTP/1.1 200 OK`` and its headers at once, then its body one byte per ``trickle_every``
    seconds; ``reset`` answers 200 in full and then resets the connection (an abortive
    close, as a server that closes every connection after answering may do); ``reset-unframed``
    answers 200 with a body delimited by the connection's end, and ends it with a reset.
    Counts the requests it read in full."""

    def __init__(self, mode: str, trickle_every: float = 0.5) -> None:
        assert mode in ("trickle", "reset", "reset-unframed")
        super().__init__(mode)
        self.trickle_every = trickle_every
        self.requests = 0

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        self.requests += 1
        if self.mode == "trickle":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                await writer.drain()
                await asyncio.sleep(self.trickle_every)
                writer.write(b"x")
            return
        framing = b"Content-Length: 2\r\n" if self.mode == "reset" else b""
        writer.write(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\nOK")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
