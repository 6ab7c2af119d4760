"""n8n: a workflow started by its Webhook node, on a self-hosted or cloud instance.

Reference: https://docs.n8n.io/integrations/builtin/core-nodes/n8n-nodes-base.webhook/ (the
production URL ``{instance}/webhook/{path}`` works while the workflow is active; the HTTP
method is the node's; Header Auth compares one header; Respond "Immediately" answers
``{"message": "Workflow was started"}``), n8n's source for the errors:
``packages/cli/src/errors/response-errors/webhook-not-found.error.ts`` (404, "The requested
webhook ... is not registered.") and the Webhook node's ``authorizationError`` (403
"Authorization data is wrong!" when a Header Auth header is missing or wrong). n8n does not
document its answer to a JSON body that does not parse; the stand-in answers 422.
"""

from __future__ import annotations

import json

from aiohttp import web

from . import StandIn, media_type, parse_json

HOST = "n8n.example.com"


class N8n(StandIn):
    def __init__(self, path: str = "hotspot-events", header: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.path = path
        self.header = header

    @property
    def webhook_url(self) -> str:
        return f"https://{HOST}/webhook/{self.path}"

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        registered = request.host == HOST and request.path == f"/webhook/{self.path}"
        if not registered or request.method != "POST":
            webhook = f"{request.method} {request.path.removeprefix('/webhook/')}"
            if registered:
                message = (
                    f"This webhook is not registered for {request.method} requests. "
                    "Did you mean to make a POST request?"
                )
            else:
                message = f'The requested webhook "{webhook}" is not registered.'
            hint = (
                "The workflow must be active for a production URL to run successfully. You can "
                "activate the workflow using the toggle in the top-right of the editor."
            )
            answer = {"code": 404, "message": message, "hint": hint}
            return web.Response(
                status=404, text=json.dumps(answer), content_type="application/json"
            )
        if self.header is not None and request.headers.get(self.header[0]) != self.header[1]:
            return web.Response(status=403, text="Authorization data is wrong!")
        # the node parses JSON bodies into $json.body
        if media_type(request) == "application/json" and not parse_json(body)[0]:
            return web.Response(
                status=422,
                text=json.dumps({"message": "Failed to parse request body"}),
                content_type="application/json",
            )
        self.accept(request, body)
        return web.Response(
            status=200,
            text=json.dumps({"message": "Workflow was started"}),
            content_type="application/json",
        )
