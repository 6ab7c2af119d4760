"""Mailchimp Marketing API: batch subscribe or unsubscribe audience members.

Reference: https://mailchimp.com/developer/marketing/api/lists/batch-subscribe-or-unsubscribe/
(``POST /3.0/lists/{list_id}``: ``members`` up to 500, each with ``email_address`` and
``status``; ``update_existing``; the answer's ``new_members``, ``updated_members``, ``errors``),
https://mailchimp.com/developer/marketing/docs/fundamentals/ (HTTP basic auth with the API key
as password, on the data center the key ends with),
https://mailchimp.com/developer/marketing/docs/errors/ (``application/problem+json`` errors).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import StandIn, basic_credentials, json_error, media_type, parse_json

STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "3b4dcb40-0b6b-4820-bfaa-41267b3826ea",
        **extra,
    }
    return json_error(status, body, content_type="application/problem+json")


def _invalid(field: str, message: str) -> web.Response:
    return _problem(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the "
        "'errors' array.",
        errors=[{"field": field, "message": message}],
    )


class Mailchimp(StandIn):
    def __init__(self, list_id: str = "a1b2c3d4e5", api_key: str = "") -> None:
        super().__init__()
        self.list_id = list_id
        self.api_key = api_key or "0123456789abcdef0123456789abcdef-us6"
        self.members: dict[str, dict[str, Any]] = {}  # by lower-case email

    @property
    def data_center(self) -> str:
        return self.api_key.rsplit("-", 1)[1]

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        host = request.host.split(":")[0]
        if not host.endswith(".api.mailchimp.com"):
            return _problem(404, "Resource Not Found", "The requested resource could not be found.")
        credentials = basic_credentials(request)
        if credentials is None:
            return _problem(401, "API Key Missing", "Your request did not include an API key.")
        # any user name; the password is the key, and the key only works on its data center
        if credentials[1] != self.api_key or host != f"{self.data_center}.api.mailchimp.com":
            return _problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        match = re.fullmatch(r"/3\.0/lists/([^/]+)/?", request.path)
        if match is None or match.group(1) != self.list_id:
            return _problem(404, "Resource Not Found", "The requested resource could not be found.")
        if request.method != "POST":
            return _problem(
                405,
                "Method Not Allowed",
                "The requested method and resource are not compatible. See the Allow header "
                "for this resource's available methods.",
            )
        ok, payload = parse_json(body)
        if media_type(request) != "application/json" or not ok:
            return _problem(
                400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
            )
        problem = _batch_problem(payload)
        if problem:
            return _invalid(*problem)
        answer: dict[str, Any] = {"new_members": [], "updated_members": [], "errors": []}
        for member in payload["members"]:
            self._apply(member, bool(payload.get("update_existing", False)), answer)
        answer.update(
            total_created=len(answer["new_members"]),
            total_updated=len(answer["updated_members"]),
            error_count=len(answer["errors"]),
        )
        self.accept(request, body)
        # Mailchimp answers 200 even when some members were refused: they are in "errors"
        return json_error(200, answer)

    def _apply(self, member: dict[str, Any], update: bool, answer: dict[str, Any]) -> None:
        email = member["email_address"]
        if not _EMAIL.match(email):
            answer["errors"].append(
                {
                    "email_address": email,
                    "error": f"{email} looks fake or invalid, please enter a real email address.",
                    "error_code": "ERROR_GENERIC",
                }
            )
            return
        known = self.members.get(email.lower())
        record = {
            "email_address": email,
            "status": member["status"],
            "merge_fields": dict(member.get("merge_fields", {})),
            "tags": [{"name": t} for t in member.get("tags", [])],
            "list_id": self.list_id,
        }
        if known is None:
            self.members[email.lower()] = record
            answer["new_members"].append(record)
        elif update:
            known.update(status=member["status"])
            known["merge_fields"].update(record["merge_fields"])
            answer["updated_members"].append(known)
        else:
            answer["errors"].append(
                {
                    "email_address": email,
                    "error": f"{email} is already a list member, do you want to update? "
                    "please provide update_existing:true in the request body",
                    "error_code": "ERROR_CONTACT_EXISTS",
                }
            )


def _batch_problem(payload: Any) -> tuple[str, str] | None:
    if not isinstance(payload, dict):
        return "", "the body must be an object"
    members = payload.get("members")
    # members: required, "Up to 500 members may be added or updated with each API call"
    if not isinstance(members, list) or not members:
        return "members", "Required fields were not provided: members"
    if len(members) > 500:
        return "members", "A maximum of 500 members is allowed per batch"
    for key in ("update_existing", "sync_tags"):
        if key in payload and not isinstance(payload[key], bool):
            return key, "Schema describes boolean, NULL found instead"
    for i, member in enumerate(members):
        at = f"members.item:{i}"
        if not isinstance(member, dict):
            return at, "Schema describes object"
        if not isinstance(member.get("email_address"), str):
            return f"{at}.email_address", "Schema describes string, NULL found instead"
        if member.get("status") not in STATUSES:
            return f"{at}.status", "Schema describes enum, " + ", ".join(sorted(STATUSES))
        merge = member.get("merge_fields", {})
        if not isinstance(merge, dict) or not all(isinstance(v, str) for v in merge.values()):
            return f"{at}.merge_fields", "Schema describes object of merge field values"
        tags = member.get("tags", [])
        # tag names: strings of at most 100 characters
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and 0 < len(t) <= 100 for t in tags
        ):
            return f"{at}.tags", "Tags must be strings of 1 to 100 characters"
    return None
