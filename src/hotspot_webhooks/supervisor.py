"""``worker --processes N``: N dispatchers on one host, under one supervisor.

Each child is a plain ``hotspot-webhooks worker`` process: children share the work through
the database exactly as workers on separate hosts do (claims that skip each other's rows,
heartbeats, takeovers), so a host uses every core with nothing shared in memory. The
supervisor only keeps them running: a child that dies is started again (after a pause that
doubles while children keep dying young, so a broken configuration does not spin), and
SIGTERM or SIGINT stops them all the graceful way (each finishes its in-flight attempts and
hands the rest back), killing any that outstay the stop timeout. Should the supervisor itself
be killed, its children get SIGTERM from the kernel (Linux) and stop the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

FIRST_RESTART_WAIT = 1.0  # seconds before a dead child is started again
MAX_RESTART_WAIT = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long resets the wait
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Supervisor:
    """Runs ``processes`` copies of ``command`` until stopped."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout: float,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        """``on_exit(pid)`` is told of each child that has exited (the metrics forget its
        live gauges)."""
        self.command = list(command)
        self.on_exit = on_exit
        self.env = dict(env) if env is not None else None
        self.processes = processes
        self.stop_timeout = stop_timeout
        self.stopping = asyncio.Event()
        self.restarts = 0
        self.children: dict[int, asyncio.subprocess.Process] = {}  # slot -> the running child

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        """Keep every slot's child running until ``stop`` (SIGTERM/SIGINT), then stop them."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        log.info("supervising %d worker processes", self.processes)
        try:
            await asyncio.gather(*(self._keep(slot) for slot in range(self.processes)))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info("all %d worker processes stopped", self.processes)

    async def _keep(self, slot: int) -> None:
        wait = FIRST_RESTART_WAIT
        while not self.stopping.is_set():
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                *self.command, env=self.env, preexec_fn=_stop_with_the_supervisor
            )
            self.children[slot] = child
            log.info("worker process %d started (pid %d)", slot + 1, child.pid)
            exited = asyncio.create_task(child.wait())
            stopping = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not exited.done():  # stopping: the graceful way, then the hard one
                await self._stop_child(slot, child, exited)
                self._exited(child.pid)
                return
            self._exited(child.pid)
            if self.stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER:
                wait = FIRST_RESTART_WAIT
            log.warning(
                "worker process %d (pid %d) exited with %s; starting another in %.0f s",
                slot + 1, child.pid, _describe(child.returncode), wait,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), wait)
            wait = min(2 * wait, MAX_RESTART_WAIT)
            self.restarts += 1

    def _exited(self, pid: int) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit(pid)
            except Exception:  # bookkeeping must not stop the supervising
                log.exception("after worker process %d exited", pid)

    async def _stop_child(
        self, slot: int, child: asyncio.subprocess.Process, exited: asyncio.Task[int]
    ) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(exited), self.stop_timeout)
        except TimeoutError:
            log.warning(
                "worker process %d (pid %d) did not stop within %.0f s: killed",
                slot + 1, child.pid, self.stop_timeout,
            )  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await exited


def _stop_with_the_supervisor() -> None:
    """In the child, before it runs: on Linux, ask for SIGTERM when the supervisor dies
    (even by SIGKILL), so no worker is left behind without it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _describe(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"
