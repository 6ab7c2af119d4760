"""A circuit breaker per endpoint: stop sending to a receiver that cannot be reached.

``closed``: requests flow; each one that never reached the receiver (connect failure, reset,
timeout) counts, any answer at all resets the count. After ``threshold`` in a row the circuit
opens: the endpoint's deliveries wait, unsent and uncounted, until ``retry_at``. Then one
request probes it (``probing``): an answer closes the circuit, another failure opens it again
for twice as long, up to ``max_wait``.

How it counts against the retries: a delivery held by an open circuit is not attempted and
keeps its attempt count, and a probe is a real attempt of a real delivery, recorded like any
other. So every attempt counted against the 20 retries was a real request.

Pure: no I/O, the clock is given (``time.monotonic()`` seconds).
"""

from __future__ import annotations

from enum import Enum


class CircuitState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"


class Circuit:
    __slots__ = ("_first_wait", "_max_wait", "_threshold", "failures", "retry_at", "state", "wait")

    def __init__(self, *, threshold: int, first_wait: float, max_wait: float) -> None:
        self._threshold = threshold
        self._first_wait = first_wait
        self._max_wait = max(max_wait, first_wait)
        self.state = CircuitState.CLOSED
        self.failures = 0  # unreachable in a row
        self.wait = first_wait  # how long the next opening lasts
        self.retry_at = 0.0  # while open: when to probe

    def may_send(self, now: float) -> bool:
        """May a request start now? Turns an open circuit whose wait is over into a probe:
        True once, then False until the probe's result is in."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN and now >= self.retry_at:
            self.state = CircuitState.PROBING
            return True
        return False

    def record(self, *, unreachable: bool, now: float) -> CircuitState | None:
        """Count one request's result; return the new state if it changed."""
        if not unreachable:
            self.failures = 0
            self.wait = self._first_wait
            if self.state is CircuitState.CLOSED:
                return None
            self.state = CircuitState.CLOSED
            return self.state
        self.failures += 1
        if self.state is CircuitState.PROBING:
            self.wait = min(self.wait * 2, self._max_wait)
        elif self.state is CircuitState.OPEN or self.failures < self._threshold:
            return None  # already open (a request sent before it opened), or not yet
        self.state = CircuitState.OPEN
        self.retry_at = now + self.wait
        return self.state
