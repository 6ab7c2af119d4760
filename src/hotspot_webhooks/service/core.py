"""The root of the service: it opens the database, builds the parts (one per concern, each
reached as an attribute: ``service.webhooks.create(...)``), and hands out dispatchers.

It holds no verb of its own: the faces (REST, the control center, the CLI) call the parts, and
the CLI's remote mode finds the same parts, over REST, on ``client.RemoteService``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from ..config import Settings
from ..delivery.dispatcher import Dispatcher, open_dispatcher, running_dispatcher
from ..errors import DatabaseNotReady
from ..keys import KeyCipher, load_secret_keys
from ..known_types import KnownEventTypes
from ..store.database import parse_database_url, sqlite_file
from ..store.store import Store
from .access import Access
from .deliveries import Deliveries
from .event_types import EventTypes
from .events import Events
from .health import Health
from .integrations import Integrations
from .locations import Locations
from .operators import Operators
from .sample_send import SampleSend
from .tokens import Tokens
from .webhooks import Webhooks


def key_file_for(settings: Settings) -> Path | None:
    """Where an embedded SQLite database keeps its generated secret key (beside the file)."""
    path = sqlite_file(parse_database_url(settings.database_url))
    return None if path is None else path.with_name(path.name + ".secret-key")


def admin_token_file_for(settings: Settings) -> Path:
    """Where the first admin token is left when there is no terminal to show it on: beside
    the SQLite file, or (PostgreSQL) in the working directory."""
    path = sqlite_file(parse_database_url(settings.database_url))
    if path is None:
        return Path.cwd() / "hotspot-webhooks.admin-token"
    return path.with_name(path.name + ".admin-token").absolute()


class Service:
    def __init__(self, settings: Settings, store: Store, cipher: KeyCipher) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher
        # LOW_LATENCY across processes: a commit that stores deliveries wakes every worker
        store.db.announce_new_work_across_processes(settings.low_latency)
        known = KnownEventTypes(store.event_types)
        self.access = Access(settings, store, known)
        self.event_types = EventTypes(store, self.access, known)
        self.operators = Operators(store, self.access)
        self.tokens = Tokens(settings, store, self.access, self.operators)
        self.locations = Locations(store, self.operators)
        self.sample_send = SampleSend(settings, store, cipher, known)
        self.integrations = Integrations(settings, cipher, known)
        self.webhooks = Webhooks(
            settings,
            store,
            cipher,
            access=self.access,
            known=known,
            operators=self.operators,
            locations=self.locations,
            sample_send=self.sample_send,
            integrations=self.integrations,
        )
        self.events = Events(store, known)
        self.deliveries = Deliveries(store, known, self.webhooks)
        self.health = Health(settings, store, self.webhooks)

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = False) -> Service:
        """Connect, and either upgrade the schema or insist that it is current."""
        try:
            store = await Store.open(
                settings.database_url, migrate=migrate, db_timeout=settings.db_timeout
            )
        except DatabaseNotReady as exc:
            advice = "to create it" if exc.missing else "first"
            raise DatabaseNotReady(
                f"{exc.message}; run `hotspot-webhooks migrate` {advice}", missing=exc.missing
            ) from None
        try:
            cipher = KeyCipher(load_secret_keys(settings.secret_key, key_file_for(settings)))
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, cipher)

    async def close(self) -> None:
        await self.sample_send.close()
        self.integrations.close()
        await self.access.close()
        await self.store.close()

    async def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers and writes succeed
        (readiness)."""
        await self.store.db.ping()
        await self.store.db.check_writes()

    def dispatcher(self) -> AbstractAsyncContextManager[Dispatcher]:
        """A dispatcher on this service's database, for a process that runs its passes
        itself (``worker``); closed when the block ends."""
        return open_dispatcher(self.store.queue, self.settings, self.cipher)

    def running_dispatcher(self) -> AbstractAsyncContextManager[Dispatcher]:
        """A dispatcher passing in the background while the block lasts (``serve``)."""
        return running_dispatcher(self.store.queue, self.settings, self.cipher)
