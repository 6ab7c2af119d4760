"""A Google Apps Script web app running the script of docs/integrations.md, which appends one
row per event to a Google Sheet.

Reference: https://developers.google.com/apps-script/guides/web (a deployed web app runs
``doPost(e)`` for each POST to ``https://script.google.com/macros/s/{deployment}/exec``, with the
raw body in ``e.postData.contents``), https://developers.google.com/apps-script/guides/content#redirects
(the output is served by a ``302`` redirect to a one-time URL on script.googleusercontent.com),
https://support.google.com/drive/answer/37603 (a cell holds at most 50,000 characters). A
script that throws is answered ``200`` with an HTML error page, not a redirect (reported in
https://openillumi.com/gas-dopost-500-error-workaround; Apps Script cannot set a status).

The stand-in runs the same steps as the script: parse the JSON, find or add the tab, write the
headers on an empty tab, skip an event id already written, append the row.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from . import StandIn

HOST = "script.google.com"
ECHO = "https://script.googleusercontent.com/macros/echo?user_content_key={key}&lib=MhV2k"


def _thrown(message: str) -> web.Response:
    # a script error: HTTP 200 and an HTML page naming the error (no redirect)
    page = f"<html><body><div>{message} (line 3, file &quot;Code&quot;)</div></body></html>"
    return web.Response(status=200, text=page, content_type="text/html")


class AppsScript(StandIn):
    def __init__(self, deployment: str = "AKfycbx4Zq0v7Lr2Wm9sT1yNc8kE3uPdH6jB5oGa") -> None:
        super().__init__()
        self.deployment = deployment
        self.sheets: dict[str, list[list[Any]]] = {}  # tab name -> rows (headers first)

    @property
    def web_app_url(self) -> str:
        return f"https://{HOST}/macros/s/{self.deployment}/exec"

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        match = re.fullmatch(r"(?:/a/macros/[^/]+|/macros)/s/([^/]+)/exec", request.path)
        if request.host != HOST or match is None or match.group(1) != self.deployment:
            page = "<html><body>Sorry, unable to open the file at this time.</body></html>"
            return web.Response(status=404, text=page, content_type="text/html")
        if request.method != "POST":
            return _thrown("Script function not found: doGet")
        try:
            event = json.loads(body)  # JSON.parse(e.postData.contents)
        except (ValueError, UnicodeDecodeError):
            return _thrown("SyntaxError: Unexpected token in JSON")
        problem = _row_problem(event)
        if problem:
            return _thrown(problem)
        rows = self.sheets.setdefault(event["sheet"], [])
        if not rows:
            rows.append(list(event["headers"]))
        if not any(row[0] == event["row"][0] for row in rows[1:]):
            rows.append(list(event["row"]))
        self.accept(request, body)
        key = f"{len(self.accepted):04d}AehSKLjVgOxSMUs1O"
        page = (
            "<HTML><HEAD><TITLE>Moved Temporarily</TITLE></HEAD><BODY>The document has moved "
            f'<A HREF="{ECHO.format(key=key)}">here</A>.</BODY></HTML>'
        )
        return web.Response(
            status=302,
            text=page,
            content_type="text/html",
            headers={"Location": ECHO.format(key=key)},
        )


def _row_problem(event: Any) -> str:
    # what the script reads: a tab name, the headers and one row of the same length
    if not isinstance(event, dict):
        return "TypeError: Cannot read properties of undefined (reading 'sheet')"
    sheet, headers, row = event.get("sheet"), event.get("headers"), event.get("row")
    # sheet names: 1 to 100 characters
    if not isinstance(sheet, str) or not 0 < len(sheet) <= 100:
        return "Exception: Invalid argument: sheet name"
    if not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers):
        return "Exception: The parameters (null) don't match the method signature for appendRow."
    if not isinstance(row, list) or len(row) != len(headers):
        return "Exception: The number of columns in the row does not match the headers."
    for value in row:
        if value is not None and not isinstance(value, (str, int, float, bool)):
            return "Exception: A cell holds a string, a number, a boolean or nothing."
        if isinstance(value, str) and len(value) > 50_000:
            return (
                "Exception: Your input contains more than the maximum of 50000 characters in a "
                "single cell."
            )
    if not isinstance(row[0], str) or not row[0]:
        return "Exception: The first column must hold the event id."
    return ""
