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


class OwnerStatus(StrEnum):
    """An operator's or a location's. Disabling one disables its webhooks (their reason
    starts with ``OPERATOR_DISABLED`` or ``LOCATION_DISABLED``), and enabling it enables
    those again; a disabled operator's tokens are refused."""

    ENABLED = "enabled"
    DISABLED = "disabled"


OPERATOR_DISABLED = "operator disabled"
LOCATION_DISABLED = "location disabled"
