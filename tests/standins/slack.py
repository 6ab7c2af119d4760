"""Slack's incoming webhooks.

Reference: https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/
(request and "Handling errors"), https://docs.slack.dev/reference/methods/chat.postMessage/
(text limits).
"""

from __future__ import annotations

from aiohttp import web

from . import StandIn, media_type, parse_json

HOST = "hooks.slack.com"


def _error(status: int, code: str) -> web.Response:
    # errors are a short plain-text code, e.g. "400 no_text" (Handling errors)
    return web.Response(status=status, text=code, content_type="text/html")


class Slack(StandIn):
    def __init__(self, team: str = "T0123ABCD", hook: str = "B0456EFGH", secret: str = "") -> None:
        super().__init__()
        self.team, self.hook = team, hook
        self.secret = secret or "q0Xf3uW9mSxkLr8cT2vN7aZe"

    @property
    def webhook_url(self) -> str:
        return f"https://{HOST}/services/{self.team}/{self.hook}/{self.secret}"

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        # the webhook URL is https://hooks.slack.com/services/T.../B.../<secret>
        parts = request.path.strip("/").split("/")
        if request.host != HOST or len(parts) != 4 or parts[0] != "services":
            return _error(404, "no_service")
        if (parts[1], parts[2]) != (self.team, self.hook):
            return _error(404, "no_team" if parts[1] != self.team else "no_service")
        if parts[3] != self.secret:
            return _error(403, "invalid_token")
        # "send an HTTP POST request ... with a JSON payload" (Content-type: application/json)
        if request.method != "POST":
            return _error(405, "invalid_payload")
        if media_type(request) != "application/json":
            return _error(400, "invalid_payload")
        ok, payload = parse_json(body)
        if not ok or not isinstance(payload, dict):
            return _error(400, "invalid_payload")
        # a message needs text (or blocks / attachments, which carry their own)
        text = payload.get("text")
        if text is None and not payload.get("blocks") and not payload.get("attachments"):
            return _error(400, "no_text")
        if text is not None and not isinstance(text, str):
            return _error(400, "invalid_payload")
        if isinstance(text, str) and not text.strip():
            return _error(400, "no_text")
        # chat.postMessage: text beyond 40,000 characters is refused (msg_too_long)
        if isinstance(text, str) and len(text) > 40_000:
            return _error(400, "msg_too_long")
        self.accept(request, body)
        return web.Response(status=200, text="ok", content_type="text/html")
