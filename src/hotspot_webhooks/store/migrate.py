"""Creating and upgrading the schema with Alembic, from inside the program.

Upgrading is asked for (by ``serve`` and ``migrate``); otherwise the store checks that the
database is at the newest revision and raises ``DatabaseNotReady`` if not, rather than failing
later on a missing table.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import DatabaseNotReady, DatabaseUnavailable
from .database import transaction

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``, the newest by default (a no-op when it is there)."""
    if engine.dialect.name == "sqlite":
        await _upgrade_sqlite(engine, revision)
        return
    async with transaction(engine, write=True) as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def _upgrade_sqlite(engine: AsyncEngine, revision: str) -> None:
    """SQLite's procedure for changing a table (sqlite.org/lang_altertable.html): foreign
    keys off before the transaction, checked before it commits. Batch mode rebuilds a table
    by dropping it, and with foreign keys on that would cascade-delete every row that refers
    to it (a rebuilt ``webhooks`` would take all deliveries with it)."""
    try:
        async with engine.connect() as conn:
            # no transaction is open yet, so the pragma takes effect
            await conn.run_sync(_pragma, "foreign_keys=OFF")
            try:
                await conn.execution_options(write=True)
                async with conn.begin():
                    await conn.run_sync(_upgrade_checked, revision)
            finally:
                await conn.run_sync(_pragma, "foreign_keys=ON")
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc


def _pragma(sync: Connection, pragma: str) -> None:
    """A pragma on the driver's connection itself: through SQLAlchemy it would open a
    transaction first, inside which ``foreign_keys`` cannot change."""
    cursor = sync.connection.cursor()
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _upgrade_checked(sync: Connection, revision: str) -> None:
    command.upgrade(alembic_config(sync), revision)
    broken = sync.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise DatabaseNotReady(
            f"the schema upgrade would leave rows referring to nothing ({broken[:3]}); "
            "nothing was changed"
        )


async def current_revision(engine: AsyncEngine) -> str | None:
    async with transaction(engine, write=False) as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def require_current(engine: AsyncEngine, where: str) -> None:
    """Fail with a clear message unless the schema is at the newest revision."""
    revision = await current_revision(engine)
    if revision != head_revision():
        state = "has no schema yet" if revision is None else f"is at revision {revision}"
        raise DatabaseNotReady(f"database {where} {state}")
