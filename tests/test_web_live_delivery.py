"""A pending delivery's page updates in place (U2 of issue 25, on the delivery's own page): new
attempts appear and its summary changes, while the keyboard's focus, the attempts opened or
closed, the text selected and what the screen shows stay where they were.

In a real browser (headless Chromium, as ``tests/test_web_browser.py``), with the dispatcher
sending to a receiver that answers 500, again at every pass (1 s apart), so attempts keep coming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_browser import browser, new_context, refusing, sign_in
from tests.test_web_live_list import is_focused, top_of

__all__ = ["browser", "refusing"]  # the fixtures, shared with the browser tests

COUNT_POLLS = """() => {
  window.polls = 0;
  document.body.addEventListener("htmx:afterRequest", () => { window.polls += 1; }, true);
}"""

ATTEMPTS = "#delivery-live details.attempt"


async def polls(page: Page) -> int:
    counted: int = await page.evaluate("window.polls")
    return counted


async def attempts_shown(page: Page) -> int:
    return await page.locator(ATTEMPTS).count()


async def wait_for_polls_with_new_attempts(page: Page, more: int) -> None:
    """Until the page has polled ``more`` times, each bringing at least one new attempt."""
    for _ in range(more):
        start, shown = await polls(page), await attempts_shown(page)
        for _ in range(300):
            if await polls(page) > start and await attempts_shown(page) > shown:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(
                f"in 30 s the page polled {await polls(page) - start} times and showed "
                f"{await attempts_shown(page) - shown} new attempts, not at least one of each"
            )


async def failing_delivery(make_api: Callable[..., Any], url: str) -> tuple[LiveAPI, str, str]:
    """The API, an operator's token and the id of a delivery to ``url``, sent again at every
    pass (1 s apart) while it fails: a retry policy that leaves it pending for minutes."""
    served: LiveAPI = await make_api(
        low_latency=True, interval=1.0, max_retries=100, circuit_threshold=1000
    )
    token = (await served.hooked("1042", url)).token
    event = await served.ok(
        "POST",
        "/v1/events",
        token,
        json={"type": "customer.create", "location_id": "1042", "data": {"id": "7"}},
    )
    found = await served.ok("GET", f"/v1/deliveries?event_id={event['id']}", token)
    return served, token, found["data"][0]["id"]


async def wait_for_attempts(served: LiveAPI, token: str, delivery_id: str, count: int) -> None:
    for _ in range(300):
        found = await served.ok("GET", f"/v1/deliveries/{delivery_id}", token)
        if found["attempt_count"] >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the delivery was not attempted {count} times in 30 s: {found}")


async def test_new_attempts_appear_while_focus_details_selection_and_scroll_stay(
    make_api: Callable[..., Any], browser: Browser, refusing: Any
) -> None:
    served, token, delivery_id = await failing_delivery(make_api, refusing.url)
    await wait_for_attempts(served, token, delivery_id, 2)  # the older one starts closed

    context = await new_context(browser, served, viewport={"width": 1280, "height": 700})
    page: Page = await context.new_page()
    await sign_in(page, token)
    await page.goto(f"/ui/deliveries/{delivery_id}")
    await expect(page.locator("#delivery-live .pill").first).to_have_text("pending")
    await page.evaluate(COUNT_POLLS)
    await page.evaluate("document.getElementById('delivery-live').keptInPlace = true")
    # as in Safari, which does not anchor scrolling: app.js keeps the view where it was itself
    # (tests/test_web_live_list.py has Chromium's scroll anchoring on)
    await page.evaluate("""() => {
      document.documentElement.style.overflowAnchor = "none";
      document.body.style.overflowAnchor = "none";
    }""")

    # 1. "Retry now" focused from the keyboard's point of view: it keeps the focus
    retry = page.get_by_role("button", name="Retry now")
    await retry.focus()
    await retry.evaluate("b => { b.keptInPlace = true; }")
    await wait_for_polls_with_new_attempts(page, 2)
    assert await is_focused(retry), "the focus fell off Retry now as the page updated"
    assert await retry.evaluate("b => b.keptInPlace === true"), "Retry now was replaced"

    # 2. the first attempt opened, its "Copy as curl" focused, the page scrolled to it, the
    #    response's text selected: all of that stays as new attempts arrive above it
    #    (and the newest attempt, open at first, closed: it stays closed)
    newest = page.locator(ATTEMPTS).first
    newest_id = await newest.get_attribute("id")
    await newest.locator("summary").click()
    assert not await newest.evaluate("d => d.open"), "the newest attempt should close on a click"
    first = page.locator("#attempt-1")
    await first.locator("summary").click()
    assert await first.evaluate("d => d.open"), "attempt 1 should open on a click"
    copy = page.locator("#copy-curl-1")
    await copy.focus()
    await first.evaluate("d => d.scrollIntoView({block: 'start'})")
    scrolled: Any = await page.evaluate("window.scrollY")
    assert scrolled > 0, "the page should be scrolled for this test"
    await first.evaluate("""d => {
      const range = document.createRange();
      range.selectNodeContents(d.querySelector("pre.excerpt code"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }""")
    selected = await page.evaluate("window.getSelection().toString()")
    assert selected.strip(), "the response's excerpt should be selected"
    where = await top_of(copy)
    before = await attempts_shown(page)
    await first.evaluate("d => { d.keptInPlace = true; }")

    await wait_for_polls_with_new_attempts(page, 2)
    assert await attempts_shown(page) >= before + 2
    numbers = await page.locator(ATTEMPTS).evaluate_all("ds => ds.map(d => d.id)")
    assert numbers == [f"attempt-{n}" for n in range(len(numbers), 0, -1)]  # newest first
    await expect(page.locator("#delivery-live dl.facts")).to_contain_text(str(len(numbers)))

    assert await is_focused(copy), "the focus fell off Copy as curl as the page updated"
    assert await first.evaluate("d => d.open"), "the opened attempt closed as the page updated"
    closed = page.locator(f"#{newest_id}")
    assert not await closed.evaluate("d => d.open"), "the closed attempt opened as the page updated"
    assert await first.evaluate("d => d.keptInPlace === true"), "the attempt was replaced"
    assert await page.evaluate("document.getElementById('delivery-live').keptInPlace === true")
    assert await page.evaluate("window.getSelection().toString()") == selected
    # what the screen shows stays put, though attempts were added above it
    after = await top_of(copy)
    assert abs(after - where) <= 2, f"Copy as curl moved on screen: {where} → {after}"
    assert await page.evaluate("window.scrollY") > scrolled
    await context.close()


async def test_a_delivery_that_succeeds_while_watched_shows_it_in_place_then_stops_asking(
    make_api: Callable[..., Any], browser: Browser
) -> None:
    answer = {"status": 500}
    receiver = await PythonReceiver(respond=lambda n: answer["status"]).start()
    try:
        served, token, delivery_id = await failing_delivery(make_api, receiver.url)
        context = await new_context(browser, served)
        page: Page = await context.new_page()
        await sign_in(page, token)
        await page.goto(f"/ui/deliveries/{delivery_id}")
        status = page.locator("#delivery-live .page-head .pill")
        await expect(status).to_have_text("pending")
        await page.evaluate(COUNT_POLLS)
        retry = page.get_by_role("button", name="Retry now")
        await retry.focus()
        await retry.evaluate("b => { b.keptInPlace = true; }")

        answer["status"] = 200
        await expect(status).to_have_text("succeeded", timeout=15_000)
        await expect(page.locator(ATTEMPTS).first).to_contain_text("HTTP 200")
        assert await is_focused(retry), "the focus fell off Retry now as the page updated"
        assert await retry.evaluate("b => b.keptInPlace === true"), "Retry now was replaced"
        # done: the page asks for nothing more (2 s polls; 5 s without one)
        asked = await polls(page)
        await asyncio.sleep(5)
        assert await polls(page) == asked, "the page kept polling a delivery that is done"
        await context.close()
    finally:
        await receiver.stop()


async def test_without_script_a_pending_delivery_page_is_a_plain_page_with_a_refresh_link(
    make_api: Callable[..., Any], browser: Browser, refusing: Any
) -> None:
    served, token, delivery_id = await failing_delivery(make_api, refusing.url)
    context = await new_context(browser, served, java_script_enabled=False)
    page: Page = await context.new_page()
    await sign_in(page, token)
    await page.goto(f"/ui/deliveries/{delivery_id}")
    await expect(page.locator("#delivery-live .page-head .pill")).to_have_text("pending")
    shown = await attempts_shown(page)
    await wait_for_attempts(served, token, delivery_id, shown + 1)
    await page.get_by_role("link", name="refresh").click()
    await expect(page.locator("#delivery-live .page-head .pill")).to_have_text("pending")
    assert await attempts_shown(page) > shown, "following refresh showed no new attempt"
    await context.close()
