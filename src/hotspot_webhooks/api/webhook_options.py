"""The fields of ``POST``/``PATCH /v1/webhooks`` that say what a webhook does beyond SPEC §2
(§9): each optional; given, it is set (null clears it); left out, it is kept. Their shapes are
published here for the OpenAPI document; the service checks each (``service/integrations.py``)
and names the field at fault."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..models import WebhookOptions

OPTION_NAMES = frozenset(WebhookOptions.model_fields)


class TemplateField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        description="A Jinja2 template (sandboxed) of the request body, over `event` (`id`, "
        "`type`, `location_id`, `created_at`), `data` (the payload) and `location` (`id`, "
        "`name`), with a `tojson` filter. At most 256 KiB out, 50 ms per render.",
        max_length=64 * 1024,
    )
    content_type: str = Field(default="application/json", max_length=200)


class OptionFields(BaseModel):
    """The §9 fields, shared by the create and the update bodies."""

    description: str | None = Field(
        default=None, max_length=500, description="For people: what this webhook is for."
    )
    metadata: dict[str, str] | None = Field(
        default=None, description="Up to 20 string keys and values of your own."
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description='Headers added to every request; stored encrypted, shown as "[redacted]". '
        "Headers hotspot-webhooks sets itself are refused.",
        examples=[{"X-Api-Key": "..."}],
    )
    auth: dict[str, Any] | None = Field(
        default=None,
        description='`{"type": "basic", "username", "password"}`, `{"type": "bearer", '
        '"token"}` or `{"type": "oauth2", "token_url", "client_id", "client_secret", '
        '"scope"?}` (client credentials). Secrets stored encrypted, never shown back; on an '
        'update, a secret left out or sent as "[redacted]" is kept.',
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="A MongoDB-style query over the payload; events it does not match get no "
        "delivery: `$eq $ne $in $nin $exists $gt $gte $lt $lte $and $or $not`.",
        examples=[{"country_code": {"$in": ["AR", "BR"]}, "newsletter": "1"}],
    )
    template: TemplateField | None = Field(
        default=None, description="The request body, rendered from a template."
    )
    preset: str | None = Field(
        default=None,
        description="A built-in integration (`GET /v1/integrations`): with `preset_values`, "
        "its answers, it fills the callback URL, `template`, `auth`, `headers` and "
        "`success_statuses` (each one given too is kept as given).",
    )
    preset_values: dict[str, str] | None = Field(
        default=None,
        description="The answers the preset asks for (its `fields`); not stored as such.",
        examples=[{"data_center": "us6", "list_id": "a1b2c3d4e5", "api_key": "..."}],
    )
    success_statuses: str | None = Field(
        default=None,
        max_length=200,
        description='What counts as success for this webhook: "200", "2xx" or a list such '
        'as "201,409" (default: the SUCCESS_STATUSES setting).',
    )

    def options(self) -> WebhookOptions | None:
        """The §9 fields given (``model_fields_set``), or None when none is."""
        given = {name: getattr(self, name) for name in self.model_fields_set & OPTION_NAMES}
        if not given:
            return None
        if isinstance(given.get("template"), TemplateField):
            given["template"] = given["template"].model_dump()
        return WebhookOptions.model_validate(given)
