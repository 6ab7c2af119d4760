"""Discord's channel webhooks.

Reference: https://discord.com/developers/docs/resources/webhook#execute-webhook (request,
``wait``), https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (error
codes), https://discord.com/developers/docs/resources/message#allowed-mentions-object.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from . import StandIn, json_error, media_type, parse_json

HOSTS = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
_PATH = re.compile(r"^/api/(?:v[0-9]+/)?webhooks/([0-9]+)/([A-Za-z0-9_-]+)$")


def _error(status: int, code: int, message: str, **extra: object) -> web.Response:
    # JSON error codes: {"message": ..., "code": ...}
    return json_error(status, {"message": message, "code": code, **extra})


def _too_long(field: str, limit: int) -> web.Response:
    return _error(
        400,
        50035,
        "Invalid Form Body",
        errors={
            field: {
                "_errors": [
                    {
                        "code": "BASE_TYPE_MAX_LENGTH",
                        "message": f"Must be {limit} or fewer in length.",
                    }
                ]
            }
        },
    )


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Discord(StandIn):
    def __init__(self, webhook_id: str = "112233445566778899", token: str = "") -> None:
        super().__init__()
        self.webhook_id = webhook_id
        self.token = token or "Zm9vYmFyLXRva2VuLWZvci10ZXN0cw-abc_DEF"

    @property
    def webhook_url(self) -> str:
        return f"https://discord.com/api/webhooks/{self.webhook_id}/{self.token}"

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        # POST /webhooks/{webhook.id}/{webhook.token}
        match = _PATH.match(request.path)
        if request.host not in HOSTS or match is None:
            return _error(404, 0, "404: Not Found")
        if match.group(1) != self.webhook_id:
            return _error(404, 10015, "Unknown Webhook")
        if match.group(2) != self.token:
            return _error(401, 50027, "Invalid Webhook Token")
        if request.method != "POST":
            return _error(405, 0, "405: Method Not Allowed")
        # JSON (or multipart with payload_json); anything else reads as an empty message
        if media_type(request) != "application/json":
            return _error(400, 50006, "Cannot send an empty message")
        ok, payload = parse_json(body)
        if not ok or not isinstance(payload, dict):
            return _error(400, 50109, "The request body contains invalid JSON.")
        # "at least one of content, embeds, components, file, or poll"
        content = payload.get("content")
        if not any(payload.get(k) for k in ("content", "embeds", "components", "poll")):
            return _error(400, 50006, "Cannot send an empty message")
        if content is not None and not isinstance(content, str):
            return _error(400, 50035, "Invalid Form Body")
        # content: "the message contents (up to 2000 characters)"; counted in UTF-16 units here,
        # the stricter reading
        if isinstance(content, str) and utf16_length(content) > 2000:
            return _too_long("content", 2000)
        mentions = payload.get("allowed_mentions")
        if mentions is not None and (
            not isinstance(mentions, dict)
            or not isinstance(mentions.get("parse", []), list)
            or not set(mentions.get("parse", [])) <= {"roles", "users", "everyone"}
        ):
            return _error(400, 50035, "Invalid Form Body")
        self.accept(request, body)
        # wait=true: "waits for server confirmation of message send before response, and returns
        # the created message body"; otherwise 204 No Content
        if request.query.get("wait", "").lower() == "true":
            message = {
                "id": str(1_000_000 + len(self.accepted)),
                "type": 0,
                "content": content or "",
                "channel_id": "998877665544332211",
                "webhook_id": self.webhook_id,
            }
            return web.Response(
                status=200, text=json.dumps(message), content_type="application/json"
            )
        return web.Response(status=204)
