"""OAuth2 client credentials (RFC 6749 §4.4): access tokens fetched, cached, fetched again.

A webhook with ``auth.type == "oauth2"`` sends ``Authorization: Bearer <access token>``; the
token comes from ``OAuth2Tokens.get``, which asks the token endpoint only when it must:

* **cached** per (token_url, client_id, scope, client_auth, a fingerprint of the secret), so a
  changed secret is a new entry, and until shortly before expiry: ``expires_in`` less
  min(60 s, 10 %) (a token that lives 30 s is used for 27). An answer without ``expires_in``
  counts as an hour (``DEFAULT_LIFETIME``; RFC 6749 leaves it to the provider, and a token
  that dies sooner is caught by the 401 below); none is kept longer than a day
  (``MAX_LIFETIME``). The least recently used entries go past ``max_entries``;
* **single-flight**: deliveries that want the same token while it is being fetched wait for
  that one fetch;
* **fetched again once on a 401**: the caller hands the refused token to ``invalidate`` and
  asks ``get`` again; ``send_authorized`` is that protocol (one retry per attempt, never a
  loop). A token another fetch has replaced meanwhile is not thrown away;
* a **failed fetch** is an ``OAuth2Error`` whose message is the attempt's error
  (``oauth2 token endpoint answered 401: invalid_client``). It never holds the secret or the
  endpoint's body as such, only its RFC 6749 §5.2 ``error`` code and a short description. The
  failure is kept ``FAILURE_TTL`` seconds, so a burst of deliveries to a broken endpoint is one
  request, not one each.

Every fetch is bounded: ``timeout`` seconds in all, an answer of at most ``max_bytes`` (asked
for and read uncompressed), no redirect followed, no proxy or cookie taken from anywhere. The
token URL passes the SSRF guard at every fetch, on the addresses it is about to connect to, so
a name that rebinds to an internal address is refused. The guard is handed in (``refuse``:
``delivery.targets.forbidden_reason``, or None when private targets are allowed; ``lookup``:
``targets.system_lookup``) so that this package stands apart from the delivery engine and
tests resolve names to 127.0.0.1 without asking any DNS.

HTTP is aiohttp's: one request per token lifetime, off the delivery hot path, where pycurl's
speed buys nothing and aiohttp's resolver hook carries the guard in a few lines.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import HotspotWebhooksError
from ..integrations.auth import Auth, OAuth2Auth, request_headers
from ..redaction import REDACTED
from ..signing import USER_AGENT

TIMEOUT = 10.0  # seconds for one fetch, from resolving the name to the last byte
MAX_BYTES = 64 * 1024  # of a token endpoint's answer
MAX_ENTRIES = 10_000  # tokens kept, least recently used dropped first
DEFAULT_LIFETIME = 3600.0  # seconds, for an answer without expires_in
MAX_LIFETIME = 86_400.0  # a token is fetched again at least daily
MARGIN = 60.0  # a token is fetched again this long before it expires, or 10 % of its life
FAILURE_TTL = 10.0  # seconds a failed fetch is answered from memory
RESOLVER_THREADS = 2

AddressReason = Callable[[str], str | None]
"""Why an address may not be called, or None: ``delivery.targets.forbidden_reason``."""
Lookup = Callable[[str, int], Sequence[str]]
"""A blocking resolver, (host, port) → addresses: ``delivery.targets.system_lookup``."""

# RFC 6749 §5.2: error is NQSCHAR; error_description NQSCHAR with spaces
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,100}")
_DESCRIPTION_KEPT = 200  # characters of error_description shown
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")  # it stands in a header as it is

R = TypeVar("R")


class OAuth2Error(HotspotWebhooksError):
    """The token endpoint did not give a usable token; the message says what it did."""

    status = 502


class TokenKey(NamedTuple):
    """What one cached token is for. The secret is a per-process HMAC of it, never itself."""

    token_url: str
    client_id: str
    scope: str | None
    client_auth: str
    secret: bytes


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # by the injected clock


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    until: float


class _Refused(OSError):
    """The SSRF guard's answer for a name, raised from the resolver so aiohttp gives up."""


class OAuth2Tokens:
    """Access tokens for every oauth2 webhook of a process: open one, share it, ``close`` it.

    ``clock`` (monotonic seconds) is injectable so that expiry is tested without waiting.
    """

    def __init__(
        self,
        *,
        refuse: AddressReason | None,
        lookup: Lookup,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = TIMEOUT,
        max_bytes: int = MAX_BYTES,
        max_entries: int = MAX_ENTRIES,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.refuse = refuse
        self.lookup = lookup
        self.clock = clock
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.failure_ttl = failure_ttl
        self._salt = os.urandom(32)
        self._cache: OrderedDict[TokenKey, _Token | _Failure] = OrderedDict()
        self._fetching: dict[TokenKey, asyncio.Task[str]] = {}
        self._session: aiohttp.ClientSession | None = None

    def key(self, auth: OAuth2Auth) -> TokenKey:
        fingerprint = hmac.new(self._salt, auth.client_secret.encode(), hashlib.sha256).digest()
        return TokenKey(auth.token_url, auth.client_id, auth.scope, auth.client_auth, fingerprint)

    async def get(self, auth: OAuth2Auth) -> str:
        """An access token for ``auth``: the cached one while it is fresh, else one fetch
        shared by every caller that asks meanwhile. Raises ``OAuth2Error``."""
        key = self.key(auth)
        kept = self._cache.get(key)
        if kept is not None:
            if isinstance(kept, _Token) and self.clock() < kept.refresh_at:
                self._cache.move_to_end(key)
                return kept.value
            if isinstance(kept, _Failure) and self.clock() < kept.until:
                raise OAuth2Error(kept.message)
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_keep(key, auth))
            self._fetching[key] = task
            task.add_done_callback(functools.partial(self._fetched, key))
        # a caller that gives up (its attempt was cancelled) leaves the fetch to the others
        return await asyncio.shield(task)

    def invalidate(self, auth: OAuth2Auth, access_token: str) -> None:
        """Forget ``access_token`` (the receiver answered 401 to it): the next ``get`` fetches.
        A newer token, fetched meanwhile by another delivery, is kept."""
        key = self.key(auth)
        kept = self._cache.get(key)
        if isinstance(kept, _Token) and hmac.compare_digest(kept.value, access_token):
            del self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)

    async def close(self) -> None:
        for task in list(self._fetching.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _fetched(self, key: TokenKey, task: asyncio.Task[str]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled():
            task.exception()  # retrieved: each waiter has it raised; none may be left waiting

    async def _fetch_and_keep(self, key: TokenKey, auth: OAuth2Auth) -> str:
        started = self.clock()
        try:
            token, lifetime = await self._fetch(auth)
        except OAuth2Error as exc:
            self._keep(key, _Failure(exc.message, self.clock() + self.failure_ttl))
            raise
        # counted from the request, not the answer: the provider's clock started about then
        self._keep(key, _Token(token, started + lifetime - min(MARGIN, lifetime / 10)))
        return token

    def _keep(self, key: TokenKey, entry: _Token | _Failure) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _fetch(self, auth: OAuth2Auth) -> tuple[str, float]:
        """One request to the token endpoint: (access token, lifetime in seconds)."""
        try:
            status, body = await self._post(auth)
        except OAuth2Error as exc:
            raise OAuth2Error(_scrubbed(exc.message, auth)) from None
        return read_token_answer(status, body, auth)

    async def _post(self, auth: OAuth2Auth) -> tuple[int, bytes]:
        parts = urlsplit(auth.token_url)
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        literal_reason = self.refuse(parts.hostname or "") if self.refuse else None
        if literal_reason:  # an address in the URL: aiohttp does not ask the resolver
            raise OAuth2Error(f"oauth2 token endpoint refused: {literal_reason}")
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # nothing to inflate: no bomb to defuse
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        }
        if auth.client_auth == "client_secret_basic":
            headers["Authorization"] = _basic(auth.client_id, auth.client_secret)
        else:
            form |= {"client_id": auth.client_id, "client_secret": auth.client_secret}
        try:
            async with asyncio.timeout(self.timeout):
                session = self._opened()
                async with session.post(
                    auth.token_url,
                    data=urlencode(form).encode(),
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    return response.status, await _read_capped(response, self.max_bytes)
        except TimeoutError:
            raise OAuth2Error(
                f"oauth2 token endpoint {where} did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _Refused):
                raise OAuth2Error(f"oauth2 token endpoint refused: {exc.os_error}") from None
            raise OAuth2Error(
                f"oauth2 token endpoint {where} could not be reached: {exc.os_error}"
            ) from None
        except aiohttp.ClientError as exc:
            raise OAuth2Error(
                f"oauth2 token endpoint {where} failed: {type(exc).__name__}: {exc}"
            ) from None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self.lookup, self.refuse),
                use_dns_cache=False,  # every new connection is resolved and judged again
                # a slow endpoint holds its own host's connections, not everyone's
                limit=0,
                limit_per_host=20,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxy from the environment
                auto_decompress=False,  # what is read is what came, within max_bytes
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried from one client to the next
            )
        return self._session


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    too_big = OAuth2Error(
        f"oauth2 token endpoint answered {response.status} with more than {limit} bytes"
    )
    if response.content_length is not None and response.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.content.iter_any():
        received += len(chunk)
        if received > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _basic(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def read_token_answer(status: int, body: bytes, auth: OAuth2Auth) -> tuple[str, float]:
    """The access token and its lifetime from the token endpoint's answer (RFC 6749 §5.1), or
    an ``OAuth2Error`` saying what was wrong with it (§5.2's error code when it gave one)."""
    answer = _json_object(body)
    if status != 200:
        said = _error_said(answer) if answer is not None else ""
        redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
        message = f"oauth2 token endpoint answered {status}{redirect}{said}"
        raise OAuth2Error(_scrubbed(message, auth))
    if answer is None:
        raise OAuth2Error("oauth2 token endpoint answered 200 with a body that is not JSON")
    token = answer.get("access_token")
    if not isinstance(token, str) or not _ACCESS_TOKEN.fullmatch(token):
        raise OAuth2Error(
            "oauth2 token endpoint answered 200 without an access_token "
            "(a string of printable ASCII without spaces)"
        )
    kind = answer.get("token_type")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        shown = repr(kind)[:40] if isinstance(kind, str) else "none"
        raise OAuth2Error(f"oauth2 token endpoint gave a token of type {shown}, not Bearer")
    return token, _lifetime(answer.get("expires_in"))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) else None


def _error_said(answer: dict[str, Any]) -> str:
    """``: invalid_client (Client authentication failed)``, from what §5.2 allows only."""
    code = answer.get("error")
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        return ""
    said = f": {code}"
    description = answer.get("error_description")
    if isinstance(description, str):
        printable = "".join(c for c in description if " " <= c <= "~")[:_DESCRIPTION_KEPT]
        if printable.strip():
            said += f" ({printable.strip()})"
    return said


def _lifetime(expires_in: Any) -> float:
    """Seconds the token lives: ``expires_in`` as a number or a numeric string (some providers
    send "3599"), ``DEFAULT_LIFETIME`` when absent."""
    if expires_in is None:
        return DEFAULT_LIFETIME
    if isinstance(expires_in, str) and expires_in.strip().isdigit() and len(expires_in) < 20:
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise OAuth2Error("oauth2 token endpoint gave an expires_in that is not a number")
    if not expires_in >= 0:  # NaN too
        raise OAuth2Error("oauth2 token endpoint gave a negative expires_in")
    return float(min(expires_in, MAX_LIFETIME))  # 10**400 is an int, and no float


def _scrubbed(message: str, auth: OAuth2Auth) -> str:
    """The message without the client secret, should an endpoint echo it back."""
    secret = auth.client_secret
    for form in {secret, quote_plus(secret)}:
        if form:
            message = message.replace(form, REDACTED)
    return message


class _GuardedResolver(AbstractResolver):
    """Resolves with the injected ``lookup`` (in threads of its own) and refuses a name any of
    whose addresses the guard refuses: aiohttp then connects to no other address."""

    def __init__(self, lookup: Lookup, refuse: AddressReason | None) -> None:
        self.lookup = lookup
        self.refuse = refuse

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(_resolver_threads(), self.lookup, host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        results: list[ResolveResult] = []
        for address in addresses:
            reason = self.refuse(address) if self.refuse else None
            if reason:
                raise _Refused(f"{host} resolves to a refused address ({reason})")
            try:
                version = ipaddress.ip_address(address.split("%", 1)[0]).version
            except ValueError:
                raise OSError(f"{host} resolves to {address!r}, not an address") from None
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=socket.AF_INET6 if version == 6 else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        return results

    async def close(self) -> None:
        return None


@functools.cache
def _resolver_threads() -> ThreadPoolExecutor:
    """Threads of its own: a lookup that hangs holds one of these, not the loop's."""
    return ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="oauth2-resolve")


async def send_authorized(
    auth: Auth | None,
    tokens: OAuth2Tokens,
    send: Callable[[dict[str, str]], Awaitable[R]],
    unauthorized: Callable[[R], bool],
) -> R:
    """``send`` with ``auth``'s ``Authorization`` header; for oauth2, a 401 (``unauthorized``)
    forgets the token and sends once more with a fresh one. Raises ``OAuth2Error`` when no
    token can be had: the attempt's error."""
    if not isinstance(auth, OAuth2Auth):
        return await send(request_headers(auth))
    token = await tokens.get(auth)
    result = await send(request_headers(auth, token))
    if not unauthorized(result):
        return result
    tokens.invalidate(auth, token)
    return await send(request_headers(auth, await tokens.get(auth)))


__all__ = [
    "OAuth2Error",
    "OAuth2Tokens",
    "TokenKey",
    "read_token_answer",
    "send_authorized",
]
