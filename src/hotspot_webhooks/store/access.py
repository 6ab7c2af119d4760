"""Access changes, announced: what lets an API process remember who a token stands for and
still honour a revocation made by any other process at once.

A change of access (a token revoked, an operator disabled or deleted) is announced by the
transaction that makes it. An ``AccessWatch`` tells its process whether what it remembers may
still be trusted, calling ``forget`` whenever an announcement is heard:

- PostgreSQL: the changing transaction sends ``NOTIFY`` (delivered at commit) and every API
  process ``LISTEN``\\s on a connection of its own. While that connection is down nothing can
  be heard, so nothing remembered is trusted (every request asks the database) until it is
  back.
- SQLite (one machine): the change rewrites a stamp file beside the database after it
  commits; each process compares the file's status before trusting what it remembers (a
  ``stat``, about a microsecond).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from .notify import listen

CHANNEL = "hotspot_webhooks_access"
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"


def stamp_file_for(database: Path) -> Path:
    return database.with_name(database.name + ".access")


class AccessWatch:
    """Whether callers remembered by this process may be trusted; ``forget`` them when not."""

    def __init__(self, forget: Callable[[], None]) -> None:
        self.forget = forget

    def trusted(self) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop watching."""


class StampWatch(AccessWatch):
    """SQLite: the stamp file beside the database changes with every access change."""

    def __init__(self, stamp: Path, forget: Callable[[], None]) -> None:
        super().__init__(forget)
        self.stamp = stamp
        self._seen = self._status()

    def _status(self) -> tuple[int, int, int] | None:
        try:
            status = self.stamp.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def trusted(self) -> bool:
        status = self._status()
        if status != self._seen:
            self._seen = status
            self.forget()
        return True


class ListenWatch(AccessWatch):
    """PostgreSQL: ``LISTEN`` for announcements; trusted only while listening."""

    def __init__(self, url: URL, forget: Callable[[], None]) -> None:
        super().__init__(forget)
        self._listening = False
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(
            listen(url, self._heard, self._stopping, channel=CHANNEL, lost=self._lost)
        )

    def _heard(self) -> None:
        self.forget()
        self._listening = True

    def _lost(self) -> None:
        self._listening = False
        self.forget()

    def trusted(self) -> bool:
        return self._listening

    async def close(self) -> None:
        self._stopping.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def announce_in(conn: AsyncConnection) -> None:
    """Inside the changing transaction: on PostgreSQL, ``NOTIFY`` every listener at commit."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(NOTIFY_SQL)


def announce_after(stamp: Path | None) -> None:
    """After the changing transaction committed: on SQLite, rewrite the stamp file."""
    if stamp is None:
        return
    temporary = stamp.with_name(f".{stamp.name}.{os.getpid()}")
    temporary.write_text(f"{os.getpid()} {os.urandom(8).hex()}\n")
    temporary.chmod(0o600)
    os.replace(temporary, stamp)  # a new inode: seen as a change even within one mtime tick
