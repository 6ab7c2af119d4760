"""One exception hierarchy for the whole service.

Every error a person can cause or fix is a ``HotspotWebhooksError``: it carries the HTTP status
the REST API answers with and a message the CLI prints as one line. Anything else that escapes
is a bug.
"""

from __future__ import annotations

from typing import Any


class HotspotWebhooksError(Exception):
    """Base of every expected error; ``status`` is its HTTP status code."""

    status: int = 500

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(HotspotWebhooksError):
    """The caller sent something malformed; ``details`` names each bad field."""

    status = 422


class MalformedJSON(InvalidInput):
    """The body or argument is not valid JSON at all."""

    status = 400


class Unauthorized(HotspotWebhooksError):
    """No token, or one that is not known."""

    status = 401


class Forbidden(HotspotWebhooksError):
    """A known token that may not do this (an operator asking for an admin action)."""

    status = 403


class NotFound(HotspotWebhooksError):
    """Missing, or belonging to another operator: the two look the same from outside."""

    status = 404


class Conflict(HotspotWebhooksError):
    status = 409


class TooManyRequests(HotspotWebhooksError):
    """The caller must wait ``retry_after`` seconds (too many failed authentications)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(HotspotWebhooksError):
    """The database cannot be opened or reached; nothing was written."""

    status = 503


class ConfigurationError(HotspotWebhooksError):
    """A setting is missing or wrong; the message says which and how to fix it."""

    status = 500


class DatabaseNotReady(ConfigurationError):
    """The database needs migrating: no file yet (SQLite), no schema, or an older one."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # no database at all, rather than an old schema


def field_error(field: str, message: str) -> dict[str, Any]:
    """One entry of ``details``: which field is wrong and why."""
    return {"field": field, "message": message}
