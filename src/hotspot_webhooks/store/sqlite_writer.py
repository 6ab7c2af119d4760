"""Whole write transactions on SQLite in one hand-off: the group commit of emitted events.

Through the async driver, every statement costs several round trips between the event loop
and the driver's thread, and under load those hand-offs cost the event loop more than SQLite
spends on the statements. Here a transaction is a plain function run, with the stdlib driver,
on one dedicated thread: one hand-off per commit, however many statements it holds. It uses
the same pragmas as every other connection, and the store's write queue still serializes it
with the other writers of this process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import DatabaseUnavailable
from .database import BUSY_TIMEOUT_MS, SQLITE_PRAGMAS
from .readiness import WriteHealth

T = TypeVar("T")


class SqliteWriter:
    def __init__(self, path: Path, health: WriteHealth | None = None) -> None:
        self._path = path
        self._health = health  # told each transaction's outcome (readiness)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None  # opened, and only used, on that thread

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction: committed if it returns,
        rolled back if it raises. Database failures become ``DatabaseUnavailable``."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._thread, self._transaction, work)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            if self._health is not None:
                self._health.failed(f"database unavailable: {exc}")
            raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
        if self._health is not None:
            self._health.succeeded()
        return result

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        def close_connection() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close_connection)
        self._thread.shutdown(wait=True)
