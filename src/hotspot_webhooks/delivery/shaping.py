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
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..integrations.auth import Auth, OAuth2Auth, request_headers, unseal
from ..integrations.context import template_context
from ..integrations.oauth2 import OAuth2Error, OAuth2Tokens
from ..integrations.templates import RenderError, TemplateRenderer, template_from_json
from ..keys import KeyCipher
from ..redaction import REDACTED
from ..store.records import ClaimedDelivery

CACHE_SIZE = 10_000  # webhooks' sealed headers and auth kept opened, per process


class Unsendable(Exception):
    """This delivery can never be sent as it is (its template fails on its event): it fails
    now, with ``message``, and no retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotYet(Exception):
    """This attempt could not be made ready (the OAuth2 token endpoint failed): a failed
    attempt, retried as any other."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Shaped:
    body: bytes
    content_type: str
    headers: dict[str, str]  # the webhook's own, and Authorization
    access_token: str | None  # the OAuth2 token sent, to forget if the receiver answers 401


@dataclass(frozen=True, slots=True)
class _Opened:
    headers: dict[str, str]
    auth: Auth | None


class Shaping:
    """Renders, authorizes and redacts for one process side; ``close`` it."""

    def __init__(self, cipher: KeyCipher, *, allow_private: bool) -> None:
        self._cipher = cipher
        self.tokens = OAuth2Tokens(allow_private=allow_private)
        self.renderer = TemplateRenderer()
        self._opened = functools.lru_cache(maxsize=CACHE_SIZE)(self._open)
        self._template = functools.lru_cache(maxsize=CACHE_SIZE)(template_from_json)

    def _open(self, sealed: str) -> _Opened:
        headers, auth = unseal(sealed, self._cipher)
        return _Opened(headers, auth)

    async def close(self) -> None:
        await self.tokens.close()
        await self.renderer.close()

    async def request(self, claimed: ClaimedDelivery) -> Shaped:
        body, content_type = claimed.body, "application/json"
        if claimed.template_json is not None:
            template = self._template(claimed.template_json)
            context = template_context(
                event_id=claimed.event_id,
                event_type=claimed.event_type,
                location_id=claimed.location_id,
                created_at=claimed.event_created_at,
                data=json.loads(claimed.body),
                location_name=claimed.location_name,
            )
            try:
                body = await self.renderer.render(template, context)
            except RenderError as exc:
                raise Unsendable(f"template error: {exc.message}") from None
            content_type = template.content_type
        headers: dict[str, str] = {}
        access_token = None
        if claimed.secrets_sealed is not None:
            opened = self._opened(claimed.secrets_sealed)
            headers.update(opened.headers)
            if isinstance(opened.auth, OAuth2Auth):
                try:
                    access_token = await self.tokens.get(opened.auth)
                except OAuth2Error as exc:
                    raise NotYet(exc.message) from None
            headers.update(request_headers(opened.auth, access_token))
        return Shaped(body, content_type, headers, access_token)

    def refused(self, claimed: ClaimedDelivery, shaped: Shaped) -> None:
        """The receiver answered 401 to ``shaped``: its OAuth2 token is forgotten, so the next
        attempt fetches one again (once: a token endpoint is not asked per 401 twice)."""
        if shaped.access_token is None or claimed.secrets_sealed is None:
            return
        auth = self._opened(claimed.secrets_sealed).auth
        if isinstance(auth, OAuth2Auth):
            self.tokens.invalidate(auth, shaped.access_token)


def recorded(headers: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as an attempt record keeps them: the webhook's own values redacted."""
    return {name: REDACTED if name in own else value for name, value in headers.items()}
