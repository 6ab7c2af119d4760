"""Locations: the hotspots where events happen, each owned by one operator."""

from __future__ import annotations

from ..errors import Conflict, Forbidden, field_error
from ..models import Location
from ..states import LOCATION_DISABLED, OwnerStatus
from ..store.records import Purged
from ..store.store import Store
from ..validation import check_choice, check_id, check_text, invalid, is_id
from .caller import ADMIN, Caller
from .common import found, now, stamp
from .operators import Operators


class Locations:
    def __init__(self, store: Store, operators: Operators) -> None:
        self.store = store
        self.operators = operators

    async def create(
        self, location_id: str, name: str, operator: str | None, *, caller: Caller = ADMIN
    ) -> Location:
        """A location for ``operator`` (id or name). An operator creates only its own, so it
        may leave ``operator`` out; the admin must name one."""
        location_id = check_id(location_id, "id")
        name = check_text(name, "name")
        if caller.operator_id is not None:
            if operator is not None and operator != caller.operator_id:
                raise Forbidden(
                    "an operator token creates locations for its own operator only; "
                    "leave operator_id out",
                    details=[field_error("operator_id", "not your operator")],
                )
            owner_id = caller.operator_id
        elif operator is None:
            raise invalid(
                "operator_id",
                "required",
                headline="operator_id is required when the admin creates a location",
            )
        else:
            owner_id = (await self.operators.find(operator)).id
        row = {"id": location_id, "name": name, "operator_id": owner_id, "created_at": now()}
        await self.store.locations.insert_location(row)
        return Location(**row)

    async def get_all(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Location]:
        operator_id = await self.operators.scope_for(operator, caller)
        return [
            Location.model_validate(r)
            for r in await self.store.locations.list_locations(operator_id)
        ]

    async def get(self, location_id: str, *, caller: Caller = ADMIN) -> Location:
        row = (
            await self.store.locations.get_location(location_id, caller.operator_id)
            if is_id(location_id)
            else None
        )
        return Location.model_validate(found(row, "location", location_id))

    async def set_status(
        self, location_id: str, status: str, *, caller: Caller = ADMIN
    ) -> Location:
        """Disable or enable a location (the admin, or its operator), as an operator is:
        disabling disables its webhooks (queued deliveries fail unsent, events there are
        still accepted with no delivery); enabling enables those again. A location of a
        disabled operator stays disabled until the operator is enabled."""
        location = await self.get(location_id, caller=caller)
        wanted = OwnerStatus(check_choice(status, OwnerStatus, "status", what="location status"))
        if wanted is OwnerStatus.ENABLED:
            await self.operators.require_enabled(location.operator_id)
        who = "the admin" if caller.is_admin else "its operator"
        reason = (
            None if wanted is OwnerStatus.ENABLED else f"{LOCATION_DISABLED} by {who} at {stamp()}"
        )
        await self.store.locations.set_location_status(location.id, wanted, reason, now())
        return await self.get(location.id, caller=caller)

    async def delete(self, location_id: str, *, caller: Caller = ADMIN) -> Purged:
        """Delete a location (the admin, or its operator) with its webhooks and its events,
        their deliveries and attempts, in short transactions. An event emitted there later
        is refused (unknown location)."""
        location = await self.get(location_id, caller=caller)
        return await self.store.locations.delete_location(location.id)

    async def require_enabled(self, location: Location) -> None:
        """Refuse (409) to enable or add a webhook under a disabled location or operator."""
        if location.status == OwnerStatus.DISABLED:
            raise Conflict(
                f"location {location.id!r} is disabled; enable it first "
                f"(`hotspot-webhooks locations enable {location.id}`)"
            )
        await self.operators.require_enabled(location.operator_id)
