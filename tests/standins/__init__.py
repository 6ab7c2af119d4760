"""Local stand-ins for the providers the presets speak to, since the real ones cannot be reached
from the test machine.

Each stand-in is a small aiohttp server on 127.0.0.1 (a port of its own) that enforces the
provider's documented request (method, path, host, auth scheme, content type, required JSON
fields, their types and limits) and answers what the provider answers: its success, or its
documented error. Every rule cites the provider's reference in a comment. Accepted requests are
recorded for assertions.

``deliver`` sends a preset's request the way a delivery attempt does (POST, the template's
content type, the auth header, redirects not followed) to the stand-in, with the Host header of
the real provider, so the stand-in checks the host the preset built.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from hotspot_webhooks.integrations.presets import PresetConfig
from tests.receivers import start_app


@dataclass(frozen=True)
class Received:
    """One request a stand-in accepted."""

    method: str
    host: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class StandIn:
    """Base: serves every path through ``handle`` and records what it accepted."""

    def __init__(self) -> None:
        self.accepted: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        # the provider's host, for a request to this stand-in's own address: what a real
        # delivery to it carries (its callback URL pointed here), judged as the provider's
        self.serves_as: str | None = None

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        raise NotImplementedError

    def accept(self, request: web.Request, body: bytes) -> None:
        self.accepted.append(
            Received(
                request.method,
                request.host,
                request.path,
                dict(request.query),
                request.headers,
                body,
            )
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.serves_as is not None and request.host == f"127.0.0.1:{self.port}":
            request = request.clone(host=self.serves_as)
        body = await request.read()
        return await self.handle(request, body)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, callback_url: str) -> str:
        """The stand-in's address for a provider URL: same path and query."""
        parts = urlsplit(callback_url)
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner, self.port = await start_app(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def json_error(
    status: int, payload: Any, *, content_type: str = "application/json"
) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type=content_type)


def media_type(request: web.Request) -> str:
    """The request's media type without parameters, lower case ("" when absent)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def parse_json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False, None


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


def auth_headers(auth: Mapping[str, str] | None) -> dict[str, str]:
    """The Authorization header a delivery sends for a webhook's ``auth`` (§9)."""
    if auth is None:
        return {}
    if auth["type"] == "basic":
        pair = f"{auth['username']}:{auth['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if auth["type"] == "bearer":
        return {"Authorization": f"Bearer {auth['token']}"}
    raise AssertionError(f"no preset uses {auth['type']} auth yet")


async def deliver(
    standin: StandIn,
    config: PresetConfig,
    body: str | bytes,
    *,
    callback_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> Answer:
    """POST ``body`` as a delivery attempt would for ``config``; ``callback_url``,
    ``headers`` (the preset's headers and auth) and ``content_type`` replace the preset's, to
    show what the stand-in refuses."""
    url = callback_url or config.callback_url
    sent = {
        "Content-Type": content_type or config.template["content_type"],
        "Host": urlsplit(url).netloc,
        "User-Agent": "hotspot-webhooks/test",
        **({**config.headers, **auth_headers(config.auth)} if headers is None else headers),
    }
    data = body.encode() if isinstance(body, str) else body
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(standin.url_for(url), data=data, headers=sent, allow_redirects=False) as r,
    ):
        return Answer(r.status, await r.text(), dict(r.headers))
