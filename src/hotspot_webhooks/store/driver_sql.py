"""Statements compiled once per dialect and run through the driver itself.

For a batch of a few hundred rows, SQLAlchemy's per-row work (parameter dicts, type processors,
result rows) costs more than the database's own. What the driver wants is a positional tuple;
what the code writes is a ``NamedTuple`` of named parameters, mapped to the driver's positions
here by name, and rows come back as ``NamedTuple`` records checked against the columns the
statement selects. Reordering a column therefore cannot silently swap two values.

Values are converted where a backend needs it: SQLite stores datetimes as text in SQLAlchemy's
format, and JSON goes as text to both. The statements themselves are named in ``statements.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Dialect, Select, bindparam, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import UserDefinedType

Converter = Callable[[Any], Any]
Params = TypeVar("Params", bound=tuple[Any, ...])
Record = TypeVar("Record", bound=tuple[Any, ...])


def _sqlite_datetime(value: datetime | None) -> str | None:
    # exactly SQLAlchemy's SQLite storage format, so stored values compare as strings
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def _json_text(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is. orjson: the standard library's encoder builds
    its C encoder anew on every call, 3.3 µs for an attempt's eleven headers against 0.25
    (one per delivery on the hot path)."""
    return orjson.dumps(value).decode()


class _Compiled:
    """SQL text plus how to turn named parameters into the driver's positional ones:
    ``order`` picks each position from the parameters by index, or is a constant of the
    statement (a literal such as ``status = 'pending'``) given as ``(value,)``."""

    def __init__(
        self, sql: str, order: list[int | tuple[Any]], converters: list[tuple[int, Converter]]
    ) -> None:
        self.sql = sql
        self.order = order
        self.converters = converters
        self.identity = order == list(range(len(order)))

    def params(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.converters:
            row = _converted(row, self.converters)
        if self.identity:
            return tuple(row)
        return tuple([row[i] if isinstance(i, int) else i[0] for i in self.order])


def _converted(row: tuple[Any, ...], converters: list[tuple[int, Converter]]) -> tuple[Any, ...]:
    """``row`` with the value at each converter's index converted."""
    values = list(row)
    for index, convert in converters:
        values[index] = convert(values[index])
    return tuple(values)


def driver_sql(statement: ClauseElement, dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """A statement whose values are bound in it (IN lists included) as the driver's SQL and
    positional parameters, to run through a plain DB-API connection."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    assert compiled.positiontup is not None
    values = compiled.params  # a property that builds the dict anew on every access
    return compiled.string, tuple(values[name] for name in compiled.positiontup)


class DriverStatement(Generic[Params]):
    """A statement whose bind parameters are the fields of the ``NamedTuple`` ``params``,
    each bound as ``bind_prefix`` + its name (an UPDATE may not bind a column's own name).

    ``datetimes`` and ``jsons`` name the fields that need converting for the driver.
    """

    def __init__(
        self,
        statement: ClauseElement,
        params: type[Params],
        *,
        datetimes: Sequence[str] = (),
        jsons: Sequence[str] = (),
        bind_prefix: str = "",
    ) -> None:
        fields: tuple[str, ...] = params._fields  # type: ignore[attr-defined]
        unknown = (set(datetimes) | set(jsons)) - set(fields)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not fields of {params.__name__}")
        self._statement = statement
        self._params = [bind_prefix + name for name in fields]
        self._datetimes = frozenset(bind_prefix + name for name in datetimes)
        self._jsons = frozenset(bind_prefix + name for name in jsons)
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
        self, dialect: Dialect, rows: Iterable[Params]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """SQL text and driver parameters, to run through a plain DB-API connection."""
        compiled = self._compile(dialect)
        return compiled.sql, [compiled.params(r) for r in rows]

    async def executemany(self, conn: AsyncConnection, rows: Sequence[Params]) -> int:
        """Run once per row in one driver call; returns the rows affected (-1 where the driver
        does not count them: asyncpg's executemany, hence ``ArrayStatement`` there)."""
        compiled = self._compile(conn.dialect)
        result = await conn.exec_driver_sql(compiled.sql, [compiled.params(r) for r in rows])
        return int(result.rowcount)

    async def execute(self, conn: AsyncConnection, params: Params) -> int:
        """Run once; returns the rows affected."""
        compiled = self._compile(conn.dialect)
        result = await conn.exec_driver_sql(compiled.sql, compiled.params(params))
        return int(result.rowcount)


class DriverQuery(DriverStatement[Params], Generic[Params, Record]):
    """A select whose rows come back as the ``NamedTuple`` ``record``, whose fields must be
    the selected columns in order (checked once, here). ``trailing`` names columns selected
    after them that the record leaves out (``fetch_rows`` reads them)."""

    def __init__(
        self,
        statement: Select[Any],
        params: type[Params],
        record: type[Record],
        *,
        trailing: Sequence[str] = (),
        datetimes: Sequence[str] = (),
        bind_prefix: str = "",
    ) -> None:
        super().__init__(statement, params, datetimes=datetimes, bind_prefix=bind_prefix)
        columns = list(statement.selected_columns.keys())
        fields = [*record._fields, *trailing]  # type: ignore[attr-defined]
        if columns != fields:
            raise ValueError(f"{record.__name__} has fields {fields}; the query selects {columns}")
        self._record = record
        self._make: Callable[[Iterable[Any]], Record] = record._make  # type: ignore[attr-defined]
        self._width = len(record._fields)  # type: ignore[attr-defined]

    async def fetch_rows(self, conn: AsyncConnection, params: Params) -> Sequence[Any]:
        """The rows as the driver returns them: ``make`` turns one into a record."""
        compiled = self._compile(conn.dialect)
        return (await conn.exec_driver_sql(compiled.sql, compiled.params(params))).all()

    def make(self, row: Sequence[Any]) -> Record:
        """The record of a row of ``fetch_rows`` (its trailing columns left out)."""
        return self._make(row[: self._width] if len(row) != self._width else row)

    async def fetchall(self, conn: AsyncConnection, params: Params) -> list[Record]:
        make = self.make
        return [make(row) for row in await self.fetch_rows(conn, params)]


class RowType(UserDefinedType[Any]):
    """A composite type that a batch's rows are bound as (migration 0007): its attributes
    are the fields of a ``NamedTuple``, each of the SQL type ``attributes`` names (as
    PostgreSQL's ``format_type`` spells it; a test compares them with the database's)."""

    cache_ok = True

    def __init__(self, name: str, params: type[tuple[Any, ...]], attributes: dict[str, str]):
        fields: tuple[str, ...] = params._fields  # type: ignore[attr-defined]
        if list(attributes) != list(fields):
            raise ValueError(f"{name} has attributes {list(attributes)}, not {list(fields)}")
        self.name = name
        self.attributes = attributes

    def get_col_spec(self, **_: Any) -> str:
        return self.name


class RowsStatement(Generic[Params]):
    """PostgreSQL: one execution for a whole batch, its rows bound as one array of the
    ``RowType`` that the statement ``unnest``s (``_unnest_rows``). An ``executemany`` of a few
    hundred rows is as many executions, each paying the executor's start, its locks and a
    snapshot: on a recorded batch that was over half the server's CPU per delivery. One array
    per field instead cost the worker a check of every element against ``collections.abc``
    in asyncpg: 22 per outcome, where rows take 8.

    ``jsons`` name the fields sent as JSON text (the statement casts them back)."""

    def __init__(
        self, statement: ClauseElement, params: type[Params], *, jsons: Sequence[str] = ()
    ) -> None:
        self._statement = statement
        fields: tuple[str, ...] = params._fields  # type: ignore[attr-defined]
        self._converters: list[tuple[int, Converter]] = [
            (fields.index(name), _json_text) for name in jsons
        ]
        self._sql: str | None = None

    def _compile(self, dialect: Dialect) -> str:
        if self._sql is None:
            compiled = self._statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if compiled.positiontup != ["rows"]:
                raise RuntimeError(f"statement parameters {compiled.positiontup} are not rows")
            self._sql = compiled.string
        return self._sql

    async def execute(self, conn: AsyncConnection, rows: Sequence[Params]) -> int:
        """Run the statement once for ``rows``; return the rows it changed."""
        sql = self._compile(conn.dialect)
        converters = self._converters
        bound = [_converted(row, converters) for row in rows] if converters else rows
        result = await conn.exec_driver_sql(sql, (bound,))
        return int(result.rowcount)

    async def returned(self, conn: AsyncConnection, rows: Sequence[Params]) -> list[Any]:
        """Run the statement once for ``rows``; return the first column it returns."""
        sql = self._compile(conn.dialect)
        converters = self._converters
        bound = [_converted(row, converters) for row in rows] if converters else rows
        return [row[0] for row in await conn.exec_driver_sql(sql, (bound,))]


def unnest_rows(row_type: RowType) -> Any:
    """``unnest`` of the one parameter ``rows``, an array of ``row_type``, as a table whose
    columns bear its attributes' names."""
    rows = bindparam("rows", type_=postgresql.ARRAY(row_type))
    return func.unnest(rows).table_valued(*row_type.attributes).render_derived(name="batch")
