"""The control center in a real browser: headless Chromium (Debian's) driven by Playwright,
against the app served by uvicorn with its dispatcher, delivering to a real receiver.

One operator's day: sign in, create a location and a webhook, copy its key, send a test event,
watch a delivery appear without reloading, open it, copy it as curl and run that with the real
curl (the receiver verifies the signature), retry it, revoke a token and see its session end,
sign out. Beside it: a second operator sees none of it (404), a form without its CSRF token is
refused. The screenshots in docs/screenshots are taken here (``HW_UPDATE_SCREENSHOTS=1``
writes them there; otherwise to a temporary directory).

Chromium missing: skipped, unless ``HW_TEST_BROWSER=required`` (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.receiver import ORIGINAL_HEADER, verify_signature
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver, free_port

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra brings it
    async_playwright = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("HW_CHROMIUM", "/usr/bin/chromium")
# the machine's network is closed: without these chromium keeps dialling out
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _require_browser() -> None:
    missing = (
        "playwright is not installed"
        if async_playwright is None
        else None
        if os.access(CHROMIUM, os.X_OK)
        else f"no chromium at {CHROMIUM} (apt-get install chromium)"
    )
    if missing is None:
        return
    if os.environ.get("HW_TEST_BROWSER") == "required":
        pytest.fail(f"the browser tests are required here, but {missing}")
    pytest.skip(missing)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _require_browser()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots when asked to update them, else a tmp dir."""
    if os.environ.get("HW_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "screenshots"
    else:
        target = tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> LiveAPI:
    api: LiveAPI = await make_api(low_latency=True)
    return api


async def new_context(browser: Browser, api: LiveAPI, **options: Any) -> BrowserContext:
    context = await browser.new_context(
        base_url=api.url, viewport=options.pop("viewport", DESKTOP), **options
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api.url)
    context.set_default_timeout(15_000)
    return context


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/ui/")
    await expect(page).to_have_url("/ui/sign-in?next=/ui/")
    await page.get_by_label("Token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def go(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    navigation = page.get_by_role("navigation", name="Main")
    await navigation.get_by_role("link", name=name, exact=True).click()
    await page.wait_for_load_state()


async def clipboard(page: Page) -> str:
    text: str = await page.evaluate("navigator.clipboard.readText()")
    return text


async def shoot(page: Page, directory: Path, name: str, *, full_page: bool = True) -> None:
    await page.screenshot(path=str(directory / f"{name}.png"), full_page=full_page)


async def run_curl(command: str) -> tuple[int, str]:
    """Run what "copy as curl" copied, as a person would paste it into a shell."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


@pytest.fixture
async def refusing() -> AsyncIterator[PythonReceiver]:
    """A receiver that answers 500 to everything."""
    receiver = await PythonReceiver(respond=lambda n: 500).start()
    yield receiver
    await receiver.stop()


async def test_an_operator_manages_webhooks_and_follows_a_delivery(
    served: LiveAPI,
    browser: Browser,
    python_receiver: PythonReceiver,
    refusing: PythonReceiver,
    screenshots: Path,
) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the copied command (apt-get install curl)")
    token = await served.operator("acme")
    context = await new_context(browser, served)
    page = await context.new_page()
    errors: list[str] = []  # the console's: a script refused by the CSP would show here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    await page.goto("/ui/sign-in")
    await shoot(page, screenshots, "sign-in", full_page=False)
    await sign_in(page, token)
    await expect(page.get_by_text("Start with a location")).to_be_visible()  # the empty state

    # a location, through its form
    await go(page, "Locations")
    await page.get_by_label("Location id").fill("1042")
    await page.get_by_label("Name", exact=True).fill("Café Central")
    await page.get_by_role("button", name="Add location").click()
    await expect(page.get_by_text("Location 1042 created.")).to_be_visible()

    # a webhook: the key is shown once, with copy buttons and receivers filled in with it
    await go(page, "Webhooks")
    await page.get_by_label("Callback URL").fill(python_receiver.url)
    await page.get_by_label("Café Central").check()
    await page.get_by_label("customer.create").check()
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("heading", name="Webhook created")).to_be_visible()
    api_key = await page.get_by_label("API key", exact=True).input_value()
    await page.get_by_role("button", name="Copy API key").click()
    await expect(page.get_by_role("button", name="Copy API key")).to_have_text("Copied ✓")
    assert await clipboard(page) == api_key
    assert len(api_key) >= 43
    php = await page.locator(".snippet pre").first.inner_text()
    assert f"$apiKey = '{api_key}';" in php
    await shoot(page, screenshots, "webhook-created")
    await page.get_by_role("link", name="Done: go to the webhook").click()
    webhook_url = page.url
    webhook_id = webhook_url.rsplit("/", 1)[1]

    # a test event: the attempt's result inline, without leaving the page
    await page.get_by_role("button", name="Send test event").click()
    result = page.locator("#test-outcome")
    await expect(result).to_contain_text("Delivered")
    await expect(result).to_contain_text("HTTP 200")
    assert page.url == webhook_url
    assert len(python_receiver.requests) == 1
    tested = python_receiver.requests[0]
    assert verify_signature(tested.body, tested.header(ORIGINAL_HEADER) or "", api_key)

    # the live list: an event emitted now appears without a reload
    await go(page, "Deliveries")
    await page.evaluate("window.notReloaded = true")
    emitted = await served.ok(
        "POST",
        "/v1/events",
        token,
        json={"type": "customer.create", "location_id": "1042", "data": {"id": "59243583"}},
    )
    [delivery] = (await served.ok("GET", f"/v1/deliveries?event_id={emitted['id']}", token))["data"]
    row = page.locator(f'tr[data-delivery="{delivery["id"]}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.locator(".pill")).to_have_text("succeeded", timeout=10_000)
    assert await page.evaluate("window.notReloaded") is True

    # the delivery, its attempt, and "copy as curl" run for real against the receiver
    await row.get_by_role("link", name=delivery["id"]).click()
    await expect(page.get_by_role("heading", name=f"Delivery {delivery['id']}")).to_be_visible()
    await expect(page.locator("#attempt-1")).to_contain_text("HTTP 200")
    await page.get_by_role("button", name="Copy as curl").click()
    command = await clipboard(page)
    assert command == await page.locator("#copy-curl-1").get_attribute("data-copy")
    assert command.startswith("curl ")
    before = len(python_receiver.requests)
    code, output = await run_curl(command)
    assert code == 0, output
    assert output == "answer 200"
    replayed = python_receiver.requests[before]
    assert replayed.body == python_receiver.requests[before - 1].body  # the same bytes
    assert verify_signature(replayed.body, replayed.header(ORIGINAL_HEADER) or "", api_key)
    assert replayed.header("HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256") == replayed.header(ORIGINAL_HEADER)
    await shoot(page, screenshots, "delivery")

    # retry now: the dispatcher sends it again; the page shows the new attempt without reload
    await page.get_by_role("button", name="Retry now").click()
    await expect(page.get_by_text("Queued: the next pass sends it again")).to_be_visible()
    await page.evaluate("window.notReloaded = true")
    await expect(page.locator("#attempt-2")).to_contain_text("HTTP 200", timeout=10_000)
    assert await page.evaluate("window.notReloaded") is True
    assert len(python_receiver.requests) == before + 2  # the curl, then the retry

    # an endpoint that is down and one that answers 500, so the overview has something to say
    down = await served.webhook(token, "1042", f"http://127.0.0.1:{free_port()}/gone")
    for _ in range(5):
        await served.ok("POST", f"/v1/webhooks/{down['id']}/test", token)
    await served.location(token, "1043", "Hotel Miramar")
    mailing = await served.webhook(token, "1043", refusing.url, "subscriber.create")
    for event_type, location in [("subscriber.create", "1043")] * 3 + [
        ("customer.create", "1042")
    ] * 3:
        await served.ok(
            "POST",
            "/v1/events",
            token,
            json={"type": event_type, "location_id": location, "data": {"id": "8412377"}},
        )
    for _ in range(100):
        if len(refusing.requests) >= 3:
            break
        await asyncio.sleep(0.05)
    await go(page, "Overview")
    await expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    attention = page.locator(".attention-list")
    await expect(attention).to_contain_text("endpoint unreachable")
    await expect(attention).to_contain_text(mailing["callback_url"])
    await expect(page.locator(".health").first).to_contain_text("circuit open")
    await shoot(page, screenshots, "overview")
    await go(page, "Deliveries")
    await shoot(page, screenshots, "deliveries")

    await go(page, "Webhooks")
    await shoot(page, screenshots, "webhooks")
    await page.goto(f"/ui/webhooks/{webhook_id}")
    await shoot(page, screenshots, "webhook")
    await go(page, "Event types")
    await expect(page.get_by_role("heading", name="transaction.paid.create")).to_be_visible()
    await shoot(page, screenshots, "event-types", full_page=False)

    # a second token, a session on it, and its revocation ending that session at once
    await go(page, "Tokens")
    await page.get_by_role("button", name="Create a token").click()
    second_token = await page.get_by_label("New token", exact=True).input_value()
    await page.get_by_role("button", name="Copy token").click()
    assert await clipboard(page) == second_token
    await shoot(page, screenshots, "tokens")
    other_context = await new_context(browser, served)
    other_page = await other_context.new_page()
    await sign_in(other_page, second_token)
    await go(other_page, "Webhooks")
    await expect(other_page.get_by_text(python_receiver.url)).to_be_visible()
    listed = (await served.ok("GET", "/v1/tokens", token))["data"]
    second_id = max(t["id"] for t in listed)  # ids sort by creation: the newer one
    await page.get_by_role("button", name=f"Revoke token {second_id}").click()
    await expect(page.get_by_text(f"Token {second_id} revoked")).to_be_visible()
    await go(other_page, "Deliveries")
    await expect(other_page.get_by_text("Your session has ended")).to_be_visible()
    await expect(other_page).to_have_url("/ui/sign-in?why=ended")
    await other_context.close()

    # the phone: the same pages, laid out for a narrow screen
    phone = await new_context(browser, served, viewport=PHONE, is_mobile=True)
    phone_page = await phone.new_page()
    await sign_in(phone_page, token)
    width = await phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the overview is {width} px wide on a phone"
    await shoot(phone_page, screenshots, "overview-phone", full_page=False)
    await phone_page.goto("/ui/webhooks")
    await shoot(phone_page, screenshots, "webhooks-phone", full_page=False)
    await phone.close()

    # sign out: back to the sign-in page, and the pages ask for it again
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.goto("/ui/webhooks")
    await expect(page).to_have_url("/ui/sign-in?next=/ui/webhooks")
    assert errors == []
    await context.close()


async def test_a_second_operator_sees_none_of_the_firsts_data(
    served: LiveAPI, browser: Browser, python_receiver: PythonReceiver
) -> None:
    first = await served.hooked("1042", python_receiver.url, name="acme")
    sent = await served.ok("POST", f"/v1/webhooks/{first.webhook['id']}/test", first.token)
    second = await served.operator_at("2001", name="globex")
    context = await new_context(browser, served)
    page = await context.new_page()
    await sign_in(page, second)

    await expect(page.get_by_text(python_receiver.url)).to_have_count(0)
    await go(page, "Deliveries")
    await expect(page.get_by_text(sent["id"])).to_have_count(0)
    for path in (f"/ui/webhooks/{first.webhook['id']}", f"/ui/deliveries/{sent['id']}"):
        answer = await page.goto(path)
        assert answer is not None and answer.status == 404, path
        await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        await expect(page.get_by_text("does not exist")).to_be_visible()
    await context.close()


async def test_a_form_posted_without_its_csrf_token_is_refused(
    served: LiveAPI, browser: Browser
) -> None:
    token = await served.operator_at("1042")
    context = await new_context(browser, served)
    page = await context.new_page()
    await sign_in(page, token)
    await go(page, "Locations")
    await page.get_by_label("Location id").fill("2001")
    await page.get_by_label("Name", exact=True).fill("Airport Lounge")
    # a forged form: the same fields, but not the session's CSRF token
    await page.locator('form[action="/ui/locations"] input[name="csrf_token"]').evaluate(
        "input => input.remove()"
    )
    await page.get_by_role("button", name="Add location").click()
    await expect(page.get_by_role("heading", name="This form was refused")).to_be_visible()
    listed = await served.ok("GET", "/v1/locations", token)
    assert [location["id"] for location in listed["data"]] == ["1042"]
    await context.close()


async def test_the_admin_creates_an_operator_and_its_token(
    served: LiveAPI, browser: Browser
) -> None:
    context = await new_context(browser, served)
    page = await context.new_page()
    await sign_in(page, ADMIN_TOKEN)
    await go(page, "Operators")
    await page.get_by_label("Name", exact=True).fill("initech")
    await page.get_by_role("button", name="Create operator").click()
    created = await page.get_by_label("New token", exact=True).input_value()
    assert created.startswith("hwt_")
    await expect(page.get_by_role("cell", name="initech")).to_be_visible()
    operator = await served.call("GET", "/v1/locations", created)
    assert operator.status_code == 200  # the new operator's token works
    await context.close()
