"""``Service``: every verb of the service, in one class (being split into parts)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cachetools import TTLCache

from .. import catalog, metrics, strict_json
from ..config import Settings, parse_success_statuses
from ..custom_types import MAX_DESCRIPTION, check_definition
from ..delivery.attempt import Attempts
from ..delivery.dispatcher import Dispatcher, open_dispatcher, running_dispatcher
from ..delivery.targets import check_callback_url
from ..errors import (
    Conflict,
    DatabaseNotReady,
    DatabaseUnavailable,
    Forbidden,
    NotFound,
    Unauthorized,
    field_error,
)
from ..ids import new_id
from ..keys import KeyCipher, hash_token, load_secret_keys, new_api_key, new_token, token_matches
from ..known_types import (
    EventType,
    KnownEventTypes,
    UnknownEventType,
    body_of,
    describe,
    sample_body,
)
from ..models import (
    Attempt,
    Delivery,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    EventTypeInfo,
    Location,
    Operator,
    OperatorWithToken,
    Page,
    RecoverResult,
    Token,
    TokenCreated,
    Webhook,
    WebhookWithSecret,
)
from ..signing import signing_secret
from ..states import (
    LOCATION_DISABLED,
    OPERATOR_DISABLED,
    DeliveryStatus,
    OwnerStatus,
    WebhookStatus,
)
from ..store.access import AccessWatch
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
    check_text,
    invalid,
    is_id,
    is_text,
)

T = TypeVar("T")
# Known tokens are remembered (a busy client costs no query per request; without it single-event
# ingest was 2.7x slower on SQLite) until a change of access is announced by any process
# (``store/access.py``): a revoked token stops working at once everywhere. The time limit only
# bounds how long an entry may sit unused.
TOKEN_CACHE_SECONDS = 300.0
TOKEN_CACHE_SIZE = 10_000


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


@dataclass(frozen=True)
class EmitRequest:
    """One event to emit, as received (validated by ``Service.emit_many``)."""

    type: str
    location_id: str
    data: Any
    id: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


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


class Service:
    def __init__(self, settings: Settings, store: Store, cipher: KeyCipher) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher
        # LOW_LATENCY across processes: a commit that stores deliveries wakes every worker
        store.announce_new_work_across_processes(settings.low_latency)
        self._attempts: Attempts | None = None  # for test sends; opened on first use
        # token hash → caller, trusted while ``_access`` says so
        self._callers: TTLCache[str, Caller] = TTLCache(TOKEN_CACHE_SIZE, TOKEN_CACHE_SECONDS)
        self._access: AccessWatch | None = None  # started by the first authentication
        self._forgotten = 0  # how many times the callers were forgotten
        self.event_types = KnownEventTypes(store)

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
        if self._access is not None:
            await self._access.close()
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

    # authentication

    def _watch_access(self) -> AccessWatch:
        """Start hearing the announcements of other processes (tokens, registered types)."""
        if self._access is None:
            self._access = self.store.watch_access(self._forget_callers)
        return self._access

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
        if self._watch_access().trusted():
            cached = self._callers.get(token_hash)
            if cached is not None:
                return cached
        forgotten = self._forgotten
        found = await self.store.find_token(token_hash)
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

    def _forget_callers(self) -> None:
        """Access or the registered types changed somewhere: forget what was remembered."""
        self._forgotten += 1
        self._callers.clear()
        self.event_types.forget()

    async def ensure_admin_token(self) -> str | None:
        """On first start with no admin token configured, create one and return it (to be
        shown once); afterwards, and when one is configured, return None."""
        if self.settings.admin_token or await self.store.has_admin_token():
            return None
        token = new_token()
        await self.store.insert_token(self._token_row(None, token, _now()))
        return token

    # retention

    async def purge(self, older_than: timedelta, *, caller: Caller = ADMIN) -> Purged:
        """Delete finished deliveries, their attempts and events older than ``older_than``
        (pending ones stay): what ``RETENTION`` runs every tenth of it, and ``purge`` by hand."""
        caller.require_admin()
        try:
            return await self.store.purge(_now() - older_than)
        except DatabaseUnavailable as exc:
            if disk_full(exc):  # deleting writes too: say what to do (docs/operations.md)
                raise DatabaseUnavailable(f"purge failed: {DISK_FULL_ADVICE}") from exc
            raise

    # operators

    async def create_operator(self, name: str, *, caller: Caller = ADMIN) -> OperatorWithToken:
        caller.require_admin()
        name = check_text(name, "name")
        token = new_token()
        now = _now()
        row: dict[str, Any] = {"id": new_id("op"), "name": name, "created_at": now}
        await self.store.insert_operator(row, self._token_row(row["id"], token, now))
        return OperatorWithToken(**row, token=token)

    async def create_token(self, operator: str | None, *, caller: Caller = ADMIN) -> TokenCreated:
        """A further token for ``operator`` (id or name), or with None an admin token."""
        caller.require_admin()
        operator_id = None if operator is None else (await self._operator(operator)).id
        token = new_token()
        row = self._token_row(operator_id, token, _now())
        await self.store.insert_token(row)
        return TokenCreated(
            id=row["id"], operator_id=operator_id, token=token, created_at=row["created_at"]
        )

    async def list_tokens(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Token]:
        """Tokens (never their values): an operator sees its own (``operator`` is ignored,
        as for locations); the admin all of them, or those of ``operator`` (id or name)."""
        operator_id = await self._listed_operator(operator, caller)
        return [Token.model_validate(r) for r in await self.store.list_tokens(operator_id)]

    async def revoke_token(self, token_id: str, *, caller: Caller = ADMIN) -> None:
        """Delete a token: it stops working at once, on every process. An operator revokes
        only its own; the admin any but the last admin token (unless one is configured), so
        that someone can still manage operators."""
        deleted = is_id(token_id) and await self.store.delete_token(
            token_id,
            caller.operator_id,
            keep_an_admin=not self.settings.admin_token,
        )
        _found(True if deleted else None, "token", token_id)
        self._forget_callers()  # at once here; other processes hear the announcement

    async def list_operators(self, *, caller: Caller = ADMIN) -> list[Operator]:
        caller.require_admin()
        return [Operator.model_validate(r) for r in await self.store.list_operators()]

    async def _operator(self, id_or_name: str) -> Operator:
        found = await self.store.find_operator(id_or_name) if is_text(id_or_name) else None
        return Operator.model_validate(_found(found, "operator", id_or_name))

    async def set_operator_status(
        self, operator: str, status: str, *, caller: Caller = ADMIN
    ) -> Operator:
        """Disable or enable an operator (id or name; the admin's act).

        Disabled, its tokens are refused at once on every process and its webhooks are
        disabled: their queued deliveries fail unsent, as any disabled webhook's do (``recover``
        sends them again once enabled), and events at its locations are still accepted, with
        no delivery. Enabled again, its tokens work and the webhooks its disabling disabled
        are enabled (not those disabled for another reason).
        """
        caller.require_admin()
        found = await self._operator(operator)
        wanted = OwnerStatus(check_choice(status, OwnerStatus, "status", what="operator status"))
        reason = (
            None
            if wanted is OwnerStatus.ENABLED
            else f"{OPERATOR_DISABLED} by the admin at {_stamp()}"
        )
        await self.store.set_operator_status(found.id, wanted, reason, _now())
        self._forget_callers()
        return await self._operator(found.id)

    async def delete_operator(self, operator: str, *, caller: Caller = ADMIN) -> Purged:
        """Delete an operator (id or name; the admin's act) with its tokens, locations,
        webhooks, events, deliveries and attempts: disabled first (its tokens stop at once),
        then deleted in short transactions. Run again if it was interrupted."""
        caller.require_admin()
        found = await self._operator(operator)
        purged = await self.store.delete_operator(found.id, _now())
        self._forget_callers()
        return purged

    @staticmethod
    def _token_row(operator_id: str | None, token: str, now: datetime) -> dict[str, Any]:
        return {
            "id": new_id("tok"),
            "operator_id": operator_id,
            "token_hash": hash_token(token),
            "created_at": now,
        }

    # event types

    async def list_event_types(self) -> list[EventTypeInfo]:
        """The six built-ins, then the registered types by name."""
        self._watch_access()
        custom = await self.event_types.custom()
        every: list[EventType] = [*catalog.EVENT_TYPES.values(), *custom.values()]
        return [EventTypeInfo(**describe(t)) for t in every]

    async def get_event_type(self, name: str) -> EventTypeInfo:
        self._watch_access()
        try:
            found = await self.event_types.get(name, field="name")
        except UnknownEventType as exc:
            raise NotFound(exc.message) from None
        return EventTypeInfo(**describe(found))

    async def register_event_type(
        self,
        name: str,
        description: str,
        json_schema: object,
        sample: object,
        *,
        caller: Caller = ADMIN,
    ) -> EventTypeInfo:
        """Register a further event type (the admin's act): events of it are validated
        against ``json_schema`` (JSON Schema, Draft 2020-12) and webhooks may subscribe to it.
        A built-in's name is refused (409), as is a name registered already."""
        caller.require_admin()
        description = check_text(description, "description", max_length=MAX_DESCRIPTION)
        # stored as JSON, and the sample sent as a payload (test sends): RFC 8259 only
        strict_json.check(json_schema, "schema", nul=False, what="invalid schema")
        strict_json.check(sample, "sample", what="invalid sample")
        defined = check_definition(name, description, json_schema, sample)
        registered = replace(defined, created_at=_now())
        await self.store.insert_event_type(registered)
        self._forget_callers()
        return EventTypeInfo(**describe(registered))

    async def remove_event_type(self, name: str, *, caller: Caller = ADMIN) -> None:
        """Remove a registered type no event and no webhook uses (409 otherwise); the
        built-ins cannot be removed (409)."""
        caller.require_admin()
        if name in catalog.EVENT_TYPES:
            raise Conflict(f"{name!r} is a built-in event type; built-ins cannot be removed")
        if not (is_text(name) and await self.store.delete_event_type(name)):
            raise NotFound(f"event type {name!r} is not registered")
        self._forget_callers()

    # locations

    async def create_location(
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
            owner_id = (await self._operator(operator)).id
        row = {"id": location_id, "name": name, "operator_id": owner_id, "created_at": _now()}
        await self.store.insert_location(row)
        return Location(**row)

    async def list_locations(
        self, operator: str | None = None, *, caller: Caller = ADMIN
    ) -> list[Location]:
        operator_id = await self._listed_operator(operator, caller)
        return [Location.model_validate(r) for r in await self.store.list_locations(operator_id)]

    async def _listed_operator(self, operator: str | None, caller: Caller) -> str | None:
        """Whose objects a list shows: an operator's own (``operator`` is ignored); for the
        admin, those of ``operator`` (id or name), or everyone's (None)."""
        if operator:  # in a query string, empty means not given
            check_text(operator, "operator_id")
        if caller.operator_id is not None:
            return caller.operator_id
        return (await self._operator(operator)).id if operator else None

    async def get_location(self, location_id: str, *, caller: Caller = ADMIN) -> Location:
        found = (
            await self.store.get_location(location_id, caller.operator_id)
            if is_id(location_id)
            else None
        )
        return Location.model_validate(_found(found, "location", location_id))

    async def set_location_status(
        self, location_id: str, status: str, *, caller: Caller = ADMIN
    ) -> Location:
        """Disable or enable a location (the admin, or its operator), as an operator is:
        disabling disables its webhooks (queued deliveries fail unsent, events there are
        still accepted with no delivery); enabling enables those again. A location of a
        disabled operator stays disabled until the operator is enabled."""
        location = await self.get_location(location_id, caller=caller)
        wanted = OwnerStatus(check_choice(status, OwnerStatus, "status", what="location status"))
        if wanted is OwnerStatus.ENABLED:
            await self._require_enabled_operator(location.operator_id)
        who = "the admin" if caller.is_admin else "its operator"
        reason = (
            None if wanted is OwnerStatus.ENABLED else f"{LOCATION_DISABLED} by {who} at {_stamp()}"
        )
        await self.store.set_location_status(location.id, wanted, reason, _now())
        return await self.get_location(location.id, caller=caller)

    async def delete_location(self, location_id: str, *, caller: Caller = ADMIN) -> Purged:
        """Delete a location (the admin, or its operator) with its webhooks and its events,
        their deliveries and attempts, in short transactions. An event emitted there later
        is refused (unknown location)."""
        location = await self.get_location(location_id, caller=caller)
        return await self.store.delete_location(location.id)

    async def _require_enabled_location(self, location: Location) -> None:
        """Refuse (409) to enable or add a webhook under a disabled location or operator."""
        if location.status == OwnerStatus.DISABLED:
            raise Conflict(
                f"location {location.id!r} is disabled; enable it first "
                f"(`hotspot-webhooks locations enable {location.id}`)"
            )
        await self._require_enabled_operator(location.operator_id)

    async def _require_enabled_operator(self, operator_id: str) -> None:
        operator = await self._operator(operator_id)
        if operator.status == OwnerStatus.DISABLED:
            raise Conflict(
                f"operator {operator.name!r} is disabled; the admin must enable it first"
            )

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
        now = _now()
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
            await self._require_enabled_location(location)
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
            if operator and (await self._operator(operator)).id != owner_id:
                raise invalid(
                    "operator_id",
                    "not the locations' operator",
                    headline=f"operator_id: the locations belong to operator {owner_id}",
                )
        elif operator:
            owner_id = (await self._operator(operator)).id
        else:
            raise invalid(
                "operator_id",
                "required",
                headline='operator_id is required when the admin subscribes to "*" locations',
            )
        await self._require_enabled_operator(owner_id)
        return owner_id

    async def _subscription(self, **given: Any) -> Subscription:
        """``subscription_from`` with the event types this process knows, registered ones
        included (read again once before a name is refused: it may be new elsewhere)."""
        self._watch_access()
        for again in (False, True):
            if again:
                self.event_types.forget()
            names = await self.event_types.names()

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
            await self.event_types.get(event_type, field="event_type")
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
        return _found(found, "webhook", webhook_id)

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
                await self._require_enabled_operator(webhook.operator_id)
                for location_id in [] if webhook.location_ids == [ANY] else webhook.location_ids:
                    await self._require_enabled_location(await self.get_location(location_id))
            values["disabled_reason"] = (
                None if status == WebhookStatus.ENABLED else f"disabled by request at {_stamp()}"
            )
        if not values and pairs is None:
            raise invalid(
                "callback_url",
                "give callback_url, status, location_ids and/or event_types",
                headline="nothing to change: give callback_url, status, location_ids and/or "
                "event_types",
            )
        values["updated_at"] = _now()
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
        now = _now()
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
        sample_of = await self.event_types.get(chosen_type, field="event_type")
        chosen_location = await self._test_location(webhook, location_id)
        now = _now()
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
        count = await self.store.requeue_failed(webhook_id, since, _now())
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
        now = _now()
        new_events = []
        for index, request in enumerate(requests):
            prefix = "" if single else f"events[{index}]."
            event_type = await self.event_types.get(request.type, field=f"{prefix}type")
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
        return Event.from_row(_found(found, "event", event_id))

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
            await self.event_types.get(type)
        check_limit(limit)
        rows = await self.store.list_events(
            location_id=location_id or None,
            type=type,
            operator_id=caller.operator_id,
            after_id=cursor or None,
            limit=limit + 1,
        )
        return _page([Event.from_row(r) for r in rows], limit)

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
        return _page([Delivery.model_validate(r) for r in rows], limit)

    async def get_delivery(
        self, delivery_id: str, *, caller: Caller = ADMIN
    ) -> DeliveryWithAttempts:
        found = (
            await self.store.get_delivery(delivery_id, caller.operator_id)
            if is_id(delivery_id)
            else None
        )
        row, attempts = _found(found, "delivery", delivery_id)
        return DeliveryWithAttempts(
            **Delivery.model_validate(row).model_dump(),
            attempts=[Attempt.model_validate(a) for a in attempts],
        )

    async def retry_delivery(self, delivery_id: str, *, caller: Caller = ADMIN) -> Delivery:
        """Make a delivery due now, whatever its state; the next pass sends it again."""
        delivery = await self.get_delivery(delivery_id, caller=caller)
        self._require_enabled(await self.get_webhook(delivery.webhook_id, caller=caller))
        if not await self.store.schedule_now(delivery_id, _now()):
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
        now = _now()
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
            await self.event_types.get(event_type, field="event_type")
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
        return bytes(_found(found, "event", event_id).body)

    async def create_own_token(self, *, caller: Caller = ADMIN) -> TokenCreated:
        """A further token for the caller's own operator (the admin: a further admin token):
        an operator replaces a token without the admin by creating one, then revoking the
        old one (the control center's tokens page)."""
        return await self.create_token(caller.operator_id, caller=ADMIN)

    async def operator_of(self, caller: Caller) -> Operator | None:
        """The caller's own operator (None for the admin): whom the control center shows as
        signed in."""
        return None if caller.operator_id is None else await self._operator(caller.operator_id)


P = TypeVar("P", Event, Delivery)


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


def _page(fetched: list[P], limit: int) -> Page[P]:
    """A page from ``limit + 1`` rows fetched: the extra one only says that more follow."""
    data = fetched[:limit]
    return Page[P](data=data, next_cursor=data[-1].id if len(fetched) > limit else None)


def _stamp() -> str:
    return f"{_now():%Y-%m-%d %H:%M:%S} UTC"


def _found(value: T | None, kind: str, key: str) -> T:
    """``value``, or the one not-found error every face shows for a missing ``kind``.

    Ids that cannot exist (``validation.is_id``) are not looked up, and are answered here too:
    a malformed id in a path names nothing, and never reaches the database."""
    if value is None:
        shown = repr(key) if len(key) <= 60 else f"{key[:50]!r}..."
        raise NotFound(f"{kind} {shown} does not exist")
    return value


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
