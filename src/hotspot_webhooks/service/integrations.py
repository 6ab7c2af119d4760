"""What a webhook does beyond SPEC §2 (§9), as the service checks, stores and shows it: its
description and metadata, its filter, its template (or a preset's), and its own headers and
auth (sealed under ``SECRET_KEY``, never shown back).

``columns`` turns the fields a create or an update gives into the webhook's columns, each
checked with a 422 naming the field at fault; on an update, what is stored fills in what a
client sends back redacted (``integrations/auth.py``). ``shown`` is the other way: the fields
of a webhook's answer, secrets as ``"[redacted]"`` or left out. ``get_all`` lists the presets
(``GET /v1/integrations``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import Settings, parse_success_statuses
from ..delivery.targets import check_callback_url
from ..integrations.auth import (
    Auth,
    OAuth2Auth,
    check_auth,
    check_headers,
    check_together,
    seal,
    shown_auth,
    shown_headers,
    shown_request_headers,
    unseal,
)
from ..integrations.filters import compile_filter
from ..integrations.presets import describe as describe_presets
from ..integrations.presets import get_preset
from ..integrations.templates import (
    SAMPLE_EVENT_ID,
    Template,
    TemplateRenderer,
    compile_template,
    sample_contexts,
    stored_template,
)
from ..keys import KeyCipher
from ..known_types import EventType, KnownEventTypes, sample_body
from ..models import IntegrationInfo, WebhookPreview
from ..redaction import REDACTED
from ..signing import DeliveryRequest, Signer, delivery_headers
from ..subscription import ANY
from ..validation import invalid, is_text

MAX_DESCRIPTION = 500
MAX_METADATA_KEYS = 20
MAX_METADATA_TEXT = 500  # characters of one key or value


class Integrations:
    def __init__(self, settings: Settings, cipher: KeyCipher, known: KnownEventTypes) -> None:
        self.settings = settings
        self.cipher = cipher
        self.known = known
        self._renderer: TemplateRenderer | None = None  # its sandbox starts on first use

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()

    @property
    def renderer(self) -> TemplateRenderer:
        if self._renderer is None:
            self._renderer = TemplateRenderer(processes=1)
        return self._renderer

    async def get_all(self) -> list[IntegrationInfo]:
        """The built-in presets: what each sends, to which types, with which auth, and the
        fields the control center asks for."""
        return [IntegrationInfo.model_validate(each) for each in describe_presets()]

    def expand(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The fields given, with what a preset's answers (``preset_values``) fill in: its
        template, auth, headers, success statuses and filter, except where one is given too;
        and the callback URL the answers make (or None). The answers themselves are not kept
        (a secret among them is stored sealed, as ``auth`` or a header)."""
        expanded = dict(given)
        answers = expanded.pop("preset_values", None)
        if answers is None:
            return expanded, None
        name = expanded.get("preset")
        if name is None:
            raise invalid("preset_values", "name the preset they answer (preset)")
        configured = get_preset(name).configure(answers, prefix="preset_values.")
        filled = configured.webhook_options()
        callback_url = filled.pop("callback_url")
        for key, value in filled.items():
            expanded.setdefault(key, value)
        return expanded, callback_url

    async def columns(
        self,
        given: Mapping[str, Any],
        *,
        event_types: Sequence[str],
        stored: Any = None,
        resubscribed: bool = False,
    ) -> dict[str, Any]:
        """The webhook's columns for the fields ``given`` (a field left out is kept), checked
        against its subscribed ``event_types``; ``stored`` is its row on an update, and
        ``resubscribed`` says the update changes its subscription (so a stored template is
        checked again, against the samples of the types it will get)."""
        values: dict[str, Any] = {}
        if "description" in given:
            values["description"] = _description(given["description"])
        if "metadata" in given:
            values["metadata_json"] = _dumps(_metadata(given["metadata"]))
        if "filter" in given:
            values["filter_json"] = (
                None if given["filter"] is None else _dumps(compile_filter(given["filter"]).source)
            )
        if "success_statuses" in given:
            values["success_statuses"] = _success_statuses(given["success_statuses"])
        preset_name = given.get("preset") if "preset" in given else _stored(stored, "preset")
        if "preset" in given:
            values["preset"] = None if preset_name is None else get_preset(preset_name).name
        template = await self._template(given, event_types, stored if resubscribed else None)
        if template is not None:
            values["template_json"] = template
        elif "template" in given:
            values["template_json"] = None
        if "headers" in given or "auth" in given:
            values["secrets_sealed"] = await self._secrets(given, stored)
        if (
            preset_name is not None
            and values.get("template_json", _stored(stored, "template_json")) is None
        ):
            raise invalid(
                "preset_values",
                f"the {preset_name} preset fills the template from its answers: give them "
                "(GET /v1/integrations lists its fields), or a template",
            )
        if preset_name is not None:
            sealed = values.get("secrets_sealed", _stored(stored, "secrets_sealed"))
            _, auth = unseal(sealed, self.cipher)
            needed = get_preset(preset_name).auth
            if needed is not None and (auth is None or auth.type != needed):
                raise invalid(
                    "auth",
                    f'the {preset_name} preset needs auth of type "{needed}"',
                )
        return values

    def shown(self, row: Any) -> dict[str, Any]:
        """A webhook's §9 fields as its answers show them."""
        headers, auth = unseal(row.secrets_sealed, self.cipher)
        return {
            "description": row.description,
            "metadata": _loads(row.metadata_json),
            "headers": shown_headers(headers) if headers else None,
            "auth": shown_auth(auth),
            "filter": _loads(row.filter_json),
            "template": _loads(row.template_json),
            "preset": row.preset,
        }

    async def preview(self, row: Any, event_type: EventType, location_id: str) -> WebhookPreview:
        """The request ``row`` (a webhook) would send for ``event_type``'s sample from
        ``location_id``: as an attempt would sign and send it, secrets redacted."""
        body = sample_body(event_type)
        content_type = "application/json"
        if row.template_json is not None:
            template = stored_template(row.template_json)
            [context] = sample_contexts([event_type], location_id=location_id).values()
            body = await self.renderer.render(template, context)
            content_type = template.content_type
        request = DeliveryRequest(SAMPLE_EVENT_ID, event_type.name, location_id, "dlv_preview", 1)
        signer = Signer(self.cipher.decrypt(row.api_key_encrypted))
        headers = delivery_headers(request, body, [signer], int(time.time()))
        headers["Content-Type"] = content_type
        own, auth = unseal(row.secrets_sealed, self.cipher)
        sent = headers | own | request_headers_shown(auth)
        return WebhookPreview(
            webhook_id=row.id,
            event_type=event_type.name,
            url=row.callback_url,
            headers=shown_request_headers(sent, own, auth),
            body=body.decode("utf-8", errors="replace"),
        )

    async def _template(
        self, given: Mapping[str, Any], event_types: Sequence[str], stored: Any
    ) -> str | None:
        """The template to store, checked against a sample of every subscribed type: the one
        given (a preset's answers give one, ``expand``), else ``stored``'s again (its
        subscription changes); None when there is nothing to check."""
        if given.get("template") is not None:
            # parsing a large template takes a while (up to ~0.5 s): not on the event loop
            template = await asyncio.to_thread(compile_template, given["template"])
        elif "template" not in given and _stored(stored, "template_json") is not None:
            template = stored_template(stored.template_json)
        else:
            return None
        await self.check(template, event_types)
        return _dumps(template.to_json())

    async def check(self, template: Template, event_types: Sequence[str]) -> None:
        """Render ``template`` for a sample of each of ``event_types`` ("*": every known
        type); 422 naming the type and the template's line where one fails."""
        names = await self.known.names() if ANY in event_types else list(event_types)
        types = [await self.known.get(name, field="event_types") for name in names]
        await self.renderer.check(template, sample_contexts(types))

    async def _secrets(self, given: Mapping[str, Any], stored: Any) -> str | None:
        headers, auth = unseal(_stored(stored, "secrets_sealed"), self.cipher)
        if "headers" in given:
            headers = check_headers(given["headers"], stored=headers)
        if "auth" in given:
            auth = check_auth(given["auth"], stored=auth)
        check_together(headers, auth)
        if isinstance(auth, OAuth2Auth):
            await check_callback_url(
                auth.token_url,
                allow_private=self.settings.allow_private_targets,
                field="auth.token_url",
            )
        return seal(headers, auth, self.cipher)


def request_headers_shown(auth: Auth | None) -> dict[str, str]:
    """The ``Authorization`` header ``auth`` adds, as a preview shows it (never fetched)."""
    return {} if auth is None else {"Authorization": REDACTED}


def _stored(row: Any, column: str) -> Any:
    return None if row is None else getattr(row, column)


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise invalid("description", f"must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("metadata", "must be an object of string keys to string values")
    if len(value) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"holds at most {MAX_METADATA_KEYS} keys, not {len(value)}")
    for key, text in value.items():
        if not is_text(key, max_length=MAX_METADATA_TEXT):
            raise invalid(f"metadata.{key}", "keys are printable text, at most 500 characters")
        if not isinstance(text, str) or len(text) > MAX_METADATA_TEXT:
            raise invalid(f"metadata.{key}", "must be a string of at most 500 characters")
    return dict(value)


def _success_statuses(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError
        parse_success_statuses(value)
    except ValueError:
        raise invalid(
            "success_statuses", 'must be like "200", "2xx" or a list such as "201,409"'
        ) from None
    return value


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
