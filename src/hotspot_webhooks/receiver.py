"""Verify hotspot-webhooks deliveries in your own receiver; standard library only.

Copy this file into any Python project, or import it from the installed package: it depends on
nothing but the standard library and nothing else of ours.

    from hotspot_webhooks.receiver import parse, InvalidSignature

    try:
        event = parse(request.headers, request.body, api_key=API_KEY)
    except InvalidSignature:
        return 401
    handle(event.type, event.data)   # dedupe on event.id: delivery is at-least-once
    return 200
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ORIGINAL_HEADER = "X-Hotspotsystem-Hmac-Sha256"
ORIGINAL_HEADER_LITERAL = "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"
DEFAULT_TOLERANCE_SECONDS = 300

__all__ = [
    "InvalidSignature",
    "ReceivedEvent",
    "compute_signature",
    "compute_standard_signature",
    "parse",
    "verify_signature",
    "verify_standard_signature",
]


class InvalidSignature(Exception):
    """The request was not signed with this API key (or was altered on the way)."""


@dataclass(frozen=True)
class ReceivedEvent:
    """A verified delivery: what happened, where, and its payload."""

    id: str | None
    type: str | None
    location_id: str | None
    delivery_id: str | None
    attempt: int | None
    data: dict[str, Any]


def compute_signature(body: bytes, api_key: str) -> str:
    """The original platform's signature: base64(HMAC-SHA256(api_key, body))."""
    digest = hmac.digest(api_key.encode(), body, "sha256")
    return base64.b64encode(digest).decode()


def compute_standard_signature(msg_id: str, timestamp: int, body: bytes, api_key: str) -> str:
    """Standard Webhooks ``v1,`` signature of ``{id}.{timestamp}.{body}`` under the API key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.digest(api_key.encode(), signed, "sha256")
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(body: bytes, signature: str, api_key: str) -> bool:
    """True if ``signature`` is the original-platform signature of ``body`` (constant time)."""
    expected = compute_signature(body, api_key)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def verify_standard_signature(
    headers: Mapping[str, str],
    body: bytes,
    api_key: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True if one ``webhook-signature`` entry matches and the timestamp is recent."""
    found = _lower(headers)
    msg_id, stamp, signatures = (
        found.get("webhook-id"),
        found.get("webhook-timestamp"),
        found.get("webhook-signature"),
    )
    if not (msg_id and stamp and signatures):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = compute_standard_signature(msg_id, timestamp, body, api_key).encode()
    return any(hmac.compare_digest(expected, s.encode()) for s in signatures.split())


def parse(
    headers: Mapping[str, str],
    body: bytes,
    api_key: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> ReceivedEvent:
    """Verify a delivery and return its event; raise ``InvalidSignature`` otherwise.

    Every delivery carries two signatures. The Standard Webhooks one is checked when present:
    it signs the attempt's time as well (a request captured and replayed later than
    ``tolerance`` seconds is refused), and during a key rotation it carries a signature under
    each key, so a receiver still holding the previous key keeps verifying. Without it, the
    original ``X-Hotspotsystem-Hmac-Sha256`` signature is checked. Header names are matched
    case-insensitively.
    """
    found = _lower(headers)
    if found.get("webhook-signature"):
        if not verify_standard_signature(headers, body, api_key, tolerance=tolerance):
            raise InvalidSignature(_why_standard_failed(found, tolerance))
    else:
        original = found.get(ORIGINAL_HEADER.lower()) or found.get(ORIGINAL_HEADER_LITERAL.lower())
        if original is None:
            raise InvalidSignature(
                f"no signature: neither {ORIGINAL_HEADER} nor webhook-signature is present"
            )
        if not verify_signature(body, original, api_key):
            raise InvalidSignature("signature does not match this API key")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidSignature(f"signed body is not JSON: {exc}") from None
    attempt = found.get("x-hotspotsystem-attempt")
    return ReceivedEvent(
        id=found.get("webhook-id"),
        type=found.get("x-hotspotsystem-event"),
        location_id=found.get("x-hotspotsystem-location"),
        delivery_id=found.get("x-hotspotsystem-delivery"),
        attempt=int(attempt) if attempt and attempt.isdigit() else None,
        data=data,
    )


def _why_standard_failed(found: Mapping[str, str], tolerance: int) -> str:
    """Which part of a Standard Webhooks check failed, in words a receiver's author acts on."""
    stamp = found.get("webhook-timestamp", "")
    if not found.get("webhook-id") or not stamp:
        return "webhook-signature without webhook-id and webhook-timestamp"
    if not stamp.isdigit():
        return f"webhook-timestamp {stamp!r} is not Unix seconds"
    age = int(time.time()) - int(stamp)
    if abs(age) > tolerance:
        when = f"{age} s old" if age > 0 else f"{-age} s in the future"
        return (
            f"webhook-timestamp is {when}, beyond the {tolerance} s tolerance (a replayed "
            "request, or this machine's clock is wrong)"
        )
    return "signature does not match this API key"


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
