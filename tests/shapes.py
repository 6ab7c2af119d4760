"""What the REST API's answers look like, written once for every test that checks them.

The field sets of each resource (SPEC §5's names, as the API and the CLI's ``--json`` answer
them), the one error shape, and the routes that act on one object.
"""

from __future__ import annotations

from typing import Any

import httpx

OPERATOR_FIELDS = {"id", "name", "status", "disabled_reason", "created_at"}
TOKEN_FIELDS = {"id", "operator_id", "token", "created_at"}
LOCATION_FIELDS = {"id", "name", "operator_id", "status", "disabled_reason", "created_at"}
WEBHOOK_FIELDS = {
    "id",
    "operator_id",
    "location_id",
    "event_type",
    "location_ids",
    "event_types",
    "callback_url",
    "status",
    "disabled_reason",
    "previous_key_expires_at",
    "created_at",
    "updated_at",
    # what it does beyond the wire contract (SPEC §9), each null when unused
    "description",
    "metadata",
    "headers",
    "auth",
    "filter",
    "template",
    "preset",
    "success_statuses",
}
SECRET_FIELDS = {"api_key", "signing_secret"}  # a webhook's, shown on create and rotate only
EVENT_FIELDS = {"id", "type", "location_id", "data", "created_at", "deliveries"}
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "webhook_id",
    "event_type",
    "status",
    "attempt_count",
    "next_attempt_at",
    "last_status",
    "last_error",
    "created_at",
    "delivered_at",
}
ATTEMPT_FIELDS = {
    "number",
    "started_at",
    "duration_ms",
    "request_headers",
    "status",
    "response_excerpt",
    "error",
}

# Every route that acts on one object, by the object's kind and what it does:
# (method, path, body). ``{location}``, ``{webhook}``, ``{event}`` and ``{delivery}`` in a path
# stand for the object's id.
OBJECT_ROUTES: dict[str, dict[str, tuple[str, str, Any]]] = {
    "location": {"read": ("GET", "/v1/locations/{location}", None)},
    "webhook": {
        "read": ("GET", "/v1/webhooks/{webhook}", None),
        "redirect it": (
            "PATCH",
            "/v1/webhooks/{webhook}",
            {"callback_url": "https://attacker.example/steal"},
        ),
        "disable": ("PATCH", "/v1/webhooks/{webhook}", {"status": "disabled"}),
        "delete": ("DELETE", "/v1/webhooks/{webhook}", None),
        "rotate key": ("POST", "/v1/webhooks/{webhook}/rotate-key", None),
        "send a test": ("POST", "/v1/webhooks/{webhook}/test", None),
        "recover": (
            "POST",
            "/v1/webhooks/{webhook}/recover",
            {"since": "2020-01-01T00:00:00Z"},
        ),
    },
    "event": {"read": ("GET", "/v1/events/{event}", None)},
    "delivery": {
        "read": ("GET", "/v1/deliveries/{delivery}", None),
        "retry": ("POST", "/v1/deliveries/{delivery}/retry", None),
    },
}


def error_of(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is exactly the one error shape with ``status``; return its error.

    With ``field``, ``details`` must name it.
    """
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text}"
    )
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["details"], list), error
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}, detail
        assert isinstance(detail["field"], str) and detail["field"], detail
        assert isinstance(detail["message"], str) and detail["message"], detail
    if field is not None:
        named = [d["field"] for d in error["details"]]
        assert field in named, f"details name {named}, not {field!r}: {error}"
    return error
