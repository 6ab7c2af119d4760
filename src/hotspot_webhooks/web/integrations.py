"""Integrations in the control center: a new webhook made from a preset (the picker asks just
what that preset needs, as ``GET /v1/integrations`` describes it), and the preview of the
request a webhook would send (``service.webhooks.preview``).

A preset's answers go to the service as ``preset_values``, which fills in the callback URL,
template, auth, headers and success statuses: the form knows nothing of any one provider. A
secret answer (an API key, a token) is a password field, never written back into a page.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInput
from ..models import IntegrationInfo, WebhookOptions
from .pages import Visit, render, text, texts, visit
from .webhooks import CREATED, chosen_subscription, to_secret_page

ANSWER = "preset_values."  # the form's name for an answer: as the service names it in errors


async def new_webhook_page(request: Request) -> Response:
    """The picker, and the chosen preset's form (``?preset=NAME``), its types chosen."""
    current = await visit(request)
    name = request.query_params.get("preset", "")
    return await _new_webhook(current, name)


async def _new_webhook(
    current: Visit,
    name: str,
    *,
    error: InvalidInput | None = None,
    values: dict[str, Any] | None = None,
    answers: dict[str, str] | None = None,
) -> Response:
    service = current.service
    integrations = await service.integrations.get_all()
    preset = _named(integrations, name)
    if values is None:
        event_types = list(preset.event_types) if preset else []
        values = {"location_ids": [], "event_types": event_types}
    return render(
        current.request,
        "webhook_new.html",
        status=error.status if error else 200,
        integrations=integrations,
        preset=preset,
        locations=await service.locations.get_all(caller=current.caller),
        event_types=await service.event_types.get_all(),
        error=error,
        values=values,
        answers=answers or {},
    )


def _named(integrations: list[IntegrationInfo], name: str) -> IntegrationInfo | None:
    return next((each for each in integrations if each.name == name), None)


async def create_from_preset(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    name = text(form, "preset")
    preset = _named(await current.service.integrations.get_all(), name)
    values: dict[str, Any] = {
        "location_ids": texts(form, "location_ids"),
        "event_types": texts(form, "event_types"),
        "operator": text(form, "operator"),
        "description": text(form, "description"),
    }
    answers: dict[str, str] = {}
    for field in preset.fields if preset else []:
        given = form.get(ANSWER + field.name)
        answers[field.name] = given if isinstance(given, str) else ""
    shown = {  # what the form shows again after an error: never a secret
        field.name: answers[field.name].strip()
        for field in (preset.fields if preset else [])
        if not field.secret
    }
    options: dict[str, Any] = {"preset": name, "preset_values": answers}
    if values["description"]:
        options["description"] = values["description"]
    try:
        location_ids, event_types = chosen_subscription(form)
        created = await current.service.webhooks.create(
            location_ids=location_ids,
            event_types=event_types,
            operator=values["operator"] or None,
            options=WebhookOptions.model_validate(options),
            caller=current.caller,
        )
    except InvalidInput as exc:
        return await _new_webhook(current, name, error=exc, values=values, answers=shown)
    return to_secret_page(current, created, CREATED)


async def preview(request: Request) -> Response:
    """The request for a sample of the chosen type: a fragment for htmx, else a page."""
    current = await visit(request)
    webhook_id = request.path_params["webhook_id"]
    shown = await current.service.webhooks.preview(
        webhook_id,
        event_type=request.query_params.get("event_type") or None,
        caller=current.caller,
    )
    if "HX-Request" in request.headers:
        return render(request, "_preview.html", preview=shown)
    webhook = await current.service.webhooks.get(webhook_id, caller=current.caller)
    return render(request, "webhook_preview.html", webhook=webhook, preview=shown)
