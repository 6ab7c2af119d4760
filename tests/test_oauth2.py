"""OAuth2 client credentials (SPEC §9) over real HTTP on 127.0.0.1: a token endpoint that
requires the client's credentials and counts its fetches, and a receiver that wants the token.

Names resolve through an injected lookup (``tokens.example`` → 127.0.0.1): no DNS is asked.
Expiry is driven by a clock the test holds; nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import pytest
from aiohttp import web

from hotspot_webhooks.delivery.oauth2 import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    OAuth2Error,
    OAuth2Tokens,
    read_token_answer,
    send_authorized,
)
from hotspot_webhooks.delivery.targets import check_callback_url, forbidden_reason
from hotspot_webhooks.integrations.auth import BearerAuth, OAuth2Auth, request_headers
from tests.receivers import serving
from tests.test_sender import certificate_authority

CLIENT_ID = "hotspot:crm client"  # ":" and " " must be form-encoded before Basic (RFC 6749)
CLIENT_SECRET = "cs-6f1d2a9b7e4c"
WAIT = 10.0  # seconds any wait in these tests may take before it fails, saying what it awaited

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Provider:
    """A token endpoint (``/token``) and an API that wants its tokens (``/hook``)."""

    method: str = "client_secret_basic"  # how the endpoint wants the client authenticated
    expires_in: Any = 3600
    fetches: int = 0
    valid: set[str] = field(default_factory=set)  # tokens /hook accepts
    answer: Handler | None = None  # replaces the endpoint's own answer
    gate: asyncio.Event | None = None  # when set, /token waits for it before answering
    received: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    hooks: list[str] = field(default_factory=list)  # the Authorization of each /hook request

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/hook":
            authorization = request.headers.get("Authorization", "")
            self.hooks.append(authorization)
            ok = authorization.removeprefix("Bearer ") in self.valid
            return web.Response(status=200 if ok else 401)
        if request.path != "/token":
            return web.Response(status=404)
        self.fetches += 1
        self.received.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.answer is not None:
            return await self.answer(request)
        return await self.issue(request)

    async def issue(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.content_type != "application/x-www-form-urlencoded":
            return error(400, "invalid_request", "form-encoded body required")
        if form.get("grant_type") != "client_credentials":
            return error(400, "unsupported_grant_type")
        if self.client(request, form) != (CLIENT_ID, CLIENT_SECRET):
            return error(401, "invalid_client", "Client authentication failed")
        token = f"at-{self.fetches}-{form.get('scope', '')}"
        self.valid.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    def client(self, request: web.Request, form: Any) -> tuple[str, str] | None:
        if self.method == "client_secret_post":
            if "Authorization" in request.headers:
                return None
            return form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic" or "client_secret" in form:
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return unquote_plus(user), unquote_plus(password)

    def auth(self, host: str = "127.0.0.1", **fields: Any) -> OAuth2Auth:
        return OAuth2Auth(
            token_url=f"http://{host}:{self.port}/token",
            client_id=fields.pop("client_id", CLIENT_ID),
            client_secret=fields.pop("client_secret", CLIENT_SECRET),
            **fields,
        )


def error(status: int, code: str, description: str = "") -> web.Response:
    body = {"error": code} | ({"error_description": description} if description else {})
    return web.json_response(body, status=status)


def to_loopback(host: str, port: int) -> Sequence[str]:
    """The injected lookup: every name is 127.0.0.1, and no DNS is asked."""
    return ["127.0.0.1"]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    provider = Provider()
    async with serving(provider.handle) as port:
        provider.port = port
        yield provider
        if provider.gate is not None:
            provider.gate.set()


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def tokens(clock: Clock) -> AsyncIterator[OAuth2Tokens]:
    tokens = OAuth2Tokens(refuse=None, lookup=to_loopback, clock=clock, timeout=WAIT)
    yield tokens
    await tokens.close()


async def within(awaitable: Awaitable[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, WAIT)
    except TimeoutError:
        pytest.fail(f"waited {WAIT:g} s for {what}")


async def failure(tokens: OAuth2Tokens, auth: OAuth2Auth) -> str:
    with pytest.raises(OAuth2Error) as caught:
        await within(tokens.get(auth), "the token fetch to fail")
    assert CLIENT_SECRET not in caught.value.message
    return caught.value.message


# --- fetching and caching -------------------------------------------------------------------


async def test_a_token_is_fetched_with_client_secret_basic_and_cached(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    auth = provider.auth(scope="contacts.write")
    token = await tokens.get(auth)
    assert token == "at-1-contacts.write"
    assert await tokens.get(auth) == token
    assert provider.fetches == 1


async def test_client_secret_post_sends_the_credentials_in_the_form(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    provider.method = "client_secret_post"
    assert "invalid_client" in await failure(tokens, provider.auth())
    assert await tokens.get(provider.auth(client_auth="client_secret_post")) == "at-2-"


async def test_fifty_concurrent_deliveries_cause_one_fetch(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    provider.gate = asyncio.Event()  # the endpoint holds its answer until every caller waits
    auth = provider.auth()
    waiting = [asyncio.ensure_future(tokens.get(auth)) for _ in range(50)]
    await within(provider.received.wait(), "the token endpoint to be asked")
    provider.gate.set()
    got = await within(asyncio.gather(*waiting), "the fifty callers to get their token")
    assert set(got) == {"at-1-"}
    assert provider.fetches == 1


async def test_a_caller_that_gives_up_leaves_the_fetch_to_the_others(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    provider.gate = asyncio.Event()
    auth = provider.auth()
    impatient = asyncio.ensure_future(tokens.get(auth))
    patient = asyncio.ensure_future(tokens.get(auth))
    await within(provider.received.wait(), "the token endpoint to be asked")
    impatient.cancel()
    provider.gate.set()
    assert await within(patient, "the patient caller's token") == "at-1-"
    assert impatient.cancelled()
    assert await tokens.get(auth) == "at-1-"
    assert provider.fetches == 1


async def test_a_token_is_fetched_again_shortly_before_it_expires(
    provider: Provider, tokens: OAuth2Tokens, clock: Clock
) -> None:
    provider.expires_in = 100  # kept for 90 s: 10 % of its life, under the minute
    auth = provider.auth()
    assert await tokens.get(auth) == "at-1-"
    clock.now += 89.9
    assert await tokens.get(auth) == "at-1-"
    clock.now += 0.1
    assert await tokens.get(auth) == "at-2-"
    assert provider.fetches == 2

    provider.expires_in = "7200"  # a number in a string, as some providers send it
    clock.now += 200
    assert await tokens.get(auth) == "at-3-"
    clock.now += 7200 - 60 - 0.1  # a long-lived token: a minute before it expires
    assert await tokens.get(auth) == "at-3-"
    clock.now += 0.1
    assert await tokens.get(auth) == "at-4-"


async def test_a_token_without_expires_in_is_kept_an_hour_less_a_minute(
    provider: Provider, tokens: OAuth2Tokens, clock: Clock
) -> None:
    provider.expires_in = None
    auth = provider.auth()
    await tokens.get(auth)
    clock.now += DEFAULT_LIFETIME - 60 - 0.1
    assert await tokens.get(auth) == "at-1-"
    clock.now += 0.1
    assert await tokens.get(auth) == "at-2-"


@pytest.mark.parametrize("expires_in", [10**400, "1e999", 1e300, 86_401])
def test_no_token_is_kept_longer_than_a_day(expires_in: Any) -> None:
    answer = json.dumps({"access_token": "a", "token_type": "Bearer"}).encode()
    answer = answer[:-1] + f', "expires_in": {expires_in}}}'.encode()
    assert read_token_answer(200, answer, OAuth2Auth("https://a.example/t", "c", "s")) == (
        "a",
        MAX_LIFETIME,
    )


async def test_a_new_secret_or_scope_is_a_token_of_its_own(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    await tokens.get(provider.auth())
    assert await tokens.get(provider.auth(scope="a")) == "at-2-a"
    assert "invalid_client" in await failure(tokens, provider.auth(client_secret="rotated"))
    assert provider.fetches == 3


async def test_the_cache_keeps_at_most_max_entries(provider: Provider, clock: Clock) -> None:
    tokens = OAuth2Tokens(refuse=None, lookup=to_loopback, clock=clock, max_entries=2)
    try:
        for scope in ("a", "b", "c"):
            await tokens.get(provider.auth(scope=scope))
        assert len(tokens) == 2
        await tokens.get(provider.auth(scope="a"))  # the least recently used went first
        assert provider.fetches == 4
    finally:
        await tokens.close()


# --- a 401 from the receiver ----------------------------------------------------------------


async def test_a_401_fetches_a_new_token_exactly_once(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    auth = provider.auth()
    url = f"http://127.0.0.1:{provider.port}/hook"

    async def send(headers: dict[str, str]) -> int:
        async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as sent:
            return sent.status

    assert await send_authorized(auth, tokens, send, lambda status: status == 401) == 200
    provider.valid.clear()  # the provider revokes every token it gave
    assert await send_authorized(auth, tokens, send, lambda status: status == 401) == 200
    assert provider.fetches == 2
    assert provider.hooks == ["Bearer at-1-", "Bearer at-1-", "Bearer at-2-"]

    sent: list[dict[str, str]] = []

    async def always_refused(headers: dict[str, str]) -> int:
        sent.append(headers)
        return 401  # the receiver refuses even a fresh token: no loop, one retry per attempt

    assert await send_authorized(auth, tokens, always_refused, lambda s: s == 401) == 401
    assert sent == [{"Authorization": "Bearer at-2-"}, {"Authorization": "Bearer at-3-"}]
    assert provider.fetches == 3


async def test_invalidating_an_old_token_keeps_the_newer_one(
    provider: Provider, tokens: OAuth2Tokens, clock: Clock
) -> None:
    provider.expires_in = 100
    auth = provider.auth()
    old = await tokens.get(auth)
    clock.now += 95
    new = await tokens.get(auth)
    tokens.invalidate(auth, old)  # a slow delivery's 401 to the token it was sent with
    assert await tokens.get(auth) == new
    tokens.invalidate(auth, new)
    assert await tokens.get(auth) == "at-3-"


async def test_basic_and_bearer_send_once_with_their_header(tokens: OAuth2Tokens) -> None:
    sent: list[dict[str, str]] = []

    async def send(headers: dict[str, str]) -> int:
        sent.append(headers)
        return 401

    bearer = BearerAuth("static-token")
    assert await send_authorized(bearer, tokens, send, lambda s: s == 401) == 401
    assert await send_authorized(None, tokens, send, lambda s: s == 401) == 401
    assert sent == [request_headers(bearer), {}]


# --- what a failing endpoint becomes --------------------------------------------------------


def answering(status: int, body: bytes, content_type: str = "application/json") -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    return answer


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (500, b"<h1>Internal Server Error</h1>", "oauth2 token endpoint answered 500"),
        (503, b'{"error": "temporarily_unavailable"}', "answered 503: temporarily_unavailable"),
        (200, b"access_token=abc&token_type=bearer", "answered 200 with a body that is not JSON"),
        (200, b"[1, 2]", "not JSON"),
        (200, b'{"token_type": "bearer"}', "without an access_token"),
        (200, b'{"access_token": "a b", "token_type": "bearer"}', "without an access_token"),
        (200, b'{"access_token": "a\\r\\nX: 1", "token_type": "bearer"}', "without an access"),
        (200, b'{"access_token": "abc", "token_type": "mac"}', "of type 'mac', not Bearer"),
        (200, b'{"access_token": "abc"}', "of type none, not Bearer"),
        (200, b'{"access_token": "a", "token_type": "Bearer", "expires_in": "soon"}', "number"),
        (200, b'{"access_token": "a", "token_type": "Bearer", "expires_in": -5}', "negative"),
        (200, b"[" * 100_000 + b"]" * 100_000, "more than 65536 bytes"),
        (200, b"[" * 30_000 + b"]" * 30_000, "not JSON"),
    ],
)
async def test_a_bad_answer_is_a_clear_error(
    provider: Provider, tokens: OAuth2Tokens, status: int, body: bytes, says: str
) -> None:
    provider.answer = answering(status, body)
    assert says in await failure(tokens, provider.auth())


async def test_the_endpoints_error_code_and_description_are_said_without_the_secret(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    async def echoing(request: web.Request) -> web.Response:
        form = await request.post()
        return error(400, "invalid_scope", f"bad scope for secret {form['client_secret']}")

    provider.answer = echoing
    message = await failure(tokens, provider.auth(client_auth="client_secret_post"))
    assert message == (
        "oauth2 token endpoint answered 400: invalid_scope (bad scope for secret [redacted])"
    )
    provider.answer = None
    message = await failure(tokens, provider.auth(client_secret="wrong-secret"))
    assert message == (
        "oauth2 token endpoint answered 401: invalid_client (Client authentication failed)"
    )


async def test_a_redirect_is_not_followed(provider: Provider, tokens: OAuth2Tokens) -> None:
    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{provider.port}/token-elsewhere")

    provider.answer = redirecting
    assert "answered 302 (redirects are not followed)" in await failure(tokens, provider.auth())
    assert provider.fetches == 1


async def test_an_oversized_answer_is_cut_off(provider: Provider, tokens: OAuth2Tokens) -> None:
    padding = "x" * (64 * 1024)
    provider.answer = answering(200, json.dumps({"access_token": padding}).encode())
    assert "answered 200 with more than 65536 bytes" in await failure(tokens, provider.auth())

    async def streaming(request: web.Request) -> web.StreamResponse:  # no Content-Length
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" " * 4096)
        return response

    provider.answer = streaming
    assert "with more than 65536 bytes" in await failure(tokens, provider.auth(scope="s"))


async def test_a_compressed_answer_is_not_inflated(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    async def compressing(request: web.Request) -> web.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        bomb = gzip.compress(b'{"access_token": "a", "token_type": "Bearer"' + b" " * 10**7 + b"}")
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    provider.answer = compressing
    assert "answered 200 with a body that is not JSON" in await failure(tokens, provider.auth())


async def test_a_slow_endpoint_is_given_up_on_at_the_timeout(provider: Provider) -> None:
    provider.gate = asyncio.Event()  # never set while the fetch waits
    tokens = OAuth2Tokens(refuse=None, lookup=to_loopback, timeout=0.5)
    try:
        message = await failure(tokens, provider.auth())
    finally:
        await tokens.close()
    assert message == f"oauth2 token endpoint 127.0.0.1:{provider.port} did not answer within 0.5 s"


async def test_an_unreachable_endpoint_is_a_clear_error(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    async with serving(provider.handle) as port:
        closed = OAuth2Auth(f"http://127.0.0.1:{port}/token", CLIENT_ID, CLIENT_SECRET)
    message = await failure(tokens, closed)
    assert message.startswith(f"oauth2 token endpoint 127.0.0.1:{port} could not be reached")


async def test_a_failure_is_answered_from_memory_for_a_few_seconds(
    provider: Provider, tokens: OAuth2Tokens, clock: Clock
) -> None:
    provider.answer = answering(500, b"")
    auth = provider.auth()
    first = await failure(tokens, auth)
    assert await failure(tokens, auth) == first
    assert provider.fetches == 1
    provider.answer = None
    clock.now += tokens.failure_ttl
    assert await tokens.get(auth) == "at-2-"


# --- the SSRF guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "says"),
    [
        (
            "tokens.example",
            "tokens.example resolves to a refused address (127.0.0.1 is a loopback address)",
        ),
        ("localhost", "localhost resolves to a refused address (127.0.0.1 is a loopback address)"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("10.0.0.1", "10.0.0.1 is a private address"),
    ],
)
async def test_a_token_url_on_a_private_address_is_refused_at_fetch_time(
    provider: Provider, host: str, says: str
) -> None:
    guarded = OAuth2Tokens(refuse=forbidden_reason, lookup=to_loopback)
    try:
        assert await failure(guarded, provider.auth(host=host)) == (
            f"oauth2 token endpoint refused: {says}"
        )
    finally:
        await guarded.close()
    assert provider.fetches == 0


async def test_a_token_url_on_a_private_address_is_allowed_when_private_targets_are(
    provider: Provider, tokens: OAuth2Tokens
) -> None:
    assert await tokens.get(provider.auth(host="tokens.example")) == "at-1-"


async def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_refused(
    provider: Provider,
) -> None:
    auth = provider.auth(host="tokens.example")
    public = await check_callback_url(
        auth.token_url,
        allow_private=False,
        field="auth.token_url",
        lookup=lambda host, port: ["93.184.215.14"],
    )
    assert public == auth.token_url  # what create and update check, with the name public then
    guarded = OAuth2Tokens(refuse=forbidden_reason, lookup=to_loopback)  # ... and loopback now
    try:
        assert "resolves to a refused address" in await failure(guarded, auth)
    finally:
        await guarded.close()
    assert provider.fetches == 0


async def test_an_https_token_endpoint_must_show_a_trusted_certificate(
    provider: Provider, tokens: OAuth2Tokens, tmp_path: Path
) -> None:
    _, context = certificate_authority(tmp_path)  # a CA this machine does not trust
    async with serving(provider.handle, ssl_context=context) as port:
        auth = OAuth2Auth(f"https://127.0.0.1:{port}/token", CLIENT_ID, CLIENT_SECRET)
        message = await failure(tokens, auth)
    assert message.startswith(f"oauth2 token endpoint 127.0.0.1:{port} could not be reached")
    assert "certificate verify failed" in message
    assert provider.fetches == 0
