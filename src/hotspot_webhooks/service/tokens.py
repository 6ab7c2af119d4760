"""Tokens: an operator's (or the admin's) bearer tokens, stored hashed and shown once."""

from __future__ import annotations

from ..config import Settings
from ..keys import new_token
from ..models import Token, TokenCreated
from ..store.store import Store
from ..validation import is_id
from .access import Access, token_row
from .caller import ADMIN, Caller
from .common import found, now
from .operators import Operators


class Tokens:
    def __init__(
        self, settings: Settings, store: Store, access: Access, operators: Operators
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.operators = operators

    async def create(self, operator: str | None, *, caller: Caller = ADMIN) -> TokenCreated:
        """A further token for ``operator`` (id or name), or with None an admin token."""
        caller.require_admin()
        operator_id = None if operator is None else (await self.operators.find(operator)).id
        token = new_token()
        row = token_row(operator_id, token, now())
        await self.store.tenancy.insert_token(row)
        return TokenCreated(
            id=row["id"], operator_id=operator_id, token=token, created_at=row["created_at"]
        )

    async def create_own(self, *, caller: Caller = ADMIN) -> TokenCreated:
        """A further token for the caller's own operator (the admin: a further admin token):
        an operator replaces a token without the admin by creating one, then revoking the
        old one (the control center's tokens page)."""
        return await self.create(caller.operator_id, caller=ADMIN)

    async def get_all(self, operator: str | None = None, *, caller: Caller = ADMIN) -> list[Token]:
        """Tokens (never their values): an operator sees its own (``operator`` is ignored,
        as for locations); the admin all of them, or those of ``operator`` (id or name)."""
        operator_id = await self.operators.scope_for(operator, caller)
        return [Token.model_validate(r) for r in await self.store.tenancy.list_tokens(operator_id)]

    async def revoke(self, token_id: str, *, caller: Caller = ADMIN) -> None:
        """Delete a token: it stops working at once, on every process. An operator revokes
        only its own; the admin any but the last admin token (unless one is configured), so
        that someone can still manage operators."""
        deleted = is_id(token_id) and await self.store.tenancy.delete_token(
            token_id,
            caller.operator_id,
            keep_an_admin=not self.settings.admin_token,
        )
        found(True if deleted else None, "token", token_id)
        self.access.forget()  # at once here; other processes hear the announcement
