"""When to try a failed delivery again: retry policies as pure functions of the retry number.

``backoff`` (the default) waits ``min(interval * 2^(n-1), max_delay)`` ± 10 % before retry n,
so the first retries come at the next passes and 20 retries span about two days. ``next-pass``
retries at every next pass, as the original platform does. A receiver's ``Retry-After`` (on 429
or 503) can push a retry later, never earlier, and never past ``max_delay``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

RetryKind = Literal["backoff", "next-pass"]
JITTER = 0.10
# the statuses whose Retry-After header is honoured
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    kind: RetryKind = "backoff"
    interval: float = 60.0
    max_retries: int = 20
    max_delay: float = 4 * 3600.0

    def delay(self, retry_number: int, spread: float | None = None) -> float | None:
        """Seconds before retry ``retry_number`` (1-based), or None when none are left.

        ``spread`` in [0, 1] picks the jitter (0.5 = none); random when omitted.
        """
        if retry_number < 1 or retry_number > self.max_retries:
            return None
        if self.kind == "next-pass":
            return 0.0  # due at once: the next pass claims it
        base = min(self.interval * 2.0 ** (retry_number - 1), self.max_delay)
        spread = random.random() if spread is None else spread
        return base * (1 + JITTER * (2 * spread - 1))

    def schedule(self) -> list[float]:
        """The jitter-free delays of every retry, for display and tests."""
        return [d for n in range(1, self.max_retries + 1) if (d := self.delay(n, 0.5)) is not None]

    def bounded_retry_after(self, seconds: float | None) -> float | None:
        if seconds is None:
            return None
        return max(0.0, min(seconds, self.max_delay))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
