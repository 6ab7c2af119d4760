"""Operators: the tenants. The admin creates, disables, enables and deletes them; each
operator sees only what hangs off its own locations."""

from __future__ import annotations

from typing import Any

from ..errors import Conflict
from ..ids import new_id
from ..keys import new_token
from ..models import Operator, OperatorWithToken
from ..states import OPERATOR_DISABLED, OwnerStatus
from ..store.records import Purged
from ..store.store import Store
from ..validation import check_choice, check_text, is_text
from .access import Access, token_row
from .caller import ADMIN, Caller
from .common import found, now, stamp


class Operators:
    def __init__(self, store: Store, access: Access) -> None:
        self.store = store
        self.access = access

    async def create(self, name: str, *, caller: Caller = ADMIN) -> OperatorWithToken:
        caller.require_admin()
        name = check_text(name, "name")
        token = new_token()
        created_at = now()
        row: dict[str, Any] = {"id": new_id("op"), "name": name, "created_at": created_at}
        await self.store.tenancy.insert_operator(row, token_row(row["id"], token, created_at))
        return OperatorWithToken(**row, token=token)

    async def get_all(self, *, caller: Caller = ADMIN) -> list[Operator]:
        caller.require_admin()
        return [Operator.model_validate(r) for r in await self.store.tenancy.list_operators()]

    async def find(self, id_or_name: str) -> Operator:
        """The operator with this id or name (whoever asks: callers check before)."""
        row = await self.store.tenancy.find_operator(id_or_name) if is_text(id_or_name) else None
        return Operator.model_validate(found(row, "operator", id_or_name))

    async def scope_for(self, operator: str | None, caller: Caller) -> str | None:
        """Whose objects a list shows: an operator's own (``operator`` is ignored); for the
        admin, those of ``operator`` (id or name), or everyone's (None)."""
        if operator:  # in a query string, empty means not given
            check_text(operator, "operator_id")
        if caller.operator_id is not None:
            return caller.operator_id
        return (await self.find(operator)).id if operator else None

    async def of_caller(self, caller: Caller) -> Operator | None:
        """The caller's own operator (None for the admin): whom the control center shows as
        signed in."""
        return None if caller.operator_id is None else await self.find(caller.operator_id)

    async def set_status(self, operator: str, status: str, *, caller: Caller = ADMIN) -> Operator:
        """Disable or enable an operator (id or name; the admin's act).

        Disabled, its tokens are refused at once on every process and its webhooks are
        disabled: their queued deliveries fail unsent, as any disabled webhook's do (``recover``
        sends them again once enabled), and events at its locations are still accepted, with
        no delivery. Enabled again, its tokens work and the webhooks its disabling disabled
        are enabled (not those disabled for another reason).
        """
        caller.require_admin()
        target = await self.find(operator)
        wanted = OwnerStatus(check_choice(status, OwnerStatus, "status", what="operator status"))
        reason = (
            None
            if wanted is OwnerStatus.ENABLED
            else f"{OPERATOR_DISABLED} by the admin at {stamp()}"
        )
        await self.store.tenancy.set_operator_status(target.id, wanted, reason, now())
        self.access.forget()
        return await self.find(target.id)

    async def delete(self, operator: str, *, caller: Caller = ADMIN) -> Purged:
        """Delete an operator (id or name; the admin's act) with its tokens, locations,
        webhooks, events, deliveries and attempts: disabled first (its tokens stop at once),
        then deleted in short transactions. Run again if it was interrupted."""
        caller.require_admin()
        target = await self.find(operator)
        purged = await self.store.tenancy.delete_operator(target.id, now())
        self.access.forget()
        return purged

    async def require_enabled(self, operator_id: str) -> None:
        """Refuse (409) to enable or add anything under a disabled operator."""
        operator = await self.find(operator_id)
        if operator.status == OwnerStatus.DISABLED:
            raise Conflict(
                f"operator {operator.name!r} is disabled; the admin must enable it first"
            )
