"""Event types an admin registers beside the six built-ins: a name, a description, a JSON
Schema (Draft 2020-12) and a sample. Pure: no I/O.

A payload of such a type is validated against its schema by ``jsonschema`` (the schema is
checked once, at registration, and compiled once per process) and sent as the compact JSON
of what was given, keys in the order given. Errors name the field, as the built-ins' do
(``data.amount: 'x' is not of type 'number'``), all of them at once.

The schema runs safely (``safe_schema``): its references resolve inside it only (nothing is
ever fetched), its patterns run on RE2; one that cannot run so is refused at registration,
and a type stored before these checks that fails them refuses its events (422), never 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, cast

from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

from . import catalog
from .errors import Conflict, InvalidInput, field_error
from .safe_schema import (
    MAX_DEPTH,
    Refusal,
    check_schema,
    depth_of,
    refusal,
    validator_for,
)

# lowercase words joined by dots, at least two (``session.start``, ``guest.checkout.done``)
NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
MAX_NAME = 64
MAX_DESCRIPTION = 1000
MAX_SCHEMA_BYTES = 64 * 1024
# what the REST API's request union tags an event of a registered type with (dropped from
# the field names its errors give)
REGISTERED_TAG = "registered event type"
MAX_ERRORS = 10  # reported at once; the rest are summed up
MAX_FOUND = 100  # looked for at most: each costs a message quoting the value and the schema
MAX_MESSAGE = 200
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class CustomEventType:
    name: str
    description: str
    json_schema: Mapping[str, Any]
    sample: Mapping[str, Any]
    created_at: datetime
    _validator: Validator | None = field(init=False, repr=False, compare=False)
    refused: Refusal | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        refused = refusal(self.json_schema)
        object.__setattr__(self, "refused", refused)
        validator = None if refused else validator_for(self.json_schema)
        object.__setattr__(self, "_validator", validator)

    @property
    def fields(self) -> list[str]:
        """The top-level properties its schema names, as far as it names them."""
        properties = self.json_schema.get("properties")
        return list(properties) if isinstance(properties, Mapping) else []

    def validate(self, data: object, *, field: str = "data") -> Any:
        """``data`` if its schema holds; else ``InvalidInput`` naming each field wrong."""
        errors = sorted(self._errors(data, field), key=lambda e: list(e.absolute_path))
        if not errors:
            return data
        problems = [
            field_error(_field_of(field, error), _problem(error)) for error in errors[:MAX_ERRORS]
        ]
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        if len(errors) >= MAX_FOUND:
            more = f" (and {MAX_FOUND - MAX_ERRORS} more at least)"
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(f"invalid {self.name} payload: {listed}{more}", details=problems)

    def _errors(self, data: object, field: str) -> list[ValidationError]:
        """What its schema finds wrong with ``data``; a schema that cannot run (stored before
        the checks of ``safe_schema``), or data too deep for it, is ``InvalidInput``."""
        type_field = field.removesuffix("data") + "type" if field.endswith("data") else field
        if self._validator is None:
            assert self.refused is not None
            reason = f"{self.refused.path}: {self.refused.reason}"
            raise _invalid(
                type_field,
                f"event type {self.name!r} has a schema this version refuses to run ({reason}); "
                "the admin removes the type and registers it again with that fixed",
            )
        try:
            return list(islice(self._validator.iter_errors(cast(Any, data)), MAX_FOUND))
        except RecursionError:
            raise _invalid(
                field, f"nested too deeply to check against the schema of {self.name!r}"
            ) from None
        except Exception as exc:  # a stored schema this version could not foresee
            said = str(exc).replace("\n", " ")[:MAX_MESSAGE]
            raise _invalid(
                type_field,
                f"the schema of event type {self.name!r} could not be applied "
                f"({type(exc).__name__}: {said})",
            ) from None


def check_definition(
    name: str, description: str, json_schema: object, sample: object
) -> CustomEventType:
    """A type to register, checked: a new name (not a built-in's) of the allowed shape, a
    valid Draft 2020-12 schema of a JSON object, and a sample that it accepts."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not _NAME.match(name):
        raise _invalid(
            "name",
            f"must be {MAX_NAME} characters at most of lowercase words joined by dots, "
            "like session.start",
        )
    if name in catalog.EVENT_TYPES:
        raise Conflict(
            f"{name!r} is a built-in event type; built-ins cannot be changed or shadowed",
            details=[field_error("name", "a built-in event type")],
        )
    if not isinstance(json_schema, Mapping):
        raise _invalid("schema", "must be a JSON Schema (a JSON object)")
    if depth_of(json_schema) > MAX_DEPTH:
        raise _invalid("schema", f"nested more than {MAX_DEPTH} levels deep")
    if len(json.dumps(json_schema)) > MAX_SCHEMA_BYTES:
        raise _invalid("schema", f"larger than {MAX_SCHEMA_BYTES // 1024} KiB")
    try:
        check_schema(json_schema)
    except RecursionError:
        raise _invalid("schema", "nested too deeply to check") from None
    except SchemaError as exc:
        reason = exc.message[:MAX_MESSAGE]
        raise _invalid("schema", f"not a valid JSON Schema (Draft 2020-12): {reason}") from None
    if json_schema.get("type") != "object":
        raise _invalid("schema", 'must describe a JSON object: "type": "object"')
    defined = CustomEventType(name, description, dict(json_schema), {}, datetime.min)
    if defined.refused is not None:
        raise _invalid(defined.refused.path, defined.refused.reason)
    try:
        defined.validate(sample, field="sample")
    except InvalidInput as exc:
        raise InvalidInput(
            f"the sample does not match the schema: {exc.message}", details=exc.details
        ) from None
    assert isinstance(sample, Mapping)
    return CustomEventType(name, description, dict(json_schema), dict(sample), datetime.min)


def serialize(payload: Any) -> bytes:
    """The exact body bytes of a custom event: compact JSON, UTF-8, keys as given."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _field_of(prefix: str, error: ValidationError) -> str:
    name = prefix
    for part in error.absolute_path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error.validator == "required" and isinstance(error.message, str):
        missing = error.message.split("'")[1] if error.message.count("'") >= 2 else None
        if missing:
            name += f".{missing}"
    return name


def _problem(error: ValidationError) -> str:
    """One line; ``jsonschema`` quotes the offending value whole, so it is cut short."""
    if error.validator == "required":
        return "is required"
    message = error.message
    if error.validator == "additionalProperties":
        message = message.replace("Additional properties are not allowed ", "not allowed: ")
    message = message.replace("\n", " ")
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field_name}: {message}", details=[field_error(field_name, message)])
