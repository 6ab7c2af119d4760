"""The live deliveries list updates in place (U2 of issue 25): new rows appear and changed ones
change, while the keyboard's focus and what the screen shows stay where they were.

In a real browser (headless Chromium, as ``tests/test_web_browser.py``), with the dispatcher
delivering to a real receiver.
"""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_browser import browser, new_context, served, sign_in

__all__ = ["browser", "served"]  # the fixtures, shared with the browser tests

COUNT_POLLS = """() => {
  window.polls = 0;
  document.body.addEventListener("htmx:afterRequest", () => { window.polls += 1; }, true);
}"""


async def emit(api: LiveAPI, token: str, n: int) -> list[str]:
    """``n`` events at location 1042; the ids of their deliveries."""
    ids = []
    for i in range(n):
        event = await api.ok(
            "POST",
            "/v1/events",
            token,
            json={"type": "customer.create", "location_id": "1042", "data": {"id": f"{i}"}},
        )
        [delivery] = (await api.ok("GET", f"/v1/deliveries?event_id={event['id']}", token))["data"]
        ids.append(delivery["id"])
    return ids


async def polls(page: Page) -> int:
    counted: int = await page.evaluate("window.polls")
    return counted


async def wait_for_polls(page: Page, more: int) -> None:
    """Until the list has asked for its rows ``more`` times again (2 s each)."""
    start = await polls(page)
    for _ in range(300):
        if await polls(page) >= start + more:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the list polled {await polls(page) - start} times in 30 s, not {more}")


async def is_focused(element: Locator) -> bool:
    focused: bool = await element.evaluate("e => e === document.activeElement")
    return focused


async def top_of(element: Locator) -> float:
    top: float = await element.evaluate("e => e.getBoundingClientRect().top")
    return top


async def test_new_deliveries_appear_while_focus_and_scroll_stay(
    served: LiveAPI, browser: Browser, python_receiver: PythonReceiver
) -> None:
    hooked = await served.hooked("1042", python_receiver.url)
    older = await emit(served, hooked.token, 30)
    for delivery_id in older:
        await served.wait_for_delivery(hooked.token, delivery_id, "succeeded")
    context = await new_context(browser, served)
    page: Page = await context.new_page()
    await sign_in(page, hooked.token)
    await page.goto("/ui/deliveries")
    await expect(page.locator("tr[data-delivery]")).to_have_count(30)
    await page.evaluate(COUNT_POLLS)

    # a link far down the list, focused from the keyboard's point of view, the page scrolled
    focused = page.get_by_role("link", name=older[5], exact=True)
    await focused.focus()
    await wait_for_polls(page, 1)
    assert await is_focused(focused), "the focus fell out of the list as it updated"
    scrolled: Any = await page.evaluate("window.scrollY")
    assert scrolled > 0, "the page should be scrolled for this test"
    where = await top_of(focused)

    # new deliveries arrive, and the focused row's own delivery is sent again: its row changes
    focused_row = page.locator(f'tr[data-delivery="{older[5]}"]')
    await focused_row.evaluate("row => { row.keptInPlace = true; }")
    await served.ok("POST", f"/v1/deliveries/{older[5]}/retry", hooked.token)
    newer = await emit(served, hooked.token, 2)
    for delivery_id in newer:
        row = page.locator(f'tr[data-delivery="{delivery_id}"]')
        await expect(row.locator(".pill")).to_have_text("succeeded", timeout=15_000)
    await expect(focused_row).to_contain_text("2 attempts", timeout=15_000)
    await wait_for_polls(page, 2)
    await expect(page.locator("tr[data-delivery]")).to_have_count(32)
    first = await page.locator("tr[data-delivery]").first.get_attribute("data-delivery")
    assert first == newer[-1]  # newest first

    assert await is_focused(focused), "the focus fell out of the list as it updated"
    assert await focused_row.evaluate("row => row.keptInPlace === true"), "the row was replaced"
    # what the screen shows stays put: the browser keeps the focused row where it was (scroll
    # anchoring), scrolling down by the rows added above it
    after = await top_of(focused)
    assert abs(after - where) <= 2, f"the focused link moved on screen: {where} → {after}"
    assert await page.evaluate("window.scrollY") >= scrolled
    await context.close()
