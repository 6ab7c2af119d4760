"""Locations and webhooks: list, create (the key shown once, with receivers to paste), edit,
enable or disable, rotate the key, delete, send a test event, recover failed deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInput
from ..models import WebhookWithSecret
from ..subscription import ANY
from ..validation import invalid
from .once import Shown, spent
from .pages import PREFIX, Visit, render, see_other, text, texts, visit
from .snippets import php_receiver, python_receiver
from .webhook_options import OPTION_FIELDS, option_values, options_from_form, posted_values

# locations


async def locations_page(request: Request) -> Response:
    current = await visit(request)
    return await _locations(current)


async def _locations(
    current: Visit, *, error: InvalidInput | None = None, values: dict[str, str] | None = None
) -> Response:
    service = current.service
    locations = await service.locations.get_all(caller=current.caller)
    operators = await service.operators.get_all() if current.caller.is_admin else []
    return render(
        current.request,
        "locations.html",
        status=error.status if error else 200,
        locations=locations,
        operators=operators,
        error=error,
        values=values or {},
    )


async def create_location(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    values = {name: text(form, name) for name in ("id", "name", "operator")}
    try:
        await current.service.locations.create(
            values["id"],
            values["name"],
            values["operator"] or None,
            caller=current.caller,
        )
    except InvalidInput as exc:
        return await _locations(current, error=exc, values=values)
    return see_other(f"{PREFIX}/locations", f"Location {values['id']} created.")


async def set_location_status(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    location_id = request.path_params["location_id"]
    status = text(form, "status")
    await current.service.locations.set_status(location_id, status, caller=current.caller)
    return see_other(f"{PREFIX}/locations", f"Location {location_id} {status}.")


# webhooks


async def webhooks_page(request: Request) -> Response:
    current = await visit(request)
    return await _webhooks(current)


async def _webhooks(
    current: Visit, *, error: InvalidInput | None = None, values: dict[str, Any] | None = None
) -> Response:
    service = current.service
    return render(
        current.request,
        "webhooks.html",
        status=error.status if error else 200,
        webhooks=await service.webhooks.get_all(caller=current.caller),
        locations=await service.locations.get_all(caller=current.caller),
        event_types=await service.event_types.get_all(),
        integrations=await service.integrations.get_all(),
        error=error,
        values=values or {"location_ids": [], "event_types": []},
        options_open=any((values or {}).get(name) for name in OPTION_FIELDS),
    )


def chosen_subscription(form: FormData) -> tuple[list[str], list[str]]:
    """The pickers' choices; "all" wins over single choices."""
    location_ids = texts(form, "location_ids")
    event_types = texts(form, "event_types")
    if ANY in location_ids:
        location_ids = [ANY]
    if ANY in event_types:
        event_types = [ANY]
    if not location_ids:
        raise invalid("location_ids", "choose at least one location (or all)")
    if not event_types:
        raise invalid("event_types", "choose at least one event type (or all)")
    return location_ids, event_types


async def create_webhook(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    values: dict[str, Any] = {
        "callback_url": text(form, "callback_url"),
        "location_ids": texts(form, "location_ids"),
        "event_types": texts(form, "event_types"),
        "operator": text(form, "operator"),
        **posted_values(form),
    }
    try:
        location_ids, event_types = chosen_subscription(form)
        created = await current.service.webhooks.create(
            callback_url=values["callback_url"],
            location_ids=location_ids,
            event_types=event_types,
            operator=values["operator"] or None,
            options=options_from_form(form, editing=False),
            caller=current.caller,
        )
    except InvalidInput as exc:
        return await _webhooks(current, error=exc, values=values)
    return to_secret_page(current, created, CREATED)


CREATED, ROTATED = "created", "rotated"


def to_secret_page(current: Visit, webhook: WebhookWithSecret, what: str) -> Response:
    """After creating or rotating: to the key's page, the key riding along once (not in the
    URL), so that reloading that page shows it no more and makes nothing again."""
    secrets = {"api_key": webhook.api_key, "signing_secret": webhook.signing_secret}
    return current.show_once(
        f"{PREFIX}/webhooks/{webhook.id}/key", Shown(what, webhook.id, secrets)
    )


async def secret_page(request: Request) -> Response:
    """The only time the key is shown: with copy buttons and receivers that verify it. Once
    shown (or on a reload), the webhook's page says so instead."""
    current = await visit(request)
    webhook_id = request.path_params["webhook_id"]
    webhook = await current.service.webhooks.get(webhook_id, caller=current.caller)
    shown = current.take_once(CREATED, ROTATED)
    if shown is None or shown.subject != webhook.id:
        return see_other(
            f"{PREFIX}/webhooks/{webhook.id}",
            "This webhook's key was shown once and cannot be shown again: if it was not "
            "copied, rotate the key.",
        )
    api_key = shown.values.get("api_key", "")
    with_secret = WebhookWithSecret(
        **webhook.model_dump(),
        api_key=api_key,
        signing_secret=shown.values.get("signing_secret", ""),
    )
    page = render(
        request,
        "webhook_secret.html",
        webhook=with_secret,
        what=shown.kind,
        php=php_receiver(api_key),
        python=python_receiver(api_key),
    )
    return spent(page, request)


async def webhook_page(request: Request) -> Response:
    current = await visit(request)
    return await _webhook(current, request.path_params["webhook_id"])


async def _webhook(
    current: Visit,
    webhook_id: str,
    *,
    error: InvalidInput | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    service = current.service
    webhook = await service.webhooks.get(webhook_id, caller=current.caller)
    recent = await service.deliveries.search(webhook_id=webhook.id, limit=10, caller=current.caller)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    return render(
        current.request,
        "webhook.html",
        status=error.status if error else 200,
        webhook=webhook,
        deliveries=recent.data,
        locations=await service.locations.get_all(webhook.operator_id, caller=current.caller),
        event_types=await service.event_types.get_all(),
        error=error,
        values=values
        or {
            "callback_url": webhook.callback_url,
            "location_ids": webhook.location_ids,
            "event_types": webhook.event_types,
            **option_values(webhook),
        },
        recover_since=f"{yesterday:%Y-%m-%dT%H:%M}",
    )


async def update_webhook(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    webhook_id = request.path_params["webhook_id"]
    values: dict[str, Any] = {
        "callback_url": text(form, "callback_url"),
        "location_ids": texts(form, "location_ids"),
        "event_types": texts(form, "event_types"),
        **posted_values(form),
    }
    try:
        location_ids, event_types = chosen_subscription(form)
        await current.service.webhooks.update(
            webhook_id,
            callback_url=values["callback_url"],
            location_ids=location_ids,
            event_types=event_types,
            options=options_from_form(form, editing=True),
            caller=current.caller,
        )
    except InvalidInput as exc:
        return await _webhook(current, webhook_id, error=exc, values=values)
    return see_other(f"{PREFIX}/webhooks/{webhook_id}", "Webhook saved.")


async def set_webhook_status(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    webhook_id = request.path_params["webhook_id"]
    status = text(form, "status")
    await current.service.webhooks.update(webhook_id, status=status, caller=current.caller)
    return see_other(f"{PREFIX}/webhooks/{webhook_id}", f"Webhook {status}.")


async def rotate_key(request: Request) -> Response:
    current = await visit(request)
    await current.form()
    rotated = await current.service.webhooks.rotate_key(
        request.path_params["webhook_id"], caller=current.caller
    )
    return to_secret_page(current, rotated, ROTATED)


async def confirm_delete(request: Request) -> Response:
    current = await visit(request)
    webhook = await current.service.webhooks.get(
        request.path_params["webhook_id"], caller=current.caller
    )
    return render(request, "webhook_delete.html", webhook=webhook)


async def delete_webhook(request: Request) -> Response:
    current = await visit(request)
    await current.form()
    webhook_id = request.path_params["webhook_id"]
    await current.service.webhooks.delete(webhook_id, caller=current.caller)
    return see_other(f"{PREFIX}/webhooks", f"Webhook {webhook_id} deleted.")


async def test_webhook(request: Request) -> Response:
    """Send a sample event now; answer the attempt's result (a fragment for htmx)."""
    current = await visit(request)
    form = await current.form()
    delivery = await current.service.webhooks.test(
        request.path_params["webhook_id"],
        event_type=text(form, "event_type") or None,
        caller=current.caller,
    )
    attempt = delivery.attempts[-1] if delivery.attempts else None
    if "HX-Request" in request.headers:  # in place: no page to reload
        return render(request, "_test_result.html", delivery=delivery, attempt=attempt)
    # a plain form (no script): to the delivery's page, which a reload does not send again
    outcome = "delivered" if delivery.status == "succeeded" else "not delivered"
    if attempt is not None:
        answer = f"HTTP {attempt.status}" if attempt.status else (attempt.error or "no answer")
        outcome += f" ({answer[:200]}, {attempt.duration_ms} ms)"
    return see_other(f"{PREFIX}/deliveries/{delivery.id}", f"Test event {outcome}.")


async def recover(request: Request) -> Response:
    current = await visit(request)
    form = await current.form()
    webhook_id = request.path_params["webhook_id"]
    since_text = text(form, "since")
    try:
        since = datetime.fromisoformat(since_text)
    except ValueError:
        raise invalid(
            "since",
            "a date and time, like 2026-11-29T08:00",
            headline=f"since: {since_text!r} is not a date and time (like 2026-11-29T08:00)",
        ) from None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # the form's times are UTC, as every time shown
    result = await current.service.webhooks.recover(webhook_id, since, caller=current.caller)
    return see_other(
        f"{PREFIX}/webhooks/{webhook_id}",
        f"{result.requeued} failed deliveries since {since:%Y-%m-%d %H:%M} UTC queued again.",
    )
