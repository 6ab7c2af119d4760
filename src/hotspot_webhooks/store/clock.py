"""The database's clock, for the times liveness is judged by.

A worker's heartbeat is stamped by the database when the row is written, and a worker is
judged silent by the same clock: not by a time a worker took before a statement that then
waited (on a lock, on a link that stopped answering), nor by clocks that differ between hosts.
On PostgreSQL it is ``statement_timestamp()``; on SQLite, ``'now'`` with milliseconds, written
in the form SQLAlchemy stores datetimes in (so the two compare as text, in order).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Interval, func, literal

SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f000"  # %f is SS.SSS: microseconds, as SQLAlchemy writes them


def database_now(dialect: Dialect) -> ColumnElement[Any]:
    """The database's time when it runs the statement."""
    if dialect.name == "sqlite":
        return func.strftime(SQLITE_FORMAT, "now")
    return func.statement_timestamp()


def database_ago(dialect: Dialect, seconds: float) -> ColumnElement[Any]:
    """The database's time ``seconds`` before it runs the statement."""
    if dialect.name == "sqlite":
        return func.strftime(SQLITE_FORMAT, "now", f"-{seconds:f} seconds")
    return func.statement_timestamp() - literal(timedelta(seconds=seconds), Interval())
