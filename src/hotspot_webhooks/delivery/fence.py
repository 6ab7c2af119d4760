"""The lease fence: a worker puts a request on the wire only while its leases are surely its.

Other workers take a worker's deliveries over once it has been silent for ``WORKER_TIMEOUT``
(``liveness.py``): those merely claimed go back to the queue untouched, to be sent again under
the same attempt number. A worker that was stopped (SIGSTOP, a paused container) or cut off
from the database for that long wakes up still holding them in memory, and sending them then
would put an attempt number on the wire twice. So each request checks, at the moment its
bytes would go out (the sender's pre-request callback), that

* the worker's last heartbeat that found it registered began less than ``window`` ago
  (``WORKER_TIMEOUT`` less half a ``HEARTBEAT``: before anyone may judge it dead), and
* no gap in those heartbeats came since its delivery was claimed (a *run*: a gap, or being
  found declared dead, starts a new one, and what was claimed before is handed back unsent),
* and the worker's writes are getting through: while the recorder cannot write (the database
  is away, or cut off) the marks of requests on the wire cannot be written either, and a
  request sent then would, should the worker be taken for dead, go out again under its number.

A request refused here is not an attempt: no number is used, and the delivery is handed back
(a no-op where the lease was taken over). Pure: the clock is ``time.monotonic()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LeaseFence:
    def __init__(self, window: float) -> None:
        self.window = window
        self.run = 0  # claims of an older run are not to be sent
        self._valid_until = 0.0
        self._suspended = False  # the worker's writes are failing
        self.on_new_run: Callable[[], None] | None = None  # hand back what was claimed before
        self.on_reopen: Callable[[], None] | None = None  # it may claim and send again

    def confirm(self, started: float) -> None:
        """A heartbeat (or registration) begun at ``started`` found this worker registered."""
        was_closed = time.monotonic() >= self._valid_until
        if started >= self._valid_until:  # a gap: someone may have taken over what it held
            self._new_run()
        self._valid_until = max(self._valid_until, started + self.window)
        if was_closed and self.on_reopen is not None:
            self.on_reopen()

    def lost(self) -> None:
        """This worker was found declared dead: every lease it held is gone."""
        self._valid_until = 0.0
        self._new_run()

    def suspend(self) -> None:
        """A write failed (the database is away): nothing goes out until one succeeds."""
        self._suspended = True

    def resume(self) -> None:
        """A write succeeded again."""
        if self._suspended:
            self._suspended = False
            if self.on_reopen is not None:
                self.on_reopen()

    def holds(self, run: int) -> bool:
        """May a delivery claimed in ``run`` go on the wire now?"""
        return run == self.run and not self._suspended and time.monotonic() < self._valid_until

    def _new_run(self) -> None:
        self.run += 1
        if self.on_new_run is not None:
            self.on_new_run()
