"""The failed-authentication limit (``api.lockout``): after ``FAILURES_ALLOWED`` tokens that
are not valid from one client address within the window, that address is answered 429 with
``Retry-After``, its tokens unchecked; other addresses, and requests that authenticate, are
not counted against it.

Over real HTTP against the API served by uvicorn. All requests come from 127.0.0.1, which
these tests trust as a proxy (``FORWARDED_ALLOW_IPS``), so ``X-Forwarded-For`` names the client
address each test uses (``test_proxy_headers.py``: without that setting it names nothing).
The window's arithmetic and the memory bound are checked on ``FailedAuthLimit`` with a clock
of the test's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotspot_webhooks.api.lockout import FAILURES_ALLOWED, WINDOW_SECONDS, FailedAuthLimit
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.shapes import error_of

BAD_TOKEN = "hwt_not-a-token-anyone-was-given"


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> LiveAPI:
    """The API as behind a reverse proxy on 127.0.0.1 that it trusts."""
    live: LiveAPI = await make_api(forwarded_allow_ips="127.0.0.1")
    return live


def client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def fail(api: LiveAPI, address: str, times: int) -> None:
    for _ in range(times):
        error_of(await api.call("GET", "/v1/locations", BAD_TOKEN, headers=client(address)), 401)


def retry_after(response: httpx.Response) -> int:
    error_of(response, 429)
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= WINDOW_SECONDS
    return seconds


async def test_too_many_bad_tokens_from_one_address_answer_429_with_retry_after(
    api: LiveAPI,
) -> None:
    await fail(api, "203.0.113.7", FAILURES_ALLOWED)

    refused = await api.call("GET", "/v1/locations", BAD_TOKEN, headers=client("203.0.113.7"))

    retry_after(refused)
    message = refused.json()["error"]["message"]
    assert "203.0.113.7" in message and "try again in" in message
    assert len(message.splitlines()) == 1


async def test_a_locked_out_address_is_refused_without_its_token_being_checked(
    api: LiveAPI,
) -> None:
    await fail(api, "203.0.113.8", FAILURES_ALLOWED)

    # a valid token from that address is not looked at either
    retry_after(await api.call("GET", "/v1/locations", ADMIN_TOKEN, headers=client("203.0.113.8")))
    retry_after(await api.call("GET", "/v1/locations", None, headers=client("203.0.113.8")))
    # what needs no token still answers
    assert (await api.call("GET", "/healthz", None, headers=client("203.0.113.8"))).is_success


async def test_other_addresses_are_not_locked_out(api: LiveAPI) -> None:
    await fail(api, "203.0.113.9", FAILURES_ALLOWED)
    retry_after(await api.call("GET", "/v1/locations", headers=client("203.0.113.9")))

    await api.ok("GET", "/v1/locations", headers=client("198.51.100.1"))
    error_of(await api.call("GET", "/v1/locations", BAD_TOKEN, headers=client("198.51.100.1")), 401)


async def test_successful_authentication_is_never_counted(api: LiveAPI) -> None:
    for _ in range(3 * FAILURES_ALLOWED):
        await api.ok("GET", "/v1/locations", headers=client("203.0.113.10"))
    await fail(api, "203.0.113.10", FAILURES_ALLOWED - 1)

    await api.ok("GET", "/v1/locations", headers=client("203.0.113.10"))
    await fail(api, "203.0.113.10", 1)  # the last one allowed
    retry_after(await api.call("GET", "/v1/locations", headers=client("203.0.113.10")))


async def test_requests_without_a_token_are_not_counted(api: LiveAPI) -> None:
    for _ in range(FAILURES_ALLOWED + 5):
        error_of(await api.call("GET", "/v1/locations", None, headers=client("203.0.113.11")), 401)

    await api.ok("GET", "/v1/locations", headers=client("203.0.113.11"))


# ---- FailedAuthLimit, with a clock of the test's own ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lockout_ends_with_the_window_and_retry_after_counts_down() -> None:
    clock = Clock()
    limit = FailedAuthLimit(allowed=3, window=60, clock=clock)
    for _ in range(3):
        assert limit.retry_after("a") is None
        limit.failed("a")

    assert limit.retry_after("a") == 60
    clock.now += 45.5
    assert limit.retry_after("a") == 15
    clock.now += 14.5
    assert limit.retry_after("a") is None
    limit.failed("a")  # a new window: one failure so far
    assert limit.retry_after("a") is None


def test_failures_spread_wider_than_the_window_never_lock_out() -> None:
    clock = Clock()
    limit = FailedAuthLimit(allowed=3, window=60, clock=clock)
    for _ in range(10):
        limit.failed("a")
        limit.failed("a")
        clock.now += 61

    assert limit.retry_after("a") is None


def test_memory_is_bounded_by_the_number_of_tracked_addresses() -> None:
    limit = FailedAuthLimit(allowed=3, addresses=100, clock=Clock())

    for n in range(10_000):
        limit.failed(f"10.0.{n // 256}.{n % 256}")

    assert len(limit) == 100
