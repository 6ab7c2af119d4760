"""hotspot-webhooks: durable, signed webhook delivery for Wi-Fi hotspot platforms.

This module stays light so that ``hotspot_webhooks.receiver`` imports with the standard library
alone; the server-side API is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["__version__", "emit"]

if TYPE_CHECKING:
    from .python_api import emit


def __getattr__(name: str) -> Any:
    if name == "emit":
        from .python_api import emit

        return emit
    raise AttributeError(f"module 'hotspot_webhooks' has no attribute {name!r}")
