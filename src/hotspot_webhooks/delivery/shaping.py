"""What a webhook sends beyond SPEC §2 (§9): its body rendered from a template, its own
headers, and its auth. A webhook with none of them never comes here (``Attempts.make`` sends
it as before, byte for byte), so they cost nothing to the webhooks that do not use them.

For one that has them, ``Shaping.request`` gives the body and the headers of one attempt:

* the body: the event's stored bytes, or what its template renders from them (off the event
  loop, bounded in time and size: ``integrations.templates``); both signatures are computed
  over the bytes actually sent;
* the headers: §2's, then the webhook's own, then ``Authorization`` (basic, bearer, or an
  OAuth2 access token from ``integrations.oauth2.OAuth2Tokens``, cached per client);
* the headers as the attempt record keeps them: each of the webhook's own values and the
  ``Authorization`` header as ``"[redacted]"``.

A template that cannot render this event fails its delivery at once (``Unsendable``), with the
template's error, instead of burning its retries on what will never render. A token endpoint
that fails is an ordinary failed attempt: it may answer next time.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ..integrations.auth import Auth, shown_request_headers, unseal
from ..integrations.sandbox import SandboxUnavailable
from ..integrations.templates import RenderContext, RenderError, TemplateRenderer, stored_template
from ..keys import KeyCipher
from ..store.records import ClaimedDelivery
from .oauth2 import OAuth2Tokens, send_authorized
from .targets import forbidden_reason, system_lookup

CACHE_SIZE = 10_000  # webhooks' sealed headers and auth, and templates, kept opened per process
JSON = "application/json"
R = TypeVar("R")


class NotReady(Exception):
    """This attempt's request could not be made now (no template sandbox could start): a
    failed attempt, retried as any other."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unsendable(Exception):
    """This delivery can never be sent as it is (its template fails on its event): it fails
    now, with ``message``, and no retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Shaped:
    """One attempt's request as the webhook shapes it, before ``Authorization``."""

    body: bytes
    content_type: str
    headers: dict[str, str]  # the webhook's own
    auth: Auth | None


@dataclass(frozen=True, slots=True)
class _Opened:
    headers: dict[str, str]
    auth: Auth | None


class Shaping:
    """Renders and authorizes for one process side; ``close`` it."""

    def __init__(self, cipher: KeyCipher, *, allow_private: bool) -> None:
        self._cipher = cipher
        self.tokens = OAuth2Tokens(
            refuse=None if allow_private else forbidden_reason, lookup=system_lookup
        )
        self.renderer = TemplateRenderer()
        self._opened = functools.lru_cache(maxsize=CACHE_SIZE)(self._open)
        self._template = functools.lru_cache(maxsize=CACHE_SIZE)(stored_template)

    def _open(self, sealed: str) -> _Opened:
        headers, auth = unseal(sealed, self._cipher)
        return _Opened(headers, auth)

    async def close(self) -> None:
        await self.tokens.close()
        self.renderer.close()

    async def request(self, claimed: ClaimedDelivery) -> Shaped:
        """The body (rendered, if the webhook has a template) and the webhook's own headers
        and auth; raises ``Unsendable`` when the template fails on this event."""
        body, content_type = claimed.body, JSON
        if claimed.template_json is not None:
            template = self._template(claimed.template_json)
            context = RenderContext(
                event_id=claimed.event_id,
                event_type=claimed.event_type,
                location_id=claimed.location_id,
                created_at=_utc(claimed.event_created_at),
                data=claimed.body,  # handed to the sandbox as stored: parsed there
                location_name=claimed.location_name or claimed.location_id,
            )
            try:
                body = await self.renderer.render(template, context)
            except RenderError as exc:
                raise Unsendable(f"template error: {exc.message}") from None
            except SandboxUnavailable as exc:  # not the template's fault: retried
                raise NotReady(exc.message) from None
            content_type = template.content_type
        if claimed.secrets_sealed is None:
            return Shaped(body, content_type, {}, None)
        opened = self._opened(claimed.secrets_sealed)
        return Shaped(body, content_type, opened.headers, opened.auth)

    async def send(
        self,
        shaped: Shaped,
        send: Callable[[dict[str, str]], Awaitable[R]],
        refused: Callable[[R], bool],
    ) -> R:
        """``send`` with the ``Authorization`` of the webhook's auth; for OAuth2, a refusal
        (401) forgets the token and sends once more with a fresh one. Raises ``OAuth2Error``
        when no token can be had (the attempt fails with it, and is retried)."""
        return await send_authorized(shaped.auth, self.tokens, send, refused)


def _utc(created_at: datetime | str | None) -> datetime:
    """When the event was stored: a datetime, or on SQLite's raw rows its text (UTC)."""
    if created_at is None:  # the webhook's template came after the claim: render all the same
        return datetime.now(UTC)
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at)
    return created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at


def recorded(sent: Mapping[str, str], shaped: Shaped) -> dict[str, str]:
    """``sent`` as the attempt record keeps it: the webhook's own values and its
    ``Authorization`` as ``"[redacted]"``."""
    return shown_request_headers(sent, shaped.headers, shaped.auth)
