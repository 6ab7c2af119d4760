"""Signing deliveries: the original platform's HMAC header and Standard Webhooks.

The original signature is ``base64(HMAC-SHA256(api_key, body))`` sent under two names: the
canonical ``X-Hotspotsystem-Hmac-Sha256`` and the literal ``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256``
that the original PHP sample reads case-sensitively from ``getallheaders()``. The Standard
Webhooks headers let any Standard Webhooks library verify us with the same key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from . import __version__
from .receiver import (
    ORIGINAL_HEADER,
    ORIGINAL_HEADER_LITERAL,
    compute_signature,
    compute_standard_signature,
)

USER_AGENT = f"hotspot-webhooks/{__version__}"

__all__ = [
    "USER_AGENT",
    "DeliveryRequest",
    "compute_signature",
    "compute_standard_signature",
    "delivery_headers",
    "signing_secret",
]


def signing_secret(api_key: str) -> str:
    """The Standard Webhooks form of an API key: ``whsec_`` + base64 of its UTF-8 bytes."""
    return "whsec_" + base64.b64encode(api_key.encode()).decode()


@dataclass(slots=True)
class DeliveryRequest:
    """What identifies one attempt on the wire."""

    event_id: str
    event_type: str
    location_id: str
    delivery_id: str
    attempt: int


def delivery_headers(
    request: DeliveryRequest, body: bytes, api_keys: list[str], timestamp: int
) -> dict[str, str]:
    """All headers of one attempt, names in the exact case they must have on the wire.

    ``api_keys`` holds the current key first; during a rotation the previous keys follow and each
    adds a ``webhook-signature`` entry.
    """
    original = compute_signature(body, api_keys[0])
    standard = " ".join(
        compute_standard_signature(request.event_id, timestamp, body, key) for key in api_keys
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ORIGINAL_HEADER: original,
        ORIGINAL_HEADER_LITERAL: original,
        "webhook-id": request.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
        "X-Hotspotsystem-Event": request.event_type,
        "X-Hotspotsystem-Location": request.location_id,
        "X-Hotspotsystem-Delivery": request.delivery_id,
        "X-Hotspotsystem-Attempt": str(request.attempt),
    }
