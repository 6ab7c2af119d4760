"""Signed-in sessions: the token sealed in a cookie, and the CSRF secret that goes with it.

The cookie holds the operator's token encrypted and authenticated (Fernet, under a key derived
from ``SECRET_KEY`` for this use alone), so the server keeps no session table: every request
opens the cookie and authenticates the token through the service again, and a revoked token
ends its sessions at once. Each session carries a random CSRF secret that every form (and every
htmx request) must send back; the sign-in form has one too, before anyone is signed in.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "hw_session"
PATH = "/ui"
LIFETIME_SECONDS = 12 * 3600  # then sign in again, even if the token still works
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
INFO = b"hotspot-webhooks control center sessions"  # what the cookie's key is derived for


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the CSRF secret, and the token once signed in."""

    csrf: str
    token: str | None = None

    @classmethod
    def new(cls, token: str | None = None) -> Session:
        return cls(csrf=secrets.token_urlsafe(32), token=token)


class Sessions:
    """Seals sessions into cookie values and opens them again."""

    def __init__(self, secret_keys: list[str]) -> None:
        self._fernet = MultiFernet([derived_fernet(key, INFO) for key in secret_keys])

    def seal(self, session: Session) -> str:
        text = json.dumps({"c": session.csrf, "t": session.token})
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str | None) -> Session | None:
        """The session in a cookie; None if missing, forged, sealed under another key or
        older than ``LIFETIME_SECONDS``."""
        if not sealed:
            return None
        try:
            values = json.loads(self._fernet.decrypt(sealed.encode(), ttl=LIFETIME_SECONDS))
        except (InvalidToken, ValueError):
            return None
        csrf, token = values.get("c"), values.get("t")
        if not isinstance(csrf, str) or not (token is None or isinstance(token, str)):
            return None
        return Session(csrf=csrf, token=token)

    def put(self, response: Response, session: Session, request: Request) -> None:
        """Set the cookie: HttpOnly, SameSite=Lax, and Secure when the request came over TLS
        (as uvicorn saw it: ``X-Forwarded-Proto`` counts only from its trusted proxies)."""
        response.set_cookie(
            COOKIE,
            self.seal(session),
            max_age=LIFETIME_SECONDS,
            path=PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def forget(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )


def csrf_matches(given: str | None, session: Session | None) -> bool:
    """The form's (or header's) CSRF token is this session's; compared in constant time."""
    if not given or session is None:
        return False
    return hmac.compare_digest(given.encode(), session.csrf.encode())


def derived_fernet(secret: str, info: bytes) -> Fernet:
    """A Fernet key of its own for one use (``info``), derived from ``SECRET_KEY``."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))
