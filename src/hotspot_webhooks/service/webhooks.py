"""Webhooks: where deliveries go. Created with a key shown once, subscribed to locations x
event types, updated, enabled and disabled, their keys rotated, their failed deliveries
recovered, and a sample sent on demand (``sample_send``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..config import Settings
from ..delivery.targets import check_callback_url
from ..errors import Conflict, Forbidden, NotFound, field_error
from ..ids import new_id
from ..keys import KeyCipher, new_api_key
from ..known_types import KnownEventTypes, UnknownEventType
from ..models import (
    DeliveryWithAttempts,
    RecoverResult,
    Webhook,
    WebhookOptions,
    WebhookPreview,
    WebhookWithSecret,
)
from ..signing import signing_secret
from ..states import WebhookStatus
from ..store.records import SubscribedWebhook
from ..store.store import Store
from ..subscription import ANY, Subscription, subscription_from
from ..validation import check_aware, check_choice, check_id, invalid, is_id
from .access import Access
from .caller import ADMIN, Caller
from .common import found, now, stamp
from .integrations import Integrations
from .locations import Locations
from .operators import Operators
from .sample_send import SampleSend, within


class Webhooks:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cipher: KeyCipher,
        *,
        access: Access,
        known: KnownEventTypes,
        operators: Operators,
        locations: Locations,
        sample_send: SampleSend,
        integrations: Integrations,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher
        self.access = access
        self.known = known
        self.operators = operators
        self.locations = locations
        self.sample_send = sample_send
        self.integrations = integrations

    async def create(
        self,
        location_id: str | None = None,
        event_type: str | None = None,
        callback_url: str | None = None,
        *,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        operator: str | None = None,
        options: WebhookOptions | None = None,
        caller: Caller = ADMIN,
    ) -> WebhookWithSecret:
        """A webhook for ``location_id`` + ``event_type`` (the original platform's form) or
        ``location_ids`` x ``event_types`` (``["*"]``: all), with its key, shown this once.

        It belongs to one operator: the caller, or for the admin the one whose locations it
        names (``operator`` when it names ``"*"``). A location the caller cannot see is 404,
        as if it did not exist; one that is disabled, or a disabled operator, is 409.
        ``options`` are what it does beyond SPEC §2 (§9: filter, template, headers, auth...).
        """
        subscription = await self._subscription(
            location_id=location_id,
            location_ids=location_ids,
            event_type=event_type,
            event_types=event_types,
        )
        given, preset_url = self.integrations.expand({} if options is None else options.given())
        callback_url = callback_url or preset_url
        if callback_url is None:
            raise invalid("callback_url", "required", headline="callback_url is required")
        callback_url = await self._check_callback_url(callback_url)
        owner_id = await self._subscriber(subscription, operator, caller)
        extras = await self.integrations.columns(given, event_types=subscription.event_types)
        api_key = new_api_key()
        created_at = now()
        webhook_id = new_id("wh")
        row = {
            "id": webhook_id,
            "operator_id": owner_id,
            "callback_url": callback_url,
            "api_key_encrypted": self.cipher.encrypt(api_key),
            "status": WebhookStatus.ENABLED,
            "disabled_reason": None,
            "created_at": created_at,
            "updated_at": created_at,
            **extras,
        }
        await self.store.webhooks.insert_webhook(row, subscription.pairs())
        webhook = await self.get(webhook_id, caller=caller)
        return WebhookWithSecret(
            **webhook.model_dump(), api_key=api_key, signing_secret=signing_secret(api_key)
        )

    async def get_all(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        caller: Caller = ADMIN,
    ) -> list[Webhook]:
        """Webhooks, or those that receive events at ``location_id`` and/or of
        ``event_type`` (named, or through "*")."""
        if location_id:  # in a query string, empty means not given
            check_id(location_id, "location_id")
        if event_type is not None:
            await self.known.get(event_type, field="event_type")
        if status is not None:
            check_choice(status, WebhookStatus, "status", what="webhook status")
        rows = await self.store.webhooks.list_webhooks(
            location_id=location_id or None,
            event_type=event_type,
            status=status,
            operator_id=caller.operator_id,
        )
        return [self._resource(each) for each in rows]

    async def get(self, webhook_id: str, *, caller: Caller = ADMIN) -> Webhook:
        row = (
            await self.store.webhooks.get_webhook(webhook_id, caller.operator_id)
            if is_id(webhook_id)
            else None
        )
        return self._resource(found(row, "webhook", webhook_id))

    async def update(
        self,
        webhook_id: str,
        *,
        callback_url: str | None = None,
        status: str | None = None,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        options: WebhookOptions | None = None,
        caller: Caller = ADMIN,
    ) -> Webhook:
        """Change the callback URL, the subscription (either list, or both), what it does
        beyond SPEC §2 (``options``: the fields given change, null clears one), and/or enable
        or disable; enabling clears the reason (and is refused while its operator, or a
        location it names, is disabled)."""
        webhook = await self.get(webhook_id, caller=caller)
        values: dict[str, Any] = {}
        pairs = None
        subscribed_types: Sequence[str] = webhook.event_types
        if location_ids is not None or event_types is not None:
            subscription = await self._subscription(
                location_id=None,
                location_ids=webhook.location_ids if location_ids is None else location_ids,
                event_type=None,
                event_types=webhook.event_types if event_types is None else event_types,
            )
            owner = await self._subscriber(subscription, webhook.operator_id, caller)
            if owner != webhook.operator_id:  # the admin named another operator's locations
                raise NotFound(
                    f"location {subscription.location_ids[0]!r} does not exist; create it first"
                )
            pairs = subscription.pairs()
            subscribed_types = subscription.event_types
        given, preset_url = self.integrations.expand({} if options is None else options.given())
        callback_url = callback_url or preset_url
        if given or pairs is not None:
            stored = await self.store.webhooks.get_webhook(webhook_id, caller.operator_id)
            values.update(
                await self.integrations.columns(
                    given,
                    event_types=subscribed_types,
                    stored=found(stored, "webhook", webhook_id).row,
                    resubscribed=pairs is not None,
                )
            )
        if callback_url is not None:
            values["callback_url"] = await self._check_callback_url(callback_url)
        if status is not None:
            values["status"] = check_choice(status, WebhookStatus, "status", what="webhook status")
            if status == WebhookStatus.ENABLED:
                await self.operators.require_enabled(webhook.operator_id)
                for location_id in [] if webhook.location_ids == [ANY] else webhook.location_ids:
                    location = await self.locations.get(location_id)
                    await self.locations.require_enabled(location)
            values["disabled_reason"] = (
                None if status == WebhookStatus.ENABLED else f"disabled by request at {stamp()}"
            )
        if not values and pairs is None:
            raise invalid(
                "callback_url",
                "give callback_url, status, location_ids, event_types or an option",
                headline="nothing to change: give callback_url, status, location_ids, "
                "event_types, or one of description, metadata, headers, auth, filter, "
                "template, preset",
            )
        values["updated_at"] = now()
        await self.store.webhooks.update_webhook(webhook_id, values, pairs)
        return await self.get(webhook_id, caller=caller)

    async def delete(self, webhook_id: str, *, caller: Caller = ADMIN) -> None:
        await self.get(webhook_id, caller=caller)
        if not await self.store.webhooks.delete_webhook(webhook_id):
            raise NotFound(f"webhook {webhook_id!r} does not exist")

    async def rotate_key(self, webhook_id: str, *, caller: Caller = ADMIN) -> WebhookWithSecret:
        """Give the webhook a new API key, shown this once. Every later attempt (retries of
        older events included) is signed with it; for ``ROTATION_GRACE`` the previous key
        signs too, as a second ``webhook-signature`` entry, so a receiver can switch keys
        without refusing a delivery. Then the previous key is erased."""
        await self.get(webhook_id, caller=caller)
        api_key = new_api_key()
        rotated_at = now()
        await self.store.webhooks.rotate_key(
            webhook_id,
            self.cipher.encrypt(api_key),
            rotated_at,
            rotated_at + self.settings.rotation_grace,
        )
        webhook = await self.get(webhook_id, caller=caller)
        return WebhookWithSecret(
            **webhook.model_dump(), api_key=api_key, signing_secret=signing_secret(api_key)
        )

    async def test(
        self,
        webhook_id: str,
        *,
        event_type: str | None = None,
        location_id: str | None = None,
        caller: Caller = ADMIN,
    ) -> DeliveryWithAttempts:
        """Send a sample event now, to this webhook alone, and return the delivery with its
        attempt. It is a real delivery: recorded, listed, retried if it failed. The type and
        location are the given ones (within the subscription), else its first."""
        webhook = await self.get(webhook_id, caller=caller)
        return await self.sample_send.send(
            webhook, event_type=event_type, location_id=location_id, caller=caller
        )

    async def preview(
        self,
        webhook_id: str,
        *,
        event_type: str | None = None,
        location_id: str | None = None,
        caller: Caller = ADMIN,
    ) -> WebhookPreview:
        """The request this webhook would send for a sample of ``event_type`` (default: its
        subscription's first), rendered through its template if it has one; nothing sent."""
        webhook = await self.get(webhook_id, caller=caller)
        chosen = within(webhook.event_types, event_type, "event_type")
        if chosen == ANY:
            chosen = (await self.known.names())[0]
        if location_id:
            check_id(location_id, "location_id")
        place = within(webhook.location_ids, location_id, "location_id")
        stored = await self.store.webhooks.get_webhook(webhook_id, caller.operator_id)
        return await self.integrations.preview(
            found(stored, "webhook", webhook_id).row,
            await self.known.get(chosen, field="event_type"),
            "1" if place == ANY else place,
        )

    async def recover(
        self, webhook_id: str, since: datetime, *, caller: Caller = ADMIN
    ) -> RecoverResult:
        """Re-queue the webhook's failed deliveries created since ``since``: each gets one
        more attempt at the next pass (and stays failed if that one fails too)."""
        webhook = await self.get(webhook_id, caller=caller)
        check_aware(since, "since")
        require_enabled(webhook)
        count = await self.store.deliveries.requeue_failed(webhook_id, since, now())
        return RecoverResult(webhook_id=webhook_id, since=since, requeued=count)

    def _resource(self, subscribed: SubscribedWebhook) -> Webhook:
        return webhook_resource(subscribed, self.integrations.shown(subscribed.row))

    async def _subscriber(
        self, subscription: Subscription, operator: str | None, caller: Caller
    ) -> str:
        """The operator a webhook with ``subscription`` belongs to, its locations checked:
        each visible to the caller (404 otherwise) and enabled, all of one operator, enabled."""
        if caller.operator_id is not None and operator not in (None, "", caller.operator_id):
            raise Forbidden(
                "an operator token creates webhooks for its own operator only; "
                "leave operator_id out",
                details=[field_error("operator_id", "not your operator")],
            )
        owners: set[str] = set()
        for location_id in () if subscription.all_locations else subscription.location_ids:
            location = await self.locations.get(location_id, caller=caller)
            await self.locations.require_enabled(location)
            owners.add(location.operator_id)
        if caller.operator_id is not None:
            owner_id = caller.operator_id
        elif owners:
            if len(owners) > 1:
                raise invalid(
                    "location_ids",
                    "locations of several operators",
                    headline="location_ids name locations of several operators "
                    f"({', '.join(sorted(owners))}); a webhook belongs to one",
                )
            [owner_id] = owners
            if operator and (await self.operators.find(operator)).id != owner_id:
                raise invalid(
                    "operator_id",
                    "not the locations' operator",
                    headline=f"operator_id: the locations belong to operator {owner_id}",
                )
        elif operator:
            owner_id = (await self.operators.find(operator)).id
        else:
            raise invalid(
                "operator_id",
                "required",
                headline='operator_id is required when the admin subscribes to "*" locations',
            )
        await self.operators.require_enabled(owner_id)
        return owner_id

    async def _subscription(self, **given: Any) -> Subscription:
        """``subscription_from`` with the event types this process knows, registered ones
        included (read again once before a name is refused: it may be new elsewhere)."""
        self.access.watch()
        for again in (False, True):
            if again:
                self.known.forget()
            names = await self.known.names()

            def known(name: str, field: str, names: list[str] = names) -> str:
                if name not in names:
                    raise UnknownEventType(name, field, names)
                return name

            try:
                return subscription_from(**given, check_event_type=known)
            except UnknownEventType:
                if again:
                    raise
        raise AssertionError("unreachable")

    async def _check_callback_url(self, callback_url: str) -> str:
        """The URL to store: checked, its host in ASCII (IDNA), as every attempt sends it.
        A host name is resolved off the event loop, within ``targets.RESOLVE_TIMEOUT``."""
        allow_private = self.settings.allow_private_targets
        return await check_callback_url(callback_url, allow_private=allow_private)


def webhook_resource(subscribed: SubscribedWebhook, shown: dict[str, Any]) -> Webhook:
    """The resource: both forms of the subscription (the single values when there is one),
    and its SPEC §9 fields as ``shown`` (``Integrations.shown``: secrets redacted)."""
    location_ids, event_types = subscribed.location_ids, subscribed.event_types
    single_location = location_ids[0] if len(location_ids) == 1 and location_ids != [ANY] else None
    single_type = event_types[0] if len(event_types) == 1 and event_types != [ANY] else None
    return Webhook.model_validate(
        {
            **subscribed.row._asdict(),
            "location_id": single_location,
            "event_type": single_type,
            "location_ids": location_ids,
            "event_types": event_types,
            **shown,
        }
    )


def require_enabled(webhook: Webhook) -> None:
    """Refuse (409) to send again to a disabled webhook."""
    if webhook.status != WebhookStatus.ENABLED:
        reason = f" ({webhook.disabled_reason})" if webhook.disabled_reason else ""
        raise Conflict(
            f"webhook {webhook.id!r} is disabled{reason}; enable it first "
            "(PATCH status=enabled, or `webhooks update --enable`)"
        )
