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


async def listen(
    url: URL,
    wake: Callable[[], None],
    stopping: asyncio.Event,
    *,
    channel: str = CHANNEL,
    lost: Callable[[], None] = lambda: None,
) -> None:
    """``LISTEN`` to ``channel`` on PostgreSQL until ``stopping``, calling ``wake`` on each
    notification and once after each (re)connection, for what was announced while away;
    ``lost`` is called whenever the connection goes (nothing is heard until ``wake``)."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    backoff = 0.5
    while not stopping.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            gone = asyncio.Event()

            def terminated(_: object, gone: asyncio.Event = gone) -> None:
                lost()  # at once: a notification may be missed from now on
                gone.set()

            conn.add_termination_listener(terminated)
            await conn.add_listener(channel, lambda *_: wake())
            backoff = 0.5
            wake()
            while not (stopping.is_set() or gone.is_set() or conn.is_closed()):
                await _first_of(stopping, gone, within=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("listening on %s failed (%s); again in %.1f s", channel, exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            backoff = min(backoff * 2, 5)
        finally:
            lost()
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Wait until one of ``events`` is set, or ``within`` seconds."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
