"""The six event types a hotspot platform emits: their fields, samples and JSON Schemas.

A payload is a flat JSON object whose values are strings or null, with the fields of its type in
the catalog's order. Validation is strict (an unknown field is an error, never passed on) and
omitted fields become null. ``serialize`` produces the exact bytes that are stored once and sent
on every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput, MalformedJSON, field_error
from .strict_json import shown

CUSTOMER_FIELDS = (
    "id", "UserName", "name", "email", "company_name", "address", "city", "state", "zip",
    "country_code", "phone", "fb_id", "fb_username", "fb_link", "fb_gender", "registered_at",
)  # fmt: skip
TRANSACTION_FIELDS = (
    "id", "operator", "location_id", "user_name", "customer", "action_date_gmt", "amount",
    "currency", "user_agent", "newsletter", "company_name", "email", "address", "city", "state",
    "zip", "country_code", "phone", "language", "smscountry",
)  # fmt: skip
MAC_TRANSACTION_FIELDS = (
    "id", "operator", "location_id", "user_name", "action_date_gmt", "package_id", "user_agent",
    "customer", "newsletter", "company_name", "email", "address", "city", "state", "zip",
    "country_code", "phone", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5", "a5",
)  # fmt: skip
SOCIAL_TRANSACTION_FIELDS = (
    "id", "operator", "location_id", "user_name", "action_date_gmt", "package_id", "user_agent",
    "customer", "newsletter", "company_name", "email", "address", "city", "state", "zip",
    "country_code", "phone", "social_id", "social_username", "social_link", "social_gender",
    "social_age_range", "social_followers_count", "social_network",
)  # fmt: skip

# A payload value holds no NUL character: receivers (PHP, C, a CRM's PostgreSQL) would cut
# the text at it or refuse it, and fail the delivery 21 times over.
VALUE_PATTERN = "^[^\\x00]*$"

_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@dataclass(frozen=True)
class EventType:
    """One kind of event: its name, when it fires, its fields in wire order and a sample."""

    name: str
    description: str
    fields: tuple[str, ...]
    sample: Mapping[str, str | None]

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of this type's payload."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": {
                name: {"type": ["string", "null"], "pattern": VALUE_PATTERN} for name in self.fields
            },
            "additionalProperties": False,
        }


def _sample(fields: tuple[str, ...], **values: str) -> dict[str, str | None]:
    unknown = set(values) - set(fields)
    assert not unknown, f"sample names fields not in the catalog: {unknown}"
    return {name: values.get(name) for name in fields}


_TRANSACTION_SAMPLE = {
    "operator": "hotspotsystem-demo",
    "location_id": "1",
    "user_name": "BE-72-B3-40-F9-BE",
    "customer": "Jane Doe",
    "action_date_gmt": "2022-08-27 13:41:09",
    "user_agent": _UA,
    "newsletter": "1",
    "email": "jane.doe@example.com",
    "city": "Buenos Aires",
    "country_code": "AR",
    "phone": "+5491123456789",
}

EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "customer.create",
            "A new customer has been registered.",
            CUSTOMER_FIELDS,
            _sample(
                CUSTOMER_FIELDS,
                id="59243583",
                UserName="BE-72-B3-40-F9-BE",
                email="myname@gmail.com",
                country_code="AR",
                phone="+54",
                registered_at="2022-08-27 13:35:53",
            ),
        ),
        EventType(
            "subscriber.create",
            "A new client has subscribed to the newsletter.",
            CUSTOMER_FIELDS,
            _sample(
                CUSTOMER_FIELDS,
                id="59243584",
                UserName="3C-22-FB-91-0A-7D",
                name="Jane Doe",
                email="jane.doe@example.com",
                city="Buenos Aires",
                country_code="AR",
                phone="+5491123456789",
                registered_at="2022-08-27 13:38:02",
            ),
        ),
        EventType(
            "transaction.paid.create",
            "A new paid transaction has been recorded.",
            TRANSACTION_FIELDS,
            _sample(
                TRANSACTION_FIELDS,
                id="8412377",
                amount="4.99",
                currency="USD",
                language="es",
                **_TRANSACTION_SAMPLE,
            ),
        ),
        EventType(
            "transaction.voucher.create",
            "A new voucher transaction has been recorded.",
            TRANSACTION_FIELDS,
            _sample(
                TRANSACTION_FIELDS,
                id="8412378",
                amount="0.00",
                currency="USD",
                language="en",
                **_TRANSACTION_SAMPLE,
            ),
        ),
        EventType(
            "transaction.mac.create",
            "A new MAC transaction has been recorded.",
            MAC_TRANSACTION_FIELDS,
            _sample(
                MAC_TRANSACTION_FIELDS,
                id="8412379",
                package_id="3",
                q1="How did you hear about us?",
                a1="A friend",
                **_TRANSACTION_SAMPLE,
            ),
        ),
        EventType(
            "transaction.social.create",
            "A new social transaction has been recorded.",
            SOCIAL_TRANSACTION_FIELDS,
            _sample(
                SOCIAL_TRANSACTION_FIELDS,
                id="8412380",
                package_id="2",
                social_id="10229384756",
                social_username="jane.doe",
                social_link="https://www.facebook.com/jane.doe",
                social_gender="female",
                social_age_range="25-34",
                social_followers_count="312",
                social_network="facebook",
                **_TRANSACTION_SAMPLE,
            ),
        ),
    )
}


def get_event_type(name: str, *, field: str = "type") -> EventType:
    """The event type called ``name``, or an error listing the known ones."""
    try:
        return EVENT_TYPES[name]
    except (KeyError, TypeError):
        known = ", ".join(EVENT_TYPES)
        raise InvalidInput(
            f"unknown event type {name!r}; expected one of: {known}",
            details=[field_error(field, f"unknown event type {name!r}")],
        ) from None


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object",
             str: "string", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def validate(event_type: EventType, data: object, *, field: str = "data") -> dict[str, str | None]:
    """Check ``data`` against the type and return it complete, in catalog order.

    Every problem is reported at once, each naming its field (``data.amount``), so a caller fixes
    a payload in one go.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{field} must be a JSON object, got {_json_type(data)}",
            details=[field_error(field, "must be a JSON object")],
        )
    allowed = set(event_type.fields)
    problems = []
    for key, value in data.items():
        if key not in allowed:
            name = f"{field}.{shown(str(key))}"  # any key: NUL and lone surrogates escaped
            problems.append(field_error(name, f"unknown field for {event_type.name}"))
        elif value is not None and not isinstance(value, str):
            problems.append(
                field_error(f"{field}.{key}", f"must be a string or null, got {_json_type(value)}")
            )
        elif value is not None and not _is_unicode_text(value):
            problems.append(
                field_error(f"{field}.{key}", "contains an unpaired UTF-16 surrogate (\\ud800)")
            )
        elif value is not None and "\x00" in value:
            problems.append(field_error(f"{field}.{key}", "contains a NUL character (\\u0000)"))
    if problems:
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(f"invalid {event_type.name} payload: {listed}", details=problems)
    return {name: data.get(name) for name in event_type.fields}


def _is_unicode_text(value: str) -> bool:
    """False for strings JSON can carry but UTF-8 cannot: lone surrogates like "\\ud800"."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# built once: json.dumps with non-default options builds a new encoder on every call
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def serialize(payload: Mapping[str, str | None]) -> bytes:
    """The exact body bytes: compact JSON, UTF-8, keys in catalog order."""
    return _COMPACT_JSON(payload).encode()


def parse_json(text: str | bytes, *, what: str = "data") -> Any:
    """Parse JSON text, turning a syntax error into a message that says where it is."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedJSON(
            f"{what} is not valid JSON: {exc}", details=[field_error(what, str(exc))]
        ) from None
