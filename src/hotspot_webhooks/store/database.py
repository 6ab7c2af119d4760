"""Opening the database: URL → async engine, SQLite pragmas, write transactions, errors.

SQLite runs in WAL mode with ``synchronous=FULL`` so a commit survives power loss, and write
transactions start with ``BEGIN IMMEDIATE`` so two processes never deadlock upgrading a read
lock. The file holds guests' personal data, so it is private to the service's user (0600, in
a 0700 directory when we create it). PostgreSQL needs none of this; the rest of the store is
the same for both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import weakref
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..config import DEFAULT_DATABASE_URL, DEFAULT_DB_TIMEOUT
from ..errors import ConfigurationError, DatabaseUnavailable, InvalidInput

log = logging.getLogger(__name__)
T = TypeVar("T")
# Statements' parameters hold what clients send (a token pasted into a URL path becomes one):
# SQLAlchemy is told to hide them (hide_parameters), and aiosqlite, which logs each call with
# its arguments at DEBUG, is kept at INFO even when everything else is at DEBUG.
logging.getLogger("aiosqlite").setLevel(logging.INFO)
BUSY_TIMEOUT_MS = 15_000
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=FULL",
    f"busy_timeout={BUSY_TIMEOUT_MS}",
    "foreign_keys=ON",
)
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def parse_database_url(url: str) -> URL:
    """The async-driver form of a configured URL (``sqlite:///x.db`` → aiosqlite)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"database URL {url!r} is not a URL; expected sqlite:///path/to/file.db "
            "or postgresql://user@host/dbname"
        ) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ConfigurationError(
            f"unsupported database {parsed.drivername!r}; use sqlite:/// or postgresql://"
        )
    return parsed.set(drivername=driver)


def display_url(url: str) -> str:
    """The configured URL as it may be shown: password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or in-memory)."""
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def check_sqlite_path(path: Path, *, create_directory: bool = False) -> None:
    """Fail clearly, before SQLite does obscurely, when the file cannot be where it is said."""
    if not path.parent.exists() and create_directory:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.exists() and not path.parent.is_dir():
        raise DatabaseUnavailable(f"cannot open database {path}: {path.parent} is not a directory")
    if not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"cannot open database {path}: directory {path.parent} does not exist"
        )
    if path.is_dir():
        raise DatabaseUnavailable(f"cannot open database {path}: it is a directory")


def create_engine(
    configured_url: str, *, timeout: float = DEFAULT_DB_TIMEOUT, bound_statements: bool = True
) -> AsyncEngine:
    """The engine of a configured URL. On PostgreSQL, ``timeout`` bounds every wait on the
    database (``postgres_bounds``): a link that stops answering fails within it. Migrations
    run with ``bound_statements=False``: building an index on a big table may rightly take
    longer (connecting is still bounded)."""
    url = parse_database_url(configured_url)
    path = sqlite_file(url)
    if path is None:
        engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_timeout=timeout,
            hide_parameters=True,
            connect_args=postgres_bounds(timeout, statements=bound_statements),
        )
        _discard_closed_connections(engine)
        _keep_alive(engine, timeout)
        _timeouts[engine.sync_engine] = timeout
        return engine
    check_sqlite_path(path, create_directory=configured_url == DEFAULT_DATABASE_URL)
    keep_private(path)
    engine = create_async_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
    )
    _configure_sqlite(engine)
    return engine


def keep_private(path: Path) -> None:
    """Make the SQLite file readable by this user alone: a new one is created 0600 before
    SQLite opens it (SQLite gives its -wal and -shm files the database file's mode); an
    existing one that others may read, with its -wal and -shm, is tightened to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for each in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            info = each.stat()
        except FileNotFoundError:
            continue
        mode = info.st_mode & 0o777
        if mode & 0o077 and info.st_uid == os.geteuid():
            each.chmod(0o600)
            log.info("%s was open to other users (mode %o); it is now 0600", each, mode)


def _discard_closed_connections(engine: AsyncEngine) -> None:
    """Never hand out a PostgreSQL connection the server has closed (it restarted, or ended
    the session), without a round trip: asyncpg reads every pooled connection's socket, so it
    already knows. SQLAlchemy's ``pool_pre_ping`` asks the server instead, at every checkout,
    in three round trips (BEGIN, an empty query, ROLLBACK): a third of the worker's cost of a
    claim or a record batch. The pool replaces a closed one with a new connection; a
    connection that dies after the check fails its statement, which is reported as the
    database being unavailable and tried again, as any outage is."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.driver_connection.is_closed():
            raise DisconnectionError("the server closed this connection")


def postgres_bounds(timeout: float, *, statements: bool = True) -> dict[str, Any]:
    """asyncpg's connect arguments that bound each wait on a link that stops answering
    without closing (a black hole: no FIN, no RST; nothing else ends the wait):

    - ``timeout``: opening a connection, startup and authentication included;
    - ``command_timeout``: each statement, COMMIT and ROLLBACK included. On expiry asyncpg
      asks the server to cancel it (bounded by the same timeout) and SQLAlchemy throws the
      connection away: it is never handed out again.

    The rest is set on each new connection (``_keep_alive``)."""
    return {"timeout": timeout, "command_timeout": timeout if statements else None}


def session_settings(timeout: float) -> str:
    """The server's side of the same bounds, set on each new session: its own keepalives on
    our connection, and ``idle_in_transaction_session_timeout`` (six timeouts), so a session
    whose client vanished mid-transaction gives its locks back instead of holding them until
    the server's TCP notices (hours). Set by statements rather than as startup parameters,
    which a pooler such as PgBouncer refuses."""
    values = {
        "tcp_keepalives_idle": max(1, round(timeout)),
        "tcp_keepalives_interval": max(1, round(timeout / 3)),
        "tcp_keepalives_count": 3,
        "idle_in_transaction_session_timeout": round(6 * timeout * 1000),
    }
    return "; ".join(f"SET {name} = {value}" for name, value in values.items())


def _keep_alive(engine: AsyncEngine, timeout: float) -> None:
    """TCP keepalives on every PostgreSQL connection (an idle pooled connection whose link
    died is found dead and closed, so the pool's checkout check discards it), and
    ``TCP_USER_TIMEOUT``: data unacknowledged for ``timeout`` ends the connection. asyncpg
    has no option for either; its socket is reached through the asyncio transport. Then the
    server's side (``session_settings``)."""
    settings = session_settings(timeout)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        transport = getattr(dbapi_connection.driver_connection, "_transport", None)
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            set_keepalive(sock, timeout)
        dbapi_connection.run_async(lambda conn: conn.execute(settings))


def set_keepalive(sock: Any, timeout: float) -> None:
    """Keepalives after ``timeout`` idle, three probes ``timeout / 3`` apart; unacknowledged
    data for ``timeout`` ends the connection (Linux options, where the platform has them)."""
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), max(1, round(timeout))),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), max(1, round(timeout / 3))),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), 3),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None), round(timeout * 1000)),
    ]
    for level, option, value in options:
        if option is not None:
            try:
                sock.setsockopt(level, option, value)
            except OSError as exc:  # not on this platform: the statement timeouts still hold
                log.debug("socket option %s not set: %s", option, exc)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below): the driver's implicit BEGIN is always DEFERRED.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# the timeout each PostgreSQL engine was made with, for the message that names it
_timeouts: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def transaction(engine: AsyncEngine, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """One transaction; database failures become ``DatabaseUnavailable``: nothing committed,
    except where the message says the commit's outcome is unknown (the database stopped
    answering after COMMIT was sent)."""
    committing = False
    try:
        async with engine.connect() as conn:
            if write and engine.dialect.name == "sqlite":  # for its BEGIN IMMEDIATE
                await conn.execution_options(write=True)
            async with conn.begin():
                yield conn
                committing = True
    except IntegrityError:
        raise
    except DBAPIError as exc:
        if _is_data_exception(exc):  # a value it cannot take (a NUL byte): not an outage
            raise InvalidInput(f"a value cannot be stored: {_describe(exc)}") from exc
        if isinstance(exc.orig, TimeoutError):
            raise did_not_answer(engine, committing=committing) from exc
        raise DatabaseUnavailable(f"database unavailable: {_describe(exc)}") from exc
    except (TimeoutError, PoolTimeout) as exc:
        raise did_not_answer(engine, committing=committing) from exc
    except OSError as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc}") from exc


async def within(seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """What ``work`` returns, if it does within ``seconds``; else ``TimeoutError`` at once.
    Work given up is cancelled, and its clean-up left to finish on its own: SQLAlchemy closes
    a connection that stopped answering politely, for up to 2 s, which no caller should wait
    for. Cancelled before COMMIT was sent, a transaction sends no COMMIT after."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _cleaning_up.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError


_cleaning_up: set[asyncio.Future[Any]] = set()  # given-up work, held until its clean-up ends


def _forget(task: asyncio.Future[Any]) -> None:
    _cleaning_up.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: it was given up, and the caller heard why


def did_not_answer(engine: AsyncEngine, *, committing: bool) -> DatabaseUnavailable:
    """The database stopped answering: which one, for how long, and what became of the
    transaction (rolled back, or, if COMMIT had been sent, unknown)."""
    timeout = _timeouts.get(engine.sync_engine, DEFAULT_DB_TIMEOUT)
    where = engine.url.render_as_string(hide_password=True)
    outcome = (
        "its commit was sent, so whether it was stored is unknown"
        if committing
        else "nothing was stored"
    )
    return DatabaseUnavailable(
        f"database unavailable: {where} did not answer within {timeout:g} s ({outcome})"
    )


def _is_data_exception(exc: DBAPIError) -> bool:
    """PostgreSQL's SQLSTATE class 22: the data was wrong (e.g. 22021, a NUL in a string)."""
    return str(getattr(exc.orig, "sqlstate", None) or "").startswith("22")


def _describe(exc: DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__
