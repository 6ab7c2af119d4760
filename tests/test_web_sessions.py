"""The control center's sessions without a browser (httpx against the served app): the cookie's
flags, CSRF on every form, sign-in and sign-out, a revoked token ending its sessions at once,
another operator's objects answering 404, and the REST API left as it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotspot_webhooks.receiver import verify_signature
from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF token in {page.request.url}"
    return found.group(1)


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> LiveAPI:
    # as behind a reverse proxy on 127.0.0.1 that it trusts (FORWARDED_ALLOW_IPS)
    api: LiveAPI = await make_api(dispatch=False, forwarded_allow_ips="127.0.0.1")
    return api


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = await client.get("/ui/sign-in")
    return await client.post(
        "/ui/sign-in", data={"csrf_token": csrf_of(form), "token": token, "next": "/ui/"}
    )


async def signed_in(
    browsers: Callable[..., httpx.AsyncClient], token: str
) -> tuple[httpx.AsyncClient, str]:
    """A client with a session, and that session's CSRF token."""
    client = browsers()
    answer = await sign_in(client, token)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/"
    home = await client.get("/ui/")
    assert home.status_code == 200
    return client, csrf_of(home)


async def test_the_session_cookie_is_httponly_lax_and_holds_no_token_in_clear(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client = browsers()
    answer = await sign_in(client, token)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("hw_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert token not in cookie and token.removeprefix("hwt_") not in cookie


async def test_the_cookie_is_secure_when_the_trusted_proxy_says_tls(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    # X-Forwarded-Proto from 127.0.0.1, trusted here (FORWARDED_ALLOW_IPS), as from a proxy
    client = browsers(**{"X-Forwarded-Proto": "https"})
    form = await client.get("/ui/sign-in")
    assert "Secure" in form.headers["set-cookie"]
    # httpx keeps a Secure cookie from a plain-HTTP URL to itself: hand it over as a browser
    # behind the proxy would
    sealed = form.headers["set-cookie"].split(";")[0]
    answer = await client.post(
        "/ui/sign-in",
        data={"csrf_token": csrf_of(form), "token": token},
        headers={"Cookie": sealed},
    )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


async def test_a_form_without_the_csrf_token_is_refused_and_does_nothing(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    location = {"id": "loc-2", "name": "Hotel Miramar"}
    for refused in ({}, {"csrf_token": "not-the-token"}, {"csrf_token": ""}):
        answer = await client.post("/ui/locations", data={**location, **refused})
        assert answer.status_code == 403
        assert "CSRF" in answer.text and "nothing was done" in answer.text
    listed = await served.ok("GET", "/v1/locations", token)
    assert [loc["id"] for loc in listed["data"]] == ["loc-1"]

    # the header htmx sends counts as well as the field
    answer = await client.post("/ui/locations", data=location, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 303
    listed = await served.ok("GET", "/v1/locations", token)
    assert sorted(loc["id"] for loc in listed["data"]) == ["loc-1", "loc-2"]


async def test_signing_in_needs_the_forms_csrf_token_too(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client = browsers()
    answer = await client.post("/ui/sign-in", data={"token": token})
    assert answer.status_code == 403
    assert "hw_session" not in answer.headers.get("set-cookie", "")


async def test_a_token_that_is_not_valid_is_told_so(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    client = browsers()
    answer = await sign_in(client, "hwt_not-a-token")
    assert answer.status_code == 401
    assert "this token is not valid" in answer.text
    answer = await sign_in(client, "")
    assert answer.status_code == 401
    assert "Paste your token" in answer.text


async def test_pages_send_whoever_has_no_session_to_sign_in(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    client = browsers()
    answer = await client.get("/ui/webhooks?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=/ui/webhooks%3Fx%3D1"
    client.cookies.set("hw_session", "forged-value", path="/ui")
    assert (await client.get("/ui/deliveries")).status_code == 303
    polled = await client.get("/ui/deliveries/rows", headers={"HX-Request": "true"})
    assert polled.headers["HX-Redirect"] == "/ui/sign-in"


async def test_revoking_the_token_ends_its_session_at_once(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, _ = await signed_in(browsers, token)
    assert (await client.get("/ui/webhooks")).status_code == 200
    [listed] = (await served.ok("GET", "/v1/tokens", token))["data"]
    await served.ok("DELETE", f"/v1/tokens/{listed['id']}", token)

    answer = await client.get("/ui/webhooks")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?why=ended"
    assert 'hw_session=""' in answer.headers["set-cookie"]  # the cookie is cleared
    page = await client.get("/ui/sign-in?why=ended")
    assert "Your session has ended" in page.text


async def test_signing_out_clears_the_cookie(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    assert (await client.post("/ui/sign-out", data={})).status_code == 403
    answer = await client.post("/ui/sign-out", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?why=signed-out"
    assert (await client.get("/ui/")).status_code == 303  # no cookie left: sign in again


async def test_another_operators_objects_are_not_found(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    hooked = await served.hooked("loc-a", python_receiver.url, name="acme")
    webhook_id = hooked.webhook["id"]
    sent = await served.ok("POST", f"/v1/webhooks/{webhook_id}/test", hooked.token)
    other = await served.operator_at("loc-b", name="other")
    client, csrf = await signed_in(browsers, other)

    for path in (
        f"/ui/webhooks/{webhook_id}",
        f"/ui/webhooks/{webhook_id}/delete",
        f"/ui/deliveries/{sent['id']}",
    ):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert "does not exist" in answer.text
    for path in (
        f"/ui/webhooks/{webhook_id}/delete",
        f"/ui/webhooks/{webhook_id}/rotate-key",
        f"/ui/webhooks/{webhook_id}/test",
        f"/ui/deliveries/{sent['id']}/retry",
    ):
        assert (await client.post(path, data={"csrf_token": csrf})).status_code == 404, path
    listed = await client.get("/ui/deliveries")
    assert sent["id"] not in listed.text
    filtered = await client.get(f"/ui/deliveries/rows?webhook_id={webhook_id}")
    assert sent["id"] not in filtered.text and "No delivery matches" in filtered.text
    # nothing changed: the webhook and its key are as they were
    still = await served.ok("GET", f"/v1/webhooks/{webhook_id}", hooked.token)
    assert still["status"] == "enabled"


async def test_every_page_renders_for_an_operator_and_the_admin(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    operator, _ = await signed_in(browsers, token)
    admin, _ = await signed_in(browsers, served.settings.admin_token or "")
    pages = {
        "/ui/": "Overview",
        "/ui/webhooks": "Create a webhook",
        "/ui/locations": "Add a location",
        "/ui/deliveries": "Deliveries",
        "/ui/event-types": "transaction.social.create",
        "/ui/tokens": "Create a token",
    }
    for client in (operator, admin):
        for path, text in pages.items():
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert text in answer.text, path
    assert (await admin.get("/ui/operators")).status_code == 200
    refused = await operator.get("/ui/operators")
    assert refused.status_code == 403 and "admin token" in refused.text
    assert (await operator.get("/ui/no-such-page")).status_code == 404


async def test_the_control_center_leaves_the_rest_api_as_it_was(served: LiveAPI) -> None:
    home = await served.client.get("/")
    assert home.status_code == 307 and home.headers["location"] == "/ui/"
    document = (await served.client.get("/openapi.json")).json()
    api_paths = ("/v1/", "/healthz", "/readyz")
    assert [path for path in document["paths"] if not path.startswith(api_paths)] == []
    assert (await served.client.get("/healthz")).json() == {"status": "ok"}
    unauthorized = await served.client.get("/v1/webhooks")
    assert unauthorized.status_code == 401 and unauthorized.json()["success"] is False
    assert (await served.client.get("/docs")).status_code == 200
    htmx = await served.client.get("/ui/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]


async def test_pages_forbid_framing_and_foreign_scripts_and_notices_come_from_us(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    page = await client.get("/ui/webhooks?notice=Your+account+is+locked")
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "Your account is locked" not in page.text  # no notice from a link
    created = await client.post(
        "/ui/locations", data={"csrf_token": csrf, "id": "loc-2", "name": "Hotel"}
    )
    assert created.status_code == 303
    shown = await client.get(created.headers["location"])
    assert "Location loc-2 created." in shown.text
    again = await client.get(created.headers["location"])
    assert "Location loc-2 created." not in again.text  # once


async def test_a_page_showing_a_secret_is_not_cached(
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
    assert created.status_code == 303  # then the key's page: a reload posts nothing again
    [webhook] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    assert created.headers["location"] == f"/ui/webhooks/{webhook['id']}/key"
    shown = await client.get(created.headers["location"])
    assert shown.headers["cache-control"] == "no-store"
    key = re.search(r'id="api-key" readonly value="([^"]+)"', shown.text)
    assert key is not None
    sent = await served.ok("POST", f"/v1/webhooks/{webhook['id']}/test", token)
    assert sent["status"] == "succeeded"
    received = python_receiver.requests[0]
    assert verify_signature(
        received.body, received.header("X-Hotspotsystem-Hmac-Sha256") or "", key.group(1)
    )
    token_made = await client.post("/ui/tokens", data={"csrf_token": csrf})
    token_page = await client.get(token_made.headers["location"])
    assert token_page.headers["cache-control"] == "no-store"


async def test_a_bad_form_names_the_field(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    refused = await client.post(
        "/ui/webhooks",
        data={"csrf_token": csrf, "callback_url": "ftp://x", "location_ids": "loc-1"},
    )
    assert refused.status_code == 422
    assert "event_types" in refused.text and "choose at least one event type" in refused.text
    refused = await client.post(
        "/ui/webhooks",
        data={
            "csrf_token": csrf,
            "callback_url": "ftp://example.com/x",
            "location_ids": "loc-1",
            "event_types": "customer.create",
        },
    )
    assert refused.status_code == 422
    assert "<code>callback_url</code>" in refused.text
    assert 'value="ftp://example.com/x"' in refused.text  # what was typed stays


async def test_an_htmx_action_that_fails_answers_the_message_alone(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    hooked = await served.hooked("loc-1", python_receiver.url)
    client, csrf = await signed_in(browsers, hooked.token)
    answer = await client.post(
        f"/ui/webhooks/{hooked.webhook['id']}/test",
        data={"csrf_token": csrf, "event_type": "subscriber.create"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 422
    assert answer.text.lstrip().startswith('<div class="alert" role="alert">')
    assert "not in the webhook&#39;s subscription" in answer.text
    assert python_receiver.requests == []
    sent = await client.post(
        f"/ui/webhooks/{hooked.webhook['id']}/test",
        data={"csrf_token": csrf, "event_type": "customer.create"},
        headers={"HX-Request": "true"},
    )
    assert sent.status_code == 200 and "Delivered" in sent.text and "<html" not in sent.text
    assert len(python_receiver.requests) == 1


async def test_a_webhooks_forms_edit_disable_rotate_recover_and_delete_it(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    hooked = await served.hooked("loc-1", python_receiver.url)
    await served.location(hooked.token, "loc-2", "Hotel Miramar")
    webhook_id = hooked.webhook["id"]
    page = f"/ui/webhooks/{webhook_id}"
    client, csrf = await signed_in(browsers, hooked.token)

    async def post(path: str, **fields: Any) -> httpx.Response:
        return await client.post(path, data={"csrf_token": csrf, **fields})

    edited = await post(
        page,
        callback_url=python_receiver.url + "/v2",
        location_ids=["loc-1", "loc-2"],
        event_types=["*"],
    )
    assert edited.status_code == 303
    shown = await served.ok("GET", f"/v1/webhooks/{webhook_id}", hooked.token)
    assert shown["callback_url"].endswith("/hook/v2")
    assert (shown["location_ids"], shown["event_types"]) == (["loc-1", "loc-2"], ["*"])

    assert (await post(f"{page}/status", status="disabled")).status_code == 303
    shown = await served.ok("GET", f"/v1/webhooks/{webhook_id}", hooked.token)
    assert shown["status"] == "disabled"
    assert "Enable" in (await client.get(page)).text
    assert (await post(f"{page}/status", status="enabled")).status_code == 303

    rotating = await post(f"{page}/rotate-key")
    assert rotating.status_code == 303
    rotated = await client.get(rotating.headers["location"])
    assert rotated.status_code == 200 and "New API key" in rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new_key = re.search(r'id="api-key" readonly value="([^"]+)"', rotated.text)
    assert new_key is not None and new_key.group(1) != hooked.webhook["api_key"]

    recovered = await post(f"{page}/recover", since="2026-01-01T00:00")
    assert recovered.status_code == 303
    assert (
        "0 failed deliveries since 2026-01-01 00:00 UTC queued again."
        in (await client.get(recovered.headers["location"])).text
    )
    refused = await post(f"{page}/recover", since="yesterday")
    assert refused.status_code == 422 and "<code>since</code>" in refused.text

    confirm = await client.get(f"{page}/delete")
    assert confirm.status_code == 200 and "This cannot be undone" in confirm.text
    assert (await post(f"{page}/delete")).status_code == 303
    assert (await client.get(page)).status_code == 404
    gone = await served.call("GET", f"/v1/webhooks/{webhook_id}", hooked.token)
    assert gone.status_code == 404


async def test_the_delivery_list_filters_by_time_and_names_a_bad_one(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    hooked = await served.hooked("loc-1", python_receiver.url)
    sent = await served.ok("POST", f"/v1/webhooks/{hooked.webhook['id']}/test", hooked.token)
    client, _ = await signed_in(browsers, hooked.token)
    assert sent["id"] in (await client.get("/ui/deliveries?since=2026-01-01T00:00")).text
    later = await client.get("/ui/deliveries/rows?since=2999-01-01T00:00")
    assert sent["id"] not in later.text and "No delivery matches" in later.text
    assert sent["id"] in (await client.get("/ui/deliveries?status=succeeded")).text
    assert sent["id"] not in (await client.get("/ui/deliveries?status=failed")).text
    refused = await client.get("/ui/deliveries?since=soon")
    assert refused.status_code == 422 and "<code>since</code>" in refused.text
