"""Creating and upgrading the schema with Alembic, from inside the program.

``serve`` and ``migrate`` upgrade to the newest revision; every other command checks that the
database is at it and says to run ``migrate`` if not, rather than failing on a missing table.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import ConfigurationError
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
        raise ConfigurationError(f"database {where} {state}; run `hotspot-webhooks migrate` first")
