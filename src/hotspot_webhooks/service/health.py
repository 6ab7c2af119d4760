"""The control center's overview: how each of the caller's webhooks is doing, and which
need attention first. Its result types are here too: only the control center shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Settings, parse_success_statuses
from ..models import Webhook
from ..states import WebhookStatus
from ..store.store import Store
from .caller import ADMIN, Caller
from .common import now
from .webhooks import Webhooks


class Health:
    def __init__(self, settings: Settings, store: Store, webhooks: Webhooks) -> None:
        self.settings = settings
        self.store = store
        self.webhooks = webhooks

    async def overview(
        self, *, hours: int = 24, buckets: int = 24, caller: Caller = ADMIN
    ) -> Overview:
        """Each of the caller's webhooks as an operator checks it: success rate and p50/p95
        latency of its attempts over the last ``hours``, attempts per bucket by outcome, the
        last failure, an open circuit (as many unreachable attempts in a row as open one)
        and what waits; the webhooks that need attention first."""
        until = now()
        since = until - timedelta(hours=hours)
        bucket_seconds = hours * 3600 // buckets
        webhooks = await self.webhooks.get_all(caller=caller)
        success = sorted(parse_success_statuses(self.settings.success_statuses))
        rows = await self.store.reports.webhook_health(
            since, success, bucket_seconds, caller.operator_id
        )
        stats = {row.webhook_id: row for row in rows.stats}
        failures = {row.webhook_id: row for row in rows.last_failures}
        unreachable = {row.webhook_id: int(row.in_a_row) for row in rows.unreachable}
        pending = {row.webhook_id: int(row.pending) for row in rows.pending}
        timelines: dict[str, list[list[int]]] = {}
        outcomes = {"succeeded": 0, "retrying": 1, "failed": 2}
        for row in rows.timeline:
            counts = timelines.setdefault(row.webhook_id, [[0, 0, 0] for _ in range(buckets)])
            index = min(max(int(row.bucket), 0), buckets - 1)
            counts[index][outcomes[row.outcome]] += int(row.attempts)
        healths = []
        for webhook in webhooks:
            stat = stats.get(webhook.id)
            counts = timelines.get(webhook.id, [[0, 0, 0] for _ in range(buckets)])
            failure = failures.get(webhook.id)
            in_a_row = unreachable.get(webhook.id, 0)
            waiting = pending.get(webhook.id, 0)
            attempted = int(stat.attempts) if stat else 0
            health = WebhookHealth(
                webhook=webhook,
                attempts=attempted,
                succeeded=int(stat.succeeded) if stat else 0,
                p50_ms=None if stat is None else stat.p50_ms,
                p95_ms=None if stat is None else stat.p95_ms,
                timeline=[
                    TimeBucket(since + timedelta(seconds=i * bucket_seconds), *count)
                    for i, count in enumerate(counts)
                ],
                last_failure=None
                if failure is None
                else LastFailure(
                    at=failure.started_at,
                    delivery_id=failure.delivery_id,
                    status=failure.status,
                    reason=failure_reason(failure.status, failure.error, failure.response_excerpt),
                ),
                unreachable_in_a_row=in_a_row,
                circuit_open=in_a_row >= self.settings.circuit_threshold and waiting > 0,
                pending=waiting,
            )
            healths.append(health)
        healths.sort(key=lambda h: (h.attention_rank, h.webhook.id))
        return Overview(since=since, until=until, bucket_seconds=bucket_seconds, webhooks=healths)


@dataclass(frozen=True)
class TimeBucket:
    """Attempts that started in ``[start, start + bucket)``, by what they made of their
    delivery: delivered, to be retried, or the last of a delivery that failed."""

    start: datetime
    succeeded: int
    retrying: int
    failed: int

    @property
    def total(self) -> int:
        return self.succeeded + self.retrying + self.failed


@dataclass(frozen=True)
class LastFailure:
    at: datetime
    delivery_id: str
    status: int | None
    reason: str


@dataclass(frozen=True)
class WebhookHealth:
    webhook: Webhook
    attempts: int
    succeeded: int
    p50_ms: int | None
    p95_ms: int | None
    timeline: list[TimeBucket]
    last_failure: LastFailure | None
    unreachable_in_a_row: int
    circuit_open: bool
    pending: int

    @property
    def success_rate(self) -> float | None:
        """Share of the attempts that succeeded; None with no attempt."""
        return self.succeeded / self.attempts if self.attempts else None

    @property
    def failed(self) -> int:
        """Deliveries that failed for good in the period (their last attempt in it)."""
        return sum(bucket.failed for bucket in self.timeline)

    @property
    def attention(self) -> str | None:
        """What an operator should look at first about this webhook, in one sentence."""
        if self.circuit_open:
            return (
                f"endpoint unreachable: the last {self.unreachable_in_a_row} attempts got no "
                f"answer; its circuit is open and {self.pending} deliveries wait"
            )
        if self.failed:
            return f"{self.failed} deliveries failed for good: fix the endpoint, then recover them"
        if self.webhook.status == WebhookStatus.DISABLED:
            return f"disabled: {self.webhook.disabled_reason or 'by request'}"
        rate = self.success_rate
        if rate is not None and rate < 0.9:
            return f"only {rate:.0%} of attempts succeeded; retries are catching up"
        return None

    @property
    def attention_rank(self) -> int:
        """Sort key: open circuits, then lost deliveries, disabled, poor rates, healthy, idle."""
        if self.circuit_open:
            return 0
        if self.failed:
            return 1
        if self.webhook.status == WebhookStatus.DISABLED:
            return 2
        if self.attention is not None:
            return 3
        return 4 if self.attempts else 5


@dataclass(frozen=True)
class Overview:
    since: datetime
    until: datetime
    bucket_seconds: int
    webhooks: list[WebhookHealth]

    @property
    def open_circuits(self) -> list[WebhookHealth]:
        return [h for h in self.webhooks if h.circuit_open]

    @property
    def attempts(self) -> int:
        return sum(h.attempts for h in self.webhooks)

    @property
    def succeeded(self) -> int:
        return sum(h.succeeded for h in self.webhooks)


def failure_reason(status: int | None, error: str | None, excerpt: str | None) -> str:
    """One line saying why an attempt failed: the error, or the status and what it said."""
    if error:
        return error
    said = " ".join((excerpt or "").split())[:120]
    return f"HTTP {status}" + (f": {said}" if said else "")
