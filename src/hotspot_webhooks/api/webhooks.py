"""``/v1/webhooks``: location + event type → callback URL, and what can be done to one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from ..models import (
    DeliveryWithAttempts,
    Page,
    RecoverResult,
    Webhook,
    WebhookPreview,
    WebhookWithSecret,
)
from ..states import WebhookStatus
from .auth import CallerDep, ServiceDep
from .errors import CONFLICT_RESPONSE, ERROR_RESPONSES
from .fields import (
    EVENT_TYPE_ENUM,
    ONE_FORM_EACH,
    callback_url_field,
    event_type_list_field,
    id_field,
    id_in_path,
    id_in_query,
    location_list_field,
)
from .json_body import StrictJSONRoute
from .webhook_options import OptionFields

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES, route_class=StrictJSONRoute
)
WebhookId = Annotated[str, id_in_path("The webhook's id.")]
# which sample a test send or a preview uses
SampleType = Annotated[
    str | None, Query(description="Which type's sample (default: the subscription's first).")
]
SampleLocation = Annotated[
    str | None, id_in_query("From which location (default: the subscription's first).")
]


class WebhookCreate(OptionFields):
    """Either form of each dimension: ``location_id`` or ``location_ids``, ``event_type`` or
    ``event_types``; a list may be ``["*"]`` (all of the operator's locations, present and
    future; all types)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "location_id": "loc-1042",
                    "event_type": "customer.create",
                    "callback_url": "https://crm.example.com/hotspot/customers",
                },
                {
                    "location_ids": ["*"],
                    "event_types": ["customer.create", "subscriber.create"],
                    "callback_url": "https://crm.example.com/hotspot/all",
                },
            ],
            **ONE_FORM_EACH,
        },
    )

    location_id: str = id_field(default=None)
    location_ids: list[str] = location_list_field(default=None)
    event_type: str = Field(default=None, json_schema_extra=EVENT_TYPE_ENUM)  # type: ignore[assignment]
    event_types: list[str] = event_type_list_field(default=None)
    # required, unless preset_values make it (a Slack URL, a Mailchimp data center and list)
    callback_url: str = callback_url_field(default=None)
    operator_id: str = Field(  # type: ignore[assignment]
        default=None,
        description='The owning operator, given by the admin for a webhook on "*" locations.',
    )


class WebhookUpdate(OptionFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": WebhookStatus.ENABLED.value},
                {"callback_url": "https://new.example.com/hook"},
                {"location_ids": ["loc-1042", "loc-1043"], "event_types": ["*"]},
            ],
            "minProperties": 1,
        },
    )

    # absent means unchanged; null is not a value either
    callback_url: str = callback_url_field(default=None)
    status: WebhookStatus = Field(default=None)  # type: ignore[assignment]
    location_ids: list[str] = location_list_field(default=None)
    event_types: list[str] = event_type_list_field(default=None)


def _text_only(value: Any) -> Any:
    """A time is written as text: a bare number would be read as a Unix time by accident."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, like 2026-11-29T00:00:00Z")
    return value


class RecoverRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"since": "2026-11-28T00:00:00Z"}]}
    )

    since: Annotated[AwareDatetime, BeforeValidator(_text_only)] = Field(
        description="Re-queue failed deliveries created since then (RFC 3339, with zone)."
    )


@router.post("", status_code=201, responses=CONFLICT_RESPONSE)
async def create_webhook(
    body: WebhookCreate, service: ServiceDep, caller: CallerDep
) -> WebhookWithSecret:
    """Create a webhook. The answer holds its `api_key` and `signing_secret`, shown this once."""
    return await service.webhooks.create(
        callback_url=body.callback_url,
        location_id=body.location_id,
        location_ids=body.location_ids,
        event_type=body.event_type,
        event_types=body.event_types,
        operator=body.operator_id,
        options=body.options(),
        caller=caller,
    )


@router.get("")
async def list_webhooks(
    service: ServiceDep,
    caller: CallerDep,
    location_id: Annotated[
        str | None, id_in_query("Only webhooks that receive this location's events.")
    ] = None,
    event_type: Annotated[str | None, Query(json_schema_extra=EVENT_TYPE_ENUM)] = None,
    status: WebhookStatus | None = None,
) -> Page[Webhook]:
    found = await service.webhooks.get_all(
        location_id=location_id,
        event_type=event_type,
        status=None if status is None else status.value,
        caller=caller,
    )
    return Page[Webhook](data=found)


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: WebhookId, service: ServiceDep, caller: CallerDep) -> Webhook:
    return await service.webhooks.get(webhook_id, caller=caller)


@router.patch("/{webhook_id}", responses=CONFLICT_RESPONSE)
async def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, service: ServiceDep, caller: CallerDep
) -> Webhook:
    """Change the callback URL, the subscription or what the webhook does beyond the original
    contract (headers, auth, filter, template...: null clears one), or enable/disable
    (enabling clears `disabled_reason`)."""
    return await service.webhooks.update(
        webhook_id,
        callback_url=body.callback_url,
        status=None if body.status is None else body.status.value,
        location_ids=body.location_ids,
        event_types=body.event_types,
        options=body.options(),
        caller=caller,
    )


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: WebhookId, service: ServiceDep, caller: CallerDep) -> Response:
    """Delete the webhook with its deliveries and their attempts."""
    await service.webhooks.delete(webhook_id, caller=caller)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-key")
async def rotate_key(
    webhook_id: WebhookId, service: ServiceDep, caller: CallerDep
) -> WebhookWithSecret:
    """A new API key, shown this once; every later attempt is signed with it."""
    return await service.webhooks.rotate_key(webhook_id, caller=caller)


@router.post("/{webhook_id}/test", responses=CONFLICT_RESPONSE)
async def send_test_event(
    webhook_id: WebhookId,
    service: ServiceDep,
    caller: CallerDep,
    event_type: SampleType = None,
    location_id: SampleLocation = None,
) -> DeliveryWithAttempts:
    """Send a sample event now, to this webhook alone; answers with the delivery and its
    attempt (a failed one is retried like any other)."""
    return await service.webhooks.test(
        webhook_id, event_type=event_type, location_id=location_id or None, caller=caller
    )


@router.get("/{webhook_id}/preview")
async def preview_webhook(
    webhook_id: WebhookId,
    service: ServiceDep,
    caller: CallerDep,
    event_type: SampleType = None,
    location_id: SampleLocation = None,
) -> WebhookPreview:
    """The request this webhook would send for a sample event, rendered through its template
    and signed with its key; its own header values and Authorization redacted. Nothing is
    sent."""
    return await service.webhooks.preview(
        webhook_id, event_type=event_type, location_id=location_id or None, caller=caller
    )


@router.post("/{webhook_id}/recover", responses=CONFLICT_RESPONSE)
async def recover(
    webhook_id: WebhookId, body: RecoverRequest, service: ServiceDep, caller: CallerDep
) -> RecoverResult:
    """Re-queue failed deliveries created since `since`; each gets one more attempt."""
    return await service.webhooks.recover(webhook_id, body.since, caller=caller)
