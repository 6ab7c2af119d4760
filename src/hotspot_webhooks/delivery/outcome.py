"""The delivery state machine: what one attempt's result makes of a delivery.

``pending`` → ``succeeded`` on a success status; otherwise retried per the policy until the
retries run out, then ``failed``. ``410 Gone`` means the receiver is gone for good: the delivery
fails and its webhook is disabled. A request that can never be made as it is (a template that
fails on the event) fails at once, without retries. Pure: no I/O, no clock except the ``now``
it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..states import DeliveryStatus
from ..store.records import AttemptRecord, Outcome
from .retry import RETRY_AFTER_STATUSES, RetryPolicy, parse_retry_after


@dataclass(slots=True)
class AttemptResult:
    """What happened on the wire: a status (and body excerpt), or an error, never both unset."""

    started_at: datetime
    duration_ms: int
    status: int | None
    response_excerpt: str | None
    error: str | None
    retry_after: str | None = None
    unreachable: bool = False  # never reached the receiver: connect failure, reset, timeout
    sent: bool = True  # False: refused at the lease fence, nothing went out (not an attempt)
    permanent: bool = False  # can never succeed as it is (a template error): no retry


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    disable_reason: str | None = None  # set when the webhook must be disabled (410)
    unreachable: bool = False  # the endpoint did not answer: its circuit counts it


def decide(
    *,
    delivery_id: str,
    attempt_number: int,
    result: AttemptResult,
    request_headers: dict[str, str],
    policy: RetryPolicy,
    is_success: Callable[[int], bool],
    now: datetime,
) -> Decision:
    attempt = AttemptRecord(
        delivery_id=delivery_id,
        number=attempt_number,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        request_headers=request_headers,
        status=result.status,
        response_excerpt=result.response_excerpt,
        error=result.error,
    )

    def outcome(status: DeliveryStatus, next_at: datetime | None, error: str | None) -> Outcome:
        return Outcome(
            delivery_id=delivery_id,
            status=status,
            attempt_count=attempt_number,
            next_attempt_at=next_at,
            last_status=result.status,
            last_error=error,
            delivered_at=now if status is DeliveryStatus.SUCCEEDED else None,
            attempt=attempt,
        )

    if (
        result.status is not None
        and (result.error is None or 300 <= result.status < 400)  # a redirect's note, only
        and is_success(result.status)
    ):
        return Decision(outcome(DeliveryStatus.SUCCEEDED, None, None))
    unreachable = result.unreachable
    error = result.error or f"receiver answered HTTP {result.status}"
    if result.status == 410:
        reason = f"receiver answered 410 Gone on {now:%Y-%m-%d %H:%M:%S} UTC"
        return Decision(outcome(DeliveryStatus.FAILED, None, error), disable_reason=reason)
    delay = None if result.permanent else policy.delay(attempt_number)  # n failed → retry n
    if delay is None:
        return Decision(outcome(DeliveryStatus.FAILED, None, error), unreachable=unreachable)
    if result.status in RETRY_AFTER_STATUSES:
        asked = policy.bounded_retry_after(parse_retry_after(result.retry_after, now))
        if asked is not None:
            delay = max(delay, asked)
    next_at = now + timedelta(seconds=delay)
    return Decision(outcome(DeliveryStatus.PENDING, next_at, error), unreachable=unreachable)
