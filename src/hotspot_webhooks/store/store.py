"""``Store``: the database, as one repository per concern, opened and closed together.

The store speaks rows and records; it knows nothing of HTTP, of the catalog or of who may do
what. The service decides (its ``Caller``) and passes the decision down as an operator to
narrow reads to, or as ``EmitRules``; the repositories apply it in SQL. Each repository method
is one transaction (``db.py``); writes that belong together (an event and its deliveries; a
batch of attempts and their outcomes) are one.

The resources: ``tenancy`` (operators, tokens), ``locations``, ``webhooks``, ``event_types``,
``events``, ``deliveries``, and ``reports`` (the control center's reads). The engine's side:
``queue`` (claim, lease, record), ``workers`` (liveness, takeovers) and ``retention`` (purge);
the delivery engine sees those three and never the resources.
"""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_DATABASE_URL, DEFAULT_DB_TIMEOUT
from ..errors import DatabaseNotReady
from .database import check_sqlite_path, create_engine, display_url, parse_database_url, sqlite_file
from .db import Database
from .deliveries import Deliveries
from .event_types import EventTypes
from .events import Events
from .locations import Locations
from .migrate import require_current, upgrade
from .queue import Queue
from .reports import Reports
from .tenancy import Tenancy
from .webhooks import Webhooks


class Store:
    """The repositories over one database, built once per process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.locations = Locations(db)
        self.tenancy = Tenancy(db, self.locations)
        self.webhooks = Webhooks(db)
        self.event_types = EventTypes(db)
        self.events = Events(db)
        self.deliveries = Deliveries(db)
        self.reports = Reports(db)
        self.queue = Queue(db)

    @classmethod
    async def open(
        cls, database_url: str, *, migrate: bool = False, db_timeout: float = DEFAULT_DB_TIMEOUT
    ) -> Store:
        """Connect, and either upgrade the schema or insist that it is current.

        A SQLite file that does not exist is only created by ``migrate``: otherwise this
        raises ``DatabaseNotReady`` instead of leaving an empty database behind.
        """
        path = sqlite_file(parse_database_url(database_url))
        if not migrate and path is not None and not path.exists():
            if path.parent.exists() or database_url != DEFAULT_DATABASE_URL:
                check_sqlite_path(path)  # a directory named but missing (or a file) says so
            where = "" if path.is_absolute() else f" (in {Path.cwd()})"
            raise DatabaseNotReady(f"database {path} does not exist{where}", missing=True)
        db = Database(create_engine(database_url, timeout=db_timeout), timeout=db_timeout)
        try:
            if migrate:
                await _upgrade_unbounded(database_url, db_timeout)
            else:
                await require_current(db.engine, display_url(database_url))
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self.db.close()


async def _upgrade_unbounded(database_url: str, db_timeout: float) -> None:
    """Migrate through an engine of its own whose statements are not bounded by the timeout
    (an index on a big table may rightly take longer than a request should wait)."""
    engine = create_engine(database_url, timeout=db_timeout, bound_statements=False)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
