"""Reloading the page a form led to does nothing twice (U1 of issue 25): every form that
changes something answers with a redirect to a page (Post/Redirect/Get), and a key or token
shown once is shown once, reload or not.

In a real browser (headless Chromium, as ``tests/test_web_browser.py``): each form submitted,
the result page reloaded, and the service asked that it was done once.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page, expect

from hotspot_webhooks.receiver import ORIGINAL_HEADER, verify_signature
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_browser import browser, go, new_context, served, sign_in

__all__ = ["browser", "served"]  # the fixtures, shared with the browser tests


async def reload(page: Page) -> None:
    """What a person does on the result page: reload it (F5)."""
    answer = await page.reload()
    assert answer is not None and answer.ok, f"reloading {page.url}: {answer and answer.status}"
    await page.wait_for_load_state()


async def listed(api: LiveAPI, path: str, token: str = ADMIN_TOKEN) -> list[Any]:
    found: list[Any] = (await api.ok("GET", path, token))["data"]
    return found


async def test_reloading_any_form_result_does_nothing_twice(
    served: LiveAPI, browser: Browser, python_receiver: PythonReceiver
) -> None:
    token = await served.operator("acme")
    context = await new_context(browser, served)
    page = await context.new_page()
    await sign_in(page, token)

    # a location
    await go(page, "Locations")
    await page.get_by_label("Location id").fill("1042")
    await page.get_by_label("Name", exact=True).fill("Café Central")
    await page.get_by_role("button", name="Add location").click()
    await expect(page.get_by_text("Location 1042 created.")).to_be_visible()
    await reload(page)
    assert [loc["id"] for loc in await listed(served, "/v1/locations", token)] == ["1042"]

    # a webhook: its key shown once, and not again on reload
    await go(page, "Webhooks")
    await page.get_by_label("Callback URL").fill(python_receiver.url)
    await page.get_by_label("Café Central").check()
    await page.get_by_label("customer.create").check()
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    created_key = await page.get_by_label("API key", exact=True).input_value()
    await reload(page)
    assert len(await listed(served, "/v1/webhooks", token)) == 1
    await expect(page.get_by_label("API key", exact=True)).to_have_count(0)
    assert created_key not in await page.content()
    await expect(page.get_by_text("key was shown once and cannot be shown again")).to_be_visible()
    [webhook] = await listed(served, "/v1/webhooks", token)
    webhook_page = f"/ui/webhooks/{webhook['id']}"

    # rotate the key: once, whatever the reloads
    await page.goto(webhook_page)
    await page.get_by_role("button", name="Rotate key").click()
    await expect(page.get_by_role("heading", name="New API key")).to_be_visible()
    rotated_key = await page.get_by_label("API key", exact=True).input_value()
    assert rotated_key != created_key
    await reload(page)
    await expect(page.get_by_label("API key", exact=True)).to_have_count(0)
    assert rotated_key not in await page.content()
    await served.ok("POST", f"/v1/webhooks/{webhook['id']}/test", token)
    sent = python_receiver.requests[-1]
    assert verify_signature(sent.body, sent.header(ORIGINAL_HEADER) or "", rotated_key), (
        "the key shown is no longer the webhook's: the reload rotated it again"
    )
    assert len(await listed(served, f"/v1/deliveries?webhook_id={webhook['id']}", token)) == 1

    # a test event from a page without script (the plain form), then reloaded
    plain = await new_context(browser, served, java_script_enabled=False)
    plain_page = await plain.new_page()
    await sign_in(plain_page, token)
    await plain_page.goto(webhook_page)
    await plain_page.get_by_role("button", name="Send test event").click()
    await expect(plain_page.get_by_text("Test event delivered (HTTP 200")).to_be_visible()
    await reload(plain_page)
    assert len(await listed(served, f"/v1/deliveries?webhook_id={webhook['id']}", token)) == 2
    await plain.close()

    # a test event with htmx (in place), then reloaded
    await page.goto(webhook_page)
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator("#test-outcome")).to_contain_text("Delivered")
    await reload(page)
    deliveries = await listed(served, f"/v1/deliveries?webhook_id={webhook['id']}", token)
    assert len(deliveries) == 3

    # save, disable, enable, recover: each reloaded
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Webhook saved.")).to_be_visible()
    await reload(page)
    await page.get_by_role("button", name="Disable").click()
    await expect(page.get_by_text("Webhook disabled.")).to_be_visible()
    await reload(page)
    await page.get_by_role("button", name="Enable").click()
    await expect(page.get_by_text("Webhook enabled.")).to_be_visible()
    await reload(page)
    await page.get_by_role("button", name="Recover").click()
    await expect(page.get_by_text("queued again")).to_be_visible()
    await reload(page)
    now = await served.ok("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert now["status"] == "enabled"

    # retry a delivery: once
    delivery = deliveries[0]
    await page.goto(f"/ui/deliveries/{delivery['id']}")
    await page.get_by_role("button", name="Retry now").click()
    await expect(page.get_by_text("Queued: the next pass sends it again")).to_be_visible()
    await reload(page)
    retried = await served.wait_for_delivery(token, delivery["id"], "succeeded")
    assert retried["attempt_count"] == 2

    # a token: made once, shown once
    await go(page, "Tokens")
    await page.get_by_role("button", name="Create a token").click()
    new_token = await page.get_by_label("New token", exact=True).input_value()
    await reload(page)
    tokens = await listed(served, "/v1/tokens", token)
    assert len(tokens) == 2
    await expect(page.get_by_label("New token", exact=True)).to_have_count(0)
    assert new_token not in await page.content()
    newer = max(t["id"] for t in tokens)
    await page.get_by_role("button", name=f"Revoke token {newer}").click()
    await expect(page.get_by_text(f"Token {newer} revoked")).to_be_visible()
    await reload(page)
    assert len(await listed(served, "/v1/tokens", token)) == 1

    # delete the webhook
    await page.goto(f"{webhook_page}/delete")
    await page.get_by_role("button", name="Delete webhook").click()
    await expect(page.get_by_text(f"Webhook {webhook['id']} deleted.")).to_be_visible()
    await reload(page)
    assert await listed(served, "/v1/webhooks", token) == []
    await context.close()


async def test_reloading_the_admins_form_results_does_nothing_twice(
    served: LiveAPI, browser: Browser
) -> None:
    context = await new_context(browser, served)
    page = await context.new_page()
    await sign_in(page, ADMIN_TOKEN)

    await go(page, "Operators")
    await page.get_by_label("Name", exact=True).fill("initech")
    await page.get_by_role("button", name="Create operator").click()
    first = await page.get_by_label("New token", exact=True).input_value()
    await reload(page)
    operators = await listed(served, "/v1/operators")
    assert [o["name"] for o in operators] == ["initech"]
    await expect(page.get_by_label("New token", exact=True)).to_have_count(0)
    assert first not in await page.content()

    await page.get_by_role("button", name="New token").click()
    second = await page.get_by_label("New token", exact=True).input_value()
    assert second != first
    await reload(page)
    await expect(page.get_by_label("New token", exact=True)).to_have_count(0)
    assert second not in await page.content()
    mine = [t for t in await listed(served, "/v1/tokens") if t["operator_id"] == operators[0]["id"]]
    assert len(mine) == 2

    await page.get_by_role("button", name="Disable").click()
    await expect(page.get_by_text("disabled.")).to_be_visible()
    await reload(page)
    [operator] = await listed(served, "/v1/operators")
    assert operator["status"] == "disabled"
    await context.close()
