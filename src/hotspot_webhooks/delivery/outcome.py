"""The delivery state machine: what one attempt's result makes of a delivery.

``pending`` → ``succeeded`` on a success status; otherwise retried per the policy until the
retries run out, then ``failed``. ``410 Gone`` means the receiver is gone for good: the delivery
fails and its webhook is disabled. Pure: no I/O, no clock except the ``now`` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store import Outcome
from .retry import RetryPolicy, parse_retry_after
from .sender import AttemptResult

RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    disable_reason: str | None = None


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
    attempt = {
        "number": attempt_number,
        "started_at": result.started_at,
        "duration_ms": result.duration_ms,
        "request_headers": request_headers,
        "status": result.status,
        "response_excerpt": result.response_excerpt,
        "error": result.error,
    }

    def outcome(status: str, next_at: datetime | None, error: str | None) -> Outcome:
        return Outcome(
            delivery_id=delivery_id,
            status=status,
            attempt_count=attempt_number,
            next_attempt_at=next_at,
            last_status=result.status,
            last_error=error,
            delivered_at=now if status == "succeeded" else None,
            attempt=attempt,
        )

    if result.status is not None and result.error is None and is_success(result.status):
        return Decision(outcome("succeeded", None, None))
    error = result.error or f"receiver answered HTTP {result.status}"
    if result.status == 410:
        reason = f"receiver answered 410 Gone on {now:%Y-%m-%d %H:%M:%S} UTC"
        return Decision(outcome("failed", None, error), disable_reason=reason)
    delay = policy.delay(attempt_number)  # attempt n failed → retry number n
    if delay is None:
        return Decision(outcome("failed", None, error))
    if result.status in RETRY_AFTER_STATUSES:
        asked = policy.bounded_retry_after(parse_retry_after(result.retry_after, now))
        if asked is not None:
            delay = max(delay, asked)
    return Decision(outcome("pending", now + timedelta(seconds=delay), error))
