"""The shape rules every face and the service share: ids and names, callback URLs, pages,
batches, filters and times.

Each rule is written once here. The service enforces it with a message that names the field;
the API publishes the same rule in its OpenAPI schema (``api/fields.py``), so a client can tell
valid input from invalid before sending it. Pure: no I/O. Whether a URL's *address* may be
called (the SSRF guard) is ``delivery/targets.py``'s job, on top of the shape checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import InvalidInput, field_error

MAX_ID_LENGTH = 200
MAX_BATCH = 1000  # events in one batch emit
MAX_PAGE = 1000  # rows in one page of a list

# An id or a name: not blank, no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*$"
_TEXT = re.compile(TEXT_PATTERN)

MAX_URL_LENGTH = 2048
# Characters a callback URL may not contain anywhere: whitespace and control characters.
_UNSAFE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_HAS_UNSAFE = re.compile(f"[{_UNSAFE}]")
# The shape the API's schema publishes for callback URLs: http(s), a host without
# credentials, an optional port, no unsafe characters. Every URL of this shape passes
# ``check_callback_url_shape`` (IPv6 literals pass too, unpublished).
CALLBACK_URL_PATTERN = (
    rf"^[hH][tT][tT][pP][sS]?://[^{_UNSAFE}/?#@:\[\]\\]+(:[0-9]{{1,4}})?([/?#][^{_UNSAFE}]*)?$"
)


def invalid(field: str, message: str, *, headline: str | None = None) -> InvalidInput:
    """The error for one bad field: ``headline`` (default ``"{field} {message}"``) for people,
    ``details`` naming the field for programs."""
    return InvalidInput(headline or f"{field} {message}", details=[field_error(field, message)])


def check_text(value: Any, field: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """An id or a name: a non-blank string of printable characters."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, "required", headline=f"{field} must be a non-empty string")
    if len(value) > max_length or not _TEXT.match(value):
        raise invalid(field, f"must be at most {max_length} printable characters")
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
    """A time that says its zone: a bare one could mean any of 24 hours."""
    if when.tzinfo is None:
        raise invalid(
            field,
            "needs a time zone",
            headline=f"{field} must include a time zone, like 2026-11-29T00:00:00Z",
        )
    return when


def check_callback_url_shape(url: Any, *, field: str = "callback_url") -> SplitResult:
    """An http(s) URL with a host, no credentials and no unsafe characters; returns its parts.

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
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError as exc:
        raise bad(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise bad(f"scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise bad("must not contain credentials (user:password@); the signature authenticates")
    if not parts.hostname:
        raise bad("has no host")
    if _HAS_UNSAFE.search(url) or any(c.isspace() for c in url):
        raise bad("must not contain whitespace or control characters")
    return parts
