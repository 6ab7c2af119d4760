"""Concurrency of a pass: one lane per receiver host, a global bound over all of them.

Each host's deliveries queue in its lane, drained by at most ``per_host`` workers; every request
also takes one of ``concurrency`` global slots. A slow or saturated host therefore only delays
its own lane. Workers are long-lived coroutines per lane, not one task per delivery, which keeps
the scheduling cost per delivery to a deque pop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class HostLanes(Generic[Item]):
    def __init__(
        self, *, concurrency: int, per_host: int, work: Callable[[Item], Awaitable[None]]
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._work = work
        self._queues: dict[str, deque[Item]] = {}
        self._workers: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def put(self, host: str, item: Item) -> None:
        queue = self._queues.get(host)
        if queue is None:
            queue = self._queues[host] = deque()
        queue.append(item)
        workers = self._workers.get(host, 0)
        if workers < self._per_host:
            self._workers[host] = workers + 1
            task = asyncio.create_task(self._drain(host, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, host: str, queue: deque[Item]) -> None:
        try:
            while queue:
                item = queue.popleft()
                async with self._slots:
                    await self._work(item)
        finally:
            self._workers[host] -= 1
            if not self._workers[host]:
                del self._workers[host]
                if not queue:
                    del self._queues[host]

    async def join(self) -> None:
        """Wait until every queued item has been worked."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
