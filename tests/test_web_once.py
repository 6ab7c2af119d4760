"""A secret made by a form is shown once, on the page the form redirects to (U1 of issue 25):
never in a URL, sealed in an HttpOnly cookie bound to its session, gone once shown."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_sessions import signed_in

KEY = re.compile(r'id="api-key" readonly value="([^"]+)"')


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> LiveAPI:
    api: LiveAPI = await make_api(dispatch=False)
    return api


async def test_a_new_webhooks_key_rides_to_its_page_sealed_and_is_shown_once(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    created = await client.post(
        "/ui/webhooks",
        data={
            "csrf_token": csrf,
            "callback_url": python_receiver.url,
            "location_ids": "loc-1",
            "event_types": "customer.create",
        },
    )
    assert created.status_code == 303
    [webhook] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    assert created.headers["location"] == f"/ui/webhooks/{webhook['id']}/key"
    once = created.cookies.get("hw_once")
    assert once, "no hw_once cookie"
    cookie = next(c for c in created.headers.get_list("set-cookie") if c.startswith("hw_once="))
    assert "HttpOnly" in cookie and "Path=/ui" in cookie and "Max-Age=300" in cookie

    # another session, even the same operator's, cannot open it
    other, _ = await signed_in(browsers, token)
    other.cookies.set("hw_once", once, domain="127.0.0.1", path="/ui")
    stolen = await other.get(created.headers["location"])
    assert (
        stolen.status_code == 303 and stolen.headers["location"] == f"/ui/webhooks/{webhook['id']}"
    )

    # its own session: shown, once
    shown = await client.get(created.headers["location"])
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    key = KEY.search(shown.text)
    assert key is not None and key.group(1) not in once and key.group(1) not in created.text
    deleted = [c for c in shown.headers.get_list("set-cookie") if c.startswith("hw_once=")]
    assert deleted and "Max-Age=0" in deleted[0]  # deleted in the same answer
    again = await client.get(created.headers["location"])
    assert again.status_code == 303
    after = await client.get(again.headers["location"])
    assert "shown once and cannot be shown again" in after.text
    assert key.group(1) not in after.text
