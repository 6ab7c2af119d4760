"""The failed-authentication limit: a client address that sends too many tokens that are not
valid is refused (429, ``Retry-After``) for the rest of the window, its tokens unchecked.

It slows token guessing and keeps a flood of bad tokens off the database. Only failures
count (a token that is presented and unknown or revoked); a request that authenticates adds
nothing. While an address is locked out, every request from it that needs a token is refused,
valid token or not: checking the token is what the lockout spares.

Per process: each API process counts on its own, so N processes allow up to N times the
limit. The address is the peer's, or the one uvicorn takes from ``X-Forwarded-For`` when the
peer is a trusted proxy (``HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS``, none by default: see
``server.py``). Memory is bounded:
at most ``TRACKED_ADDRESSES`` addresses are remembered, the least recently seen forgotten first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

FAILURES_ALLOWED = 20
"""Failed authentications an address may make within ``WINDOW_SECONDS``; the next request
is refused. A client with a mistyped token finds out long before this."""

WINDOW_SECONDS = 60.0
"""The counting window, from an address's first failure; a locked-out address is let in again
when its window ends."""

TRACKED_ADDRESSES = 10_000
"""At most this many addresses are counted at once (about 1 MB): an attacker with more
addresses than this can evict entries, but gets no more than the limit from each meanwhile."""


@dataclass
class _Failures:
    since: float
    count: int


class FailedAuthLimit:
    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        addresses: int = TRACKED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = allowed
        self.window = window
        self.clock = clock
        self._failures: LRUCache[str, _Failures] = LRUCache(addresses)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or None if it may now."""
        found = self._failures.get(address)
        if found is None or found.count < self.allowed:
            return None
        left = found.since + self.window - self.clock()
        if left <= 0:
            del self._failures[address]
            return None
        return max(1, math.ceil(left))

    def failed(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        now = self.clock()
        found = self._failures.get(address)
        if found is None or now - found.since >= self.window:
            self._failures[address] = _Failures(since=now, count=1)
        else:
            found.count += 1

    def __len__(self) -> int:
        return len(self._failures)
