"""Zapier: a Webhooks by Zapier "Catch Hook" trigger.

Reference: https://help.zapier.com/hc/en-us/articles/8496288690317 (Catch Hook: a POST to
``https://hooks.zapier.com/hooks/catch/{account}/{hook}/``; JSON, form or XML bodies, nested
JSON parsed), https://github.com/zapier/visual-builder/issues/133 (a Zapier maintainer on the
answer: ``{"id", "request_id", "attempt", "status": "success"}``, sent as soon as the hook is
received, before the Zap runs). Zapier takes any body, so the stand-in checks only what a Zap
can use: a POST to a known hook whose JSON parses. Zapier does not document its answer to an
unknown hook; the stand-in answers 404.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from . import StandIn, json_error, media_type, parse_json

HOST = "hooks.zapier.com"


class Zapier(StandIn):
    def __init__(self, account: str = "1234567", hook: str = "3xq9zkt") -> None:
        super().__init__()
        self.account, self.hook = account, hook

    @property
    def webhook_url(self) -> str:
        return f"https://{HOST}/hooks/catch/{self.account}/{self.hook}/"

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        match = re.fullmatch(r"/hooks/catch/([0-9]+)/([A-Za-z0-9]+)/?", request.path)
        if request.host != HOST or match is None or match.groups() != (self.account, self.hook):
            return json_error(404, {"status": "error", "message": "Hook not found."})
        if request.method not in ("POST", "PUT", "GET"):  # Catch Hook: "a new POST, PUT, or GET"
            return json_error(405, {"status": "error", "message": "Method not allowed."})
        if media_type(request) == "application/json" and not parse_json(body)[0]:
            return json_error(400, {"status": "error", "message": "Could not parse JSON."})
        self.accept(request, body)
        attempt = str(uuid.uuid4())
        return json_error(
            200,
            {
                "id": str(uuid.uuid4()),
                "request_id": attempt,
                "attempt": attempt,
                "status": "success",
            },
        )
