"""Access: who a token stands for, the remembered tokens, and forgetting them when access
changes anywhere.

Known tokens are remembered (a busy client costs no query per request; without it
single-event ingest was 2.7x slower on SQLite) until a change of access is announced by any
process (``store/access.py``): a revoked token stops working at once everywhere. The time
limit only bounds how long an entry may sit unused. The registered event types are forgotten
with them: their registration is announced the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cachetools import TTLCache

from ..config import Settings
from ..errors import Forbidden, Unauthorized
from ..ids import new_id
from ..keys import hash_token, new_token, token_matches
from ..known_types import KnownEventTypes
from ..states import OwnerStatus
from ..store.access import AccessWatch
from ..store.store import Store
from .caller import ADMIN, Caller
from .common import now

TOKEN_CACHE_SECONDS = 300.0
TOKEN_CACHE_SIZE = 10_000


class Access:
    def __init__(self, settings: Settings, store: Store, known: KnownEventTypes) -> None:
        self.settings = settings
        self.store = store
        self.known = known
        # token hash → caller, trusted while ``_access`` says so
        self._callers: TTLCache[str, Caller] = TTLCache(TOKEN_CACHE_SIZE, TOKEN_CACHE_SECONDS)
        self._access: AccessWatch | None = None  # started by the first authentication
        self._forgotten = 0  # how many times the callers were forgotten

    def watch(self) -> AccessWatch:
        """Start hearing the announcements of other processes (tokens, registered types)."""
        if self._access is None:
            self._access = self.store.db.watch_access(self.forget)
        return self._access

    async def close(self) -> None:
        if self._access is not None:
            await self._access.close()

    async def authenticate(self, token: str | None) -> Caller:
        """The caller a token stands for; the configured admin token, or one stored hashed
        (remembered until a change of access anywhere makes it stale)."""
        if not token:
            raise Unauthorized(
                "no token: send 'Authorization: Bearer <token>' or 'sn-apikey: <token>'"
            )
        configured = self.settings.admin_token
        if configured and token_matches(token, hash_token(configured)):
            return ADMIN
        token_hash = hash_token(token)
        if self.watch().trusted():
            cached = self._callers.get(token_hash)
            if cached is not None:
                return cached
        forgotten = self._forgotten
        found = await self.store.tenancy.find_token(token_hash)
        # the lookup is by hash; the comparison still runs in constant time
        if found is None or not token_matches(token, found.token_hash):
            raise Unauthorized("this token is not valid; ask your administrator for a new one")
        if found.operator_status == OwnerStatus.DISABLED:
            raise Forbidden(
                f"operator {found.operator_id} is disabled, and its tokens with it; ask your "
                "administrator"
            )
        caller = Caller(found.operator_id)
        if forgotten == self._forgotten:  # nothing announced while looking: still current
            self._callers[token_hash] = caller
        return caller

    def forget(self) -> None:
        """Access or the registered types changed somewhere: forget what was remembered."""
        self._forgotten += 1
        self._callers.clear()
        self.known.forget()

    async def ensure_admin_token(self) -> str | None:
        """On first start with no admin token configured, create one and return it (to be
        shown once); afterwards, and when one is configured, return None."""
        if self.settings.admin_token or await self.store.tenancy.has_admin_token():
            return None
        token = new_token()
        await self.store.tenancy.insert_token(token_row(None, token, now()))
        return token


def token_row(operator_id: str | None, token: str, created_at: datetime) -> dict[str, Any]:
    """A token as stored: its hash only (the value is shown once, never kept)."""
    return {
        "id": new_id("tok"),
        "operator_id": operator_id,
        "token_hash": hash_token(token),
        "created_at": created_at,
    }
