"""Statements the dispatcher runs for every delivery, executed through the driver directly.

For a batch of a few hundred rows, SQLAlchemy's per-row processing (parameter dicts, type
processors, result rows) costs more than the database's own work. These statements are still
written with SQLAlchemy, compiled once per dialect, but their values travel as plain tuples in
the order the caller declares, converted here where a backend needs it: SQLite stores datetimes
as text in SQLAlchemy's format, and JSON goes as text to both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


# built once: json.dumps with non-default options builds a new encoder on every call
_json_text: Converter = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _Compiled:
    """SQL text plus how to turn a caller's tuple into the driver's positional parameters:
    ``order`` picks each position from the tuple by index, or is a constant of the statement
    (a literal such as ``status = 'pending'``) given as ``(value,)``."""

    def __init__(
        self, sql: str, order: list[int | tuple[Any]], converters: list[tuple[int, Converter]]
    ) -> None:
        self.sql = sql
        self.order = order
        self.converters = converters
        self.identity = order == list(range(len(order)))

    def params(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.converters:
            values = list(row)
            for index, convert in self.converters:
                values[index] = convert(values[index])
            row = tuple(values)
        if self.identity:
            return row
        return tuple([row[i] if isinstance(i, int) else i[0] for i in self.order])


def driver_sql(statement: ClauseElement, dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """A statement whose values are bound in it (IN lists included) as the driver's SQL and
    positional parameters, to run through a plain DB-API connection."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    assert compiled.positiontup is not None
    return compiled.string, tuple(compiled.params[name] for name in compiled.positiontup)


class DriverStatement:
    """A statement with named bind parameters, run with tuples of values in ``params`` order.

    ``datetimes`` and ``jsons`` name the parameters that need converting for the driver.
    """

    def __init__(
        self,
        statement: ClauseElement,
        params: Sequence[str],
        *,
        datetimes: Sequence[str] = (),
        jsons: Sequence[str] = (),
    ) -> None:
        self._statement = statement
        self._params = list(params)
        self._datetimes = frozenset(datetimes)
        self._jsons = frozenset(jsons)
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        positions = compiled.positiontup
        if positions is None or not set(self._params) <= set(positions):
            raise RuntimeError(f"statement parameters {positions} lack some of {self._params}")
        converters: list[tuple[int, Converter]] = []
        for index, name in enumerate(self._params):
            if name in self._jsons:
                converters.append((index, _json_text))
            elif name in self._datetimes and dialect.name == "sqlite":
                converters.append((index, _sqlite_datetime))
        order: list[int | tuple[Any]] = [
            self._params.index(name) if name in self._params else (compiled.params[name],)
            for name in positions
        ]
        found = self._compiled[dialect.name] = _Compiled(compiled.string, order, converters)
        return found

    def prepare(
        self, dialect: Dialect, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """SQL text and driver parameters, to run through a plain DB-API connection."""
        compiled = self._compile(dialect)
        return compiled.sql, [compiled.params(r) for r in rows]

    async def executemany(
        self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]
    ) -> int | None:
        """Run once per row in one driver call; returns the rows affected, None if the driver
        does not say (asyncpg's executemany)."""
        compiled = self._compile(conn.dialect)
        result = await conn.exec_driver_sql(compiled.sql, [compiled.params(r) for r in rows])
        return int(result.rowcount) if result.rowcount >= 0 else None

    async def fetchall(self, conn: AsyncConnection, values: tuple[Any, ...]) -> list[Any]:
        """Run once and return the driver's rows (tuples, no type processing)."""
        compiled = self._compile(conn.dialect)
        result = await conn.exec_driver_sql(compiled.sql, compiled.params(values))
        return list(result.all())
