"""Telling a full disk from other database failures, and saying what to do about it.

On a full disk a database cannot delete either: SQLite appends every change to its WAL
(which cannot grow, and cannot be reset before a checkpoint that may need to grow the file),
and PostgreSQL writes its own WAL first. So ``purge`` cannot make room by itself there; the
runbook in docs/operations.md ("Disk full") says what does.
"""

from __future__ import annotations

import errno
import sqlite3

RUNBOOK = "docs/operations.md, 'Disk full'"
ADVICE = (
    "the database's disk is full, and deleting needs room to write too: free some space on "
    f"it (or move the database where there is room), then purge; see {RUNBOOK}"
)
_POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database's disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in (current, getattr(current, "orig", None)):
            if _says_full(error):
                return True
        current = current.__cause__ or current.__context__
    return False


def _says_full(error: object) -> bool:
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return str(getattr(error, "sqlstate", "")) == _POSTGRES_DISK_FULL
