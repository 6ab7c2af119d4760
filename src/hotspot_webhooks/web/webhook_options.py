"""What a webhook does beyond SPEC §2 (§9), as the control center's forms write it: the fields
of the custom "create" form and of the "edit" form, turned into ``WebhookOptions`` for the
service, and a webhook's options turned back into those fields.

The forms are plain text: metadata one ``key=value`` a line, headers one ``Name: value`` a
line, the filter as JSON, the template's body as it is. The service checks each field and
names the one at fault; what is checked here is only what a form adds (a line that is not
``key=value``, a filter that is not JSON), named the same way.

Secrets are never written into a page: a stored header's value is shown as ``[redacted]``
(sent back so, the service keeps it), an auth secret's field is always empty (left empty, the
service keeps the stored one: the PATCH rules of ``integrations/auth.py``), and a form sent
back with an error shows header values typed anew as blank, to be typed again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData

from ..models import Webhook, WebhookOptions
from ..redaction import REDACTED
from ..validation import invalid
from .pages import text

AUTH_TYPES = ("basic", "bearer", "oauth2")
# the auth fields a form shows again, and those it never does
AUTH_FIELDS = ("username", "token_url", "client_id", "scope", "client_auth")
AUTH_SECRETS = ("password", "token", "client_secret")
AUTH_OF_TYPE = {
    "basic": ("username", "password"),
    "bearer": ("token",),
    "oauth2": ("token_url", "client_id", "client_secret", "scope", "client_auth"),
}
TEXT_FIELDS = ("description", "metadata", "filter", "template_body", "template_content_type")
DEFAULT_CONTENT_TYPE = "application/json"
# the form's option fields: one filled in opens the custom form's options
OPTION_FIELDS = (*TEXT_FIELDS, "headers", "auth_type", "success_statuses")


def options_from_form(form: FormData, *, editing: bool) -> WebhookOptions | None:
    """The options a form gives (None if none). Editing, each field the form has is given (an
    empty one clears it, an empty secret keeps the stored one) and a field it lacks is kept;
    creating, only the fields filled in."""
    # each option, the form field that carries it, and how it is read
    readers: dict[str, tuple[str, Callable[[], Any]]] = {
        "description": ("description", lambda: text(form, "description") or None),
        "metadata": ("metadata", lambda: _metadata(_text_area(form, "metadata"))),
        "headers": ("headers", lambda: _headers(_text_area(form, "headers"))),
        "auth": ("auth_type", lambda: _auth(form)),
        "filter": ("filter", lambda: _filter(_text_area(form, "filter"))),
        "template": ("template_body", lambda: _template(form)),
        "success_statuses": ("success_statuses", lambda: text(form, "success_statuses") or None),
    }
    given: dict[str, Any] = {
        option: read() for option, (field, read) in readers.items() if field in form
    }
    if not editing:
        given = {option: value for option, value in given.items() if value is not None}
    return WebhookOptions.model_validate(given) if given else None


def posted_values(form: FormData) -> dict[str, Any]:
    """The option fields as sent, to fill the form again after an error: no secret, and
    header values typed anew left blank (``[redacted]`` ones stay, they keep what is stored)."""
    values: dict[str, Any] = {name: _text_area(form, name) for name in TEXT_FIELDS}
    values["success_statuses"] = text(form, "success_statuses")
    values["headers"] = "\n".join(_without_new_values(_text_area(form, "headers")))
    values["auth_type"] = text(form, "auth_type")
    for name in AUTH_FIELDS:
        values[f"auth_{name}"] = text(form, f"auth_{name}")
    return values


def option_values(webhook: Webhook) -> dict[str, Any]:
    """A webhook's options as the edit form shows them."""
    auth = webhook.auth or {}
    values: dict[str, Any] = {
        "description": webhook.description or "",
        "metadata": "\n".join(f"{k}={v}" for k, v in (webhook.metadata or {}).items()),
        "headers": "\n".join(f"{name}: {REDACTED}" for name in webhook.headers or {}),
        "auth_type": auth.get("type") or "",
        "filter": json.dumps(webhook.filter, indent=2, ensure_ascii=False)
        if webhook.filter is not None
        else "",
        "template_body": (webhook.template or {}).get("body", ""),
        "template_content_type": (webhook.template or {}).get("content_type", ""),
        "success_statuses": webhook.success_statuses or "",
    }
    for name in AUTH_FIELDS:
        values[f"auth_{name}"] = auth.get(name) or ""
    return values


def _text_area(form: FormData, name: str) -> str:
    """A multi-line field: its lines' ends made ``\\n`` (browsers send ``\\r\\n``), the
    whole stripped."""
    value = form.get(name)
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""


def _lines(value: str) -> list[tuple[int, str]]:
    return [(n, line.strip()) for n, line in enumerate(value.split("\n"), 1) if line.strip()]


def _metadata(value: str) -> dict[str, str] | None:
    if not value:
        return None
    pairs: dict[str, str] = {}
    for number, line in _lines(value):
        key, equals, item = line.partition("=")
        if not equals or not key.strip():
            raise invalid("metadata", f"line {number}: write key=value, one a line")
        if key.strip() in pairs:
            raise invalid(f"metadata.{key.strip()}", f"line {number}: this key is given twice")
        pairs[key.strip()] = item.strip()
    return pairs


def _headers(value: str) -> dict[str, str] | None:
    if not value:
        return None
    headers: dict[str, str] = {}
    for number, line in _lines(value):
        name, colon, item = line.partition(":")
        if not colon or not name.strip():
            raise invalid("headers", f"line {number}: write Name: value, one a line")
        if not item.strip():
            raise invalid(
                f"headers.{name.strip()}",
                f"line {number}: type its value (values are never shown back), or remove the line",
            )
        headers[name.strip()] = item.strip()  # a name given twice: the service says so
    return headers


def _without_new_values(value: str) -> list[str]:
    shown = []
    for _, line in _lines(value):
        name, colon, item = line.partition(":")
        kept = colon and item.strip() == REDACTED
        shown.append(f"{name.strip()}: {REDACTED}" if kept else f"{name.strip()}:" if colon else "")
    return [line for line in shown if line]


def _auth(form: FormData) -> dict[str, Any] | None:
    """The auth of the chosen type; a secret left empty is left out (the stored one is kept,
    or the service says it is required)."""
    kind = text(form, "auth_type")
    if not kind:
        return None
    if kind not in AUTH_TYPES:
        raise invalid("auth.type", "must be basic, bearer or oauth2")
    auth: dict[str, Any] = {"type": kind}
    for name in AUTH_OF_TYPE[kind]:
        value = text(form, f"auth_{name}") if name not in AUTH_SECRETS else _secret(form, name)
        if value:
            auth[name] = value
    return auth


def _secret(form: FormData, name: str) -> str:
    """A secret as typed: not stripped (a password may end in a space)."""
    value = form.get(f"auth_{name}")
    return value if isinstance(value, str) else ""


def _filter(value: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise invalid(
            "filter", f"is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise invalid("filter", "is nested too deeply") from None


def _template(form: FormData) -> dict[str, str] | None:
    value = form.get("template_body")
    body = value.replace("\r\n", "\n") if isinstance(value, str) else ""
    if not body.strip():
        return None
    content_type = text(form, "template_content_type") or DEFAULT_CONTENT_TYPE
    return {"body": body, "content_type": content_type}
