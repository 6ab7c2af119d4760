"""Field shapes the request bodies share, published in the OpenAPI schema.

The rules are ``validation``'s: the service enforces each (with its own messages) and the
schema states the same rule, so a client (or a fuzzer) can tell valid input from invalid
before sending it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from .. import catalog
from ..states import OwnerStatus
from ..subscription import ANY, MAX_EVENT_TYPES, MAX_LOCATIONS
from ..validation import (
    CALLBACK_URL_PATTERN,
    ID_OR_EMPTY_PATTERN,
    ID_PATTERN,
    ID_RULE,
    MAX_ID_LENGTH,
    MAX_URL_LENGTH,
    TEXT_OR_EMPTY_PATTERN,
    TEXT_PATTERN,
)

# the six event type names, as the schema's enum wherever a field or filter names one
EVENT_TYPE_ENUM: dict[str, JsonValue] = {"enum": list(catalog.EVENT_TYPES)}
_ID_SCHEMA: dict[str, JsonValue] = {
    "pattern": ID_PATTERN,
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
}
_ID_SCHEMA_TYPED: dict[str, JsonValue] = {"type": "string", **_ID_SCHEMA}


class StatusChange(BaseModel):
    """The body that disables or enables an operator or a location."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "disabled"}, {"status": "enabled"}]},
    )

    status: OwnerStatus


def text_field(description: str | None = None, **kwargs: Any) -> Any:
    """A name: 1 to 200 characters, not blank, no control or invisible characters."""
    return Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description=description,
        json_schema_extra={"pattern": TEXT_PATTERN},
        **kwargs,
    )


def id_field(description: str | None = None, **kwargs: Any) -> Any:
    """An id a caller chooses (a location's, an event's): ``validation``'s id alphabet.

    Published, not enforced here: the service refuses other ids with its own message."""
    text = f"{description} " if description else ""
    return Field(description=f"{text}An id: {ID_RULE}.", json_schema_extra=_ID_SCHEMA, **kwargs)


def location_list_field(**kwargs: Any) -> Any:
    """A subscription's locations: ids, or exactly ``["*"]`` for all of the operator's."""
    return Field(
        min_length=1,
        max_length=MAX_LOCATIONS,
        description='Location ids, or ["*"]: all of the operator\'s, present and future.',
        json_schema_extra={
            "uniqueItems": True,
            "anyOf": [{"items": _ID_SCHEMA_TYPED}, {"const": [ANY]}],
        },
        **kwargs,
    )


def event_type_list_field(**kwargs: Any) -> Any:
    """A subscription's event types, or exactly ``["*"]`` for all."""
    return Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description='Event types, or ["*"]: all of them.',
        json_schema_extra={
            "uniqueItems": True,
            "anyOf": [{"items": EVENT_TYPE_ENUM}, {"const": [ANY]}],
        },
        **kwargs,
    )


# each dimension of a subscription in exactly one form: one value, or a list
ONE_FORM_EACH: dict[str, JsonValue] = {
    "allOf": [
        {"oneOf": [{"required": ["location_id"]}, {"required": ["location_ids"]}]},
        {"oneOf": [{"required": ["event_type"]}, {"required": ["event_types"]}]},
    ]
}


def id_in_path(description: str) -> Any:
    """An object's id in a path: one that cannot be an id names nothing (404)."""
    return Path(description=description, json_schema_extra=_ID_SCHEMA)


def name_in_path(description: str) -> Any:
    """An object's id or name in a path (an operator's): one that cannot be either is 404."""
    schema: dict[str, JsonValue] = {
        "pattern": TEXT_PATTERN,
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
    }
    return Path(description=description, json_schema_extra=schema)


def id_in_query(description: str) -> Any:
    """An id as a filter or a cursor: one that cannot be an id is refused (422); an empty
    value is the parameter left out."""
    schema: dict[str, JsonValue] = {"pattern": ID_OR_EMPTY_PATTERN, "maxLength": MAX_ID_LENGTH}
    return Query(description=description, json_schema_extra=schema)


def name_in_query(description: str) -> Any:
    """An id or a name as a filter (an operator's); an empty value is the filter left out."""
    return Query(description=description, json_schema_extra={"pattern": TEXT_OR_EMPTY_PATTERN})


def callback_url_field(**kwargs: Any) -> Any:
    return Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="http or https; no credentials in the URL; no private address unless "
        "allowed by configuration.",
        json_schema_extra={"pattern": CALLBACK_URL_PATTERN},
        **kwargs,
    )
