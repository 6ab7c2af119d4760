"""What a log may say about a request: the rules live in ``hotspot_webhooks.redaction``, which
the logging of every layer shares; the API's modules import them from here."""

from __future__ import annotations

from ..redaction import REDACTED, RedactRequestLines, redact

__all__ = ["REDACTED", "RedactRequestLines", "redact"]
