"""Field shapes the request bodies share, published in the OpenAPI schema.

The rules are ``validation``'s: the service enforces each (with its own messages) and the
schema states the same rule, so a client (or a fuzzer) can tell valid input from invalid
before sending it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from .. import catalog
from ..validation import CALLBACK_URL_PATTERN, MAX_ID_LENGTH, MAX_URL_LENGTH, TEXT_PATTERN

# the six event type names, as the schema's enum wherever a field or filter names one
EVENT_TYPE_ENUM: dict[str, JsonValue] = {"enum": list(catalog.EVENT_TYPES)}


def text_field(description: str | None = None, **kwargs: Any) -> Any:
    """An id or a name: 1 to 200 characters, not blank, no control characters."""
    return Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description=description,
        json_schema_extra={"pattern": TEXT_PATTERN},
        **kwargs,
    )


def callback_url_field(**kwargs: Any) -> Any:
    return Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="http or https; no credentials in the URL; no private address unless "
        "allowed by configuration.",
        json_schema_extra={"pattern": CALLBACK_URL_PATTERN},
        **kwargs,
    )
