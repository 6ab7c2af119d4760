"""HubSpot CRM: create a contact.

Reference: https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/create-contact
(``POST /crm/v3/objects/contacts`` with ``properties``, ``Authorization: Bearer`` with a private
app token, ``201`` with the new contact), https://developers.hubspot.com/docs/api/crm/contacts
(include at least one of email, firstname, lastname; email is the unique identifier, a second
contact with one answers ``409 Contact already exists``),
https://developers.hubspot.com/docs/api/error-handling (the error shape and categories),
https://knowledge.hubspot.com/properties/hubspots-default-contact-properties (the properties).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from . import StandIn, bearer_token, json_error, media_type, parse_json

HOST = "api.hubapi.com"
# default contact properties a request may set (the writable ones the preset uses, and more)
DEFAULT_PROPERTIES = {
    "email", "firstname", "lastname", "phone", "mobilephone", "company", "address", "city",
    "state", "zip", "country", "website", "jobtitle", "lifecyclestage", "hs_language",
}  # fmt: skip
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _error(status: int, category: str, message: str, **extra: Any) -> web.Response:
    return json_error(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": "b6881283-187e-4088-a778-5c933a14547c",
            "category": category,
            **extra,
        },
    )


class HubSpot(StandIn):
    def __init__(self, token: str = "") -> None:
        super().__init__()
        self.token = token or "pat-na1-6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
        self.contacts: dict[str, dict[str, Any]] = {}  # by id

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if request.host != HOST or request.path.rstrip("/") != "/crm/v3/objects/contacts":
            return _error(404, "OBJECT_NOT_FOUND", "Resource not found")
        token = bearer_token(request)
        if token is None:
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        if token != self.token:
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "The OAuth token used to make this call expired or is not valid.",
            )
        if request.method != "POST":
            return _error(405, "VALIDATION_ERROR", "Method Not Allowed")
        if media_type(request) != "application/json":
            return _error(415, "VALIDATION_ERROR", "Unsupported Media Type")
        ok, payload = parse_json(body)
        if not ok or not isinstance(payload, dict):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        properties = payload.get("properties")
        # properties: {[key: string]: string}
        if not isinstance(properties, dict) or not all(
            isinstance(v, str) for v in properties.values()
        ):
            return _error(
                400, "VALIDATION_ERROR", "Invalid input JSON: properties must map names to strings"
            )
        unknown = sorted(set(properties) - DEFAULT_PROPERTIES)
        if unknown:
            return _invalid(
                unknown[0], "PROPERTY_DOESNT_EXIST", f'Property "{unknown[0]}" does not exist'
            )
        if not any(properties.get(k) for k in ("email", "firstname", "lastname")):
            return _error(
                400,
                "VALIDATION_ERROR",
                "A contact needs at least one of the properties email, firstname or lastname",
            )
        email = properties.get("email", "")
        if email and not _EMAIL.match(email):
            return _invalid("email", "INVALID_EMAIL", f"Email address {email} is invalid")
        for contact_id, contact in self.contacts.items():
            if email and contact["properties"].get("email", "").lower() == email.lower():
                return _error(
                    409,
                    "CONFLICT",
                    f"Contact already exists. Existing ID: {contact_id}",
                )
        contact_id = str(100 + len(self.contacts) + 1)
        now = "2022-08-27T13:41:10.000Z"
        contact = {
            "id": contact_id,
            "properties": {**properties, "createdate": now, "hs_object_id": contact_id},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        self.contacts[contact_id] = contact
        self.accept(request, body)
        return web.Response(status=201, text=json.dumps(contact), content_type="application/json")


def _invalid(name: str, error: str, message: str) -> web.Response:
    detail = [{"isValid": False, "message": message, "error": error, "name": name}]
    return _error(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(detail)}")
