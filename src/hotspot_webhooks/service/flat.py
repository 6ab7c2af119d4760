"""The service's old flat verbs (``service.create_webhook(...)``), each a one-line delegate
to the part that owns it (``service.webhooks.create(...)``).

Kept so that the faces, ``cli/backend.py``'s ``Backend``, ``client.RemoteService`` and the
tests keep working while each resource moves to the parts (HOUSE.md §5 step 9); a resource's
delegates are deleted when its callers have moved. Nothing here may hold logic.
"""

from __future__ import annotations

from ..models import (
    EventTypeInfo,
    Location,
    Operator,
    OperatorWithToken,
    Token,
    TokenCreated,
)
from ..store.records import Purged
from .access import Access
from .caller import ADMIN, Caller
from .event_types import EventTypes
from .locations import Locations
from .operators import Operators
from .tokens import Tokens


class FlatVerbs:
    """The parts, and the flat names that reach them (``Service`` builds the parts)."""

    access: Access
    operators: Operators
    tokens: Tokens
    event_types: EventTypes
    locations: Locations

    # access

    async def authenticate(self, token: str | None) -> Caller:
        return await self.access.authenticate(token)

    async def ensure_admin_token(self) -> str | None:
        return await self.access.ensure_admin_token()

    # operators and tokens

    async def create_operator(self, name: str, *, caller: Caller = ADMIN) -> OperatorWithToken:
        return await self.operators.create(name, caller=caller)

    async def list_operators(self, *, caller: Caller = ADMIN) -> list[Operator]:
        return await self.operators.get_all(caller=caller)

    async def set_operator_status(
        self, operator: str, status: str, *, caller: Caller = ADMIN
    ) -> Operator:
        return await self.operators.set_status(operator, status, caller=caller)

    async def delete_operator(self, operator: str, *, caller: Caller = ADMIN) -> Purged:
        return await self.operators.delete(operator, caller=caller)

    async def operator_of(self, caller: Caller) -> Operator | None:
        return await self.operators.of_caller(caller)

    async def create_token(self, operator: str | None, *, caller: Caller = ADMIN) -> TokenCreated:
        return await self.tokens.create(operator, caller=caller)

    async def create_own_token(self, *, caller: Caller = ADMIN) -> TokenCreated:
        return await self.tokens.create_own(caller=caller)

    async def list_tokens(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Token]:
        return await self.tokens.get_all(operator, caller=caller)

    async def revoke_token(self, token_id: str, *, caller: Caller = ADMIN) -> None:
        await self.tokens.revoke(token_id, caller=caller)

    # event types

    async def list_event_types(self) -> list[EventTypeInfo]:
        return await self.event_types.get_all()

    async def get_event_type(self, name: str) -> EventTypeInfo:
        return await self.event_types.get(name)

    async def register_event_type(
        self,
        name: str,
        description: str,
        json_schema: object,
        sample: object,
        *,
        caller: Caller = ADMIN,
    ) -> EventTypeInfo:
        return await self.event_types.register(
            name, description, json_schema, sample, caller=caller
        )

    async def remove_event_type(self, name: str, *, caller: Caller = ADMIN) -> None:
        await self.event_types.remove(name, caller=caller)

    # locations

    async def create_location(
        self, location_id: str, name: str, operator: str | None, *, caller: Caller = ADMIN
    ) -> Location:
        return await self.locations.create(location_id, name, operator, caller=caller)

    async def list_locations(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Location]:
        return await self.locations.get_all(operator, caller=caller)

    async def get_location(self, location_id: str, *, caller: Caller = ADMIN) -> Location:
        return await self.locations.get(location_id, caller=caller)

    async def set_location_status(
        self, location_id: str, status: str, *, caller: Caller = ADMIN
    ) -> Location:
        return await self.locations.set_status(location_id, status, caller=caller)

    async def delete_location(self, location_id: str, *, caller: Caller = ADMIN) -> Purged:
        return await self.locations.delete(location_id, caller=caller)
