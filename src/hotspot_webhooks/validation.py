"""The shape rules every face and the service share: ids and names, callback URLs, pages,
batches, filters and times.

Each rule is written once here. The service enforces it with a message that names the field;
the API publishes the same rule in its OpenAPI schema (``api/fields.py``), so a client can tell
valid input from invalid before sending it. Pure: no I/O. Whether a URL's *address* may be
called (the SSRF guard) is ``delivery/targets.py``'s job, on top of the shape checked here.

Ids (of locations and events, which the platform chooses, and our own) are 1 to 200 of
``A-Z a-z 0-9 _ . : -``, starting with a letter, a digit or ``_``: every id then stands
unchanged in a URL path, a query string, a header and a shell command, and names one object
only (no ``/``, no invisible or look-alike characters, no ``.`` or ``..``). Names are freer:
any printable text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import idna

from .errors import InvalidInput, field_error

MAX_ID_LENGTH = 200
MAX_BATCH = 1000  # events in one batch emit
MAX_PAGE = 1000  # rows in one page of a list

_ID_BODY = rf"[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,{MAX_ID_LENGTH - 1}}}"
ID_PATTERN = f"^{_ID_BODY}$"
# in a query string, an empty value is the parameter left out
ID_OR_EMPTY_PATTERN = f"^(?:{_ID_BODY})?$"
_ID = re.compile(ID_PATTERN)
ID_RULE = "1 to 200 letters, digits, '_', '.', ':' or '-', starting with a letter, digit or '_'"

# Characters no name may hold: control characters (C0, DEL, C1) and the invisible ones that
# reorder or hide text (zero-width, bidirectional overrides, BOM), which make one name look
# like another.
_INVISIBLE = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
# A name: not blank, none of the above.
_TEXT_BODY = rf"[^{_INVISIBLE}]*[^{_INVISIBLE}\s][^{_INVISIBLE}]*"
TEXT_PATTERN = f"^{_TEXT_BODY}$"
TEXT_OR_EMPTY_PATTERN = f"^(?:{_TEXT_BODY})?$"
_TEXT = re.compile(TEXT_PATTERN)

MAX_URL_LENGTH = 2048
# Characters a callback URL may not contain anywhere: whitespace and control characters.
_UNSAFE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_HAS_UNSAFE = re.compile(f"[{_UNSAFE}]")
# The shape the API's schema publishes for callback URLs: http(s), an ASCII host without
# credentials (labels that are not empty, one trailing dot allowed), an optional port, no
# unsafe characters. Every URL of this shape passes ``check_callback_url_shape`` (IPv6
# literals and internationalized names pass too, unpublished: not every string of letters is
# a valid IDNA name).
_LABEL = r"[A-Za-z0-9_~!$&'()*+,;=%-]+"
CALLBACK_URL_PATTERN = (
    rf"^[hH][tT][tT][pP][sS]?://{_LABEL}(\.{_LABEL})*\.?(:[1-9][0-9]{{0,3}})?"
    rf"([/?#][^{_UNSAFE}]*)?$"
)


def invalid(field: str, message: str, *, headline: str | None = None) -> InvalidInput:
    """The error for one bad field: ``headline`` (default ``"{field} {message}"``) for people,
    ``details`` naming the field for programs."""
    return InvalidInput(headline or f"{field} {message}", details=[field_error(field, message)])


def check_text(value: Any, field: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """A name: a non-blank string of printable characters."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, "required", headline=f"{field} must be a non-empty string")
    if not is_text(value, max_length=max_length):
        raise invalid(field, f"must be at most {max_length} printable characters")
    return value


def is_text(value: Any, *, max_length: int = MAX_ID_LENGTH) -> bool:
    """Whether ``value`` has the shape of a name (an operator's, say)."""
    return (
        isinstance(value, str) and len(value) <= max_length and _TEXT.fullmatch(value) is not None
    )


def is_id(value: Any) -> bool:
    """Whether ``value`` has the shape of an id (see the module's docstring)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: Any, field: str) -> str:
    """An id a caller gives: a location's, an event's, or one in a filter or a cursor."""
    if not isinstance(value, str) or not value:
        raise invalid(field, "required", headline=f"{field} must be a non-empty string")
    if not is_id(value):
        shown = repr(value) if len(value) <= 60 else f"{value[:50]!r}..."
        raise invalid(
            field, f"must be {ID_RULE}", headline=f"{field} {shown} is not an id: {ID_RULE}"
        )
    return value


def check_choice(value: str, allowed: Iterable[str], field: str, *, what: str) -> str:
    """One of a fixed set of values (a status filter, say)."""
    choices = list(allowed)
    if value not in choices:
        raise invalid(
            field,
            f"unknown {what}",
            headline=f"{field} must be one of {', '.join(choices)}, not {value!r}",
        )
    return value


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise invalid(
            "limit",
            f"between 1 and {MAX_PAGE}",
            headline=f"limit must be between 1 and {MAX_PAGE}, not {limit}",
        )
    return limit


def check_batch_size(size: int) -> None:
    if size > MAX_BATCH:
        raise invalid(
            "events",
            f"at most {MAX_BATCH} events",
            headline=f"a batch holds at most {MAX_BATCH} events, not {size}",
        )


def check_aware(when: datetime, field: str) -> datetime:
    """A time that says its zone (a bare one could mean any of 24 hours) and that is a time in
    UTC too: 0001-01-01T00:00:00+14:00 is not (it is in year 0)."""
    if when.tzinfo is None:
        raise invalid(
            field,
            "needs a time zone",
            headline=f"{field} must include a time zone, like 2026-11-29T00:00:00Z",
        )
    try:
        when.astimezone(UTC)
    except OverflowError:
        raise invalid(
            field,
            "is out of range: in UTC it falls outside the years 1 to 9999",
            headline=f"{field} {when.isoformat()} is out of range: in UTC it falls outside "
            "the years 1 to 9999",
        ) from None
    return when


def check_callback_url_shape(url: Any, *, field: str = "callback_url") -> str:
    """An http(s) URL with a host and a port, no credentials and no unsafe characters;
    returns it as it is sent: ASCII (see ``_ascii_url``), otherwise unchanged.

    Says nothing of the address it names: see ``delivery.targets.check_callback_url``.
    """

    def bad(message: str) -> InvalidInput:
        return invalid(field, message, headline=f"{field}: {message}")

    if not isinstance(url, str) or not url.strip():
        raise bad("must be an http:// or https:// URL")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range
    except ValueError as exc:
        raise bad(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise bad(f"scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise bad("must not contain credentials (user:password@); the signature authenticates")
    if not parts.hostname:
        raise bad("has no host")
    if port == 0:
        raise bad("port must be between 1 and 65535, not 0")
    host_problem = _host_problem(parts.netloc, parts.hostname)
    if host_problem:
        raise bad(host_problem)
    if _HAS_UNSAFE.search(url) or any(c.isspace() for c in url):
        raise bad("must not contain whitespace or control characters")
    if url.isascii():
        return url
    try:
        sent = _ascii_url(url)
    except (idna.IDNAError, UnicodeError) as exc:
        raise bad(
            f"host {parts.hostname!r} is not a valid internationalized name ({exc})"
        ) from None
    if not sent.isascii():
        raise bad("port must be written in ASCII digits")
    if len(sent) > MAX_URL_LENGTH:
        raise bad(f"is longer than {MAX_URL_LENGTH} characters once encoded ({sent})")
    return check_callback_url_shape(sent, field=field)


def _host_problem(netloc: str, hostname: str) -> str | None:
    """What is wrong with a URL's host, beyond what ``urlsplit`` checks: an empty label
    (``a..b``, ``.a``, ``a..``: one trailing dot, the DNS root, is a name's absolute form), or
    something after an IPv6 literal's ``]`` other than ``:port``."""
    if netloc.startswith("["):
        after = netloc[netloc.find("]") + 1 :]
        if after and not after.startswith(":"):
            return f"host {netloc.partition(']')[0]}] is followed by {after!r}, not a :port"
        return None
    labels = hostname.removesuffix(".").split(".")
    if "" in labels:
        return (
            f"host {hostname!r} has an empty label (two dots in a row, or a dot first; "
            "only one dot may end a name)"
        )
    return None


# every printable ASCII character: the ones a URL already holds as they are
_PRINTABLE_ASCII = "".join(c for c in string.printable if not c.isspace())


def _ascii_url(url: str) -> str:
    """The URL with its host in IDNA (UTS #46: ``bücher.example`` → ``xn--bcher-kva.example``,
    fullwidth letters → their ASCII forms) and the rest percent-encoded as UTF-8.

    HTTP sends ASCII only, and the SSRF guard must judge the host that is really looked up.
    """
    after_scheme = url.index("://") + 3
    end = next((i for i in range(after_scheme, len(url)) if url[i] in "/?#"), len(url))
    authority = url[after_scheme:end]
    host, colon, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if authority.startswith("["):  # an IPv6 literal: ASCII or already refused by urlsplit
        host, colon, port = authority, "", ""
    elif not host.isascii():
        host = idna.encode(host, uts46=True, std3_rules=True).decode("ascii")
    port = colon + port
    rest = quote(url[end:], safe=_PRINTABLE_ASCII)
    return url[:after_scheme] + host + port + rest
