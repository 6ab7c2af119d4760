"""The control center's integrations in a real browser (Debian's Chromium, the harness of
``test_web_browser``): an operator picks Mailchimp, answers its form and gets a webhook with
Mailchimp's template and basic auth; makes a custom webhook with headers, a bearer token and a
body template, previews it and sends it a test event; and every preset's form is shown, its
patterns read by the browser as Python reads them. The screenshots of each preset's form go
to docs/images (``HW_UPDATE_SCREENSHOTS=1``; otherwise to a temporary directory).

The Mailchimp key and the tokens here are made up; only 127.0.0.1 is ever called.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.integrations.presets import PRESETS
from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_browser import PHONE, ROOT, new_context, sign_in
from tests.test_web_browser import browser as browser  # the fixture

pytest.importorskip("playwright.async_api", reason="the dev extra brings playwright")
from playwright.async_api import Browser, Page, expect

MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us6"  # made up, in the documented shape
BEARER = "tok-made-up-for-the-browser-test"
HEADER_VALUE = "header-value-made-up-4Fz"


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> LiveAPI:
    api: LiveAPI = await make_api(dispatch=False)
    return api


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Where the preset forms' screenshots go: docs/images when asked to update them."""
    if os.environ.get("HW_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "images"
    else:
        target = tmp_path / "images"
    target.mkdir(parents=True, exist_ok=True)
    return target


async def signed_in_operator(served: LiveAPI, browser: Browser) -> tuple[str, Page, list[str]]:
    """An operator with location 1042, signed in on a page of its own: its token, the page,
    and the page's console errors as they come."""
    token = await served.operator("acme")
    await served.location(token, "1042", "Café Central")
    context = await new_context(browser, served)
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, token)
    return token, page, errors


def watch_errors(page: Page) -> list[str]:
    """The console's errors (a script or style refused by the CSP would show here)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


async def test_an_operator_connects_mailchimp_through_its_form(
    served: LiveAPI, browser: Browser
) -> None:
    token, page, errors = await signed_in_operator(served, browser)

    await page.goto("/ui/webhooks")
    await page.get_by_role("link", name="Mailchimp", exact=True).click()
    await expect(page.get_by_role("heading", name="Mailchimp", exact=True)).to_be_visible()
    # choosing another integration swaps its form in, without leaving the page
    await page.evaluate("window.notReloaded = true")
    await page.get_by_label("Integration", exact=True).select_option("slack")
    await expect(page.get_by_label("Webhook URL")).to_be_visible()
    await expect(page.get_by_label("API key")).to_have_count(0)
    assert await page.evaluate("window.notReloaded") is True
    assert page.url.endswith("/ui/webhooks/new?preset=slack")
    await page.get_by_label("Integration", exact=True).select_option("mailchimp")
    await expect(page.get_by_label("API key")).to_be_visible()

    # the browser holds each answer to the preset's pattern before anything is sent
    await page.get_by_label("Data center").fill("US 6")
    await page.get_by_label("Audience ID").fill("a1b2c3d4e5")
    await page.get_by_label("API key").fill(MAILCHIMP_KEY)
    await page.get_by_label("Café Central").check()
    await expect(page.get_by_label("customer.create")).to_be_checked()  # the preset's types
    await expect(page.get_by_label("subscriber.create")).to_be_checked()
    await expect(page.get_by_label("transaction.paid.create")).not_to_be_checked()
    await page.get_by_role("button", name="Create Mailchimp webhook").click()
    assert await page.get_by_label("Data center").evaluate("e => e.validity.patternMismatch")
    assert (await served.ok("GET", "/v1/webhooks", token))["data"] == []
    await page.get_by_label("Data center").fill("us6")
    await page.get_by_role("button", name="Create Mailchimp webhook").click()
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    await page.get_by_role("link", name="Done: go to the webhook").click()

    settings = page.locator("#settings")
    await expect(settings).to_contain_text("mailchimp")
    await expect(settings).to_contain_text("basic · username hotspot-webhooks")
    await expect(settings).to_contain_text("a template, application/json")
    await page.get_by_label("Event type to preview").select_option("subscriber.create")
    await page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.locator("#preview-outcome")
    await expect(preview).to_contain_text("https://us6.api.mailchimp.com/3.0/lists/a1b2c3d4e5")
    body = json.loads(await page.locator("#preview-body").inner_text())
    assert body["members"][0]["email_address"] == "jane.doe@example.com"
    assert MAILCHIMP_KEY not in await page.content()
    await expect(page.locator("#opt-auth-password")).to_have_value("")
    assert errors == []
    await page.context.close()


async def test_an_operator_makes_a_custom_webhook_with_auth_headers_and_a_template(
    served: LiveAPI, browser: Browser, python_receiver: PythonReceiver, images: Path
) -> None:
    token, page, errors = await signed_in_operator(served, browser)

    await page.goto("/ui/webhooks")
    create = page.locator("#create")
    await create.get_by_label("Callback URL").fill(python_receiver.url)
    await create.get_by_label("Café Central").check()
    await create.get_by_label("customer.create").check()
    await create.get_by_text("More: description, headers").click()
    await create.get_by_label("Description").fill("Guests to the CRM")
    await create.get_by_label("Headers").fill(f"X-Api-Key: {HEADER_VALUE}")
    await expect(create.get_by_label("Token", exact=True)).to_be_hidden()
    await create.get_by_label("Authentication", exact=True).select_option("bearer")
    await expect(create.get_by_label("Token", exact=True)).to_be_visible()  # its fields alone
    await expect(create.get_by_label("User name")).to_be_hidden()
    await create.get_by_label("Token", exact=True).fill(BEARER)
    await create.get_by_label("Body template").fill(
        '{"guest": {{ data.email | tojson }}, "at": {{ location.name | tojson }}}'
    )
    await create.get_by_label("Body template").blur()
    await create.screenshot(path=str(images / "webhook-custom.png"))
    await create.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    await page.get_by_role("link", name="Done: go to the webhook").click()

    await expect(page.get_by_text("Guests to the CRM").first).to_be_visible()
    await expect(page.locator("#settings")).to_contain_text(re.compile(r"X-Api-Key\s*\[redacted\]"))
    await page.get_by_role("button", name="Preview", exact=True).click()
    body = json.loads(await page.locator("#preview-body").inner_text())
    assert body["guest"] == "myname@gmail.com"  # a sample's, from the template
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator("#test-outcome")).to_contain_text("Delivered")
    await page.get_by_role("button", name="Send test event").blur()
    await page.screenshot(path=str(images / "webhook-options.png"), full_page=True)
    sent = python_receiver.requests[-1]
    assert sent.header("Authorization") == f"Bearer {BEARER}"
    assert sent.header("X-Api-Key") == HEADER_VALUE
    assert json.loads(sent.body)["guest"] == body["guest"]
    html = await page.content()
    assert BEARER not in html and HEADER_VALUE not in html

    assert errors == []

    # on a phone: the webhook's page, its preview open, fits the screen's width
    phone = await new_context(browser, served, viewport=PHONE, is_mobile=True)
    phone_page = await phone.new_page()
    await sign_in(phone_page, token)
    await phone_page.goto(page.url)
    await phone_page.get_by_role("button", name="Preview", exact=True).click()
    await expect(phone_page.locator("#preview-body")).to_be_visible()
    width = await phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the webhook's page is {width} px wide on a phone"
    await phone.close()

    # an error is shown by its field (the page answered 422: the console says so, alone)
    await page.locator("#edit").get_by_label("Filter").fill('{"amount": {"$foo": 1}}')
    await page.locator("#edit").get_by_role("button", name="Save").click()
    await expect(page.locator("#opt-filter-error")).to_contain_text("unknown operator $foo")
    await expect(page.locator("#opt-filter")).to_have_attribute("aria-invalid", "true")
    assert all("status of 422" in error for error in errors), errors
    await page.context.close()


async def test_every_presets_form_asks_its_fields_with_patterns_the_browser_reads_as_we_do(
    served: LiveAPI, browser: Browser, images: Path
) -> None:
    token, page, errors = await signed_in_operator(served, browser)
    for name, preset in PRESETS.items():
        await page.goto(f"/ui/webhooks/new?preset={name}")
        card = page.locator(f"#preset-{name}")
        await expect(card.get_by_role("heading", name=preset.title)).to_be_visible()
        for field in preset.fields:
            answer = page.locator(f"#preset-{field.name}")
            await expect(answer).to_be_visible()
            if field.choices:
                continue
            kind = await answer.get_attribute("type")
            assert kind == ("password" if field.secret else "text"), (name, field.name)
            for value in filter(None, (field.example, "not valid!", "x")):
                await answer.fill(value)
                mismatch = await answer.evaluate("e => e.validity.patternMismatch")
                assert mismatch == (re.fullmatch(field.pattern, value) is None), (
                    f"{name}.{field.name}: the browser and Python differ on {value!r}"
                )
            await answer.fill("")
            await answer.blur()
        await card.screenshot(path=str(images / f"preset-{name}.png"))
    assert errors == []
    await page.context.close()

    # on a phone: the picker and a preset's form fit the screen's width
    phone = await new_context(browser, served, viewport=PHONE, is_mobile=True)
    phone_page = await phone.new_page()
    await sign_in(phone_page, token)
    for path in ("/ui/webhooks/new", "/ui/webhooks/new?preset=mailchimp", "/ui/webhooks"):
        await phone_page.goto(path)
        width = await phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide on a phone"
    await phone.close()
