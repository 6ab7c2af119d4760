"""The traffic generator behind ``simulate`` and ``bench/``: realistic, seeded, and always what
the catalog accepts."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.traffic import COUNTRIES, DEFAULT_WEIGHTS, PRICES, SimulatedEvent, Traffic

LOCATIONS = [f"sim-{n:03d}" for n in range(1, 7)]
MAC = re.compile(r"^[0-9A-F]{2}(-[0-9A-F]{2}){5}$")
AMOUNT = re.compile(r"^\d+\.\d{2}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
TRANSACTIONS = [t for t in catalog.EVENT_TYPES if t.startswith("transaction.")]


@pytest.fixture(scope="module")
def stream() -> list[SimulatedEvent]:
    """6,000 events at six locations, a minute apart on average (about four days)."""
    return Traffic(LOCATIONS, seed=2026, pace=60).events(6000)


def test_every_payload_validates_against_the_catalog(stream: list[SimulatedEvent]) -> None:
    assert set(Counter(e.type for e in stream)) == set(catalog.EVENT_TYPES)
    for event in stream:
        event_type = catalog.EVENT_TYPES[event.type]
        assert catalog.validate(event_type, event.data) == event.data
        assert list(event.data) == list(event_type.fields)  # complete, in wire order
        assert catalog.serialize(event.data).decode().startswith('{"id":"')
        assert event.location_id in LOCATIONS


def test_event_ids_are_unique_and_made_of_the_id_alphabet(stream: list[SimulatedEvent]) -> None:
    ids = [e.id for e in stream]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}", i) for i in ids)
    payload_ids = [e.data["id"] for e in stream if e.type.startswith("transaction.")]
    assert len(set(payload_ids)) == len(payload_ids), "a transaction id came twice"


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first = Traffic(LOCATIONS, seed=7).events(500)
    again = Traffic(LOCATIONS, seed=7).events(500)
    other = Traffic(LOCATIONS, seed=8).events(500)
    assert first == again
    assert [e.data for e in first] != [e.data for e in other]
    assert Traffic(LOCATIONS, seed=7, run="r1").events(1)[0].id == "r1-0000001"


def test_the_type_mix_follows_the_weights(stream: list[SimulatedEvent]) -> None:
    counts = Counter(e.type for e in stream)
    total = sum(DEFAULT_WEIGHTS.values())
    for name, weight in DEFAULT_WEIGHTS.items():
        assert abs(counts[name] / len(stream) - weight / total) < 0.03, (name, counts)

    weighted = Traffic(LOCATIONS, seed=1, types={"customer.create": 3,
                                                 "transaction.paid.create": 1})  # fmt: skip
    chosen = Counter(e.type for e in weighted.events(2000))
    assert set(chosen) == {"customer.create", "transaction.paid.create"}
    assert 2.4 < chosen["customer.create"] / chosen["transaction.paid.create"] < 3.7

    only = Traffic(LOCATIONS, seed=1, types=["transaction.voucher.create"]).events(200)
    assert {e.type for e in only} == {"transaction.voucher.create"}


@pytest.mark.parametrize(
    ("types", "named"),
    [
        (["session.start"], "unknown event type 'session.start'"),
        ({"customer.create": 0}, "weight of customer.create must be above 0"),
        ([], "types is empty"),
    ],
)
def test_a_bad_type_mix_is_refused_naming_the_field(types: object, named: str) -> None:
    with pytest.raises(InvalidInput, match=named) as refused:
        Traffic(LOCATIONS, types=types)  # type: ignore[arg-type]
    assert refused.value.details[0]["field"] == "types"


def test_guests_come_back_registered_then_paying(stream: list[SimulatedEvent]) -> None:
    registered: dict[str, dict[str, str | None]] = {}
    subscribed: set[str] = set()
    returning = transactions = 0
    seen: set[str] = set()
    for event in stream:
        data = event.data
        if event.type in ("customer.create", "subscriber.create"):
            mac = str(data["UserName"])
            if event.type == "subscriber.create":
                subscribed.add(mac)
                if mac in registered:  # the customer subscribes: same person, same customer id
                    assert data["id"] == registered[mac]["id"]
            registered.setdefault(mac, data)
            seen.add(mac)
            continue
        mac = str(data["user_name"])
        transactions += 1
        returning += mac in seen
        seen.add(mac)
        if mac in registered:
            known = registered[mac]
            assert data["country_code"] == known["country_code"]
            if data["email"] is not None:
                assert data["email"] == known["email"]
            assert data["newsletter"] == ("1" if mac in subscribed else "0")
    assert returning / transactions > 0.4, "guests should come back"
    regulars = {str(e.data["user_name"]) for e in stream if e.type in TRANSACTIONS}
    assert len(regulars & set(registered)) > 300, "registered guests should transact later"


def test_macs_amounts_currencies_and_dates_are_well_formed(stream: list[SimulatedEvent]) -> None:
    for event in stream:
        data = event.data
        mac = str(data.get("UserName") or data.get("user_name"))
        assert MAC.match(mac), mac
        assert int(mac[:2], 16) & 1 == 0, f"{mac} is a multicast address"
        country = COUNTRIES[str(data["country_code"])]
        if data["phone"] is not None:
            assert re.fullmatch(rf"\+{country.calling_code}\d*", str(data["phone"]))
        when = data.get("registered_at") or data.get("action_date_gmt")
        assert DATE.match(str(when))
        if event.type in ("transaction.paid.create", "transaction.voucher.create"):
            currency, amount = str(data["currency"]), str(data["amount"])
            assert AMOUNT.match(amount)
            free = event.type == "transaction.voucher.create" and amount == "0.00"
            assert free or amount in PRICES[currency], (amount, currency)
            assert data["language"] in {c.language for c in COUNTRIES.values()}
        if event.type == "transaction.voucher.create":
            assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", str(data["customer"]))
        if event.type == "transaction.paid.create":
            assert data["operator"] == "hotspotsystem-demo"
            assert data["location_id"] == event.location_id


def test_one_location_charges_in_one_currency(stream: list[SimulatedEvent]) -> None:
    currencies: dict[str, set[str | None]] = {}
    for event in stream:
        if event.type in ("transaction.paid.create", "transaction.voucher.create"):
            currencies.setdefault(event.location_id, set()).add(event.data["currency"])
    assert all(len(found) == 1 for found in currencies.values()), currencies


def test_social_logins_and_questionnaires_are_complete(stream: list[SimulatedEvent]) -> None:
    networks = Counter()
    for event in stream:
        data = event.data
        if event.type == "transaction.social.create":
            networks[data["social_network"]] += 1
            assert str(data["social_id"]).isdigit()
            assert data["social_username"]
            assert data["social_age_range"] in (None, "18-24", "25-34", "35-44", "45-54",
                                                "55-64", "65+")  # fmt: skip
            assert data["social_gender"] in (None, "female", "male")
            followers = data["social_followers_count"]
            assert followers is None or str(followers).isdigit()
        if event.type == "transaction.mac.create":
            assert data["package_id"] and str(data["package_id"]).isdigit()
            asked = [n for n in range(1, 6) if data[f"q{n}"] is not None]
            assert asked == list(range(1, len(asked) + 1)), "questions are numbered from q1"
            assert all(data[f"a{n}"] is None for n in range(len(asked) + 1, 6))
    assert {"facebook", "google"} <= set(networks)


def test_names_addresses_and_phones_come_from_the_guests_country() -> None:
    traffic = Traffic(["only"], seed=11)
    home = traffic.locations[0].country.code
    registrations = [e.data for e in traffic.events(1500) if e.type == "customer.create"]
    countries = Counter(d["country_code"] for d in registrations)
    assert countries[home] / len(registrations) > 0.7, "most guests are from the location's country"
    assert len(countries) > 1, "some guests come from abroad"
    for data in registrations:
        assert str(data["email"]).isascii() and "@" in str(data["email"])


def test_locations_are_busy_by_day_and_quiet_at_night(stream: list[SimulatedEvent]) -> None:
    traffic = Traffic(LOCATIONS, seed=2026, pace=60)  # the same locations as ``stream``
    offsets = {loc.id: loc.country.utc_offset for loc in traffic.locations}
    local_hours = Counter((e.at + timedelta(hours=offsets[e.location_id])).hour for e in stream)
    night = sum(local_hours[h] for h in (2, 3, 4))
    day = sum(local_hours[h] for h in (10, 11, 12))
    assert night * 4 < day, local_hours


def test_an_event_is_dated_when_it_happens() -> None:
    at = datetime(2026, 11, 30, 21, 5, 9, tzinfo=UTC)
    traffic = Traffic(LOCATIONS, seed=3)
    for event in (traffic.event(at) for _ in range(50)):
        assert (event.data.get("registered_at") or event.data.get("action_date_gmt")) == (
            "2026-11-30 21:05:09"
        )
        assert event.as_request() == {
            "id": event.id, "type": event.type, "location_id": event.location_id,
            "data": event.data,
        }  # fmt: skip
