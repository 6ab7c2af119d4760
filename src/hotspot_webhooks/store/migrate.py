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
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import DatabaseNotReady
from .database import transaction

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there)."""
    async with transaction(engine, write=True) as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))


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
