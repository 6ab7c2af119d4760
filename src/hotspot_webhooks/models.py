"""The resource shapes every face shows (REST JSON, CLI ``--json``, web): SPEC §5's names."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from .states import DeliveryStatus, OwnerStatus, WebhookStatus


class Resource(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Operator(Resource):
    id: str
    name: str
    status: OwnerStatus = OwnerStatus.ENABLED
    disabled_reason: str | None = None
    created_at: datetime


class OperatorWithToken(Operator):
    token: str


class TokenCreated(Resource):
    """A further token for an operator (``operator_id`` None: an admin token); shown once."""

    id: str
    operator_id: str | None
    token: str
    created_at: datetime


class Token(Resource):
    """A token as listed: which it is and whose (``operator_id`` None: an admin token);
    never the token itself, which is stored only as a hash."""

    id: str
    operator_id: str | None
    created_at: datetime


class Location(Resource):
    id: str
    name: str
    operator_id: str
    status: OwnerStatus = OwnerStatus.ENABLED
    disabled_reason: str | None = None
    created_at: datetime


class Webhook(Resource):
    """A webhook and its subscription. ``location_ids`` x ``event_types`` (``["*"]``: all);
    ``location_id`` and ``event_type`` hold the one value when there is exactly one (the
    original platform's form), else null."""

    id: str
    operator_id: str
    location_id: str | None
    event_type: str | None
    location_ids: list[str]
    event_types: list[str]
    callback_url: str
    status: WebhookStatus
    disabled_reason: str | None
    # after a rotation: until then the previous key signs too (a second webhook-signature)
    previous_key_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    # SPEC §9, each null when not used; secrets never shown back
    description: str | None = None
    metadata: dict[str, str] | None = None
    headers: dict[str, str] | None = None  # every value "[redacted]"
    auth: dict[str, str | None] | None = None  # its type and its fields that are not secret
    filter: dict[str, Any] | None = None
    template: dict[str, str] | None = None  # {"body": ..., "content_type": ...}
    preset: str | None = None
    success_statuses: str | None = None  # what counts as success here, when not the setting's


class IntegrationField(BaseModel):
    """One answer a preset asks for (the control center's form field)."""

    name: str
    label: str
    help: str
    secret: bool
    pattern: str
    required: bool
    choices: list[str] | None = None
    default: str | None = None
    example: str | None = None


class IntegrationInfo(BaseModel):
    """A built-in integration (preset): ``GET /v1/integrations``."""

    name: str
    title: str
    description: str
    event_types: list[str]
    auth: str | None
    fields: list[IntegrationField]


class WebhookPreview(BaseModel):
    """The request a webhook would send for a sample event: its body as rendered, its headers
    (signed with its key; its own values and its Authorization as "[redacted]")."""

    webhook_id: str
    event_type: str
    method: str = "POST"
    url: str
    headers: dict[str, str]
    body: str


class WebhookOptions(BaseModel):
    """What a webhook may do beyond SPEC §2 (§9), as given to create or update one: the
    fields given (``model_fields_set``) are set, null clears one, the others are kept. Each is
    checked by the service (``service/webhook_options.py``), which names the field at fault."""

    description: str | None = None
    metadata: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    filter: Any = None
    template: dict[str, Any] | None = None
    preset: str | None = None
    preset_values: dict[str, Any] | None = None  # the preset's answers: never stored as such
    success_statuses: str | None = None

    def given(self) -> dict[str, Any]:
        """The fields given, by name: what to change."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class WebhookWithSecret(Webhook):
    """Answer to create and rotate-key: the only time the key is shown."""

    api_key: str
    signing_secret: str


class Event(Resource):
    id: str
    type: str
    location_id: str
    data: dict[str, Any]  # a built-in's: strings or null; a registered type's: its schema's
    created_at: datetime
    deliveries: int

    @classmethod
    def from_row(cls, row: Any) -> Event:
        return cls(
            id=row.id,
            type=row.type,
            location_id=row.location_id,
            data=json.loads(row.body),
            created_at=row.created_at,
            deliveries=row.delivery_count,
        )


class EmitResult(Resource):
    """What ``emit`` answers; ``duplicate`` is true when the id existed and nothing changed."""

    id: str
    deliveries: int
    duplicate: bool = False


class EmitBatchResult(Resource):
    """What a batch emit answers: one result per event, in the order sent."""

    data: list[EmitResult]


class RecoverResult(Resource):
    webhook_id: str
    since: datetime
    requeued: int


class EventTypeInfo(Resource):
    """One event type as the API describes it: fields in wire order, schema and sample;
    ``builtin`` false for a type an admin registered."""

    name: str
    description: str
    fields: list[str]
    json_schema: dict[str, Any]
    sample: dict[str, Any]
    builtin: bool = True


class Attempt(Resource):
    number: int
    started_at: datetime
    duration_ms: int
    request_headers: dict[str, str]
    status: int | None
    response_excerpt: str | None
    error: str | None


class Delivery(Resource):
    id: str
    event_id: str
    webhook_id: str
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None
