"""Microsoft Teams: a Workflows ("When a Teams webhook request is received") URL that posts the
card to a channel.

Reference: https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
(the message shape, "Send Adaptive Cards using an Incoming Webhook"; the 28 KB message limit),
https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook
and https://learn.microsoft.com/connectors/teams/ (the Workflows trigger, which answers 202).

One deliberate difference: a real workflow accepts the request (202) and fails its run later,
shown in the flow's run history, when the card cannot be posted. The stand-in refuses such a
request at once (400), so a test sees what the channel would never show.
"""

from __future__ import annotations

from aiohttp import web

from . import StandIn, json_error, media_type, parse_json

CARD = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 28 * 1024  # "The message size limit is 28 KB"


def _error(status: int, code: str, message: str) -> web.Response:
    # Azure Logic Apps' error shape: {"error": {"code": ..., "message": ...}}
    return json_error(status, {"error": {"code": code, "message": message}})


class Teams(StandIn):
    def __init__(
        self, workflow_id: str = "3f0c9a2b7d4e4c1e9b6a5d8f2e1c0b9a", sig: str = ""
    ) -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.sig = sig or "k2Jd9xQ-7vN4sLp0aR8tYw3zU6mBcEf1hGi5oPqS"

    @property
    def workflow_url(self) -> str:
        return (
            "https://prod-27.westeurope.logic.azure.com:443/workflows/"
            f"{self.workflow_id}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}"
        )

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0] if request.host.endswith(":443") else request.host
        expected = f"/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
        if not host.endswith(".logic.azure.com") or not request.path.startswith("/workflows/"):
            return _error(404, "NotFound", "The requested resource was not found.")
        if request.path != expected:
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        # the URL's shared access signature is the only credential
        if request.query.get("sig") != self.sig:
            return _error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authorization signature is not valid.",
            )
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "The trigger accepts POST only.")
        if len(body) > MAX_BYTES:
            return _error(413, "RequestEntityTooLarge", "The message exceeds 28 KB.")
        if media_type(request) != "application/json":
            return _error(415, "UnsupportedMediaType", "The body must be application/json.")
        ok, message = parse_json(body)
        # "The type field must be message"; "The attachments array contains a set of card
        # objects"; "The contentType field must be set to Adaptive Card type"; "The content
        # object is the card formatted in JSON"
        problem = _card_problem(message) if ok else "the body is not JSON"
        if problem:
            return _error(400, "InvalidTemplate", problem)
        self.accept(request, body)
        return web.Response(status=202)


def _card_problem(message: object) -> str:
    if not isinstance(message, dict) or message.get("type") != "message":
        return "type must be 'message'"
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty array"
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != CARD:
            return f"each attachment's contentType must be {CARD}"
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return "each attachment's content must be an AdaptiveCard"
        if not isinstance(card.get("version"), str) or not isinstance(card.get("body"), list):
            return "an AdaptiveCard needs a version and a body"
        for element in card["body"]:
            if not isinstance(element, dict) or not isinstance(element.get("type"), str):
                return "every body element needs a type"
            if element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                return "a TextBlock needs text"
            if element["type"] == "FactSet" and not all(
                isinstance(f, dict)
                and isinstance(f.get("title"), str)
                and isinstance(f.get("value"), str)
                for f in element.get("facts", [])
            ):
                return "every fact needs a title and a value"
    return ""
