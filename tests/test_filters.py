"""Webhook filters (SPEC §9): the MongoDB-style language over a payload, checked at compile,
never raising at match."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotspot_webhooks.catalog import EVENT_TYPES
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.integrations.filters import (
    MAX_DEPTH,
    MAX_LIST,
    MAX_SIZE,
    OPERATORS,
    compile_filter,
)

PAID = dict(EVENT_TYPES["transaction.paid.create"].sample)  # amount "4.99", AR, newsletter "1"
CUSTOMER = dict(EVENT_TYPES["customer.create"].sample)  # name null, phone "+54"


def matches(filter_: object, data: dict[str, Any]) -> bool:
    return compile_filter(filter_).matches(data)


def refusal(filter_: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        compile_filter(filter_)
    return caught.value


def test_the_specs_example_matches_a_paid_transaction_from_argentina_with_newsletter() -> None:
    example = {"country_code": {"$in": ["AR", "BR"]}, "newsletter": "1"}
    assert matches(example, PAID)
    assert not matches(example, {**PAID, "country_code": "CL"})
    assert not matches(example, {**PAID, "newsletter": "0"})


def test_the_operators_are_exactly_the_specs() -> None:
    spec = "$eq $ne $in $nin $exists $gt $gte $lt $lte $and $or $not"
    assert sorted(OPERATORS) == sorted(spec.split(" "))


def test_an_empty_filter_matches_everything() -> None:
    assert matches({}, PAID)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"$gte": 10}, True),
        ({"$gte": "10"}, True),
        ({"$gt": 12.5}, False),
        ({"$gte": 12.5}, True),
        ({"$lt": 100}, True),
        ({"$lte": "12.5"}, True),
        ({"$gt": 9}, True),  # numerically; as text "12.50" < "9"
        ({"$eq": 12.5}, True),  # a number equals a numeric string of the same value
        ({"$eq": "12.5"}, False),  # two strings compare as text
        ({"$in": [12.5, 3]}, True),
        ({"$nin": [12.5]}, False),
        ({"$ne": 12.5}, False),
    ],
)
def test_amounts_in_strings_compare_as_numbers(condition: dict[str, Any], expected: bool) -> None:
    assert matches({"amount": condition}, {**PAID, "amount": "12.50"}) is expected


def test_the_specs_amount_example_matches_twelve_fifty_and_not_four_ninety_nine() -> None:
    rule = {"amount": {"$gte": 10}}
    assert matches(rule, {**PAID, "amount": "12.50"})
    assert not matches(rule, PAID)


@pytest.mark.parametrize("value", ["abc", None, "", " 12", "1_000", "NaN", "Infinity", "١٢"])
def test_a_non_numeric_value_never_matches_a_numeric_order_comparison(value: Any) -> None:
    for op in ("$gt", "$gte", "$lt", "$lte"):
        assert not matches({"amount": {op: 5}}, {"amount": value})
        assert matches({"amount": {"$not": {op: 5}}}, {"amount": value})


def test_dates_compare_in_text_order() -> None:
    august = {"registered_at": {"$gte": "2022-08-01 00:00:00", "$lt": "2022-09-01"}}
    assert matches(august, CUSTOMER)  # registered 2022-08-27 13:35:53
    assert not matches(august, {**CUSTOMER, "registered_at": "2022-09-02 10:00:00"})


def test_strings_equal_only_the_same_text() -> None:
    assert matches({"zip": "01234"}, {"zip": "01234"})
    assert not matches({"zip": "1234"}, {"zip": "01234"})
    assert matches({"package_id": 3}, {"package_id": "3"})
    assert matches({"package_id": 3}, {"package_id": "3.0"})
    assert not matches({"package_id": "3"}, {"package_id": "3.0"})


def test_booleans_are_not_numbers() -> None:
    assert not matches({"flag": True}, {"flag": 1})
    assert not matches({"flag": 1}, {"flag": True})
    assert not matches({"flag": {"$gt": 0}}, {"flag": True})
    assert matches({"flag": True}, {"flag": True})
    assert not matches({"flag": {"$in": [1]}}, {"flag": True})


def test_null_and_missing_both_mean_not_there() -> None:
    assert matches({"name": None}, CUSTOMER)
    assert matches({"nickname": None}, CUSTOMER)
    assert not matches({"name": {"$exists": True}}, CUSTOMER)
    assert matches({"name": {"$exists": False}}, CUSTOMER)
    assert matches({"email": {"$exists": True}}, CUSTOMER)
    assert not matches({"nickname": {"$exists": True}}, CUSTOMER)
    assert matches({"name": {"$in": [None, "Jane"]}}, CUSTOMER)
    assert matches({"name": {"$ne": "Jane"}}, CUSTOMER)
    assert matches({"nickname": {"$nin": ["x"]}}, CUSTOMER)


def test_or_and_not_combine_filters() -> None:
    big_or_brazil = {"$or": [{"amount": {"$gte": 100}}, {"country_code": "BR"}]}
    assert not matches(big_or_brazil, PAID)
    assert matches(big_or_brazil, {**PAID, "country_code": "BR"})
    assert matches(big_or_brazil, {**PAID, "amount": "150"})
    both = {"$and": [{"currency": "USD"}, {"$not": {"language": "en"}}]}
    assert matches(both, PAID)
    assert not matches(both, {**PAID, "language": "en"})


def test_several_operators_on_a_field_must_all_hold() -> None:
    between = {"amount": {"$gt": 1, "$lt": 5}}
    assert matches(between, PAID)
    assert not matches(between, {**PAID, "amount": "5"})


def test_a_bare_value_under_not_means_eq() -> None:
    assert matches({"country_code": {"$not": "BR"}}, PAID)
    assert not matches({"country_code": {"$not": "AR"}}, PAID)


def test_nested_values_are_reached_by_dotted_paths_and_lists_match_by_item() -> None:
    data: dict[str, Any] = {
        "address": {"city": "Rosario", "zip": "2000"},
        "tags": ["vip", "returning"],
        "scores": [3, "12"],
        "a.b": "flat key with a dot",
    }
    assert matches({"address.city": "Rosario"}, data)
    assert matches({"address.zip": {"$gte": 1000}}, data)
    assert not matches({"address.country": {"$exists": True}}, data)
    assert matches({"tags": "vip"}, data)
    assert matches({"tags.1": "returning"}, data)
    assert not matches({"tags.7": {"$exists": True}}, data)
    assert matches({"tags": {"$in": ["vip", "new"]}}, data)
    assert not matches({"tags": {"$nin": ["vip"]}}, data)
    assert matches({"scores": {"$gt": 10}}, data)
    assert matches({"a.b": "flat key with a dot"}, data)
    assert matches({"address": {"city": "Rosario", "zip": "2000"}}, data)
    assert not matches({"address": {"city": "Rosario"}}, data)
    assert not matches({"UserName.x": "y"}, CUSTOMER)  # a string is not walked into


def test_an_unknown_operator_is_named_with_the_known_ones() -> None:
    error = refusal({"amount": {"$foo": 1}})
    assert error.message.startswith("filter.amount: unknown operator $foo (known on a field: $eq")
    assert error.details == [
        {"field": "filter.amount", "message": error.message.removeprefix("filter.amount: ")}
    ]


@pytest.mark.parametrize(
    ("filter_", "field", "words"),
    [
        ({"$nor": []}, "filter", "unknown operator $nor"),
        ({"$regex": "a"}, "filter", "unknown operator $regex"),
        ({"$in": ["AR"]}, "filter", "$in applies to a field"),
        ({"amount": {"$in": "AR"}}, "filter.amount.$in", "takes a list"),
        ({"amount": {"$nin": list(range(MAX_LIST + 1))}}, "filter.amount.$nin", "at most 256"),
        ({"amount": {"$exists": 1}}, "filter.amount.$exists", "takes true or false"),
        ({"amount": {"$gt": None}}, "filter.amount.$gt", "takes a number or a string"),
        ({"amount": {"$lt": True}}, "filter.amount.$lt", "takes a number or a string"),
        ({"amount": {"$lte": [1]}}, "filter.amount.$lte", "takes a number or a string"),
        ({"amount": {"$gt": 1, "currency": "USD"}}, "filter.amount", "mixes operators"),
        ({"amount": {"$or": [{"$gt": 1}]}}, "filter.amount", "use it at the top"),
        ({"$or": []}, "filter.$or", "takes a list of 1 to 256 filters"),
        ({"$and": {"a": 1}}, "filter.$and", "takes a list"),
        ({"$or": [{"a": 1}, "b"]}, "filter.$or[1]", "must be a JSON object"),
        ({"$and": [{"$or": [{"x": {"$bad": 1}}]}]}, "filter.$and[0].$or[0].x", "$bad"),
        ({"$not": {"x": {"$not": {"$gt": {}}}}}, "filter.$not.x.$not.$gt", "a number or"),
        ({"": 1}, "filter", "non-empty strings"),
        (["country_code"], "filter", "must be a JSON object"),
        ("country_code == AR", "filter", "must be a JSON object"),
        ({"amount": float("nan")}, "filter", "must be JSON"),
    ],
)
def test_a_wrong_filter_is_refused_naming_where(filter_: object, field: str, words: str) -> None:
    error = refusal(filter_)
    assert error.details[0]["field"] == field
    assert words in error.message


def test_the_field_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_filter({"x": {"$foo": 1}}, field="webhooks[2].filter")
    assert caught.value.details[0]["field"] == "webhooks[2].filter.x"


def test_a_filter_over_its_bounds_is_refused() -> None:
    emails = [f"guest-{i:04d}@a-hotspot-operator-with-a-long-name.example.com" for i in range(250)]
    big = {"email": {"$in": emails}, "customer": {"$nin": emails}}
    assert len(json.dumps(big)) > MAX_SIZE
    assert "larger than 16 KiB" in refusal(big).message
    deep: dict[str, Any] = {"x": 1}
    for _ in range(MAX_DEPTH):
        deep = {"$not": deep}
    assert f"nested more than {MAX_DEPTH} levels" in refusal(deep).message
    very_deep: Any = 1
    for _ in range(100_000):
        very_deep = [very_deep]
    assert "nested more than" in refusal({"x": very_deep}).message


def test_a_compiled_filter_keeps_its_source() -> None:
    source = {"country_code": "AR"}
    compiled = compile_filter(source)
    assert compiled.source == source
    assert "country_code" in repr(compiled)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_hotspot_types_sample_passes_a_filter_on_its_own_fields(name: str) -> None:
    sample = dict(EVENT_TYPES[name].sample)
    rule = {"id": {"$exists": True}, "$or": [{"country_code": "AR"}, {"UserName": {"$ne": None}}]}
    assert matches(rule, sample)


numbers = st.one_of(
    st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3))
)


@given(numbers, numbers)
def test_order_comparisons_agree_with_the_numbers_in_the_strings(a: float, b: float) -> None:
    data = {"amount": str(b)}
    assert matches({"amount": {"$gt": a}}, data) is (b > a)
    assert matches({"amount": {"$gte": a}}, data) is (b >= a)
    assert matches({"amount": {"$lt": str(a)}}, data) is (b < a)
    assert matches({"amount": {"$lte": a}}, data) is (b <= a)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
operands = st.sampled_from(["AR", "12.5", 10, 0, "", None, True])


@given(json_values, operands, st.lists(operands, max_size=4))
def test_matching_never_raises_and_the_negations_are_negations(
    value: object, operand: object, listed: list[object]
) -> None:
    data = {"field": value}
    eq = matches({"field": operand}, data)
    assert matches({"field": {"$ne": operand}}, data) is not eq
    assert matches({"field": {"$not": {"$eq": operand}}}, data) is not eq
    within = matches({"field": {"$in": listed}}, data)
    assert within is any(matches({"field": item}, data) for item in listed)
    assert matches({"field": {"$nin": listed}}, data) is not within
    for op in ("$gt", "$gte", "$lt", "$lte"):
        if operand is not None and not isinstance(operand, bool):
            matches({"field": {op: operand}}, data)
    assert matches({"field": {"$exists": True}}, data) is (value is not None)
