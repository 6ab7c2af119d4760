"""The due backlog, measured for the metrics: how many deliveries wait, and for how long.

A dispatcher whose metrics someone reads (``metrics.exported()``) measures it every
``HEARTBEAT`` with two small read-only queries: the due deliveries are the entries of the
partial index ``ix_deliveries_due`` up to now, so counting them reads that index alone, and the
disabled webhooks are a count over the (small) webhooks table. Every process measures the same
database, so the gauges keep the most recent measurement of a live process.

The queries are written here, on the store's read connection and its tables, rather than as
``Store`` methods: they serve the metrics only and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from .. import metrics
from ..errors import DatabaseUnavailable
from ..states import WebhookStatus
from ..store import schema
from ..store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backlog:
    due: int
    oldest_due_age: float  # seconds past its due time; 0 when nothing is due
    disabled_webhooks: int


async def measure(store: Store, now: datetime) -> Backlog:
    deliveries, webhooks = schema.deliveries, schema.webhooks
    # the index's own predicate, spelled as it is, so both databases read the partial index
    due = (
        select(func.count(), func.min(deliveries.c.next_attempt_at))
        .where(text(schema.DUE))
        .where(deliveries.c.next_attempt_at <= now)
    )
    disabled = select(func.count()).where(webhooks.c.status == WebhookStatus.DISABLED.value)
    async with store.read() as conn:
        count, oldest = (await conn.execute(due)).one()
        disabled_count = (await conn.execute(disabled)).scalar_one()
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(due=count, oldest_due_age=age, disabled_webhooks=disabled_count)


def publish(backlog: Backlog) -> None:
    metrics.DUE.set(backlog.due)
    metrics.OLDEST_DUE_AGE.set(backlog.oldest_due_age)
    metrics.DISABLED_WEBHOOKS.set(backlog.disabled_webhooks)
    metrics.BACKLOG_MEASURED.set(time.time())


async def measure_periodically(store: Store, every: float, stopping: asyncio.Event) -> None:
    """Measure and publish the backlog every ``every`` seconds until ``stopping``."""
    while not stopping.is_set():
        try:
            publish(await measure(store, datetime.now(UTC)))
        except DatabaseUnavailable as exc:  # the claims count the outage; this only waits
            log.debug("measuring the backlog failed (%s)", exc)
        except Exception:  # a metric must never take a dispatcher down
            log.exception("measuring the backlog failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)
