"""``Database``: one engine, its transactions, and what every repository shares.

A repository method owns exactly one transaction, opened here: ``read()``, ``write()`` (on
SQLite queued behind this process's other writers, and counted for readiness), or
``changing_access()`` (a write that changes who may do what, announced to every process).
SQL shared inside a transaction is a module function taking its connection, never a call to
another repository's method: ``write()`` is not reentrant on SQLite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..config import DEFAULT_DB_TIMEOUT
from ..errors import Conflict, DatabaseUnavailable
from .access import (
    AccessWatch,
    ListenWatch,
    StampWatch,
    announce_after,
    announce_in,
    stamp_file_for,
)
from .database import did_not_answer, sqlite_file, transaction, within
from .notify import NOTIFY_SQL, NewWork, listen
from .readiness import PROBE_SQL, WriteHealth
from .records import Purged
from .sqlite_writer import SqliteWriter

PURGE_BATCH = 1000  # rows a purge or a cascade deletes per transaction


class Database:
    """The engine and its transactions, built once per process (``Store``)."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        self.engine = engine
        self.timeout = timeout  # PostgreSQL: every wait on the database (``database.py``)
        # SQLite has one writer at a time. Queueing this process's writers here costs only the
        # wait; leaving it to SQLite's busy handler costs sleeps of up to 100 ms each.
        self.write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        path = sqlite_file(engine.url)
        self.write_health = WriteHealth()  # for readiness: do writes succeed?
        self.sqlite_writer = SqliteWriter(path, self.write_health) if path is not None else None
        self._access_stamp = stamp_file_for(path) if path is not None else None
        self.new_work = NewWork()

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self.engine, write=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        try:
            if self.write_turn is None:
                async with transaction(self.engine, write=True) as conn:
                    yield conn
            else:
                async with self.write_turn, transaction(self.engine, write=True) as conn:
                    yield conn
        except DatabaseUnavailable as exc:
            self.write_health.failed(exc.message)
            raise
        self.write_health.succeeded()

    @asynccontextmanager
    async def changing_access(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that changes who may do what: announced to every process."""
        async with self.write() as conn:
            yield conn
            await announce_in(conn)
        announce_after(self._access_stamp)

    async def close(self) -> None:
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers within the timeout."""

        async def select_one() -> None:
            async with self.read() as conn:
                await conn.execute(select(1))

        try:
            await within(self.timeout, select_one())
        except TimeoutError:
            raise did_not_answer(self.engine, committing=False) from None

    async def check_writes(self) -> None:
        """Raise ``DatabaseUnavailable`` unless writes succeed (``readiness.py``)."""

        async def probe() -> None:
            async with self.write() as conn:
                await conn.execute(text(PROBE_SQL))

        await self.write_health.check(probe)

    def watch_access(self, forget: Callable[[], None]) -> AccessWatch:
        """What tells this process when a change of access made by any process (a token
        revoked, an operator disabled or deleted) makes what it remembers stale
        (``access.py``). Call it inside a running event loop; ``close`` it when done."""
        if self._access_stamp is not None:
            return StampWatch(self._access_stamp, forget)
        return ListenWatch(self.engine.url, forget)

    def announce_new_work_across_processes(self, enabled: bool) -> None:
        """``LOW_LATENCY`` for other processes: on PostgreSQL a commit that stores or re-queues
        deliveries sends ``NOTIFY``; SQLite has no such channel (in-process listeners only)."""
        self.new_work.notify_other_processes = enabled and self.engine.dialect.name == "postgresql"

    def listen_for_new_work(
        self, wake: Callable[[], None], stopping: asyncio.Event
    ) -> Coroutine[Any, Any, None] | None:
        """What wakes a dispatcher in another process (PostgreSQL ``LISTEN``, until
        ``stopping``); None where the backend has no such channel."""
        if self.engine.dialect.name != "postgresql":
            return None
        return listen(self.engine.url, wake, stopping)

    async def notify(self, conn: AsyncConnection, changed: bool) -> None:
        """Inside a write that made deliveries due: wake other processes' dispatchers."""
        if changed and self.new_work.notify_other_processes:
            await conn.exec_driver_sql(NOTIFY_SQL)


async def insert_unique(
    conn: AsyncConnection, table: Any, row: dict[str, Any], message: str
) -> None:
    """Insert ``row``; a row with the same key raises ``Conflict(message)``."""
    try:
        async with conn.begin_nested():
            await conn.execute(insert(table), row)
    except IntegrityError:
        raise Conflict(message) from None


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def timed(purged: Purged, started: float) -> None:
    """Count one more transaction of a batched deletion begun at ``started``."""
    purged.transactions += 1
    purged.longest_transaction = max(purged.longest_transaction, time.monotonic() - started)
