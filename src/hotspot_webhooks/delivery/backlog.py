"""The due backlog, measured for the metrics: how many deliveries wait, and for how long.

A dispatcher whose metrics someone reads (``metrics.exported()``) measures it every
``HEARTBEAT`` (``Queue.backlog``: two small read-only queries). Every process measures the
same database, so the gauges keep the most recent measurement of a live process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from .. import metrics
from ..errors import DatabaseUnavailable
from ..store.queue import Queue
from ..store.records import Backlog

log = logging.getLogger(__name__)


def publish(backlog: Backlog) -> None:
    metrics.DUE.set(backlog.due)
    metrics.OLDEST_DUE_AGE.set(backlog.oldest_due_age)
    metrics.DISABLED_WEBHOOKS.set(backlog.disabled_webhooks)
    metrics.BACKLOG_MEASURED.set(time.time())


async def measure_periodically(queue: Queue, every: float, stopping: asyncio.Event) -> None:
    """Measure and publish the backlog every ``every`` seconds until ``stopping``."""
    while not stopping.is_set():
        try:
            publish(await queue.backlog(datetime.now(UTC)))
        except DatabaseUnavailable as exc:  # the claims count the outage; this only waits
            log.debug("measuring the backlog failed (%s)", exc)
        except Exception:  # a metric must never take a dispatcher down
            log.exception("measuring the backlog failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)
