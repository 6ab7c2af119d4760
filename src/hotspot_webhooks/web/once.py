"""Secrets shown once, after a redirect (Post/Redirect/Get, U1 of issue 25).

A form that makes a secret (a webhook's API key, a token) answers with a redirect, never with
the secret's page: reloading that page must not post the form again. The secret rides from the
form to the next page in a cookie of its own, ``hw_once``: sealed like the session (Fernet,
under a key derived from ``SECRET_KEY`` for this use alone), ``HttpOnly``, for five minutes at
most, bound to the session it was made in, and never in a URL. The page it was meant for opens
it, shows the secret and deletes the cookie in the same answer (``Cache-Control: no-store``),
so a reload finds nothing to show.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken, MultiFernet
from starlette.requests import Request
from starlette.responses import Response

from .sessions import PATH, Session, derived_fernet

COOKIE = "hw_once"
LIFETIME_SECONDS = 300  # from the form to the page it leads to: a redirect, or a slow one


@dataclass(frozen=True)
class Shown:
    """A secret for one page: ``kind`` says which (``created``, ``rotated``, ``token``),
    ``subject`` for what (a webhook's id, an operator's name), ``values`` the secrets."""

    kind: str
    subject: str
    values: dict[str, str] = field(default_factory=dict)


class Once:
    """Seals a secret into the ``hw_once`` cookie, and takes it out again, once."""

    def __init__(self, secret_keys: list[str]) -> None:
        info = b"hotspot-webhooks control center secrets shown once"
        self._fernet = MultiFernet([derived_fernet(key, info) for key in secret_keys])

    def keep(self, response: Response, request: Request, session: Session, shown: Shown) -> None:
        """Set the cookie on ``response`` (the form's redirect)."""
        text = json.dumps(
            {"s": session.csrf, "k": shown.kind, "o": shown.subject, "v": shown.values}
        )
        response.set_cookie(
            COOKIE,
            self._fernet.encrypt(text.encode()).decode(),
            max_age=LIFETIME_SECONDS,
            path=PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        response.headers["Cache-Control"] = "no-store"

    def take(self, request: Request, session: Session, kinds: tuple[str, ...]) -> Shown | None:
        """The secret this browser's session left for a page showing ``kinds``; None if there
        is none (already shown, expired, forged, or another session's)."""
        sealed = request.cookies.get(COOKIE)
        if not sealed:
            return None
        try:
            values = json.loads(self._fernet.decrypt(sealed.encode(), ttl=LIFETIME_SECONDS))
            csrf, kind, subject, secrets = values["s"], values["k"], values["o"], values["v"]
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
        if not (isinstance(csrf, str) and isinstance(kind, str) and isinstance(subject, str)):
            return None
        if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
            return None
        if kind not in kinds or not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
            return None
        return Shown(kind, subject, secrets)


def spent(response: Response, request: Request) -> Response:
    """The page that showed the secret: the cookie deleted, the page not kept by caches."""
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
