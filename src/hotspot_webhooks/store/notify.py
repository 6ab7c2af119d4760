"""New work, announced: a wake-up for dispatchers when deliveries are stored (``LOW_LATENCY``).

In one process (SQLite, or ``serve``) the store calls its listeners after each commit that
stored deliveries. Across processes and hosts on PostgreSQL that commit also sends a
``NOTIFY`` (delivered at commit, once per transaction), and every worker ``LISTEN``\\s on a
connection of its own, reconnecting with backoff when the server goes away. A wake-up only
makes a dispatcher claim sooner: a missed one costs latency, never a delivery, because passes
every ``INTERVAL`` still claim whatever is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)
CHANNEL = "hotspot_webhooks_new_work"
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"


class NewWork:
    """The in-process side: who to call after a commit that stored deliveries."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[], None]] = []
        self.notify_other_processes = False  # PostgreSQL: NOTIFY in the storing transaction

    def announce(self) -> None:
        for listener in self.listeners:
            listener()


async def listen(url: URL, wake: Callable[[], None], stopping: asyncio.Event) -> None:
    """``LISTEN`` on PostgreSQL until ``stopping``, calling ``wake`` on each notification
    (and once after each reconnection, for what was announced while away)."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    backoff = 0.5
    while not stopping.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, lambda *_: wake())
            backoff = 0.5
            wake()
            while not (stopping.is_set() or lost.is_set() or conn.is_closed()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("listening for new work failed (%s); again in %.1f s", exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            backoff = min(backoff * 2, 5)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
