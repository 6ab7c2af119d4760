"""The test send: a sample event delivered now to one webhook alone, through the same
attempt path the dispatcher uses (``delivery.attempt``; the only part of the service that
sends anything). It is a real delivery: recorded, listed, retried if it failed."""

from __future__ import annotations

from datetime import timedelta

from .. import catalog
from ..config import Settings
from ..delivery.attempt import Attempts
from ..errors import Conflict, NotFound, field_error
from ..ids import new_id
from ..keys import KeyCipher
from ..known_types import KnownEventTypes, sample_body
from ..models import DeliveryWithAttempts, Webhook
from ..store.records import NewEvent, UnknownLocation, test_send_lease_owner
from ..store.store import Store
from ..subscription import ANY
from ..validation import check_id, invalid
from .caller import ADMIN, Caller
from .common import delivery_resource, found, now


class SampleSend:
    def __init__(
        self, settings: Settings, store: Store, cipher: KeyCipher, known: KnownEventTypes
    ) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher
        self.known = known
        self._attempts: Attempts | None = None  # opened on first use

    async def close(self) -> None:
        if self._attempts is not None:
            await self._attempts.close()

    async def send(
        self,
        webhook: Webhook,
        *,
        event_type: str | None = None,
        location_id: str | None = None,
        caller: Caller = ADMIN,
    ) -> DeliveryWithAttempts:
        """Send a sample event to ``webhook`` (one the caller may see) and return the
        delivery with its attempt. The type and location are the given ones (within the
        subscription), else its first."""
        chosen_type = within(webhook.event_types, event_type, "event_type")
        if chosen_type == ANY:
            chosen_type = next(iter(catalog.EVENT_TYPES))
        sample_of = await self.known.get(chosen_type, field="event_type")
        chosen_location = await self._location(webhook, location_id)
        started = now()
        owner = test_send_lease_owner()
        try:
            claimed = await self.store.queue.insert_leased_delivery(
                NewEvent(
                    new_id("evt"),
                    sample_of.name,
                    chosen_location,
                    sample_body(sample_of),
                    started,
                ),
                webhook.id,
                new_id("dlv"),
                owner,
                lease_until=started + timedelta(seconds=self.settings.timeout + 60),
            )
        except UnknownLocation as exc:  # deleted a moment ago
            details = [field_error("location_id", "no such location")]
            raise NotFound(exc.message, details=details) from None
        if self._attempts is None:
            self._attempts = Attempts(self.settings, self.cipher)
        await self._attempts.make_and_record(self.store.queue, claimed, owner)
        sent = await self.store.deliveries.get_delivery(claimed.id, caller.operator_id)
        return delivery_resource(*found(sent, "delivery", claimed.id))

    async def _location(self, webhook: Webhook, wanted: str | None) -> str:
        """Where a test event comes from: ``wanted``, which must be a location of the webhook's
        own operator (any other is 404, as one that does not exist) and in its subscription;
        else the subscription's first location (for "*", the operator's first)."""
        if wanted:  # in a query string, empty means not given
            check_id(wanted, "location_id")
            if await self.store.locations.get_location(wanted, webhook.operator_id) is None:
                missing = UnknownLocation(wanted, 0).message
                raise NotFound(missing, details=[field_error("location_id", "no such location")])
        chosen = within(webhook.location_ids, wanted, "location_id")
        if chosen != ANY:
            return chosen
        its = await self.store.locations.list_locations(webhook.operator_id)
        if not its:
            raise Conflict(
                f"webhook {webhook.id!r} subscribes to all locations of an operator that "
                "has none yet: create a location first"
            )
        return str(its[0].id)


def within(subscribed: list[str], wanted: str | None, field: str) -> str:
    """``wanted`` if the subscription covers it (its first value when not given)."""
    if wanted is None or wanted == "":
        return subscribed[0]
    if subscribed != [ANY] and wanted not in subscribed:
        raise invalid(
            field,
            "not in the webhook's subscription",
            headline=f"{field} {wanted!r} is not in the webhook's subscription "
            f"({', '.join(subscribed)})",
        )
    return wanted
