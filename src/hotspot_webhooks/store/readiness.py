"""Whether writes succeed, for readiness (``/readyz``): a database that answers reads but
refuses writes (a full disk under SQLite, a read-only PostgreSQL) is not ready.

Every write transaction of the store reports its outcome here; so the last one says whether
writes succeed, for free. What no write has said lately is asked by a probe: a real commit of
one row changed to itself (``alembic_version``: present in every current schema), so it
needs the same room on disk as any other write. While writes succeed, the probe runs only when
a readiness check finds the last word older than ``PROBE_EVERY``, however often the load
balancer asks; while they fail, at every check, so readiness comes back with the first write
that commits. One probe at a time: checks that arrive meanwhile share its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable

from ..errors import DatabaseUnavailable

PROBE_EVERY = 10.0  # seconds: a probe at most this often while writes succeed
PROBE_SQL = "UPDATE alembic_version SET version_num = version_num"


class WriteHealth:
    """The last write's outcome: None (it committed) or what made it fail."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self._said_at = -math.inf  # time.monotonic() of the last outcome
        self._probing = asyncio.Lock()

    def succeeded(self) -> None:
        self.failure, self._said_at = None, time.monotonic()

    def failed(self, reason: str) -> None:
        self.failure, self._said_at = reason, time.monotonic()

    def _due(self) -> bool:
        return self.failure is not None or time.monotonic() - self._said_at >= PROBE_EVERY

    async def check(self, probe: Callable[[], Awaitable[None]]) -> None:
        """Raise ``DatabaseUnavailable`` unless writes succeed, probing if it is time (a
        probe reports its own outcome, as every write does)."""
        if self._due():
            if self._probing.locked():  # a probe is under way: its answer stands for this
                async with self._probing:
                    pass
            else:
                async with self._probing:
                    with contextlib.suppress(DatabaseUnavailable):  # the write reports it
                        await probe()
        if self.failure is not None:
            raise DatabaseUnavailable(f"writes fail: {self.failure}")
