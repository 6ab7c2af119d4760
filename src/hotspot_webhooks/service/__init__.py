"""The application's verbs: the one layer every face (CLI, REST, web, Python) calls.

It validates input (``validation``, the catalog and the SSRF guard), decides who may do what
(``Caller``; the store applies the decision), owns the secrets (API keys are encrypted before
the store sees them and shown once), and turns store rows into the resource shapes of
``models``. It never speaks SQL or HTTP.

One module per concern, each a small class that ``Service`` (``core``) builds and exposes as
an attribute: ``access`` (tokens to callers), ``operators``, ``tokens``, ``event_types``,
``locations``, ``webhooks`` (with ``sample_send``, the test send), ``events``,
``deliveries`` and ``health`` (the control center's overview). ``caller`` says who asks;
``common`` holds the pure helpers they share.
"""

from .caller import ADMIN, Caller
from .core import Service, admin_token_file_for, key_file_for
from .deliveries import LocatedDelivery
from .events import EmitRequest
from .health import LastFailure, Overview, TimeBucket, WebhookHealth

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
