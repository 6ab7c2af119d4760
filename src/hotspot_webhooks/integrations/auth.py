"""A webhook's own headers and auth (§9): what the operator's system wants beside §2's headers.

``headers`` are added to every request; ``auth`` is ``basic``, ``bearer`` or ``oauth2`` (client
credentials, fetched by ``delivery.oauth2.OAuth2Tokens``) and becomes one ``Authorization``
header. Both hold secrets, so they are:

* checked once here (``check_headers``, ``check_auth``, ``check_together``), with a 422 naming
  the field (``headers.X-Api-Key``, ``auth.client_secret``);
* stored as one encrypted blob (``seal``/``unseal``, Fernet under ``SECRET_KEY``): no header
  value or secret is ever in the database in clear; a webhook without either stores nothing;
* shown redacted: in answers, ``shown_headers`` (every value ``"[redacted]"``) and
  ``shown_auth`` (the type and the fields that are not secret); in attempt records,
  ``shown_request_headers`` (§2's headers as sent, ours and ``Authorization`` redacted).

Names we set are refused: §2's headers, ``Host``, ``Content-*``, hop-by-hop headers,
``webhook-*``, ``X-Hotspotsystem-*`` and the literal ``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256``.
They are compared with ``_`` read as ``-``, because PHP and CGI servers read both as one
(``X_Hotspotsystem_Event`` would overwrite ``$_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT']``).
``Authorization`` may be set as a header (for schemes we do not model: ``Token ...``,
``SSWS ...``) but not together with ``auth``: one of them must say it, never both.

Updating (PATCH) is the same check against what is stored (``stored=``):

* a field left out keeps what is stored; ``null`` removes it;
* ``headers`` sent replace the stored set whole (a name left out is removed); a value sent back
  as ``"[redacted]"`` keeps the stored value of that name (matched without case), so a client
  may send back what it was shown; ``"[redacted]"`` for a name with nothing stored is refused;
* ``auth`` of the stored type keeps each secret left out or sent as ``"[redacted]"``, except
  that an oauth2 ``client_secret`` is kept only while ``token_url`` stays the same: the secret
  is never sent somewhere it was not sent before without the operator typing it again. A new
  type needs its secrets given.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

from ..redaction import REDACTED
from ..validation import check_callback_url_shape, invalid

MAX_HEADERS = 20
MAX_NAME_LENGTH = 100
MAX_VALUE_LENGTH = 4096
MAX_HEADERS_SIZE = 16 * 1024  # names and values together: what servers accept (nginx: 8k a line)
MAX_USERNAME_LENGTH = 256
MAX_SECRET_LENGTH = 4096  # a password, a bearer token (a JWT fits), a client secret
MAX_CLIENT_ID_LENGTH = 256
MAX_SCOPE_LENGTH = 1024

# RFC 9110 §5.6.2: a header name is a token
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# a header value we send: visible ASCII, spaces and tabs inside (no CR, LF, NUL or other control
# character, which would split or end the header; no bytes that every server reads differently)
_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?")
# a bearer token or an access token: it stands in a header as it is
_VISIBLE = re.compile(r"[\x21-\x7e]+")
# text without control characters (a user name, a password, a client id or secret)
_NO_CONTROL = re.compile(r"[^\x00-\x1f\x7f]*")
# RFC 6749 §3.3: scope-tokens of NQCHAR, one space apart
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")

# the names §2 and HTTP itself set, lower case with "_" read as "-"
_RESERVED = frozenset(
    {
        "host",
        "user-agent",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    }
)
_RESERVED_PREFIXES = ("content-", "webhook-", "x-hotspotsystem-", "http-x-hotspotsystem-")


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """RFC 7617: ``Authorization: Basic base64(username:password)``. The password may be empty
    (services that take an API key as the user name put it in ``headers`` instead, since the
    user name is shown back)."""

    type: ClassVar[Literal["basic"]] = "basic"
    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """RFC 6750: ``Authorization: Bearer <token>``, a token the operator got elsewhere."""

    type: ClassVar[Literal["bearer"]] = "bearer"
    SECRETS: ClassVar[tuple[str, ...]] = ("token",)
    token: str = field(repr=False)


ClientAuth = Literal["client_secret_basic", "client_secret_post"]
CLIENT_AUTH_METHODS: tuple[ClientAuth, ...] = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class OAuth2Auth:
    """RFC 6749 §4.4, the client credentials grant: a token fetched from ``token_url`` and sent
    as ``Bearer``. The client authenticates to the token endpoint with HTTP Basic
    (``client_secret_basic``, the RFC's default) or, for providers that want it, with the
    id and secret in the form (``client_secret_post``)."""

    type: ClassVar[Literal["oauth2"]] = "oauth2"
    SECRETS: ClassVar[tuple[str, ...]] = ("client_secret",)
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    client_auth: ClientAuth = "client_secret_basic"


Auth = BasicAuth | BearerAuth | OAuth2Auth
AUTH_TYPES: dict[str, type[Auth]] = {"basic": BasicAuth, "bearer": BearerAuth, "oauth2": OAuth2Auth}


def _fields(cls: type[Auth]) -> list[str]:
    """An auth kind's fields, as a client sends them (``type`` aside)."""
    return [f.name for f in dataclasses.fields(cls)]


class Box(Protocol):
    """What seals the blob: ``keys.KeyCipher`` (Fernet under every configured secret key)."""

    def encrypt(self, api_key: str) -> str: ...

    def decrypt(self, stored: str) -> str: ...


# -- headers -------------------------------------------------------------------------------------


def check_headers(
    value: Any, *, field: str = "headers", stored: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers to store, from what a client sent: ``{}`` for ``null``; ``stored`` (on an
    update) supplies the values sent back as ``"[redacted]"``. Raises ``InvalidInput`` naming
    the header (``headers.Host``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be an object of header names to string values")
    if len(value) > MAX_HEADERS:
        raise invalid(field, f"holds at most {MAX_HEADERS} headers, not {len(value)}")
    kept = {name.lower(): stored_value for name, stored_value in (stored or {}).items()}
    headers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, header_value in value.items():
        where = _where(field, name)
        _check_name(name, where)
        if name.lower() in seen:
            raise invalid(where, f"is given twice (as {seen[name.lower()]!r} too)")
        seen[name.lower()] = name
        if header_value == REDACTED:
            if name.lower() not in kept:
                raise invalid(
                    where,
                    f'has no stored value to keep: "{REDACTED}" stands for a stored value; '
                    "send the value itself",
                )
            header_value = kept[name.lower()]
        headers[name] = _check_value(header_value, where)
    size = sum(len(name) + len(header_value) for name, header_value in headers.items())
    if size > MAX_HEADERS_SIZE:
        raise invalid(field, f"must be at most {MAX_HEADERS_SIZE} characters in all, not {size}")
    return headers


def _where(field: str, name: Any) -> str:
    """The field a header's error names: ``headers.X-Api-Key``, or for a name that is no
    header name, its quoted start (no line break or megabyte reaches a message)."""
    if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and _TOKEN.fullmatch(name):
        return f"{field}.{name}"
    shown = repr(name) if len(repr(name)) <= 60 else f"{repr(name)[:50]}..."
    return f"{field}.{shown}"


def reserved_reason(name: str) -> str | None:
    """Why a webhook may not set header ``name``, or None if it may."""
    folded = name.lower().replace("_", "-")
    if folded in _RESERVED or folded.startswith(_RESERVED_PREFIXES):
        return "is set by hotspot-webhooks itself (§2's headers and HTTP's own are reserved)"
    return None


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str):
        raise invalid(where, "must be a string")
    if not name:
        raise invalid(where, "is empty: a header needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(where, f"is longer than {MAX_NAME_LENGTH} characters")
    if not _TOKEN.fullmatch(name):
        raise invalid(
            where,
            "is not a header name: letters, digits and !#$%&'*+-.^_`|~ only "
            "(no spaces, colons or control characters)",
        )
    reason = reserved_reason(name)
    if reason:
        raise invalid(where, reason)


def _check_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, "must be a string")
    if len(value) > MAX_VALUE_LENGTH:
        raise invalid(where, f"must be at most {MAX_VALUE_LENGTH} characters")
    if not _VALUE.fullmatch(value):
        raise invalid(
            where,
            "must be printable ASCII (spaces and tabs inside; no line breaks, NUL or other "
            "control characters, no leading or trailing whitespace)",
        )
    return value


def shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers as answers and attempt records show them: every value redacted."""
    return dict.fromkeys(headers, REDACTED)


def shown_request_headers(
    sent: Mapping[str, str], headers: Mapping[str, str], auth: Auth | None
) -> dict[str, str]:
    """An attempt's request headers as its record keeps them: §2's as they were sent, the
    webhook's own ``headers`` and the ``Authorization`` that ``auth`` added redacted."""
    secret = {name.lower() for name in headers}
    if auth is not None:
        secret.add("authorization")
    return {name: REDACTED if name.lower() in secret else value for name, value in sent.items()}


# -- auth ----------------------------------------------------------------------------------------


def check_auth(value: Any, *, field: str = "auth", stored: Auth | None = None) -> Auth | None:
    """The auth to store, from what a client sent (``null``: none). ``stored`` (on an update)
    supplies the secrets left out or sent back as ``"[redacted]"`` (see the module's
    docstring). Shapes only: whether ``token_url``'s address may be called is the SSRF guard's
    (``delivery.targets.check_callback_url``, with ``field="auth.token_url"``), at create and
    update, and again at every fetch (``delivery.oauth2.OAuth2Tokens``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(field, "must be null or an object with a type: basic, bearer or oauth2")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in AUTH_TYPES:
        raise invalid(
            f"{field}.type",
            "must be basic, bearer or oauth2",
            headline=f"{field}.type must be basic, bearer or oauth2, not {kind!r}",
        )
    cls = AUTH_TYPES[kind]
    known = {"type", *_fields(cls)}
    for name in value:
        if name not in known:
            raise invalid(
                f"{field}.{name}",
                f"is not a field of {kind} auth (its fields: {', '.join(sorted(known))})",
            )
    same = stored if isinstance(stored, cls) else None
    moved = isinstance(same, OAuth2Auth) and value.get("token_url") != same.token_url
    if moved:
        same = None  # a secret goes only where it went before
    given = {name: _kept(value, name, same, field, moved=moved) for name in known - {"type"}}
    if cls is BasicAuth:
        return BasicAuth(
            username=_check_username(given["username"], f"{field}.username"),
            password=_check_secret(given["password"], f"{field}.password", allow_empty=True),
        )
    if cls is BearerAuth:
        return BearerAuth(token=_check_bearer(given["token"], f"{field}.token"))
    return OAuth2Auth(
        token_url=_check_token_url(given["token_url"], f"{field}.token_url"),
        client_id=_check_client_id(given["client_id"], f"{field}.client_id"),
        client_secret=_check_secret(given["client_secret"], f"{field}.client_secret"),
        scope=_check_scope(given["scope"], f"{field}.scope"),
        client_auth=_check_client_auth(given["client_auth"], f"{field}.client_auth"),
    )


def _kept(value: dict[str, Any], name: str, stored: Auth | None, field: str, *, moved: bool) -> Any:
    """The value sent for ``name``, or the stored secret it stands for (left out, or sent back
    as ``"[redacted]"``); None if neither."""
    sent = value.get(name)
    if stored is not None and name in stored.SECRETS and (sent is None or sent == REDACTED):
        return getattr(stored, name)
    if sent == REDACTED and name in AUTH_TYPES[value["type"]].SECRETS:
        why = "the token_url changed" if moved else "none is stored"
        raise invalid(
            f"{field}.{name}", f'is required: "{REDACTED}" keeps a stored secret, and {why}'
        )
    return sent


def _required_string(value: Any, where: str) -> str:
    if value is None:
        raise invalid(where, "is required")
    if not isinstance(value, str):
        raise invalid(where, "must be a string")
    return value


def _check_username(sent: Any, where: str) -> str:
    value = _required_string(sent, where)
    if not value or len(value) > MAX_USERNAME_LENGTH:
        raise invalid(where, f"must be 1 to {MAX_USERNAME_LENGTH} characters")
    if ":" in value or not _NO_CONTROL.fullmatch(value):
        raise invalid(where, "must not contain ':' or control characters (RFC 7617)")
    return value


def _check_secret(sent: Any, where: str, *, allow_empty: bool = False) -> str:
    value = _required_string(sent, where)
    if (not value and not allow_empty) or len(value) > MAX_SECRET_LENGTH:
        low = 0 if allow_empty else 1
        raise invalid(where, f"must be {low} to {MAX_SECRET_LENGTH} characters")
    if not _NO_CONTROL.fullmatch(value):
        raise invalid(where, "must not contain control characters")
    return value


def _check_bearer(sent: Any, where: str) -> str:
    value = _required_string(sent, where)
    if not value or len(value) > MAX_SECRET_LENGTH:
        raise invalid(where, f"must be 1 to {MAX_SECRET_LENGTH} characters")
    if not _VISIBLE.fullmatch(value):
        raise invalid(
            where, "must be printable ASCII without spaces (it is sent as it is, after Bearer)"
        )
    return value


def _check_token_url(value: Any, where: str) -> str:
    url = check_callback_url_shape(_required_string(value, where), field=where)
    if urlsplit(url).fragment or url.endswith("#"):
        raise invalid(where, "must not have a #fragment (RFC 6749 §3.2)")
    return url


def _check_client_id(sent: Any, where: str) -> str:
    value = _required_string(sent, where)
    if not value or len(value) > MAX_CLIENT_ID_LENGTH:
        raise invalid(where, f"must be 1 to {MAX_CLIENT_ID_LENGTH} characters")
    if not _NO_CONTROL.fullmatch(value):
        raise invalid(where, "must not contain control characters")
    return value


def _check_scope(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(where, "must be a string of space-separated scopes")
    if len(value) > MAX_SCOPE_LENGTH or not _SCOPE.fullmatch(value):
        raise invalid(
            where,
            f"must be at most {MAX_SCOPE_LENGTH} characters: scopes of printable ASCII "
            '(no " or \\) separated by single spaces (RFC 6749 §3.3)',
        )
    return value


def _check_client_auth(value: Any, where: str) -> ClientAuth:
    if value is None:
        return "client_secret_basic"
    for method in CLIENT_AUTH_METHODS:
        if value == method:
            return method
    raise invalid(where, f"must be {' or '.join(CLIENT_AUTH_METHODS)}")


def check_together(
    headers: Mapping[str, str], auth: Auth | None, *, field: str = "headers"
) -> None:
    """Headers and auth as they will be stored together (after a PATCH's merge): an
    ``Authorization`` header and an ``auth`` would both say who we are; one must go."""
    if auth is None:
        return
    for name in headers:
        if name.lower() == "authorization":
            raise invalid(
                f"{field}.{name}",
                f"cannot be set together with auth ({auth.type}), which sends it; remove one",
            )


def shown_auth(auth: Auth | None) -> dict[str, Any] | None:
    """The auth as answers show it: its type and the fields that are not secret."""
    if auth is None:
        return None
    shown: dict[str, Any] = {"type": auth.type}
    for name in _fields(type(auth)):
        if name not in auth.SECRETS:
            shown[name] = getattr(auth, name)
    return shown


def request_headers(auth: Auth | None, access_token: str | None = None) -> dict[str, str]:
    """The ``Authorization`` header one request carries: ``{}`` without auth; for oauth2,
    ``access_token`` is the one ``OAuth2Tokens.get`` gave."""
    if auth is None:
        return {}
    if isinstance(auth, BasicAuth):
        pair = f"{auth.username}:{auth.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if isinstance(auth, BearerAuth):
        return {"Authorization": f"Bearer {auth.token}"}
    if access_token is None:
        raise ValueError("oauth2 auth needs the access token fetched for it")
    return {"Authorization": f"Bearer {access_token}"}


# -- at rest -------------------------------------------------------------------------------------

_SEALED_VERSION = 1


def seal(headers: Mapping[str, str], auth: Auth | None, box: Box) -> str | None:
    """Headers and auth as one encrypted text for the database; None when there are neither
    (a webhook without them stores nothing, and costs nothing to deliver)."""
    if not headers and auth is None:
        return None
    plain: dict[str, Any] = {"v": _SEALED_VERSION, "headers": dict(headers), "auth": None}
    if auth is not None:
        plain["auth"] = {"type": auth.type} | {
            name: getattr(auth, name) for name in _fields(type(auth))
        }
    return box.encrypt(json.dumps(plain, separators=(",", ":")))


def unseal(stored: str | None, box: Box) -> tuple[dict[str, str], Auth | None]:
    """What ``seal`` stored: (headers, auth). Raises ``ConfigurationError`` (from the box) if
    no configured secret key opens it."""
    if stored is None:
        return {}, None
    plain = json.loads(box.decrypt(stored))
    if plain.get("v") != _SEALED_VERSION:
        raise ValueError(f"sealed headers and auth of unknown version {plain.get('v')!r}")
    headers = {str(name): str(value) for name, value in plain["headers"].items()}
    found = plain["auth"]
    if found is None:
        return headers, None
    cls = AUTH_TYPES[found.pop("type")]
    return headers, cls(**found)


__all__ = [
    "AUTH_TYPES",
    "CLIENT_AUTH_METHODS",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "Box",
    "ClientAuth",
    "OAuth2Auth",
    "check_auth",
    "check_headers",
    "check_together",
    "request_headers",
    "reserved_reason",
    "seal",
    "shown_auth",
    "shown_headers",
    "shown_request_headers",
    "unseal",
]
