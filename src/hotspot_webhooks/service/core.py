"""``Service``: every verb of the service, in one class (being split into parts)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import catalog, metrics
from ..config import Settings, parse_success_statuses
from ..delivery.attempt import Attempts
from ..delivery.dispatcher import Dispatcher, open_dispatcher, running_dispatcher
from ..delivery.targets import check_callback_url
from ..errors import (
    Conflict,
    DatabaseNotReady,
    DatabaseUnavailable,
    Forbidden,
    NotFound,
    field_error,
)
from ..ids import new_id
from ..keys import KeyCipher, load_secret_keys, new_api_key
from ..known_types import (
    KnownEventTypes,
    UnknownEventType,
    body_of,
    sample_body,
)
from ..models import (
    Attempt,
    Delivery,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    Page,
    RecoverResult,
    Webhook,
    WebhookWithSecret,
)
from ..signing import signing_secret
from ..states import (
    DeliveryStatus,
    WebhookStatus,
)
from ..store.database import parse_database_url, sqlite_file
from ..store.disk_full import ADVICE as DISK_FULL_ADVICE
from ..store.disk_full import disk_full
from ..store.records import (
    EventIdTaken,
    NewEvent,
    Purged,
    SubscribedWebhook,
    UnknownLocation,
    test_send_lease_owner,
)
from ..store.store import Store
from ..subscription import ANY, Subscription, subscription_from
from ..validation import (
    check_aware,
    check_batch_size,
    check_choice,
    check_id,
    check_limit,
    invalid,
    is_id,
)
from . import common
from .access import Access
from .caller import ADMIN, Caller
from .event_types import EventTypes
from .flat import FlatVerbs
from .locations import Locations
from .operators import Operators
from .tokens import Tokens


@dataclass(frozen=True)
class EmitRequest:
    """One event to emit, as received (validated by ``Service.emit_many``)."""

    type: str
    location_id: str
    data: Any
    id: str | None = None


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


class Service(FlatVerbs):
    def __init__(self, settings: Settings, store: Store, cipher: KeyCipher) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher
        # LOW_LATENCY across processes: a commit that stores deliveries wakes every worker
        store.announce_new_work_across_processes(settings.low_latency)
        self._attempts: Attempts | None = None  # for test sends; opened on first use
        known = KnownEventTypes(store)
        self.access = Access(settings, store, known)
        self.event_types = EventTypes(store, self.access, known)
        self.operators = Operators(store, self.access)
        self.tokens = Tokens(settings, store, self.access, self.operators)
        self.locations = Locations(store, self.operators)

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
        if self._attempts is not None:
            await self._attempts.close()
        await self.access.close()
        await self.store.close()

    async def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers and writes succeed
        (readiness)."""
        await self.store.ping()
        await self.store.check_writes()

    def dispatcher(self) -> AbstractAsyncContextManager[Dispatcher]:
        """A dispatcher on this service's database, for a process that runs its passes
        itself (``worker``); closed when the block ends."""
        return open_dispatcher(self.store, self.settings, self.cipher)

    def running_dispatcher(self) -> AbstractAsyncContextManager[Dispatcher]:
        """A dispatcher passing in the background while the block lasts (``serve``)."""
        return running_dispatcher(self.store, self.settings, self.cipher)

    # retention

    async def purge(self, older_than: timedelta, *, caller: Caller = ADMIN) -> Purged:
        """Delete finished deliveries, their attempts and events older than ``older_than``
        (pending ones stay): what ``RETENTION`` runs every tenth of it, and ``purge`` by hand."""
        caller.require_admin()
        try:
            return await self.store.purge(common.now() - older_than)
        except DatabaseUnavailable as exc:
            if disk_full(exc):  # deleting writes too: say what to do (docs/operations.md)
                raise DatabaseUnavailable(f"purge failed: {DISK_FULL_ADVICE}") from exc
            raise

    # webhooks

    async def create_webhook(
        self,
        location_id: str | None = None,
        event_type: str | None = None,
        callback_url: str | None = None,
        *,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        operator: str | None = None,
        caller: Caller = ADMIN,
    ) -> WebhookWithSecret:
        """A webhook for ``location_id`` + ``event_type`` (the original platform's form) or
        ``location_ids`` x ``event_types`` (``["*"]``: all), with its key, shown this once.

        It belongs to one operator: the caller, or for the admin the one whose locations it
        names (``operator`` when it names ``"*"``). A location the caller cannot see is 404,
        as if it did not exist; one that is disabled, or a disabled operator, is 409.
        """
        subscription = await self._subscription(
            location_id=location_id,
            location_ids=location_ids,
            event_type=event_type,
            event_types=event_types,
        )
        if callback_url is None:
            raise invalid("callback_url", "required", headline="callback_url is required")
        callback_url = await self._check_callback_url(callback_url)
        owner_id = await self._subscriber(subscription, operator, caller)
        api_key = new_api_key()
        now = common.now()
        webhook_id = new_id("wh")
        row = {
            "id": webhook_id,
            "operator_id": owner_id,
            "callback_url": callback_url,
            "api_key_encrypted": self.cipher.encrypt(api_key),
            "status": WebhookStatus.ENABLED,
            "disabled_reason": None,
            "created_at": now,
            "updated_at": now,
        }
        await self.store.insert_webhook(row, subscription.pairs())
        webhook = await self.get_webhook(webhook_id, caller=caller)
        return WebhookWithSecret(
            **webhook.model_dump(), api_key=api_key, signing_secret=signing_secret(api_key)
        )

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
            location = await self.get_location(location_id, caller=caller)
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
                self.event_types.known.forget()
            names = await self.event_types.known.names()

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

    async def list_webhooks(
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
            await self.event_types.known.get(event_type, field="event_type")
        if status is not None:
            check_choice(status, WebhookStatus, "status", what="webhook status")
        found = await self.store.list_webhooks(
            location_id=location_id or None,
            event_type=event_type,
            status=status,
            operator_id=caller.operator_id,
        )
        return [_webhook(each) for each in found]

    async def get_webhook(self, webhook_id: str, *, caller: Caller = ADMIN) -> Webhook:
        return _webhook(await self._subscribed(webhook_id, caller))

    async def _subscribed(self, webhook_id: str, caller: Caller) -> SubscribedWebhook:
        found = (
            await self.store.get_webhook(webhook_id, caller.operator_id)
            if is_id(webhook_id)
            else None
        )
        return common.found(found, "webhook", webhook_id)

    async def update_webhook(
        self,
        webhook_id: str,
        *,
        callback_url: str | None = None,
        status: str | None = None,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        caller: Caller = ADMIN,
    ) -> Webhook:
        """Change the callback URL, the subscription (either list, or both) and/or enable or
        disable; enabling clears the reason (and is refused while its operator, or a location
        it names, is disabled)."""
        webhook = await self.get_webhook(webhook_id, caller=caller)
        values: dict[str, Any] = {}
        pairs = None
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
        if callback_url is not None:
            values["callback_url"] = await self._check_callback_url(callback_url)
        if status is not None:
            values["status"] = check_choice(status, WebhookStatus, "status", what="webhook status")
            if status == WebhookStatus.ENABLED:
                await self.operators.require_enabled(webhook.operator_id)
                for location_id in [] if webhook.location_ids == [ANY] else webhook.location_ids:
                    await self.locations.require_enabled(await self.get_location(location_id))
            disabled = f"disabled by request at {common.stamp()}"
            values["disabled_reason"] = None if status == WebhookStatus.ENABLED else disabled
        if not values and pairs is None:
            raise invalid(
                "callback_url",
                "give callback_url, status, location_ids and/or event_types",
                headline="nothing to change: give callback_url, status, location_ids and/or "
                "event_types",
            )
        values["updated_at"] = common.now()
        await self.store.update_webhook(webhook_id, values, pairs)
        return await self.get_webhook(webhook_id, caller=caller)

    async def delete_webhook(self, webhook_id: str, *, caller: Caller = ADMIN) -> None:
        await self.get_webhook(webhook_id, caller=caller)
        if not await self.store.delete_webhook(webhook_id):
            raise NotFound(f"webhook {webhook_id!r} does not exist")

    async def rotate_key(self, webhook_id: str, *, caller: Caller = ADMIN) -> WebhookWithSecret:
        """Give the webhook a new API key, shown this once. Every later attempt (retries of
        older events included) is signed with it; for ``ROTATION_GRACE`` the previous key
        signs too, as a second ``webhook-signature`` entry, so a receiver can switch keys
        without refusing a delivery. Then the previous key is erased."""
        await self.get_webhook(webhook_id, caller=caller)
        api_key = new_api_key()
        now = common.now()
        await self.store.rotate_key(
            webhook_id, self.cipher.encrypt(api_key), now, now + self.settings.rotation_grace
        )
        webhook = await self.get_webhook(webhook_id, caller=caller)
        return WebhookWithSecret(
            **webhook.model_dump(), api_key=api_key, signing_secret=signing_secret(api_key)
        )

    async def test_webhook(
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
        webhook = await self.get_webhook(webhook_id, caller=caller)
        chosen_type = self._within(webhook.event_types, event_type, "event_type")
        if chosen_type == ANY:
            chosen_type = next(iter(catalog.EVENT_TYPES))
        sample_of = await self.event_types.known.get(chosen_type, field="event_type")
        chosen_location = await self._test_location(webhook, location_id)
        now = common.now()
        owner = test_send_lease_owner()
        try:
            claimed = await self.store.insert_leased_delivery(
                NewEvent(
                    new_id("evt"),
                    sample_of.name,
                    chosen_location,
                    sample_body(sample_of),
                    now,
                ),
                webhook_id,
                new_id("dlv"),
                owner,
                lease_until=now + timedelta(seconds=self.settings.timeout + 60),
            )
        except UnknownLocation as exc:  # deleted a moment ago
            details = [field_error("location_id", "no such location")]
            raise NotFound(exc.message, details=details) from None
        if self._attempts is None:
            self._attempts = Attempts(self.settings, self.cipher)
        await self._attempts.make_and_record(self.store, claimed, owner)
        return await self.get_delivery(claimed.id, caller=caller)

    async def _test_location(self, webhook: Webhook, wanted: str | None) -> str:
        """Where a test event comes from: ``wanted``, which must be a location of the webhook's
        own operator (any other is 404, as one that does not exist) and in its subscription;
        else the subscription's first location (for "*", the operator's first)."""
        if wanted:  # in a query string, empty means not given
            check_id(wanted, "location_id")
            if await self.store.get_location(wanted, webhook.operator_id) is None:
                missing = UnknownLocation(wanted, 0).message
                raise NotFound(missing, details=[field_error("location_id", "no such location")])
        chosen = self._within(webhook.location_ids, wanted, "location_id")
        if chosen != ANY:
            return chosen
        its = await self.store.list_locations(webhook.operator_id)
        if not its:
            raise Conflict(
                f"webhook {webhook.id!r} subscribes to all locations of an operator that "
                "has none yet: create a location first"
            )
        return str(its[0].id)

    @staticmethod
    def _within(subscribed: list[str], wanted: str | None, field: str) -> str:
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

    async def recover(
        self, webhook_id: str, since: datetime, *, caller: Caller = ADMIN
    ) -> RecoverResult:
        """Re-queue the webhook's failed deliveries created since ``since``: each gets one
        more attempt at the next pass (and stays failed if that one fails too)."""
        webhook = await self.get_webhook(webhook_id, caller=caller)
        check_aware(since, "since")
        self._require_enabled(webhook)
        count = await self.store.requeue_failed(webhook_id, since, common.now())
        return RecoverResult(webhook_id=webhook_id, since=since, requeued=count)

    @staticmethod
    def _require_enabled(webhook: Webhook) -> None:
        if webhook.status != WebhookStatus.ENABLED:
            reason = f" ({webhook.disabled_reason})" if webhook.disabled_reason else ""
            raise Conflict(
                f"webhook {webhook.id!r} is disabled{reason}; enable it first "
                "(PATCH status=enabled, or `webhooks update --enable`)"
            )

    # events

    async def emit(
        self,
        type: str,
        location_id: str,
        data: Any,
        *,
        id: str | None = None,
        caller: Caller = ADMIN,
    ) -> EmitResult:
        """Store one event with its deliveries; an id that exists changes nothing."""
        requests = [EmitRequest(type, location_id, data, id)]
        return (await self.emit_many(requests, single=True, caller=caller))[0]

    async def emit_many(
        self, requests: Sequence[EmitRequest], *, single: bool = False, caller: Caller = ADMIN
    ) -> list[EmitResult]:
        """Validate every event, then store all of them in one transaction (or none)."""
        check_batch_size(len(requests))
        now = common.now()
        new_events = []
        for index, request in enumerate(requests):
            prefix = "" if single else f"events[{index}]."
            event_type = await self.event_types.known.get(request.type, field=f"{prefix}type")
            location_id = check_id(request.location_id, f"{prefix}location_id")
            body = body_of(event_type, request.data, field=f"{prefix}data")
            event_id = new_id("evt") if request.id is None else check_id(request.id, f"{prefix}id")
            new_events.append(NewEvent(event_id, event_type.name, location_id, body, now))
        try:
            stored = await self.store.insert_events(new_events, lambda: new_id("dlv"), caller)
        except UnknownLocation as exc:
            field = "location_id" if single else f"events[{exc.index}].location_id"
            raise NotFound(exc.message, details=[field_error(field, "no such location")]) from None
        except EventIdTaken as exc:
            raise Conflict(
                f"event id {exc.event_id!r} is already taken; send this event under another id"
            ) from None
        results = []
        seen: set[str] = set()
        for new in new_events:
            duplicate = new.id in stored.existing or new.id in seen
            seen.add(new.id)
            results.append(
                EmitResult(id=new.id, deliveries=stored.deliveries[new.id], duplicate=duplicate)
            )
        metrics.record_events_accepted(
            new.type
            for new, result in zip(new_events, results, strict=True)
            if not result.duplicate
        )
        return results

    async def get_event(self, event_id: str, *, caller: Caller = ADMIN) -> Event:
        found = (
            await self.store.get_event(event_id, caller.operator_id) if is_id(event_id) else None
        )
        return Event.from_row(common.found(found, "event", event_id))

    async def list_events(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Event]:
        for value, field in ((location_id, "location_id"), (cursor, "cursor")):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if type is not None:
            await self.event_types.known.get(type)
        check_limit(limit)
        rows = await self.store.list_events(
            location_id=location_id or None,
            type=type,
            operator_id=caller.operator_id,
            after_id=cursor or None,
            limit=limit + 1,
        )
        return common.page([Event.from_row(r) for r in rows], limit)

    # deliveries

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[Delivery]:
        for value, field in (
            (webhook_id, "webhook_id"),
            (event_id, "event_id"),
            (cursor, "cursor"),
        ):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if status is not None:
            check_choice(status, DeliveryStatus, "status", what="delivery status")
        check_limit(limit)
        rows = await self.store.list_deliveries(
            webhook_id=webhook_id or None,
            event_id=event_id or None,
            status=status,
            after_id=cursor or None,
            limit=limit + 1,
            operator_id=caller.operator_id,
        )
        return common.page([Delivery.model_validate(r) for r in rows], limit)

    async def get_delivery(
        self, delivery_id: str, *, caller: Caller = ADMIN
    ) -> DeliveryWithAttempts:
        found = (
            await self.store.get_delivery(delivery_id, caller.operator_id)
            if is_id(delivery_id)
            else None
        )
        row, attempts = common.found(found, "delivery", delivery_id)
        return DeliveryWithAttempts(
            **Delivery.model_validate(row).model_dump(),
            attempts=[Attempt.model_validate(a) for a in attempts],
        )

    async def retry_delivery(self, delivery_id: str, *, caller: Caller = ADMIN) -> Delivery:
        """Make a delivery due now, whatever its state; the next pass sends it again."""
        delivery = await self.get_delivery(delivery_id, caller=caller)
        self._require_enabled(await self.get_webhook(delivery.webhook_id, caller=caller))
        if not await self.store.schedule_now(delivery_id, common.now()):
            raise Conflict(
                f"delivery {delivery_id!r} is being attempted right now; retry after it finishes"
            )
        return Delivery.model_validate(
            (await self.get_delivery(delivery_id, caller=caller)).model_dump()
        )

    # the control center (web/): the overview and the delivery browser

    async def overview(
        self, *, hours: int = 24, buckets: int = 24, caller: Caller = ADMIN
    ) -> Overview:
        """Each of the caller's webhooks as an operator checks it: success rate and p50/p95
        latency of its attempts over the last ``hours``, attempts per bucket by outcome, the
        last failure, an open circuit (as many unreachable attempts in a row as open one)
        and what waits; the webhooks that need attention first."""
        now = common.now()
        since = now - timedelta(hours=hours)
        bucket_seconds = hours * 3600 // buckets
        webhooks = await self.list_webhooks(caller=caller)
        success = sorted(parse_success_statuses(self.settings.success_statuses))
        rows = await self.store.webhook_health(since, success, bucket_seconds, caller.operator_id)
        stats = {row.webhook_id: row for row in rows.stats}
        failures = {row.webhook_id: row for row in rows.last_failures}
        unreachable = {row.webhook_id: int(row.in_a_row) for row in rows.unreachable}
        pending = {row.webhook_id: int(row.pending) for row in rows.pending}
        timelines: dict[str, list[list[int]]] = {}
        outcomes = {"succeeded": 0, "retrying": 1, "failed": 2}
        for row in rows.timeline:
            counts = timelines.setdefault(row.webhook_id, [[0, 0, 0] for _ in range(buckets)])
            index = min(max(int(row.bucket), 0), buckets - 1)
            counts[index][outcomes[row.outcome]] += int(row.attempts)
        healths = []
        for webhook in webhooks:
            stat = stats.get(webhook.id)
            counts = timelines.get(webhook.id, [[0, 0, 0] for _ in range(buckets)])
            failure = failures.get(webhook.id)
            in_a_row = unreachable.get(webhook.id, 0)
            waiting = pending.get(webhook.id, 0)
            attempted = int(stat.attempts) if stat else 0
            health = WebhookHealth(
                webhook=webhook,
                attempts=attempted,
                succeeded=int(stat.succeeded) if stat else 0,
                p50_ms=None if stat is None else stat.p50_ms,
                p95_ms=None if stat is None else stat.p95_ms,
                timeline=[
                    TimeBucket(since + timedelta(seconds=i * bucket_seconds), *count)
                    for i, count in enumerate(counts)
                ],
                last_failure=None
                if failure is None
                else LastFailure(
                    at=failure.started_at,
                    delivery_id=failure.delivery_id,
                    status=failure.status,
                    reason=_failure_reason(failure.status, failure.error, failure.response_excerpt),
                ),
                unreachable_in_a_row=in_a_row,
                circuit_open=in_a_row >= self.settings.circuit_threshold and waiting > 0,
                pending=waiting,
            )
            healths.append(health)
        healths.sort(key=lambda h: (h.attention_rank, h.webhook.id))
        return Overview(since=since, until=now, bucket_seconds=bucket_seconds, webhooks=healths)

    async def find_deliveries(
        self,
        *,
        location_id: str | None = None,
        webhook_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
        caller: Caller = ADMIN,
    ) -> Page[LocatedDelivery]:
        """Deliveries filtered by location, webhook, event type, status and time (creation,
        ``since`` inclusive), newest first, each with its event's location."""
        for value, field in (
            (location_id, "location_id"),
            (webhook_id, "webhook_id"),
            (cursor, "cursor"),
        ):
            if value:  # in a query string, empty means not given
                check_id(value, field)
        if event_type:
            await self.event_types.known.get(event_type, field="event_type")
        if status:
            check_choice(status, DeliveryStatus, "status", what="delivery status")
        for when, field in ((since, "since"), (until, "until")):
            if when is not None:
                check_aware(when, field)
        check_limit(limit)
        rows = await self.store.find_deliveries(
            location_id=location_id or None,
            webhook_id=webhook_id or None,
            event_type=event_type or None,
            status=status or None,
            since=since,
            until=until,
            after_id=cursor or None,
            limit=limit + 1,
            operator_id=caller.operator_id,
        )
        found = [LocatedDelivery.model_validate(r) for r in rows]
        data = found[:limit]
        return Page[LocatedDelivery](
            data=data, next_cursor=data[-1].id if len(found) > limit else None
        )

    async def event_body(self, event_id: str, *, caller: Caller = ADMIN) -> bytes:
        """The exact bytes every attempt of this event sent: what reproducing an attempt
        (the control center's "copy as curl") must send again for its signature to hold."""
        found = (
            await self.store.get_event(event_id, caller.operator_id) if is_id(event_id) else None
        )
        return bytes(common.found(found, "event", event_id).body)


def _webhook(subscribed: SubscribedWebhook) -> Webhook:
    """The resource: both forms of the subscription (the single values when there is one)."""
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
        }
    )


# the control center's overview (``Service.overview``)


class LocatedDelivery(Delivery):
    """A delivery as the control center lists it: with its event's location."""

    location_id: str


@dataclass(frozen=True)
class TimeBucket:
    """Attempts that started in ``[start, start + bucket)``, by what they made of their
    delivery: delivered, to be retried, or the last of a delivery that failed."""

    start: datetime
    succeeded: int
    retrying: int
    failed: int

    @property
    def total(self) -> int:
        return self.succeeded + self.retrying + self.failed


@dataclass(frozen=True)
class LastFailure:
    at: datetime
    delivery_id: str
    status: int | None
    reason: str


@dataclass(frozen=True)
class WebhookHealth:
    webhook: Webhook
    attempts: int
    succeeded: int
    p50_ms: int | None
    p95_ms: int | None
    timeline: list[TimeBucket]
    last_failure: LastFailure | None
    unreachable_in_a_row: int
    circuit_open: bool
    pending: int

    @property
    def success_rate(self) -> float | None:
        """Share of the attempts that succeeded; None with no attempt."""
        return self.succeeded / self.attempts if self.attempts else None

    @property
    def failed(self) -> int:
        """Deliveries that failed for good in the period (their last attempt in it)."""
        return sum(bucket.failed for bucket in self.timeline)

    @property
    def attention(self) -> str | None:
        """What an operator should look at first about this webhook, in one sentence."""
        if self.circuit_open:
            return (
                f"endpoint unreachable: the last {self.unreachable_in_a_row} attempts got no "
                f"answer; its circuit is open and {self.pending} deliveries wait"
            )
        if self.failed:
            return f"{self.failed} deliveries failed for good: fix the endpoint, then recover them"
        if self.webhook.status == WebhookStatus.DISABLED:
            return f"disabled: {self.webhook.disabled_reason or 'by request'}"
        rate = self.success_rate
        if rate is not None and rate < 0.9:
            return f"only {rate:.0%} of attempts succeeded; retries are catching up"
        return None

    @property
    def attention_rank(self) -> int:
        """Sort key: open circuits, then lost deliveries, disabled, poor rates, healthy, idle."""
        if self.circuit_open:
            return 0
        if self.failed:
            return 1
        if self.webhook.status == WebhookStatus.DISABLED:
            return 2
        if self.attention is not None:
            return 3
        return 4 if self.attempts else 5


@dataclass(frozen=True)
class Overview:
    since: datetime
    until: datetime
    bucket_seconds: int
    webhooks: list[WebhookHealth]

    @property
    def open_circuits(self) -> list[WebhookHealth]:
        return [h for h in self.webhooks if h.circuit_open]

    @property
    def attempts(self) -> int:
        return sum(h.attempts for h in self.webhooks)

    @property
    def succeeded(self) -> int:
        return sum(h.succeeded for h in self.webhooks)


def _failure_reason(status: int | None, error: str | None, excerpt: str | None) -> str:
    """One line saying why an attempt failed: the error, or the status and what it said."""
    if error:
        return error
    said = " ".join((excerpt or "").split())[:120]
    return f"HTTP {status}" + (f": {said}" if said else "")
