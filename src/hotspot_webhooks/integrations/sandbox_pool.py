"""The renderer's side of the template sandbox (``sandbox.py``): child processes started on
first use, each rendering one template at a time, and killed and replaced when one overruns.

A child stops a slow render itself (its CPU timer) and a greedy one (its address-space limit),
and answers with the error. What it cannot stop is one C call that runs long; so when a reply
is ``LATE`` (wall clock), the renderer reads the child's CPU time from ``/proc``: a child that
has spent more than its budget is killed (the render fails: the template's fault), one that
has not is starved by a busy machine and waited for, up to ``GIVE_UP``, so that load alone
does not fail deliveries for good.

Two ways to wait for a reply: ``SandboxProcess.render`` blocks in ``select`` (``SandboxPool``
lends processes to threads: the synchronous ``render`` and the create/update check), and
``render_async`` keeps the child's pipe registered with the event loop (``TemplateRenderer``,
for the dispatcher): no thread hop per render. A render that ends without its reply
(cancelled, late, failed) ends its child, since a reply still on its way must never answer
the next render.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import orjson

from .sandbox import (
    COMPILE_LIMIT,
    CPU,
    MAX_MESSAGE,
    TIME_LIMIT,
    RenderError,
    SandboxUnavailable,
    write_message,
)

LATE: Final = 1.0  # wall seconds after which a render's child has its CPU time looked at
GIVE_UP: Final = 20.0  # wall seconds after which a render fails whatever the child spent
START_TIMEOUT: Final = 20.0  # wall seconds for a new child to be ready
_SLACK = 0.25  # CPU seconds past the child's own timers: clock ticks, signal delivery
_TICK = 1 / os.sysconf("SC_CLK_TCK")
_SRC = str(Path(__file__).resolve().parents[2])  # where hotspot_webhooks is, for the child
# isolated (-I): no PYTHON* variables, no user site, not the working directory on the path
_COMMAND: Final = (
    sys.executable,
    "-I",
    "-c",
    f"import sys; sys.path.insert(0, {_SRC!r}); "
    "from hotspot_webhooks.integrations.sandbox import main; main()",
)
_READ = 1 << 16  # bytes per read of a reply: more would be a mmap and munmap per read
_KNOWN_KEYS = 512  # template keys remembered per child before forgetting them all


class SandboxProcess:
    """One child process and its pipes, rendering one template at a time: ``render`` blocks
    (``SandboxPool`` lends processes to threads), ``render_async`` waits on the event loop
    (``TemplateRenderer``). A process serves one of the two, not both."""

    def __init__(self, command: Sequence[str] = _COMMAND, *, late: float = LATE) -> None:
        self._command = list(command)
        self._late = late
        self._process: subprocess.Popen[bytes] | None = None
        self._known: set[str] = set()  # template keys the child holds compiled
        self._cpu = 0.0  # the child's CPU seconds at its last reply
        self._budget = TIME_LIMIT + _SLACK  # CPU seconds the request under way may take
        # render_async's side: the loop and descriptor the child's replies are read on (kept
        # registered while the child lives), the reply being gathered and its future
        self._reader: tuple[asyncio.AbstractEventLoop, int] | None = None
        self._buffer = bytearray()
        self._waiting: asyncio.Future[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def render(self, key: str, source: str, context: Mapping[str, Any], is_json: bool) -> bytes:
        request: dict[str, Any] = {"key": key, "json": is_json, "context": context}
        if key not in self._known:
            request["source"] = source
        reply = self._reply(self._send(self._ready(), request))
        if reply[CPU.size :] == b"N":  # the child forgot it: send it whole
            request["source"] = source
            reply = self._reply(self._send(self._ready(), request))
        return self._answer(key, reply)

    async def render_async(
        self, key: str, source: str, context: Mapping[str, Any], is_json: bool
    ) -> bytes:
        request: dict[str, Any] = {"key": key, "json": is_json, "context": context}
        if key not in self._known:
            request["source"] = source
        if self._process is not None and self._process.poll() is not None:
            self.close()  # it died between renders
        if self._process is None:  # starting waits for the child: not on the event loop
            await asyncio.get_running_loop().run_in_executor(None, self._ready)
        reply = await self._reply_async(self._send(self._ready(), request))
        if reply[CPU.size :] == b"N":
            request["source"] = source
            reply = await self._reply_async(self._send(self._ready(), request))
        return self._answer(key, reply)

    def _send(
        self, process: subprocess.Popen[bytes], request: Mapping[str, Any]
    ) -> subprocess.Popen[bytes]:
        """Write ``request``; the process that has it. The child is idle between renders and
        reads at once, so the write takes as long as the copy."""
        # the CPU this request may take before a late child is killed: its timers' and slack
        self._budget = TIME_LIMIT + _SLACK + (COMPILE_LIMIT if "source" in request else 0.0)
        try:
            message = orjson.dumps(request)
        except TypeError:  # an integer beyond 64 bits, in a registered type's payload
            message = json.dumps(request).encode()
        try:
            write_message(_fd(process.stdin), message)
        except OSError:  # it died between renders: once more, on a new one
            self.close()
            process = self._ready()
            write_message(_fd(process.stdin), message)
        return process

    def _answer(self, key: str, reply: bytes) -> bytes:
        (self._cpu,) = CPU.unpack_from(reply)
        reply = reply[CPU.size :]
        if len(self._known) >= _KNOWN_KEYS:
            self._known.clear()
        self._known.add(key)
        tag, payload = reply[:1], reply[1:]
        if tag == b"O":
            return payload
        if tag == b"E":
            error = json.loads(payload)
            if "memory" in error["message"]:
                self.close()  # a child that ran out of memory is replaced
            raise RenderError(str(error["message"]), error["line"])
        self.close()
        raise RenderError(f"the sandbox answered {reply[:20]!r}")

    def _reply(self, process: subprocess.Popen[bytes]) -> bytes:
        fd = _fd(process.stdout)
        started = time.monotonic()
        waited = self._late
        reply = bytearray()
        try:
            while True:
                timeout = max(0.0, started + waited - time.monotonic())
                if not select.select([fd], [], [], timeout)[0]:
                    if time.monotonic() - started < waited:
                        continue
                    self._check_late(process, started)
                    waited += 0.1
                    continue
                payload = self._received(reply, os.read(fd, _READ))
                if payload is not None:
                    return payload
        except BaseException as exc:
            raise self._failed(exc) from None

    async def _reply_async(self, process: subprocess.Popen[bytes]) -> bytes:
        loop = asyncio.get_running_loop()
        if self._reader is None:
            fd = _fd(process.stdout)
            loop.add_reader(fd, self._readable)
            self._reader = (loop, fd)
        self._buffer = bytearray()
        waiting: asyncio.Future[bytes] = loop.create_future()
        self._waiting = waiting
        self._timer = loop.call_later(self._late, self._on_late, process, time.monotonic())
        try:
            return await waiting
        except BaseException as exc:
            raise self._failed(exc) from None
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._waiting = self._timer = None

    def _readable(self) -> None:
        """The event loop's callback: part of a reply (or the end of the child) has come."""
        assert self._reader is not None
        try:
            chunk = os.read(self._reader[1], _READ)
        except OSError:
            chunk = b""
        if not chunk:
            self._stop_reading()  # the end stays readable: no callback for ever after it
        waiting = self._waiting
        if waiting is None or waiting.done():
            return  # nothing asked: the next render finds the child dead, or it is killed
        try:
            payload = self._received(self._buffer, chunk)
        except BaseException as exc:
            waiting.set_exception(exc)
        else:
            if payload is not None:
                waiting.set_result(payload)

    def _on_late(self, process: subprocess.Popen[bytes], started: float) -> None:
        waiting = self._waiting
        if waiting is None or waiting.done() or self._reader is None:
            return
        try:
            self._check_late(process, started)
        except RenderError as exc:
            waiting.set_exception(exc)
        else:
            self._timer = self._reader[0].call_later(0.1, self._on_late, process, started)

    def _stop_reading(self) -> None:
        if self._reader is not None:
            loop, fd = self._reader
            self._reader = None
            loop.remove_reader(fd)  # before the pipe closes, so that its number is not reused

    def _failed(self, exc: BaseException) -> BaseException:
        """A render that did not get its reply: this child may still answer it, so it cannot
        serve another; the error to raise."""
        status = self.close()
        if isinstance(exc, _Ended):
            return RenderError(f"the sandbox process ended during the render (status {status})")
        return exc

    @staticmethod
    def _received(reply: bytearray, chunk: bytes) -> bytes | None:
        """Add ``chunk`` to ``reply``; the payload once the reply is whole."""
        if not chunk:
            raise _Ended
        reply += chunk
        if len(reply) < 4:
            return None
        size = int.from_bytes(reply[:4], "big")
        if size > MAX_MESSAGE:
            raise RenderError("the sandbox's reply is over its bound")
        if len(reply) < 4 + size:
            return None
        return bytes(reply[4 : 4 + size])

    def _check_late(self, process: subprocess.Popen[bytes], started: float) -> None:
        """A late reply: ``RenderError`` if the child has spent its budget (or ``GIVE_UP``
        has passed), nothing if it is merely starved by a busy machine."""
        spent = _cpu_seconds(process.pid)
        starved = spent is not None and spent - self._cpu < self._budget
        if starved and time.monotonic() - started < GIVE_UP:
            return
        raise RenderError(f"took more than {TIME_LIMIT * 1000:.0f} ms of CPU (stopped)")

    def _ready(self) -> subprocess.Popen[bytes]:
        if self._process is not None:
            return self._process
        self._known.clear()
        try:
            process = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={},  # none of the service's settings and secrets
                close_fds=True,
                start_new_session=True,  # a terminal's Ctrl-C is for the parent
            )
        except OSError as exc:
            raise SandboxUnavailable(f"the template sandbox cannot start: {exc}") from None
        ready = select.select([_fd(process.stdout)], [], [], START_TIMEOUT)[0]
        hello = os.read(_fd(process.stdout), 1 + CPU.size) if ready else b""
        if len(hello) != 1 + CPU.size or hello[:1] != b"R":
            process.kill()
            process.wait()
            raise SandboxUnavailable("the template sandbox did not start")
        (self._cpu,) = CPU.unpack_from(hello, 1)
        self._process = process
        return process

    def close(self) -> int | None:
        """End the child (the next render starts another); its exit status."""
        self._stop_reading()
        if self._waiting is not None and not self._waiting.done():  # a render_async under way
            self._waiting.set_exception(SandboxUnavailable("the template renderer is closed"))
        process, self._process = self._process, None
        if process is None:
            return None
        with contextlib.suppress(OSError):
            process.kill()
        status = process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        return status


class _Ended(Exception):
    """The child's end of the pipe closed before its reply was whole."""


def _fd(pipe: IO[bytes] | None) -> int:
    assert pipe is not None  # both pipes are asked for at start
    return pipe.fileno()


def _cpu_seconds(pid: int) -> float | None:
    """A process's CPU time (user + system), from ``/proc``; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK  # utime and stime, fields 14 and 15


class SandboxPool:
    """``size`` sandbox processes, each lent to one render at a time; thread-safe."""

    def __init__(self, size: int = 1, *, command: Sequence[str] = _COMMAND) -> None:
        self._all = [SandboxProcess(command) for _ in range(size)]
        self._idle: queue.LifoQueue[SandboxProcess] = queue.LifoQueue()
        for process in self._all:
            self._idle.put(process)
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def render(self, key: str, source: str, context: Mapping[str, Any], is_json: bool) -> bytes:
        if self._closed.is_set():
            raise SandboxUnavailable("the template renderer is closed")
        process = self._idle.get()
        try:
            return process.render(key, source, context, is_json)
        finally:
            self._idle.put(process)

    def close(self) -> None:
        self._closed.set()
        for process in self._all:
            process.close()
