"""The states a delivery and a webhook can be in: one vocabulary for the store, the delivery
engine and every face, so no layer spells a state as a bare string."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """``pending`` until an attempt succeeds or the retries run out."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookStatus(StrEnum):
    """A disabled webhook gets no new deliveries, and its queued ones fail unsent."""

    ENABLED = "enabled"
    DISABLED = "disabled"
