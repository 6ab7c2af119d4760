"""The application's verbs: the one layer every face (CLI, REST, web, Python) calls.

It validates input (``validation``, the catalog and the SSRF guard), decides who may do what
(``Caller``; the store applies the decision), owns the secrets (API keys are encrypted before
the store sees them and shown once), and turns store rows into the resource shapes of
``models``. It never speaks SQL or HTTP.
"""

from .caller import ADMIN, Caller
from .core import (
    EmitRequest,
    LastFailure,
    LocatedDelivery,
    Overview,
    Service,
    TimeBucket,
    WebhookHealth,
    admin_token_file_for,
    key_file_for,
)

__all__ = [
    "ADMIN",
    "Caller",
    "EmitRequest",
    "LastFailure",
    "LocatedDelivery",
    "Overview",
    "Service",
    "TimeBucket",
    "WebhookHealth",
    "admin_token_file_for",
    "key_file_for",
]
