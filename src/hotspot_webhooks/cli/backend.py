"""Where a resource command's verbs come from: the database, or a running server.

Every resource command (operators, tokens, locations, webhooks, events, deliveries, event types,
emit, recover) asks a ``Backend`` and prints what it answers. Given ``--db``, or with no
``HOTSPOT_WEBHOOKS_URL`` set, that is the ``Service`` on the database, acting as the admin.
With ``HOTSPOT_WEBHOOKS_URL`` and ``HOTSPOT_WEBHOOKS_TOKEN`` it is the REST API of the server at
that address (``client.RemoteService``), acting as the token's holder, under the server's own
settings (the SSRF guard of ``webhooks test`` is the server's, not the shell's). The output is
the same either way: both answer with the same resource models.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ..client import RemoteService
from ..config import Settings
from ..errors import DatabaseNotReady
from ..models import (
    Delivery,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    EventTypeInfo,
    IntegrationInfo,
    Location,
    Operator,
    OperatorWithToken,
    Page,
    RecoverResult,
    Token,
    TokenCreated,
    Webhook,
    WebhookOptions,
    WebhookPreview,
    WebhookWithSecret,
)
from ..service import EmitRequest, Service
from ..states import WebhookStatus
from ..store.records import Purged
from .common import fail, run, settings

T = TypeVar("T")

URL_VARIABLE = "HOTSPOT_WEBHOOKS_URL"
TOKEN_VARIABLE = "HOTSPOT_WEBHOOKS_TOKEN"


class OperatorsVerbs(Protocol):
    async def create(self, name: str) -> OperatorWithToken: ...
    async def get_all(self) -> list[Operator]: ...
    async def set_status(self, operator: str, status: str) -> Operator: ...
    async def delete(self, operator: str) -> Purged | None: ...


class TokensVerbs(Protocol):
    async def create(self, operator: str | None) -> TokenCreated: ...
    async def get_all(self, operator: str | None = None) -> list[Token]: ...
    async def revoke(self, token_id: str) -> None: ...


class LocationsVerbs(Protocol):
    async def create(self, location_id: str, name: str, operator: str | None) -> Location: ...
    async def get(self, location_id: str) -> Location: ...
    async def get_all(self, operator: str | None = None) -> list[Location]: ...
    async def set_status(self, location_id: str, status: str) -> Location: ...
    async def delete(self, location_id: str) -> Purged | None: ...


class EventTypesVerbs(Protocol):
    async def get_all(self) -> list[EventTypeInfo]: ...
    async def get(self, name: str) -> EventTypeInfo: ...
    async def register(
        self, name: str, description: str, json_schema: object, sample: object
    ) -> EventTypeInfo: ...
    async def remove(self, name: str) -> None: ...


class WebhooksVerbs(Protocol):
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
    ) -> WebhookWithSecret: ...
    async def get_all(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
    ) -> list[Webhook]: ...
    async def get(self, webhook_id: str) -> Webhook: ...
    async def update(
        self,
        webhook_id: str,
        *,
        callback_url: str | None = None,
        status: WebhookStatus | None = None,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        options: WebhookOptions | None = None,
    ) -> Webhook: ...
    async def delete(self, webhook_id: str) -> None: ...
    async def rotate_key(self, webhook_id: str) -> WebhookWithSecret: ...
    async def test(
        self, webhook_id: str, *, event_type: str | None = None, location_id: str | None = None
    ) -> DeliveryWithAttempts: ...
    async def recover(self, webhook_id: str, since: datetime) -> RecoverResult: ...
    async def preview(
        self, webhook_id: str, *, event_type: str | None = None, location_id: str | None = None
    ) -> WebhookPreview: ...


class IntegrationsVerbs(Protocol):
    async def get_all(self) -> list[IntegrationInfo]: ...


class EventsVerbs(Protocol):
    async def emit(
        self, type: str, location_id: str, data: Any, *, id: str | None = None
    ) -> EmitResult: ...
    async def emit_many(self, requests: Sequence[EmitRequest]) -> list[EmitResult]: ...
    async def get(self, event_id: str) -> Event: ...
    async def get_all(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Event]: ...


class DeliveriesVerbs(Protocol):
    async def get_all(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Delivery]: ...
    async def get(self, delivery_id: str) -> DeliveryWithAttempts: ...
    async def retry(self, delivery_id: str) -> Delivery: ...


class Backend(Protocol):
    """The parts the command line uses, each with the verbs it calls; ``Service`` and
    ``RemoteService`` both have them (read-only here, so each may hold its own classes)."""

    @property
    def operators(self) -> OperatorsVerbs: ...
    @property
    def tokens(self) -> TokensVerbs: ...
    @property
    def locations(self) -> LocationsVerbs: ...
    @property
    def event_types(self) -> EventTypesVerbs: ...
    @property
    def webhooks(self) -> WebhooksVerbs: ...
    @property
    def integrations(self) -> IntegrationsVerbs: ...
    @property
    def events(self) -> EventsVerbs: ...
    @property
    def deliveries(self) -> DeliveriesVerbs: ...


def remote_server() -> tuple[str, str] | None:
    """The server and token of the remote mode, if ``HOTSPOT_WEBHOOKS_URL`` asks for it."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        fail(f"{URL_VARIABLE}={url!r} is not an http:// or https:// address of a server", 2)
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        fail(
            f"{URL_VARIABLE} is set, so commands talk to {url}: set {TOKEN_VARIABLE} to an "
            "operator's or the admin's token (or pass --db to use a database directly)",
            2,
        )
    return url, token


def is_remote(db: str | None) -> bool:
    """Whether this command talks to a server: ``HOTSPOT_WEBHOOKS_URL`` is set, no ``--db``."""
    return db is None and remote_server() is not None


def with_backend(db: str | None, action: Callable[[Backend], Awaitable[T]], **overrides: Any) -> T:
    """Run ``action`` on the server (remote mode) or on the database (``--db`` or the
    settings); errors are printed as ``run`` says."""
    server = None if db is not None else remote_server()
    if server is not None:
        if overrides:
            fail(
                f"--dev applies to a database used directly; the server at {server[0]} "
                "decides with its own settings",
                2,
            )

        async def remotely() -> T:
            remote = RemoteService(*server)
            try:
                return await action(remote)
            finally:
                await remote.close()

        return run(remotely)
    config: Settings = settings(db, **overrides)

    async def locally() -> T:
        try:
            service = await Service.open(config)
        except DatabaseNotReady as exc:
            if not exc.missing:
                raise
            raise DatabaseNotReady(
                f"{exc.message} (give --db, set HOTSPOT_WEBHOOKS_DATABASE_URL, or set "
                f"{URL_VARIABLE} and {TOKEN_VARIABLE} to work through a running server)",
                missing=True,
            ) from None
        try:
            return await action(service)
        finally:
            await service.close()

    return run(locally)
