"""The SSRF guard on hosts as curl looks them up (S10), and on resolvers that do not answer (S13).

S10: ``169.254.169.254.``, ``localhost.`` and ``name.`` are what their dotless forms are to curl,
but glibc's resolver cannot look them up with the dot, so the guard judged them unresolvable and
let them through. They are judged as the dotless form now (``targets.judged_host``), at creation
(the guard function, the REST API's create and update) and at connect time.

S13: a host name is resolved in the guard's own threads, for at most ``RESOLVE_TIMEOUT`` seconds:
while a resolver hangs, the API (and the dispatcher on the same loop) keeps answering, and the
creation is answered 422 naming ``callback_url`` once the time is up.

No DNS: resolvers are stand-ins (``HostsFile``), passed to the guard or put in the place of
``socket.getaddrinfo`` for the names they know, the real one answering for 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pycurl
import pytest
from aiohttp import web

from hotspot_webhooks.delivery import targets
from hotspot_webhooks.delivery.sender import Sender
from hotspot_webhooks.delivery.targets import check_callback_url, forbidden_reason
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.validation import CALLBACK_URL_PATTERN
from tests.live_api import LiveAPI
from tests.receivers import serving
from tests.shapes import error_of

PUBLIC_V4 = "93.184.216.34"
SLOW = "slow.example"  # the name whose DNS server never answers


class HostsFile:
    """A resolver as glibc's ``files`` backend is: it knows names as listed, without a
    trailing dot (``intranet.example.`` is not found), and ``SLOW`` hangs until released or
    30 s pass, as a DNS server that never answers. Records every name asked."""

    def __init__(self) -> None:
        self.names = {
            "intranet.example": ["10.0.0.5"],
            "metadata.internal": ["169.254.169.254"],
            "receiver.example": [PUBLIC_V4],
        }
        self.asked: list[str] = []
        self.release = threading.Event()

    def lookup(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host == SLOW:
            self.release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[host]


@pytest.fixture
def hosts() -> Iterator[HostsFile]:
    found = HostsFile()
    yield found
    found.release.set()  # the guard's threads are freed for the next test


def no_lookup(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host} was looked up: an address is judged without a resolver")


async def refused(url: str, lookup: targets.Lookup = no_lookup, **options: Any) -> str:
    """The guard's message for ``url`` (it must be refused, naming callback_url)."""
    with pytest.raises(InvalidInput) as info:
        await check_callback_url(url, allow_private=False, lookup=lookup, **options)
    assert [d["field"] for d in info.value.details] == ["callback_url"]
    assert info.value.status == 422
    return info.value.message


# ---- S10: a trailing dot, in the guard function ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254./latest/meta-data/", "169.254.169.254, a link-local address"),
        ("http://127.0.0.1./hook", "127.0.0.1, a loopback address"),
        ("http://127.0.0.1.:8080/hook", "127.0.0.1, a loopback address"),
        ("http://10.0.0.1./hook", "10.0.0.1, a private address"),
        ("http://localhost./hook", "localhost. is a loopback name"),
        ("http://LocalHost.LocalDomain./hook", "is a loopback name"),
        ("http://127.1./hook", "127.1. is 127.0.0.1, a loopback address"),
        ("http://0x7f.1./hook", "127.0.0.1, a loopback address"),
        ("http://2130706433./hook", "127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/hook", "127.0.0.1, a loopback address"),
        # percent-encoding, which curl decodes, is decoded before judging too
        ("http://%31%32%37.0.0.1/hook", "127.0.0.1, a loopback address"),
        ("http://169.254.169.254%2e/hook", "169.254.169.254, a link-local address"),
    ],
)
async def test_an_address_with_a_trailing_dot_is_refused_as_its_dotless_form(
    url: str, reason: str
) -> None:
    message = await refused(url)
    assert "target not allowed" in message and reason in message, message


@pytest.mark.parametrize(
    ("url", "asked", "reason"),
    [
        ("http://intranet.example./hook", "intranet.example", "10.0.0.5 is a private address"),
        ("http://metadata.internal./x", "metadata.internal", "169.254.169.254 is a link-local"),
        ("http://INTRANET.example/hook", "intranet.example", "10.0.0.5 is a private address"),
    ],
)
async def test_a_name_with_a_trailing_dot_is_resolved_without_it_and_refused(
    hosts: HostsFile, url: str, asked: str, reason: str
) -> None:
    message = await refused(url, hosts.lookup)
    assert "resolves to a refused address" in message and reason in message, message
    assert hosts.asked == [asked]


@pytest.mark.parametrize("url", [f"http://{PUBLIC_V4}./hook", "https://receiver.example./hook?x=1"])
async def test_a_public_target_with_a_trailing_dot_is_accepted_as_written(
    hosts: HostsFile, url: str
) -> None:
    assert await check_callback_url(url, allow_private=False, lookup=hosts.lookup) == url


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://name../hook", "empty label"),
        ("http://.name/hook", "empty label"),
        ("http://intranet..example/hook", "empty label"),
        ("http://127.0.0.1../hook", "empty label"),
        ("http://[::1]./hook", "not a :port"),
        (f"http://[::ffff:{PUBLIC_V4}]x/hook", "not a :port"),
    ],
)
async def test_a_host_with_more_than_one_dot_at_the_end_or_an_empty_label_is_invalid(
    url: str, problem: str, allow_private: bool
) -> None:
    with pytest.raises(InvalidInput) as info:
        await check_callback_url(url, allow_private=allow_private, lookup=no_lookup)
    assert problem in info.value.message and "callback_url" in info.value.message
    assert re.fullmatch(CALLBACK_URL_PATTERN, url) is None  # the published shape agrees


@pytest.mark.parametrize(
    "url", ["http://a.b./x", "http://a.b/x", f"http://{PUBLIC_V4}.:8080/x", "http://x./"]
)
def test_the_published_shape_allows_one_trailing_dot(url: str) -> None:
    assert re.fullmatch(CALLBACK_URL_PATTERN, url)


@pytest.mark.parametrize(
    "url",
    [
        "http://[fe80::1%2512]/hook",  # the zone "12", written as RFC 6874 says
        "http://[fe80::1%12]/hook",  # and as people write it
        "http://[fe80::1%25eth0]/hook",
    ],
)
async def test_the_zone_of_an_ipv6_literal_is_not_taken_for_percent_encoding(url: str) -> None:
    message = await refused(url)
    assert "link-local address" in message, message


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254.", "link-local"),
        ("127.0.0.1.", "loopback"),
        ("10.1.2.3.", "private"),
        ("fe80::1%12", "link-local"),
    ],
)
def test_forbidden_reason_judges_an_address_with_a_trailing_dot(address: str, kind: str) -> None:
    assert forbidden_reason(address) == f"{address} is a {kind} address"


# ---- S10: through the REST API ------------------------------------------------------------


@pytest.fixture
def system_hosts(hosts: HostsFile, monkeypatch: pytest.MonkeyPatch) -> HostsFile:
    """``hosts`` in the place of this process's resolver for the names it knows (and ``SLOW``);
    127.0.0.1 and localhost still resolve, by the real one, for the test's own connections."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (None, "localhost", "127.0.0.1", "::1"):
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))
            for address in hosts.lookup(str(host), int(port or 0))
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return hosts


@pytest.fixture
async def guarded(make_api: Callable[..., Any]) -> LiveAPI:
    """The API as production runs it: private targets refused, the dispatcher on."""
    api: LiveAPI = await make_api(allow_private_targets=False)
    return api


def webhook_body(url: str) -> dict[str, Any]:
    return {"location_id": "loc-1", "event_type": "customer.create", "callback_url": url}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254./latest/meta-data/",
        "http://127.0.0.1./hook",
        "http://localhost./hook",
        "http://intranet.example./hook",
    ],
)
async def test_the_api_refuses_a_trailing_dot_target_at_creation_and_update(
    guarded: LiveAPI, system_hosts: HostsFile, url: str
) -> None:
    token = await guarded.operator_at("loc-1")
    kept = await guarded.webhook(token, "loc-1", f"http://{PUBLIC_V4}/hook")

    created = await guarded.call("POST", "/v1/webhooks", token, json=webhook_body(url))
    patched = await guarded.call(
        "PATCH", f"/v1/webhooks/{kept['id']}", token, json={"callback_url": url}
    )

    assert "not allowed" in error_of(created, 422, "callback_url")["message"]
    assert "not allowed" in error_of(patched, 422, "callback_url")["message"]
    listed = await guarded.ok("GET", "/v1/webhooks", token)
    assert [hook["callback_url"] for hook in listed["data"]] == [f"http://{PUBLIC_V4}/hook"]


# ---- S10: at connect time -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1.", "localhost."])
async def test_the_connect_time_guard_refuses_a_trailing_dot_target_and_nothing_arrives(
    host: str,
) -> None:
    arrived: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        arrived.append(request.path)
        return web.Response(text="ok")

    sender = Sender(timeout=2.0, allow_private=False)
    async with serving(handle) as port:
        result = await sender.send(f"http://{host}:{port}/", b"{}", {})
        await sender.close()
    assert arrived == [] and result.status is None
    assert result.error is not None and "is a loopback address" in result.error, result.error


# ---- S13: a resolver that does not answer ---------------------------------------------------


class Ticker:
    """Notes the longest the event loop went without running it (every 50 ms)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_hanging_resolver_is_given_up_on_off_the_event_loop(hosts: HostsFile) -> None:
    started = time.monotonic()
    with Ticker() as ticker:
        message = await refused(f"http://{SLOW}/hook", hosts.lookup, resolve_within=0.5)
    took = time.monotonic() - started

    assert f"looking up {SLOW} took longer than 0.5 s" in message, message
    assert 0.5 <= took < 10, took  # answered at the time limit, not when the resolver gives up
    assert ticker.longest < 1, f"the event loop stalled for {ticker.longest:.1f} s"


async def test_more_hanging_lookups_than_the_guard_has_threads_each_answer_in_time(
    hosts: HostsFile,
) -> None:
    many = 2 * targets.RESOLVER_THREADS + 1
    started = time.monotonic()
    with Ticker() as ticker:
        answers = await asyncio.gather(
            *(refused(f"http://{SLOW}/{n}", hosts.lookup, resolve_within=0.5) for n in range(many))
        )
        # the loop's own threads are not among those held
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 5) == "free"
    assert all("took longer than 0.5 s" in answer for answer in answers)
    assert time.monotonic() - started < 10
    assert ticker.longest < 1, f"the event loop stalled for {ticker.longest:.1f} s"


async def test_the_api_keeps_answering_while_a_creation_waits_on_a_hanging_resolver(
    guarded: LiveAPI, system_hosts: HostsFile
) -> None:
    token = await guarded.operator_at("loc-1")
    started = time.monotonic()
    creating = asyncio.create_task(
        guarded.call("POST", "/v1/webhooks", token, json=webhook_body(f"http://{SLOW}/x"))
    )
    slowest = 0.0
    while not creating.done() and time.monotonic() - started < 25:
        asked = time.monotonic()
        assert (await guarded.call("GET", "/healthz", None)).status_code == 200
        await guarded.ok("GET", "/v1/locations", token)
        slowest = max(slowest, time.monotonic() - asked)
        await asyncio.sleep(0.1)
    created = await asyncio.wait_for(creating, 5)
    took = time.monotonic() - started

    message = error_of(created, 422, "callback_url")["message"]
    assert f"looking up {SLOW} took longer than {targets.RESOLVE_TIMEOUT:g} s" in message
    assert targets.RESOLVE_TIMEOUT - 0.5 <= took < 20, took
    assert slowest < 1, f"the API took {slowest:.1f} s to answer while the resolver hung"
    assert system_hosts.asked.count(SLOW) == 1


def test_curl_resolves_names_in_a_thread_of_its_own_at_connect_time() -> None:
    # the dispatcher's side of S13: libcurl built with an asynchronous resolver (threaded or
    # c-ares) looks names up off the event loop, within the attempt's total timeout
    features = pycurl.version_info()[4]
    assert features & pycurl.VERSION_ASYNCHDNS, pycurl.version
