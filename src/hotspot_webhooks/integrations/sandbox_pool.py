"""The renderer's side of the template sandbox (``sandbox.py``): child processes started on
first use, each rendering one template at a time, and killed and replaced when one overruns.

A child stops a slow render itself (its CPU timer) and a greedy one (its address-space limit),
and answers with the error. What it cannot stop is one C call that runs long; so when a reply
is ``LATE`` (wall clock), the renderer reads the child's CPU time from ``/proc``: a child that
has spent more than its budget is killed (the render fails: the template's fault), one that
has not is starved by a busy machine and waited for, up to ``GIVE_UP``, so that load alone
does not fail deliveries for good.
"""

from __future__ import annotations

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
    CPU,
    MAX_MESSAGE,
    TIME_LIMIT,
    RenderError,
    SandboxUnavailable,
    write_message,
)

LATE: Final = 1.0  # wall seconds after which a render's child has its CPU time looked at
GIVE_UP: Final = 10.0  # wall seconds after which a render fails whatever the child spent
START_TIMEOUT: Final = 20.0  # wall seconds for a new child to be ready
_CPU_BUDGET = TIME_LIMIT + 0.25  # the child's own timer, plus clock-tick and signal slack
_TICK = 1 / os.sysconf("SC_CLK_TCK")
_SRC = str(Path(__file__).resolve().parents[2])  # where hotspot_webhooks is, for the child
_COMMAND: Final = (sys.executable, "-m", "hotspot_webhooks.integrations.sandbox")
_KNOWN_KEYS = 512  # template keys remembered per child before forgetting them all


class SandboxProcess:
    """One child process and its pipes; not thread-safe (``SandboxPool`` lends it out)."""

    def __init__(self, command: Sequence[str] = _COMMAND, *, late: float = LATE) -> None:
        self._command = list(command)
        self._late = late
        self._process: subprocess.Popen[bytes] | None = None
        self._known: set[str] = set()  # template keys the child holds compiled
        self._cpu = 0.0  # the child's CPU seconds at its last reply

    def render(self, key: str, source: str, context: Mapping[str, Any], is_json: bool) -> bytes:
        request: dict[str, Any] = {"key": key, "json": is_json, "context": context}
        if key not in self._known:
            request["source"] = source
        reply = self._exchange(request)
        if reply == b"N":  # the child forgot it: send it whole
            request["source"] = source
            reply = self._exchange(request)
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

    def _exchange(self, request: Mapping[str, Any]) -> bytes:
        try:
            message = orjson.dumps(request)
        except TypeError:  # an integer beyond 64 bits, in a registered type's payload
            message = json.dumps(request).encode()
        process = self._ready()
        try:
            write_message(_fd(process.stdin), message)
        except OSError:  # it died between renders: once more, on a new one
            self.close()
            process = self._ready()
            write_message(_fd(process.stdin), message)
        return self._reply(process)

    def _reply(self, process: subprocess.Popen[bytes]) -> bytes:
        fd = _fd(process.stdout)
        started = time.monotonic()
        spent_before = self._cpu
        waited = self._late
        reply = bytearray()
        while True:
            while not select.select([fd], [], [], max(0.0, started + waited - time.monotonic()))[0]:
                elapsed = time.monotonic() - started
                if elapsed < waited:
                    continue
                spent = _cpu_seconds(process.pid)
                if spent is not None:
                    starved = spent - spent_before < _CPU_BUDGET
                    if starved and elapsed < GIVE_UP:
                        waited += 0.1
                        continue
                self.close()
                raise RenderError(f"took more than {TIME_LIMIT * 1000:.0f} ms of CPU (stopped)")
            chunk = os.read(fd, 1 << 16)  # more would be a mmap and munmap per read
            if not chunk:
                status = self.close()
                raise RenderError(f"the sandbox process ended during the render (status {status})")
            reply += chunk
            if len(reply) >= 4:
                size = int.from_bytes(reply[:4], "big")
                if size > MAX_MESSAGE:
                    self.close()
                    raise RenderError("the sandbox's reply is over its bound")
                if len(reply) >= 4 + size:
                    (self._cpu,) = CPU.unpack_from(reply, 4)
                    return bytes(reply[4 + CPU.size : 4 + size])

    def _ready(self) -> subprocess.Popen[bytes]:
        if self._process is not None:
            return self._process
        self._known.clear()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC, env.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
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
