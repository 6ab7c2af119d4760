"""What each dispatcher erases as time passes: what ``RETENTION`` lets go, and the previous
keys of rotations whose ``ROTATION_GRACE`` ran out, every few seconds.

Purges come every ``purge_period(RETENTION)``: a tenth of the retention, at least 30 s and
at most an hour, so that the database holds the retention's worth of finished work and at
most one period more (a purge a day let ``RETENTION=5m`` grow the database all day). The
first comes within one period of start, at a random moment so that workers started together
do not purge at once (several purging is harmless, only wasted: each batch deletes what is
still there). Each purge walks the tables in windows of ``PURGE_BATCH`` rows, one short
transaction each (``Retention.purge``). A purge that finds the database away is tried again
after one period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta

from ..errors import DatabaseUnavailable
from ..store.disk_full import ADVICE, disk_full
from ..store.retention import Retention

log = logging.getLogger(__name__)

PERIOD_FLOOR = 30.0  # seconds: purges come no more often than this
PERIOD_CEILING = 3600.0  # nor less often than this
PERIOD_SHARE = 10  # a purge every tenth of the retention, between the two


def purge_period(retention: timedelta) -> float:
    """Seconds between purges for this retention: ``min(RETENTION / 10, 1 h)``, at least 30 s."""
    share = retention.total_seconds() / PERIOD_SHARE
    return max(PERIOD_FLOOR, min(share, PERIOD_CEILING))


async def purge_periodically(
    store: Retention, retention: timedelta, stopping: asyncio.Event
) -> None:
    """Until ``stopping``: purge every ``purge_period(retention)``, the first time within one
    period of start."""
    period = purge_period(retention)
    wait = random.uniform(0.1, 1.0) * period
    vacuum_checked = False
    while not await _stopped_within(stopping, wait):
        wait = period
        if not vacuum_checked:
            vacuum_checked = await _warn_if_autovacuum_is_off(store)
        older_than = datetime.now(UTC) - retention
        try:
            purged = await store.purge(older_than)
        except DatabaseUnavailable as exc:
            if disk_full(exc):
                log.error("retention: purge failed: %s; trying again in %.0f s", ADVICE, period)
            else:
                log.warning("retention: purge failed (%s); trying again in %.0f s", exc, period)
            continue
        log.info(
            "retention: purged %d deliveries, %d attempts and %d events older than %s "
            "(%d transactions, the longest %.3f s)",
            purged.deliveries, purged.attempts, purged.events, f"{older_than:%Y-%m-%d %H:%M}",
            purged.transactions, purged.longest_transaction,
        )  # fmt: skip


async def _warn_if_autovacuum_is_off(store: Retention) -> bool:
    """Say so once if PostgreSQL's autovacuum is off: a purge then deletes rows whose room is
    never reused, and the database grows as if nothing were purged. True once checked."""
    try:
        off = await store.autovacuum_is_off()
    except DatabaseUnavailable:
        return False  # at the next purge
    if off:
        log.warning(
            "retention: PostgreSQL's autovacuum is off, so the room of purged rows is not "
            "reused and the database keeps growing: turn it on (autovacuum = on, the "
            "default), or VACUUM deliveries, attempts and events regularly"
        )
    return True


async def erase_expired_keys(store: Retention, every: float, stopping: asyncio.Event) -> None:
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
