"""``RETENTION``: each dispatcher purges, once a day, what is finished and older than that.

The first purge comes a few minutes after start, at a random moment so that workers started
together do not purge at once (several purging is harmless, only wasted: each batch deletes
what is still there). A purge that finds the database away is tried again in an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta

from ..errors import DatabaseUnavailable
from ..store.store import Store

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
FIRST_AFTER = (60.0, 600.0)  # seconds after start: the first purge, somewhere in between
AGAIN_AFTER_FAILURE = 3600.0


async def purge_daily(store: Store, retention: timedelta, stopping: asyncio.Event) -> None:
    """Until ``stopping``: purge, then wait a day."""
    wait = random.uniform(*FIRST_AFTER)
    while not await _stopped_within(stopping, wait):
        older_than = datetime.now(UTC) - retention
        try:
            purged = await store.purge(older_than)
        except DatabaseUnavailable as exc:
            log.warning("retention: purge failed (%s); trying again in an hour", exc)
            wait = AGAIN_AFTER_FAILURE
            continue
        log.info(
            "retention: purged %d deliveries, %d attempts and %d events older than %s "
            "(%d transactions, the longest %.3f s)",
            purged.deliveries, purged.attempts, purged.events, f"{older_than:%Y-%m-%d %H:%M}",
            purged.transactions, purged.longest_transaction,
        )  # fmt: skip
        wait = DAY


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
