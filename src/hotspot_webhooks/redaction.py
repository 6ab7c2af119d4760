"""What a log may say: secrets cut out of request lines and messages.

A client may put a token where it does not belong (``/v1/webhooks?token=hwt_...``); the
request is refused, but the log line that records it would keep the token for anyone who
reads logs. So every request line we log, and every message of ours (``logs.py``), goes
through ``redact``: our tokens (``hwt_``), signing secrets (``whsec_``), the value of any query
parameter named like a secret, and any long run of URL-safe base64 (an API key is 43 such
characters; our ids are at most 30) become ``[redacted]``. Control characters are escaped, so
a NUL or a newline cannot forge a log line.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_SECRET_NAMES = (
    "token|access_token|api_key|apikey|api-key|sn-apikey|key|secret|signing_secret"
    "|signature|password|authorization"
)
_PATTERNS = (
    # a query parameter named like a secret: its whole value (a raw query has no space, so a
    # whole access line can be redacted again without losing its end)
    re.compile(rf"(?i)(?<=[?&;])((?:{_SECRET_NAMES})=)[^&;#\s]*"),
    # our token and signing secret formats, wherever they stand (percent-encoded too)
    re.compile(r"hwt_[A-Za-z0-9_%-]+"),
    # (a secret of another Standard Webhooks sender may be base64url: its "-" and "_" too)
    re.compile(r"whsec_[A-Za-z0-9+/=%_-]+"),
    # a long random-looking run: an API key, or a token of another format
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40,}(?![A-Za-z0-9_-])"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """``text`` (a request's path and query) as it may be logged."""
    text = _PATTERNS[0].sub(rf"\g<1>{REDACTED}", text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub(REDACTED, text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class RedactRequestLines(logging.Filter):
    """Redacts the string arguments of the records it sees: uvicorn's access log passes the
    request's path and query as one of them (``'%s - "%s %s HTTP/%s" %d'``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True
