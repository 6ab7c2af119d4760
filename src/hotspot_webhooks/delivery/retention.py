"""What each dispatcher erases as time passes: what ``RETENTION`` lets go, daily, and the
previous keys of rotations whose ``ROTATION_GRACE`` ran out, every few seconds.

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


async def erase_expired_keys(store: Store, every: float, stopping: asyncio.Event) -> None:
    """Until ``stopping``, every ``every`` seconds: erase the previous keys past their grace
    (they stopped signing at the end of it already; this takes them out of storage)."""
    while not await _stopped_within(stopping, every):
        try:
            erased = await store.erase_expired_keys(datetime.now(UTC))
        except DatabaseUnavailable as exc:
            log.warning("erasing the expired keys of rotations failed (%s); trying again", exc)
            continue
        if erased:
            log.info("rotation: erased %d previous keys whose grace ran out", erased)


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
