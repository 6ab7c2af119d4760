"""Operators and their API tokens: who may call, and the owners whose status and deletion
cascade to their locations and webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update

from ..errors import Conflict
from ..states import OPERATOR_DISABLED, OwnerStatus
from .db import Database, insert_unique
from .locations import Locations
from .records import Purged
from .schema import locations, operators, tokens, webhooks
from .webhooks import switch_webhooks


class Tenancy:
    """Operators and tokens."""

    def __init__(self, db: Database, locations: Locations) -> None:
        self.db = db
        self.locations = locations

    async def insert_operator(self, row: dict[str, Any], token: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await insert_unique(conn, operators, row, f"operator {row['name']!r} exists already")
            await conn.execute(insert(tokens), token)

    async def insert_token(self, row: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await conn.execute(insert(tokens), row)

    async def find_token(self, token_hash: str) -> Row[Any] | None:
        """The token row with this hash (``operator_id`` NULL for an admin token), with its
        operator's status as ``operator_status`` (NULL for an admin token)."""
        query = (
            select(tokens, operators.c.status.label("operator_status"))
            .outerjoin(operators, operators.c.id == tokens.c.operator_id)
            .where(tokens.c.token_hash == token_hash)
        )
        async with self.db.read() as conn:
            return (await conn.execute(query)).first()

    async def list_tokens(
        self, operator_id: str | None = None
    ) -> Sequence[Row[str, str | None, datetime]]:
        """Token rows, oldest first, without their hashes; narrowed to one operator's."""
        query = select(tokens.c.id, tokens.c.operator_id, tokens.c.created_at)
        if operator_id is not None:
            query = query.where(tokens.c.operator_id == operator_id)
        async with self.db.read() as conn:
            return (await conn.execute(query.order_by(tokens.c.created_at, tokens.c.id))).all()

    async def delete_token(
        self, token_id: str, operator_id: str | None, *, keep_an_admin: bool
    ) -> bool:
        """Delete a token (of ``operator_id`` only, when given); False when there is none.
        With ``keep_an_admin``, the last admin token is refused (``Conflict``): nobody could
        manage operators any more.

        The admin tokens are locked before counting them (on PostgreSQL; SQLite has one
        writer), so two revocations at once cannot remove the last two together.
        """
        async with self.db.changing_access() as conn:
            query = select(tokens.c.operator_id).where(tokens.c.id == token_id)
            if operator_id is not None:
                query = query.where(tokens.c.operator_id == operator_id)
            found = (await conn.execute(query)).first()
            if found is None:
                return False
            if found.operator_id is None and keep_an_admin:
                admins = select(tokens.c.id).where(tokens.c.operator_id.is_(None))
                if conn.dialect.name == "postgresql":
                    admins = admins.with_for_update()
                ids = (await conn.execute(admins)).scalars().all()
                if token_id not in ids:
                    return False  # revoked meanwhile
                if len(ids) <= 1:
                    raise Conflict(
                        f"token {token_id} is the last admin token; create another admin "
                        "token first (`hotspot-webhooks tokens create --admin`)"
                    )
            deleted = await conn.execute(delete(tokens).where(tokens.c.id == token_id))
            return deleted.rowcount == 1

    async def has_admin_token(self) -> bool:
        async with self.db.read() as conn:
            result = await conn.execute(
                select(tokens.c.id).where(tokens.c.operator_id.is_(None)).limit(1)
            )
            return result.first() is not None

    async def find_operator(self, id_or_name: str) -> Row[Any] | None:
        async with self.db.read() as conn:
            result = await conn.execute(
                select(operators).where(
                    or_(operators.c.id == id_or_name, operators.c.name == id_or_name)
                )
            )
            return result.first()

    async def list_operators(self) -> Sequence[Row[Any]]:
        async with self.db.read() as conn:
            return (await conn.execute(select(operators).order_by(operators.c.created_at))).all()

    async def set_operator_status(
        self, operator_id: str, status: OwnerStatus, reason: str | None, now: datetime
    ) -> None:
        """Disable or enable an operator, and with it the webhooks at its locations, in one
        transaction announced to every process (its tokens stop or start working at once).

        Disabling disables its enabled webhooks with ``reason``; enabling re-enables exactly
        those (their reason names the operator), not those disabled for another reason.
        """
        async with self.db.changing_access() as conn:
            await conn.execute(
                update(operators)
                .where(operators.c.id == operator_id)
                .values(status=status.value, disabled_reason=reason)
            )
            its = webhooks.c.operator_id == operator_id
            await switch_webhooks(conn, its, status, reason, OPERATOR_DISABLED, now)

    async def delete_operator(self, operator_id: str, now: datetime) -> Purged:
        """Delete an operator with everything it owns: first disabled (its tokens stop at
        once, everywhere), then each location as ``delete_location`` does, then its tokens
        and itself. A delete that stops half-way leaves it disabled, to be deleted again."""
        reason = f"{OPERATOR_DISABLED}: being deleted"
        await self.set_operator_status(operator_id, OwnerStatus.DISABLED, reason, now)
        purged = Purged()
        while True:
            async with self.db.read() as conn:
                its_locations = select(locations.c.id).where(locations.c.operator_id == operator_id)
                location_ids = (await conn.execute(its_locations)).scalars().all()
            if not location_ids:
                break
            for location_id in location_ids:
                purged.add(await self.locations.delete_location(location_id))
        async with self.db.changing_access() as conn:
            # what is left of its webhooks: those subscribed to "*" (no delivery left either)
            await conn.execute(delete(webhooks).where(webhooks.c.operator_id == operator_id))
            await conn.execute(delete(tokens).where(tokens.c.operator_id == operator_id))
            await conn.execute(
                delete(operators).where(
                    operators.c.id == operator_id,
                    ~select(locations.c.id).where(locations.c.operator_id == operator_id).exists(),
                )
            )
        return purged
