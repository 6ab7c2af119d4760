"""The event catalog (SPEC §3): six types, fields in wire order, strict validation, exact bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotspot_webhooks.catalog import (
    EVENT_TYPES,
    VALUE_PATTERN,
    EventType,
    get_event_type,
    parse_json,
    serialize,
    validate,
)
from hotspot_webhooks.errors import InvalidInput, MalformedJSON

# Written out from SPEC §3 on purpose: the module's own tuples are what is under test.
CUSTOMER = [
    "id", "UserName", "name", "email", "company_name", "address", "city", "state", "zip",
    "country_code", "phone", "fb_id", "fb_username", "fb_link", "fb_gender", "registered_at",
]  # fmt: skip
TRANSACTION = [
    "id", "operator", "location_id", "user_name", "customer", "action_date_gmt", "amount",
    "currency", "user_agent", "newsletter", "company_name", "email", "address", "city", "state",
    "zip", "country_code", "phone", "language", "smscountry",
]  # fmt: skip
MAC_TRANSACTION = [
    "id", "operator", "location_id", "user_name", "action_date_gmt", "package_id", "user_agent",
    "customer", "newsletter", "company_name", "email", "address", "city", "state", "zip",
    "country_code", "phone", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5", "a5",
]  # fmt: skip
SOCIAL_TRANSACTION = [
    "id", "operator", "location_id", "user_name", "action_date_gmt", "package_id", "user_agent",
    "customer", "newsletter", "company_name", "email", "address", "city", "state", "zip",
    "country_code", "phone", "social_id", "social_username", "social_link", "social_gender",
    "social_age_range", "social_followers_count", "social_network",
]  # fmt: skip

SPEC_FIELDS = {
    "customer.create": CUSTOMER,
    "subscriber.create": CUSTOMER,
    "transaction.paid.create": TRANSACTION,
    "transaction.voucher.create": TRANSACTION,
    "transaction.mac.create": MAC_TRANSACTION,
    "transaction.social.create": SOCIAL_TRANSACTION,
}

# The reference example of SPEC §3, key order as printed there.
REFERENCE_CUSTOMER = {
    "id": "59243583", "UserName": "BE-72-B3-40-F9-BE", "name": None,
    "email": "myname@gmail.com", "company_name": None, "address": None, "city": None,
    "state": None, "zip": None, "country_code": "AR", "phone": "+54", "fb_id": None,
    "fb_username": None, "fb_link": None, "fb_gender": None,
    "registered_at": "2022-08-27 13:35:53",
}  # fmt: skip


def customer() -> EventType:
    return get_event_type("customer.create")


# --- the six types -------------------------------------------------------------------------


def test_catalog_has_exactly_the_six_spec_event_types() -> None:
    assert sorted(EVENT_TYPES) == sorted(SPEC_FIELDS)


@pytest.mark.parametrize(("name", "fields"), SPEC_FIELDS.items())
def test_event_type_fields_are_the_spec_fields_in_spec_order(name: str, fields: list[str]) -> None:
    event_type = get_event_type(name)
    assert event_type.name == name
    assert list(event_type.fields) == fields


@pytest.mark.parametrize("name", SPEC_FIELDS)
def test_each_sample_has_every_field_in_order_and_only_string_or_null_values(name: str) -> None:
    event_type = get_event_type(name)
    assert list(event_type.sample) == SPEC_FIELDS[name]
    assert all(v is None or isinstance(v, str) for v in event_type.sample.values())
    assert validate(event_type, dict(event_type.sample)) == dict(event_type.sample)


# --- the reference example -----------------------------------------------------------------


def test_reference_customer_example_validates_unchanged() -> None:
    assert validate(customer(), REFERENCE_CUSTOMER) == REFERENCE_CUSTOMER


def test_reference_customer_example_serializes_to_exactly_the_spec_keys_values_and_order() -> None:
    body = serialize(validate(customer(), REFERENCE_CUSTOMER))
    parsed = json.loads(body)
    assert parsed == REFERENCE_CUSTOMER
    assert list(parsed) == list(REFERENCE_CUSTOMER)


def test_reference_customer_example_serializes_to_these_exact_bytes() -> None:
    body = serialize(validate(customer(), REFERENCE_CUSTOMER))
    assert body == (
        b'{"id":"59243583","UserName":"BE-72-B3-40-F9-BE","name":null,'
        b'"email":"myname@gmail.com","company_name":null,"address":null,"city":null,'
        b'"state":null,"zip":null,"country_code":"AR","phone":"+54","fb_id":null,'
        b'"fb_username":null,"fb_link":null,"fb_gender":null,'
        b'"registered_at":"2022-08-27 13:35:53"}'
    )


def test_validate_puts_fields_given_out_of_order_back_in_catalog_order() -> None:
    shuffled = dict(reversed(list(REFERENCE_CUSTOMER.items())))
    assert list(validate(customer(), shuffled)) == CUSTOMER


# --- serialize -----------------------------------------------------------------------------


def test_serialize_is_compact_json_without_spaces() -> None:
    body = serialize({"id": "1", "name": None})
    assert body == b'{"id":"1","name":null}'


def test_serialize_keeps_non_ascii_as_utf8_bytes_not_escapes() -> None:
    body = serialize({"city": "Café", "name": "Zoë 日本"})
    assert "Café".encode() in body
    assert "日本".encode() in body
    assert b"\\u" not in body
    assert body.decode("utf-8") == '{"city":"Café","name":"Zoë 日本"}'


def test_serialize_is_deterministic() -> None:
    payload = validate(customer(), {"id": "7", "city": "Café", "email": "a@b.c"})
    assert serialize(payload) == serialize(dict(payload))
    again = validate(customer(), {"email": "a@b.c", "city": "Café", "id": "7"})
    assert serialize(again) == serialize(payload)


# --- validate ------------------------------------------------------------------------------


def test_omitted_fields_become_null() -> None:
    payload = validate(customer(), {"id": "1"})
    assert list(payload) == CUSTOMER
    assert payload["id"] == "1"
    assert all(payload[name] is None for name in CUSTOMER if name != "id")


def test_empty_payload_becomes_all_nulls() -> None:
    assert validate(get_event_type("transaction.paid.create"), {}) == dict.fromkeys(TRANSACTION)


def test_unknown_field_is_rejected_naming_it_in_message_and_details() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"id": "1", "foo": "bar"})
    assert "data.foo" in info.value.message
    assert [d["field"] for d in info.value.details] == ["data.foo"]
    assert info.value.status == 422


def test_field_of_another_type_is_unknown_here() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"amount": "4.99"})
    assert [d["field"] for d in info.value.details] == ["data.amount"]


def test_field_name_prefix_follows_the_field_argument() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"foo": "x"}, field="events[3].data")
    assert [d["field"] for d in info.value.details] == ["events[3].data.foo"]


@pytest.mark.parametrize(
    ("value", "json_type"),
    [(59243583, "number"), (1.5, "number"), (True, "boolean"), (["a"], "array"),
     ({"a": "b"}, "object")],
)  # fmt: skip
def test_non_string_value_is_rejected_naming_field_and_json_type(
    value: object, json_type: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"id": value})
    assert "data.id" in info.value.message
    assert json_type in info.value.message
    [detail] = info.value.details
    assert detail["field"] == "data.id"
    assert json_type in detail["message"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"id": 1, "foo": "x", "email": "ok@x.y", "phone": False, "bar": None})
    fields = sorted(d["field"] for d in info.value.details)
    assert fields == ["data.bar", "data.foo", "data.id", "data.phone"]
    for field in fields:
        assert field in info.value.message


@pytest.mark.parametrize("data", [["id", "1"], "id=1", 42, None, True])
def test_payload_that_is_not_an_object_is_rejected(data: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate(customer(), data)
    assert "data" in info.value.message
    assert [d["field"] for d in info.value.details] == ["data"]


def test_unknown_event_type_is_rejected_listing_the_known_types() -> None:
    with pytest.raises(InvalidInput) as info:
        get_event_type("customer.delete")
    assert "customer.delete" in info.value.message
    for name in SPEC_FIELDS:
        assert name in info.value.message
    assert [d["field"] for d in info.value.details] == ["type"]


def test_unhashable_event_type_is_rejected_as_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        get_event_type(["customer.create"])  # type: ignore[arg-type]


def test_string_that_cannot_be_utf8_encoded_is_rejected_as_invalid_input_naming_field() -> None:
    data = parse_json(r'{"id": "1", "name": "\ud800"}')
    with pytest.raises(InvalidInput) as info:
        serialize(validate(customer(), data))
    assert [d["field"] for d in info.value.details] == ["data.name"]


def test_a_nul_character_in_a_value_is_rejected_naming_the_field() -> None:
    # receivers in PHP or C, or storing into PostgreSQL, would cut or refuse the text
    with pytest.raises(InvalidInput) as info:
        validate(customer(), {"id": "1", "city": "Rosario\x00; DROP"})
    assert [d["field"] for d in info.value.details] == ["data.city"]
    assert "NUL" in info.value.message


# --- JSON Schemas --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEC_FIELDS)
def test_json_schema_lists_exactly_the_fields_as_string_or_null_and_forbids_others(
    name: str,
) -> None:
    schema = get_event_type(name).json_schema()
    assert schema["type"] == "object"
    assert list(schema["properties"]) == SPEC_FIELDS[name]
    assert all(
        p == {"type": ["string", "null"], "pattern": VALUE_PATTERN}
        for p in schema["properties"].values()
    )
    assert schema["additionalProperties"] is False
    assert schema["title"] == name


@pytest.mark.parametrize("name", SPEC_FIELDS)
def test_sample_conforms_to_its_own_schema(name: str) -> None:
    # jsonschema is not installed in the venv; check the sample against the schema by hand
    event_type = get_event_type(name)
    schema = event_type.json_schema()
    sample = json.loads(serialize(event_type.sample))
    assert set(sample) <= set(schema["properties"])
    for key, value in sample.items():
        allowed = schema["properties"][key]["type"]
        assert ("null" if value is None else "string") in allowed
        assert value is None or isinstance(value, str)


# --- parse_json ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{", '{"id": }', "nope", "", b"\xff\xfe{}", "{'id': '1'}"])
def test_parse_json_raises_malformed_json_with_status_400(text: str | bytes) -> None:
    with pytest.raises(MalformedJSON) as info:
        parse_json(text)
    assert info.value.status == 400
    assert "not valid JSON" in info.value.message
    assert [d["field"] for d in info.value.details] == ["data"]


def test_malformed_json_is_an_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_json("[", what="body")


def test_parse_json_names_what_was_parsed() -> None:
    with pytest.raises(MalformedJSON) as info:
        parse_json("[", what="body")
    assert info.value.message.startswith("body ")
    assert info.value.details[0]["field"] == "body"


def test_parse_json_accepts_utf8_bytes() -> None:
    assert parse_json('{"city": "Café"}'.encode()) == {"city": "Café"}


# --- property ------------------------------------------------------------------------------


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, dict[str, str | None]]:
    name = draw(st.sampled_from(sorted(SPEC_FIELDS)))
    # any text UTF-8 can carry: no NUL, no lone surrogate (both refused, tested apart)
    text = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
    values = st.none() | st.text(text, max_size=24)
    data = draw(st.fixed_dictionaries({}, optional={field: values for field in SPEC_FIELDS[name]}))
    return name, data


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(payloads())
def test_any_string_without_nul_or_null_payload_validates_and_round_trips_in_catalog_order(
    case: tuple[str, dict[str, str | None]],
) -> None:
    name, data = case
    payload = validate(get_event_type(name), data)
    assert list(payload) == SPEC_FIELDS[name]
    parsed = json.loads(serialize(payload))
    assert list(parsed) == SPEC_FIELDS[name]
    assert parsed == {field: data.get(field) for field in SPEC_FIELDS[name]}
