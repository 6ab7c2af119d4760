"""Statements the dispatcher runs once per delivery, executed as plain DBAPI ``executemany``.

For a batch of a few hundred rows, SQLAlchemy's per-row parameter processing costs more than
the database's own work. So these statements are written with SQLAlchemy as usual, compiled
once per dialect, and run through the driver with tuples whose values are converted here: the
datetime format each backend stores, JSON as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Converter = Callable[[Any], Any]


def _sqlite_datetime(value: datetime | None) -> str | None:
    # exactly SQLAlchemy's SQLite storage format, so stored values compare as strings
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _native_datetime(value: datetime | None) -> datetime | None:
    return value


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class BulkStatement:
    """One INSERT/UPDATE with named parameters; ``datetimes`` and ``jsons`` name the ones to
    convert."""

    def __init__(
        self, statement: ClauseElement, *, datetimes: Sequence[str] = (), jsons: Sequence[str] = ()
    ) -> None:
        self._statement = statement
        self._datetimes = frozenset(datetimes)
        self._jsons = frozenset(jsons)
        self._compiled: dict[str, tuple[str, list[tuple[str, Converter | None]]]] = {}

    def _compile(self, dialect: Dialect) -> tuple[str, list[tuple[str, Converter | None]]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self._statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if compiled.positiontup is None:
                raise RuntimeError(f"{dialect.name} does not use positional parameters")
            to_datetime = _sqlite_datetime if dialect.name == "sqlite" else _native_datetime
            order: list[tuple[str, Converter | None]] = [
                (
                    name,
                    to_datetime
                    if name in self._datetimes
                    else _json_text
                    if name in self._jsons
                    else None,
                )
                for name in compiled.positiontup
            ]
            found = self._compiled[dialect.name] = (compiled.string, order)
        return found

    async def executemany(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run for every row in one driver call; returns the rows affected (-1 if unknown)."""
        sql, order = self._compile(conn.dialect)
        params = [
            tuple(row[name] if convert is None else convert(row[name]) for name, convert in order)
            for row in rows
        ]
        result = await conn.exec_driver_sql(sql, params)
        return int(result.rowcount)
