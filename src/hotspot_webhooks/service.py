"""The application's verbs: the one layer every face (CLI, REST, web, Python) calls.

It validates input (through the catalog and the SSRF guard), owns the secrets (API keys are
encrypted before the store sees them and shown once), and turns store rows into the resource
shapes of ``models``. It never speaks SQL or HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from . import catalog
from .config import Settings
from .delivery.targets import check_callback_url
from .errors import InvalidInput, NotFound, field_error
from .ids import new_id
from .keys import KeyCipher, hash_token, load_secret_keys, new_api_key, new_token
from .models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    Location,
    Operator,
    OperatorWithToken,
    Page,
    Webhook,
    WebhookStatus,
    WebhookWithSecret,
)
from .signing import signing_secret
from .store import NewEvent, Store, parse_database_url, sqlite_file

MAX_ID_LENGTH = 200
T = TypeVar("T")
MAX_BATCH = 1000


@dataclass(frozen=True)
class EmitRequest:
    """One event to emit, as received (validated by ``Service.emit_many``)."""

    type: str
    location_id: str
    data: Any
    id: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _check_text(value: Any, field: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"{field} must be a non-empty string", details=[field_error(field, "required")]
        )
    if len(value) > max_length or any(ord(c) < 32 for c in value):
        message = f"must be at most {max_length} printable characters"
        raise InvalidInput(f"{field} {message}", details=[field_error(field, message)])
    return value


def key_file_for(settings: Settings) -> Path | None:
    """Where an embedded SQLite database keeps its generated secret key (beside the file)."""
    path = sqlite_file(parse_database_url(settings.database_url))
    return None if path is None else path.with_name(path.name + ".secret-key")


class Service:
    def __init__(self, settings: Settings, store: Store, cipher: KeyCipher) -> None:
        self.settings = settings
        self.store = store
        self.cipher = cipher

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = False) -> Service:
        """Connect, and either upgrade the schema or insist that it is current."""
        store = await Store.open(settings.database_url, migrate=migrate)
        try:
            cipher = KeyCipher(load_secret_keys(settings.secret_key, key_file_for(settings)))
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, cipher)

    async def close(self) -> None:
        await self.store.close()

    # operators

    async def create_operator(self, name: str) -> OperatorWithToken:
        name = _check_text(name, "name")
        token = new_token()
        now = _now()
        row: dict[str, Any] = {"id": new_id("op"), "name": name, "created_at": now}
        await self.store.insert_operator(row, self._token_row(row["id"], token, now))
        return OperatorWithToken(**row, token=token)

    async def create_token(self, operator: str) -> str:
        found = await self._operator(operator)
        token = new_token()
        await self.store.insert_token(self._token_row(found.id, token, _now()))
        return token

    async def list_operators(self) -> list[Operator]:
        return [Operator.model_validate(r) for r in await self.store.list_operators()]

    async def _operator(self, id_or_name: str) -> Operator:
        return Operator.model_validate(
            _found(await self.store.find_operator(id_or_name), "operator", id_or_name)
        )

    @staticmethod
    def _token_row(operator_id: str | None, token: str, now: datetime) -> dict[str, Any]:
        return {
            "id": new_id("tok"),
            "operator_id": operator_id,
            "token_hash": hash_token(token),
            "created_at": now,
        }

    # locations

    async def create_location(self, location_id: str, name: str, operator: str) -> Location:
        location_id = _check_text(location_id, "id")
        name = _check_text(name, "name")
        owner = await self._operator(operator)
        row = {"id": location_id, "name": name, "operator_id": owner.id, "created_at": _now()}
        await self.store.insert_location(row)
        return Location(**row)

    async def list_locations(self, operator: str | None = None) -> list[Location]:
        operator_id = (await self._operator(operator)).id if operator else None
        return [Location.model_validate(r) for r in await self.store.list_locations(operator_id)]

    async def get_location(self, location_id: str) -> Location:
        return Location.model_validate(
            _found(await self.store.get_location(location_id), "location", location_id)
        )

    # webhooks

    async def create_webhook(
        self, location_id: str, event_type: str, callback_url: str
    ) -> WebhookWithSecret:
        catalog.get_event_type(event_type, field="event_type")
        check_callback_url(callback_url, allow_private=self.settings.allow_private_targets)
        await self.get_location(location_id)
        api_key = new_api_key()
        now = _now()
        row = {
            "id": new_id("wh"),
            "location_id": location_id,
            "event_type": event_type,
            "callback_url": callback_url,
            "api_key_encrypted": self.cipher.encrypt(api_key),
            "status": WebhookStatus.ENABLED.value,
            "disabled_reason": None,
            "created_at": now,
            "updated_at": now,
        }
        await self.store.insert_webhook(row)
        return WebhookWithSecret(**row, api_key=api_key, signing_secret=signing_secret(api_key))

    async def list_webhooks(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
    ) -> list[Webhook]:
        if status is not None and status not in set(WebhookStatus):
            raise InvalidInput(f"status must be enabled or disabled, not {status!r}")
        rows = await self.store.list_webhooks(
            location_id=location_id, event_type=event_type, status=status
        )
        return [Webhook.model_validate(r) for r in rows]

    async def get_webhook(self, webhook_id: str) -> Webhook:
        return Webhook.model_validate(
            _found(await self.store.get_webhook(webhook_id), "webhook", webhook_id)
        )

    async def delete_webhook(self, webhook_id: str) -> None:
        if not await self.store.delete_webhook(webhook_id):
            raise NotFound(f"webhook {webhook_id!r} does not exist")

    # events

    async def emit(
        self, type: str, location_id: str, data: Any, *, id: str | None = None
    ) -> EmitResult:
        """Store one event with its deliveries; an id that exists changes nothing."""
        return (await self.emit_many([EmitRequest(type, location_id, data, id)], single=True))[0]

    async def emit_many(
        self, requests: Sequence[EmitRequest], *, single: bool = False
    ) -> list[EmitResult]:
        """Validate every event, then store all of them in one transaction (or none)."""
        if len(requests) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} events, not {len(requests)}")
        now = _now()
        new_events = []
        for index, request in enumerate(requests):
            prefix = "" if single else f"events[{index}]."
            event_type = catalog.get_event_type(request.type, field=f"{prefix}type")
            location_id = _check_text(request.location_id, f"{prefix}location_id")
            payload = catalog.validate(event_type, request.data, field=f"{prefix}data")
            event_id = (
                new_id("evt") if request.id is None else _check_text(request.id, f"{prefix}id")
            )
            new_events.append(
                NewEvent(event_id, event_type.name, location_id, catalog.serialize(payload), now)
            )
        known = await self.store.existing_locations(e.location_id for e in new_events)
        for index, new in enumerate(new_events):
            if new.location_id not in known:
                field = "location_id" if single else f"events[{index}].location_id"
                raise NotFound(
                    f"location {new.location_id!r} does not exist; create it first",
                    details=[field_error(field, "no such location")],
                )
        counts, existing = await self.store.insert_events(new_events, lambda: new_id("dlv"))
        return [
            EmitResult(id=e.id, deliveries=counts[e.id], duplicate=e.id in existing)
            for e in new_events
        ]

    async def get_event(self, event_id: str) -> Event:
        return Event.from_row(_found(await self.store.get_event(event_id), "event", event_id))

    # deliveries

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Delivery]:
        if status is not None and status not in set(DeliveryStatus):
            raise InvalidInput(
                f"status must be one of {', '.join(DeliveryStatus)}, not {status!r}",
                details=[field_error("status", "unknown delivery status")],
            )
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        rows = await self.store.list_deliveries(
            webhook_id=webhook_id,
            event_id=event_id,
            status=status,
            after_id=cursor,
            limit=limit + 1,
        )
        page = [Delivery.model_validate(r) for r in rows[:limit]]
        return Page[Delivery](data=page, next_cursor=page[-1].id if len(rows) > limit else None)

    async def get_delivery(self, delivery_id: str) -> DeliveryWithAttempts:
        row, attempts = _found(await self.store.get_delivery(delivery_id), "delivery", delivery_id)
        return DeliveryWithAttempts(
            **Delivery.model_validate(row).model_dump(),
            attempts=[
                Attempt.model_validate(
                    {**a._mapping, "request_headers": _as_dict(a.request_headers)}
                )
                for a in attempts
            ],
        )

    async def retry_delivery(self, delivery_id: str) -> Delivery:
        """Make a delivery due now, whatever its state; the next pass sends it again."""
        await self.get_delivery(delivery_id)
        if not await self.store.schedule_now(delivery_id, _now()):
            raise InvalidInput(
                f"delivery {delivery_id!r} is being attempted right now; retry after it finishes"
            )
        return Delivery.model_validate((await self.get_delivery(delivery_id)).model_dump())


def _found(value: T | None, kind: str, key: str) -> T:
    """``value``, or the one not-found error every face shows for a missing ``kind``."""
    if value is None:
        raise NotFound(f"{kind} {key!r} does not exist")
    return value


def _as_dict(value: Any) -> dict[str, str]:
    return json.loads(value) if isinstance(value, str) else dict(value)
