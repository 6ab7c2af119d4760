"""Who is asking: the admin, or one operator.

Every verb takes a ``Caller`` (``ADMIN`` by default: the CLI and the Python API act as the
admin); the parts decide what it may do, and the store narrows its reads to what it may see.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Forbidden


@dataclass(frozen=True)
class Caller:
    """Who is asking. An operator sees and touches only what hangs off its own locations;
    the admin (``operator_id`` None) manages operators and sees everything.

    The CLI and the Python API act as the admin: whoever runs them holds the database.
    """

    operator_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.operator_id is None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(
                "this needs the admin token; an operator token manages only its own "
                "locations, webhooks, events and deliveries"
            )

    # the store's ``EmitRules``: applied inside the emit's transaction

    def may_emit_at(self, location_owner: str | None) -> bool:
        """An operator emits at its own locations; the admin at any that exists."""
        return location_owner is not None and (self.is_admin or location_owner == self.operator_id)

    def may_reuse_event_id(self, event_owner: str) -> bool:
        """Re-emitting an id is idempotent for whoever can see the event; to anyone else the
        id is taken (409), which reveals that it exists but nothing of the event."""
        return self.is_admin or event_owner == self.operator_id


ADMIN = Caller()
