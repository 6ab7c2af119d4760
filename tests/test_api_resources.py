"""Every REST endpoint's successful behaviour, through real HTTP.

Each test talks to the API served by uvicorn on 127.0.0.1 (``api`` / ``make_api`` from
``conftest``) with httpx, and deliveries go to real aiohttp receivers on 127.0.0.1. Answers
are checked for their exact shapes (SPEC §5's field names) and values, and what the service
did is checked where it shows: what the receiver got, what the store answers afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.receiver import (
    ORIGINAL_HEADER_LITERAL,
    verify_signature,
    verify_standard_signature,
)
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver, Received
from tests.shapes import (
    ATTEMPT_FIELDS,
    DELIVERY_FIELDS,
    EVENT_FIELDS,
    LOCATION_FIELDS,
    OPERATOR_FIELDS,
    SECRET_FIELDS,
    TOKEN_FIELDS,
    WEBHOOK_FIELDS,
)

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
SIX_TYPES = [
    "customer.create",
    "subscriber.create",
    "transaction.paid.create",
    "transaction.voucher.create",
    "transaction.mac.create",
    "transaction.social.create",
]
CUSTOMER_SAMPLE = dict(catalog.EVENT_TYPES["customer.create"].sample)
REFERENCE_CUSTOMER = {
    "id": "59243583",
    "UserName": "BE-72-B3-40-F9-BE",
    "name": None,
    "email": "myname@gmail.com",
    "company_name": None,
    "address": None,
    "city": None,
    "state": None,
    "zip": None,
    "country_code": "AR",
    "phone": "+54",
    "fb_id": None,
    "fb_username": None,
    "fb_link": None,
    "fb_gender": None,
    "registered_at": "2022-08-27 13:35:53",
}

UNREACHABLE = "http://127.0.0.1:9/hook"  # nothing listens: never delivered


# helpers


def moment(value: str) -> datetime:
    """A timestamp from an answer: ISO 8601 with a time zone, or the test fails."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


def recent(value: str, within: float = 60) -> bool:
    """True if the answer's timestamp is within ``within`` seconds of now."""
    return abs((datetime.now(UTC) - moment(value)).total_seconds()) < within


def zulu(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def until(condition: Callable[[], bool], within: float = 10) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def operator_id_of(api: LiveAPI, name: str) -> str:
    listed = await api.ok("GET", "/v1/operators")
    [found] = [o for o in listed["data"] if o["name"] == name]
    return str(found["id"])


async def emit(
    api: LiveAPI,
    token: str,
    location_id: str,
    event_type: str = "customer.create",
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": event_type,
        "location_id": location_id,
        "data": dict(catalog.EVENT_TYPES[event_type].sample) if data is None else data,
    }
    if event_id is not None:
        body["id"] = event_id
    response = await api.call("POST", "/v1/events", token, json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def deliveries_of(api: LiveAPI, token: str, **filters: str) -> list[dict[str, Any]]:
    page = await api.ok("GET", "/v1/deliveries", token, params={**filters, "limit": 1000})
    assert page["next_cursor"] is None
    found: list[dict[str, Any]] = page["data"]
    return found


def signature_of(request: Received) -> str:
    value = request.header(ORIGINAL_HEADER_LITERAL)
    assert value is not None, f"no {ORIGINAL_HEADER_LITERAL} header in {request.headers}"
    return value


@pytest.fixture
async def second_receiver() -> AsyncIterator[PythonReceiver]:
    receiver = await PythonReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def token(api: LiveAPI) -> str:
    """The token of operator acme, which has one location: loc-1."""
    return await api.operator_at("loc-1")


@pytest.fixture
async def webhook(api: LiveAPI, token: str, python_receiver: PythonReceiver) -> dict[str, Any]:
    """acme's customer.create webhook at loc-1 to ``python_receiver``, as created (with its key)."""
    return await api.webhook(token, "loc-1", python_receiver.url)


# event types


async def test_event_types_are_public_and_describe_all_six_with_fields_schema_and_sample(
    api: LiveAPI,
) -> None:
    response = await api.call("GET", "/v1/event-types", token=None)

    assert response.status_code == 200
    listed = response.json()
    assert set(listed) == {"data", "next_cursor"}
    assert listed["next_cursor"] is None
    assert [t["name"] for t in listed["data"]] == SIX_TYPES
    for info in listed["data"]:
        event_type = catalog.EVENT_TYPES[info["name"]]
        assert set(info) == {"name", "description", "fields", "json_schema", "sample", "builtin"}
        assert info["builtin"] is True
        assert info["description"] == event_type.description
        assert info["fields"] == list(event_type.fields)
        assert list(info["sample"]) == list(event_type.fields)  # wire order
        assert info["sample"] == dict(event_type.sample)
        schema = info["json_schema"]
        assert schema["type"] == "object"
        assert schema["title"] == info["name"]
        assert schema["additionalProperties"] is False
        assert list(schema["properties"]) == list(event_type.fields)
        assert all(
            p == {"type": ["string", "null"], "pattern": catalog.VALUE_PATTERN}
            for p in schema["properties"].values()
        )
    customer = listed["data"][0]
    assert customer["sample"] == REFERENCE_CUSTOMER
    assert customer["fields"][:4] == ["id", "UserName", "name", "email"]
    assert listed["data"][4]["fields"][-2:] == ["q5", "a5"]
    assert listed["data"][5]["fields"][-1] == "social_network"


async def test_one_event_type_is_served_by_name_exactly_as_listed(api: LiveAPI) -> None:
    listed = await api.ok("GET", "/v1/event-types", token=None)

    for expected in listed["data"]:
        response = await api.call("GET", f"/v1/event-types/{expected['name']}", token=None)
        assert response.status_code == 200
        assert response.json() == expected


# operators and tokens


async def test_the_admin_creates_an_operator_and_its_token_is_shown_once(api: LiveAPI) -> None:
    response = await api.call("POST", "/v1/operators", json={"name": "acme"})

    assert response.status_code == 201
    created = response.json()
    assert set(created) == OPERATOR_FIELDS | {"token"}
    assert created["name"] == "acme"
    assert created["id"].startswith("op_")
    assert created["token"].startswith("hwt_") and len(created["token"]) >= 40
    assert recent(created["created_at"])
    listed = await api.ok("GET", "/v1/operators")
    assert listed == {
        "data": [
            {
                "id": created["id"],
                "name": "acme",
                "status": "enabled",
                "disabled_reason": None,
                "created_at": created["created_at"],
            }
        ],
        "next_cursor": None,
    }
    # the token works: the operator sees its own (empty) list of locations
    assert await api.ok("GET", "/v1/locations", created["token"]) == {
        "data": [],
        "next_cursor": None,
    }


async def test_listing_operators_shows_every_operator_without_their_tokens(api: LiveAPI) -> None:
    created = [
        await api.ok("POST", "/v1/operators", json={"name": name})
        for name in ("acme", "globex", "initech")
    ]

    listed = await api.ok("GET", "/v1/operators")

    assert listed["next_cursor"] is None
    assert all(set(o) == OPERATOR_FIELDS for o in listed["data"])
    assert sorted(listed["data"], key=lambda o: o["name"]) == [
        {k: c[k] for k in OPERATOR_FIELDS} for c in created
    ]


async def test_a_further_token_for_an_operator_acts_as_that_operator(api: LiveAPI) -> None:
    first = await api.ok("POST", "/v1/operators", json={"name": "acme"})

    response = await api.call("POST", f"/v1/operators/{first['id']}/tokens")

    assert response.status_code == 201
    token = response.json()
    assert set(token) == TOKEN_FIELDS
    assert token["operator_id"] == first["id"]
    assert token["id"].startswith("tok_")
    assert token["token"].startswith("hwt_")
    assert token["token"] != first["token"]
    assert recent(token["created_at"])
    created = await api.ok(
        "POST", "/v1/locations", token["token"], json={"id": "loc-1", "name": "Café"}
    )
    assert created["operator_id"] == first["id"]
    # both tokens see the same operator's objects
    for either in (first["token"], token["token"]):
        listed = await api.ok("GET", "/v1/locations", either)
        assert [loc["id"] for loc in listed["data"]] == ["loc-1"]


# locations


async def test_an_operator_creates_a_location_for_itself_and_reads_it_back(api: LiveAPI) -> None:
    token = await api.operator("acme")
    acme = await operator_id_of(api, "acme")

    response = await api.call(
        "POST", "/v1/locations", token, json={"id": "loc-1042", "name": "Café Central"}
    )

    assert response.status_code == 201
    created = response.json()
    assert set(created) == LOCATION_FIELDS
    assert (created["id"], created["name"], created["operator_id"]) == (
        "loc-1042",
        "Café Central",
        acme,
    )
    assert recent(created["created_at"])
    assert await api.ok("GET", "/v1/locations/loc-1042", token) == created
    assert await api.ok("GET", "/v1/locations", token) == {"data": [created], "next_cursor": None}


async def test_the_admin_creates_a_location_for_the_operator_it_names(api: LiveAPI) -> None:
    token = await api.operator("acme")
    acme = await operator_id_of(api, "acme")

    created = await api.ok(
        "POST", "/v1/locations", json={"id": "loc-7", "name": "Hotel", "operator_id": acme}
    )

    assert created["operator_id"] == acme
    assert await api.ok("GET", "/v1/locations/loc-7", token) == created


async def test_locations_list_shows_an_operator_its_own_and_the_admin_all(api: LiveAPI) -> None:
    acme_token = await api.operator_at("acme-1", "acme-2")
    globex_token = await api.operator_at("globex-1", name="globex")
    acme = await operator_id_of(api, "acme")

    acme_sees = await api.ok("GET", "/v1/locations", acme_token)
    globex_sees = await api.ok("GET", "/v1/locations", globex_token)
    admin_sees = await api.ok("GET", "/v1/locations")
    admin_filtered = await api.ok("GET", "/v1/locations", params={"operator_id": acme})

    assert sorted(loc["id"] for loc in acme_sees["data"]) == ["acme-1", "acme-2"]
    assert [loc["id"] for loc in globex_sees["data"]] == ["globex-1"]
    assert sorted(loc["id"] for loc in admin_sees["data"]) == ["acme-1", "acme-2", "globex-1"]
    assert sorted(loc["id"] for loc in admin_filtered["data"]) == ["acme-1", "acme-2"]
    assert all(set(loc) == LOCATION_FIELDS for loc in admin_sees["data"])


# webhooks


async def test_creating_a_webhook_shows_its_api_key_and_signing_secret_only_then(
    api: LiveAPI, token: str
) -> None:
    body = {
        "location_id": "loc-1",
        "event_type": "transaction.paid.create",
        "callback_url": UNREACHABLE,
    }

    response = await api.call("POST", "/v1/webhooks", token, json=body)

    assert response.status_code == 201
    created = response.json()
    assert set(created) == WEBHOOK_FIELDS | SECRET_FIELDS
    assert created["id"].startswith("wh_")
    assert {k: created[k] for k in body} == body
    assert (created["status"], created["disabled_reason"]) == ("enabled", None)
    assert recent(created["created_at"])
    api_key = created["api_key"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", api_key)
    assert created["signing_secret"] == "whsec_" + base64.b64encode(api_key.encode()).decode()
    shown = await api.ok("GET", f"/v1/webhooks/{created['id']}", token)
    assert shown == {k: v for k, v in created.items() if k not in SECRET_FIELDS}
    listed = await api.ok("GET", "/v1/webhooks", token)
    assert listed == {"data": [shown], "next_cursor": None}


async def test_webhooks_list_filters_by_location_event_type_and_status(
    api: LiveAPI, token: str
) -> None:
    await api.location(token, "loc-2")
    a = await api.webhook(token, "loc-1", UNREACHABLE, "customer.create")
    b = await api.webhook(token, "loc-1", UNREACHABLE, "subscriber.create")
    c = await api.webhook(token, "loc-2", UNREACHABLE, "customer.create")
    await api.ok("PATCH", f"/v1/webhooks/{c['id']}", token, json={"status": "disabled"})

    async def ids(**params: str) -> set[str]:
        page = await api.ok("GET", "/v1/webhooks", token, params=params)
        assert all(set(w) == WEBHOOK_FIELDS for w in page["data"])
        return {w["id"] for w in page["data"]}

    assert await ids() == {a["id"], b["id"], c["id"]}
    assert await ids(location_id="loc-1") == {a["id"], b["id"]}
    assert await ids(event_type="customer.create") == {a["id"], c["id"]}
    assert await ids(location_id="loc-1", event_type="subscriber.create") == {b["id"]}
    assert await ids(status="enabled") == {a["id"], b["id"]}
    assert await ids(status="disabled") == {c["id"]}
    assert await ids(location_id="loc-2", status="enabled") == set()


async def test_patching_the_callback_url_sends_later_deliveries_to_the_new_url(
    api: LiveAPI,
    token: str,
    webhook: dict[str, Any],
    python_receiver: PythonReceiver,
    second_receiver: PythonReceiver,
) -> None:
    response = await api.call(
        "PATCH",
        f"/v1/webhooks/{webhook['id']}",
        token,
        json={"callback_url": second_receiver.url},
    )

    assert response.status_code == 200
    updated = response.json()
    assert set(updated) == WEBHOOK_FIELDS
    assert updated["callback_url"] == second_receiver.url
    assert (updated["status"], updated["disabled_reason"]) == ("enabled", None)
    assert updated["created_at"] == webhook["created_at"]
    assert moment(updated["updated_at"]) >= moment(webhook["updated_at"])
    assert await api.ok("GET", f"/v1/webhooks/{webhook['id']}", token) == updated
    await emit(api, token, "loc-1")
    await until(lambda: len(second_receiver.requests) == 1)
    assert python_receiver.requests == []


async def test_disabling_a_webhook_sets_a_reason_and_enabling_it_clears_the_reason(
    api: LiveAPI, token: str, webhook: dict[str, Any], python_receiver: PythonReceiver
) -> None:
    path = f"/v1/webhooks/{webhook['id']}"

    disabled = await api.ok("PATCH", path, token, json={"status": "disabled"})

    assert set(disabled) == WEBHOOK_FIELDS
    assert disabled["status"] == "disabled"
    assert isinstance(disabled["disabled_reason"], str) and disabled["disabled_reason"]
    assert disabled["callback_url"] == python_receiver.url
    assert await api.ok("GET", path, token) == disabled
    # a disabled webhook gets no deliveries
    assert (await emit(api, token, "loc-1"))["deliveries"] == 0

    enabled = await api.ok("PATCH", path, token, json={"status": "enabled"})

    assert (enabled["status"], enabled["disabled_reason"]) == ("enabled", None)
    assert await api.ok("GET", path, token) == enabled
    assert (await emit(api, token, "loc-1"))["deliveries"] == 1
    await until(lambda: len(python_receiver.requests) == 1)


async def test_patching_url_and_status_together_changes_both(api: LiveAPI, token: str) -> None:
    webhook = await api.webhook(token, "loc-1", "http://127.0.0.1:9/old")

    updated = await api.ok(
        "PATCH",
        f"/v1/webhooks/{webhook['id']}",
        token,
        json={"callback_url": "http://127.0.0.1:9/new", "status": "disabled"},
    )

    assert updated["callback_url"] == "http://127.0.0.1:9/new"
    assert updated["status"] == "disabled"
    assert updated["disabled_reason"]


async def test_deleting_a_webhook_removes_it_with_its_deliveries(
    api: LiveAPI, token: str, webhook: dict[str, Any], python_receiver: PythonReceiver
) -> None:
    keeper = await api.webhook(token, "loc-1", python_receiver.url)
    emitted = await emit(api, token, "loc-1")
    assert emitted["deliveries"] == 2
    [doomed] = await deliveries_of(api, token, webhook_id=webhook["id"])

    response = await api.call("DELETE", f"/v1/webhooks/{webhook['id']}", token)

    assert response.status_code == 204
    assert response.content == b""
    gone = await api.call("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert gone.status_code == 404
    assert gone.json()["success"] is False
    assert gone.json()["error"]["code"] == 404
    assert (await api.call("GET", f"/v1/deliveries/{doomed['id']}", token)).status_code == 404
    assert await deliveries_of(api, token, webhook_id=webhook["id"]) == []
    assert [d["webhook_id"] for d in await deliveries_of(api, token, event_id=emitted["id"])] == [
        keeper["id"]
    ]
    listed = await api.ok("GET", "/v1/webhooks", token)
    assert [w["id"] for w in listed["data"]] == [keeper["id"]]


async def test_rotating_the_key_signs_later_deliveries_with_the_new_key(
    api: LiveAPI, token: str, webhook: dict[str, Any], python_receiver: PythonReceiver
) -> None:
    old_key = webhook["api_key"]
    await emit(api, token, "loc-1", event_id="before-rotation")
    await until(lambda: len(python_receiver.requests) == 1)
    before = python_receiver.requests[0]
    assert verify_signature(before.body, signature_of(before), old_key)

    response = await api.call("POST", f"/v1/webhooks/{webhook['id']}/rotate-key", token)

    assert response.status_code == 200
    rotated = response.json()
    assert set(rotated) == WEBHOOK_FIELDS | SECRET_FIELDS
    new_key = rotated["api_key"]
    assert new_key != old_key
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", new_key)
    assert rotated["signing_secret"] == "whsec_" + base64.b64encode(new_key.encode()).decode()
    assert rotated["signing_secret"] != webhook["signing_secret"]
    assert {k: rotated[k] for k in ("id", "location_id", "event_type", "callback_url")} == {
        k: webhook[k] for k in ("id", "location_id", "event_type", "callback_url")
    }
    assert SECRET_FIELDS.isdisjoint(await api.ok("GET", f"/v1/webhooks/{webhook['id']}", token))

    await emit(api, token, "loc-1", event_id="after-rotation")
    await until(lambda: len(python_receiver.requests) == 2)
    after = python_receiver.requests[1]
    assert after.header("webhook-id") == "after-rotation"
    assert verify_signature(after.body, signature_of(after), new_key)
    assert not verify_signature(after.body, signature_of(after), old_key)
    assert verify_standard_signature(after.header_dict, after.body, new_key)


async def test_sending_a_test_event_delivers_the_type_sample_once_and_answers_the_attempt(
    api: LiveAPI, token: str, python_receiver: PythonReceiver
) -> None:
    webhook = await api.webhook(token, "loc-1", python_receiver.url, "transaction.mac.create")
    sample = dict(catalog.EVENT_TYPES["transaction.mac.create"].sample)

    response = await api.call("POST", f"/v1/webhooks/{webhook['id']}/test", token)

    assert response.status_code == 200
    delivery = response.json()
    assert set(delivery) == DELIVERY_FIELDS | {"attempts"}
    assert delivery["webhook_id"] == webhook["id"]
    assert delivery["event_type"] == "transaction.mac.create"
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status"]) == (
        "succeeded",
        1,
        200,
    )
    assert delivery["last_error"] is None
    assert delivery["delivered_at"] is not None and recent(delivery["delivered_at"])
    [attempt] = delivery["attempts"]
    assert set(attempt) == ATTEMPT_FIELDS
    assert (attempt["number"], attempt["status"], attempt["error"]) == (1, 200, None)
    assert attempt["response_excerpt"] == "answer 200"
    assert attempt["request_headers"]["X-Hotspotsystem-Event"] == "transaction.mac.create"
    # the receiver got the sample, signed, exactly once
    [received] = python_receiver.requests
    assert json.loads(received.body) == sample
    assert received.body == catalog.serialize(sample)
    assert verify_signature(received.body, signature_of(received), webhook["api_key"])
    assert received.header("X-Hotspotsystem-Delivery") == delivery["id"]
    assert received.header("X-Hotspotsystem-Location") == "loc-1"
    # it is a real delivery: listed, with its event, and the dispatcher does not send it again
    event = await api.ok("GET", f"/v1/events/{delivery['event_id']}", token)
    assert (event["type"], event["location_id"], event["data"]) == (
        "transaction.mac.create",
        "loc-1",
        sample,
    )
    await asyncio.sleep(0.3)  # six dispatcher passes
    assert len(python_receiver.requests) == 1
    shown = await api.ok("GET", f"/v1/deliveries/{delivery['id']}", token)
    assert shown == delivery


async def test_a_test_event_the_receiver_answers_500_leaves_a_pending_delivery(
    make_api: Callable[..., Any], python_receiver: PythonReceiver
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    python_receiver.respond = lambda n: 500
    token, webhook = await api.hooked("loc-1", python_receiver.url)

    response = await api.call("POST", f"/v1/webhooks/{webhook['id']}/test", token)

    assert response.status_code == 200
    delivery = response.json()
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status"]) == (
        "pending",
        1,
        500,
    )
    assert delivery["last_error"] == "receiver answered HTTP 500"
    assert delivery["delivered_at"] is None
    assert delivery["next_attempt_at"] is not None
    [attempt] = delivery["attempts"]
    assert (attempt["number"], attempt["status"], attempt["response_excerpt"]) == (
        1,
        500,
        "answer 500",
    )
    assert len(python_receiver.requests) == 1
    assert json.loads(python_receiver.requests[0].body) == CUSTOMER_SAMPLE


async def test_recovering_requeues_the_failed_deliveries_created_since_the_given_time(
    make_api: Callable[..., Any], python_receiver: PythonReceiver
) -> None:
    api: LiveAPI = await make_api(max_retries=0)
    answers = {"status": 500}
    python_receiver.respond = lambda n: answers["status"]
    token, webhook = await api.hooked("loc-1", python_receiver.url)
    await emit(api, token, "loc-1", event_id="too-old")
    [old] = await deliveries_of(api, token, event_id="too-old")
    await api.wait_for_delivery(token, old["id"], "failed")
    await asyncio.sleep(0.01)
    since = zulu(datetime.now(UTC))
    await asyncio.sleep(0.01)
    await emit(api, token, "loc-1", event_id="recent")
    [new] = await deliveries_of(api, token, event_id="recent")
    await api.wait_for_delivery(token, new["id"], "failed")
    answers["status"] = 200

    response = await api.call(
        "POST", f"/v1/webhooks/{webhook['id']}/recover", token, json={"since": since}
    )

    assert response.status_code == 200
    result = response.json()
    assert set(result) == {"webhook_id", "since", "requeued"}
    assert result["webhook_id"] == webhook["id"]
    assert moment(result["since"]) == moment(since)
    assert result["requeued"] == 1
    recovered = await api.wait_for_delivery(token, new["id"], "succeeded")
    assert recovered["attempt_count"] == 2
    assert [a["status"] for a in recovered["attempts"]] == [500, 200]
    still = await api.ok("GET", f"/v1/deliveries/{old['id']}", token)
    assert (still["status"], still["attempt_count"]) == ("failed", 1)
    assert len(python_receiver.requests) == 3


# events


async def test_emitting_an_event_stores_it_with_one_delivery_per_enabled_matching_webhook(
    api: LiveAPI, token: str, python_receiver: PythonReceiver, second_receiver: PythonReceiver
) -> None:
    await api.location(token, "loc-2")
    first = await api.webhook(token, "loc-1", python_receiver.url, "subscriber.create")
    second = await api.webhook(token, "loc-1", second_receiver.url, "subscriber.create")
    off = await api.webhook(token, "loc-1", python_receiver.url, "subscriber.create")
    await api.ok("PATCH", f"/v1/webhooks/{off['id']}", token, json={"status": "disabled"})
    await api.webhook(token, "loc-1", python_receiver.url, "customer.create")  # other type
    await api.webhook(token, "loc-2", python_receiver.url, "subscriber.create")  # other place
    data = {"id": "77", "UserName": "AA-BB-CC-DD-EE-FF", "email": "guest@example.com"}

    response = await api.call(
        "POST",
        "/v1/events",
        token,
        json={"type": "subscriber.create", "location_id": "loc-1", "data": data, "id": "evt-42"},
    )

    assert response.status_code == 202
    assert response.json() == {"id": "evt-42", "deliveries": 2, "duplicate": False}
    event = await api.ok("GET", "/v1/events/evt-42", token)
    assert set(event) == EVENT_FIELDS
    full = {name: data.get(name) for name in catalog.CUSTOMER_FIELDS}
    assert event["data"] == full
    assert list(event["data"]) == list(catalog.CUSTOMER_FIELDS)
    assert (event["id"], event["type"], event["location_id"], event["deliveries"]) == (
        "evt-42",
        "subscriber.create",
        "loc-1",
        2,
    )
    assert recent(event["created_at"])
    delivered = await deliveries_of(api, token, event_id="evt-42")
    assert {d["webhook_id"] for d in delivered} == {first["id"], second["id"]}
    assert all(set(d) == DELIVERY_FIELDS for d in delivered)
    assert all(d["event_type"] == "subscriber.create" for d in delivered)
    await until(lambda: len(python_receiver.requests) == len(second_receiver.requests) == 1)
    for received in (python_receiver.requests[0], second_receiver.requests[0]):
        assert json.loads(received.body) == full
        assert received.header("webhook-id") == "evt-42"


async def test_emitting_without_an_id_generates_one(api: LiveAPI, token: str) -> None:
    result = await emit(api, token, "loc-1")

    assert set(result) == {"id", "deliveries", "duplicate"}
    assert result["id"].startswith("evt_")
    assert (result["deliveries"], result["duplicate"]) == (0, False)
    assert (await api.ok("GET", f"/v1/events/{result['id']}", token))["id"] == result["id"]


@pytest.mark.usefixtures("webhook")
async def test_emitting_the_same_id_again_changes_nothing_and_says_duplicate(
    api: LiveAPI, token: str, python_receiver: PythonReceiver
) -> None:
    first = await emit(api, token, "loc-1", event_id="evt-once")
    stored = await api.ok("GET", "/v1/events/evt-once", token)
    await until(lambda: len(python_receiver.requests) == 1)

    again = await emit(
        api, token, "loc-1", data={"id": "different", "email": "x@example.com"}, event_id="evt-once"
    )

    assert first == {"id": "evt-once", "deliveries": 1, "duplicate": False}
    assert again == {"id": "evt-once", "deliveries": 1, "duplicate": True}
    assert await api.ok("GET", "/v1/events/evt-once", token) == stored
    assert len(await deliveries_of(api, token, event_id="evt-once")) == 1
    await asyncio.sleep(0.2)  # a few dispatcher passes
    assert len(python_receiver.requests) == 1


async def test_a_batch_answers_one_result_per_event_in_the_order_sent(
    api: LiveAPI, token: str, python_receiver: PythonReceiver
) -> None:
    await api.webhook(token, "loc-1", python_receiver.url, "customer.create")
    await api.webhook(token, "loc-1", python_receiver.url, "transaction.paid.create")
    await emit(api, token, "loc-1", event_id="already-there")
    events = [
        {"type": t, "location_id": "loc-1", "data": dict(catalog.EVENT_TYPES[t].sample)}
        for t in SIX_TYPES
    ]
    events[0]["id"] = "b-1"
    events[2]["id"] = "b-3"
    events.append({**events[0], "id": "already-there"})

    response = await api.call("POST", "/v1/events/batch", token, json={"events": events})

    assert response.status_code == 202
    answer = response.json()
    assert set(answer) == {"data"}
    results = answer["data"]
    assert [r["deliveries"] for r in results] == [1, 0, 1, 0, 0, 0, 1]
    assert [r["duplicate"] for r in results] == [False] * 6 + [True]
    assert (results[0]["id"], results[2]["id"]) == ("b-1", "b-3")
    assert results[6]["id"] == "already-there"
    assert all(r["id"].startswith("evt_") for i, r in enumerate(results) if i in (1, 3, 4, 5))
    for result, sent in zip(results[:6], events[:6], strict=True):
        stored = await api.ok("GET", f"/v1/events/{result['id']}", token)
        assert (stored["type"], stored["data"]) == (sent["type"], sent["data"])


async def test_a_batch_of_1000_events_is_accepted_in_one_call(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    token, webhook = await api.hooked("loc-1", UNREACHABLE)
    events = [
        {
            "type": "customer.create",
            "location_id": "loc-1",
            "id": f"bulk-{n:04d}",
            "data": {"id": str(n), "UserName": "BE-72-B3-40-F9-BE"},
        }
        for n in range(1000)
    ]

    response = await api.call("POST", "/v1/events/batch", token, json={"events": events})

    assert response.status_code == 202
    results = response.json()["data"]
    assert results == [
        {"id": f"bulk-{n:04d}", "deliveries": 1, "duplicate": False} for n in range(1000)
    ]
    listed = await api.ok("GET", "/v1/events", token, params={"limit": 1000})
    assert len(listed["data"]) == 1000 and listed["next_cursor"] is None
    assert len(await deliveries_of(api, token, webhook_id=webhook["id"])) == 1000


async def pages_of(
    api: LiveAPI, token: str, path: str, limit: int, fields: set[str]
) -> list[list[str]]:
    """Follow ``next_cursor`` from the first page to the last; the ids of each page."""
    pages = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = await api.ok("GET", path, token, params=params)
        assert set(page) == {"data", "next_cursor"}
        assert all(set(item) == fields for item in page["data"])
        pages.append([item["id"] for item in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_events_list_is_newest_first_and_cursor_pages_cover_everything_once(
    api: LiveAPI, token: str
) -> None:
    singles = []
    for n in range(5):
        singles.append((await emit(api, token, "loc-1", event_id=f"single-{n}"))["id"])
        await asyncio.sleep(0.002)
    batch = [
        {"type": "customer.create", "location_id": "loc-1", "data": {}, "id": f"batch-{n}"}
        for n in range(5)
    ]
    await api.ok("POST", "/v1/events/batch", token, json={"events": batch})
    # one batch shares one created_at: ties are ordered by id, newest-first overall
    expected = [f"batch-{n}" for n in reversed(range(5))] + list(reversed(singles))

    pages = await pages_of(api, token, "/v1/events", 3, EVENT_FIELDS)

    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i for p in pages for i in p] == expected
    everything = await api.ok("GET", "/v1/events", token)
    assert [e["id"] for e in everything["data"]] == expected
    assert everything["next_cursor"] is None
    stamps = [moment(e["created_at"]) for e in everything["data"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_events_list_filters_by_location_and_type(api: LiveAPI, token: str) -> None:
    await api.location(token, "loc-2")
    await emit(api, token, "loc-1", "customer.create", event_id="e1")
    await emit(api, token, "loc-1", "transaction.paid.create", event_id="e2")
    await emit(api, token, "loc-2", "customer.create", event_id="e3")

    async def ids(**params: str) -> list[str]:
        page = await api.ok("GET", "/v1/events", token, params=params)
        return [e["id"] for e in page["data"]]

    assert await ids(location_id="loc-1") == ["e2", "e1"]
    assert await ids(type="customer.create") == ["e3", "e1"]
    assert await ids(location_id="loc-2", type="customer.create") == ["e3"]
    assert await ids(location_id="loc-2", type="transaction.paid.create") == []


async def test_an_event_is_shown_with_its_payload_and_delivery_count(
    api: LiveAPI, token: str, python_receiver: PythonReceiver
) -> None:
    await api.webhook(token, "loc-1", python_receiver.url, "transaction.social.create")
    sample = dict(catalog.EVENT_TYPES["transaction.social.create"].sample)
    await emit(api, token, "loc-1", "transaction.social.create", event_id="social-1")

    shown = await api.ok("GET", "/v1/events/social-1", token)

    assert set(shown) == EVENT_FIELDS
    assert shown["id"] == "social-1"
    assert shown["type"] == "transaction.social.create"
    assert shown["location_id"] == "loc-1"
    assert shown["data"] == sample
    assert shown["deliveries"] == 1
    assert recent(shown["created_at"])
    listed = await api.ok("GET", "/v1/events", token)
    assert listed["data"] == [shown]


# deliveries


async def test_deliveries_list_pages_with_a_cursor_covering_all_without_repeats(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    token, webhook = await api.hooked("loc-1", UNREACHABLE)
    for n in range(7):
        await emit(api, token, "loc-1", event_id=f"one-{n}")
        await asyncio.sleep(0.002)  # delivery ids sort by millisecond, then at random
    batch = [
        {"type": "customer.create", "location_id": "loc-1", "data": {}, "id": f"many-{n}"}
        for n in range(5)
    ]
    await api.ok("POST", "/v1/events/batch", token, json={"events": batch})

    pages = await pages_of(api, token, "/v1/deliveries", 5, DELIVERY_FIELDS)
    seen = [i for p in pages for i in p]

    assert [len(p) for p in pages] == [5, 5, 2]
    assert len(seen) == len(set(seen)) == 12
    everything = await deliveries_of(api, token)
    assert [d["id"] for d in everything] == seen  # the same order, newest first
    assert {d["event_id"] for d in everything} == {f"one-{n}" for n in range(7)} | {
        f"many-{n}" for n in range(5)
    }
    assert all(d["webhook_id"] == webhook["id"] for d in everything)
    assert all(
        (d["status"], d["attempt_count"], d["last_status"], d["last_error"], d["delivered_at"])
        == ("pending", 0, None, None, None)
        for d in everything
    )
    assert {d["event_id"] for d in everything[:5]} == {f"many-{n}" for n in range(5)}
    assert [d["event_id"] for d in everything[5:]] == [f"one-{n}" for n in reversed(range(7))]
    assert len(await deliveries_of(api, token, status="pending")) == 12
    assert await deliveries_of(api, token, status="succeeded") == []


async def test_deliveries_list_filters_by_webhook_event_and_status(
    make_api: Callable[..., Any], python_receiver: PythonReceiver, second_receiver: PythonReceiver
) -> None:
    api: LiveAPI = await make_api(max_retries=0)
    second_receiver.respond = lambda n: 500
    token = await api.operator_at("loc-1")
    good = await api.webhook(token, "loc-1", python_receiver.url)
    bad = await api.webhook(token, "loc-1", second_receiver.url)
    await emit(api, token, "loc-1", event_id="e1")
    await emit(api, token, "loc-1", event_id="e2")
    for d in await deliveries_of(api, token):
        expected = "succeeded" if d["webhook_id"] == good["id"] else "failed"
        await api.wait_for_delivery(token, d["id"], expected)

    def pairs(found: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["event_id"], d["webhook_id"]) for d in found}

    all_four = {(e, w["id"]) for e in ("e1", "e2") for w in (good, bad)}
    assert pairs(await deliveries_of(api, token)) == all_four
    assert pairs(await deliveries_of(api, token, webhook_id=good["id"])) == {
        ("e1", good["id"]),
        ("e2", good["id"]),
    }
    assert pairs(await deliveries_of(api, token, event_id="e2")) == {
        ("e2", good["id"]),
        ("e2", bad["id"]),
    }
    failed = await deliveries_of(api, token, status="failed")
    assert pairs(failed) == {("e1", bad["id"]), ("e2", bad["id"])}
    assert all(
        (d["attempt_count"], d["last_status"], d["last_error"], d["delivered_at"])
        == (1, 500, "receiver answered HTTP 500", None)
        for d in failed
    )
    succeeded = await deliveries_of(api, token, status="succeeded")
    assert pairs(succeeded) == {("e1", good["id"]), ("e2", good["id"])}
    assert all(
        d["last_status"] == 200 and d["delivered_at"] and d["next_attempt_at"] is None
        for d in succeeded
    )
    assert pairs(
        await deliveries_of(api, token, webhook_id=bad["id"], event_id="e1", status="failed")
    ) == {("e1", bad["id"])}
    assert await deliveries_of(api, token, webhook_id=good["id"], status="failed") == []
    assert await deliveries_of(api, token, status="pending") == []


async def test_a_delivery_is_shown_with_every_attempt_made(
    api: LiveAPI, token: str, webhook: dict[str, Any], python_receiver: PythonReceiver
) -> None:
    python_receiver.respond = lambda n: 500 if n == 1 else 200
    await emit(api, token, "loc-1", event_id="evt-attempts")
    [listed] = await deliveries_of(api, token, event_id="evt-attempts")

    shown = await api.wait_for_delivery(token, listed["id"], "succeeded")

    assert set(shown) == DELIVERY_FIELDS | {"attempts"}
    assert (shown["id"], shown["event_id"], shown["webhook_id"], shown["event_type"]) == (
        listed["id"],
        "evt-attempts",
        webhook["id"],
        "customer.create",
    )
    assert (shown["attempt_count"], shown["last_status"], shown["last_error"]) == (2, 200, None)
    assert shown["next_attempt_at"] is None
    assert shown["created_at"] == listed["created_at"]
    assert moment(shown["delivered_at"]) >= moment(shown["created_at"])
    first, second = shown["attempts"]
    for number, attempt in enumerate((first, second), start=1):
        assert set(attempt) == ATTEMPT_FIELDS
        assert attempt["number"] == number
        assert recent(attempt["started_at"])
        assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
        headers = attempt["request_headers"]
        assert headers["X-Hotspotsystem-Attempt"] == str(number)
        assert headers["X-Hotspotsystem-Delivery"] == listed["id"]
        assert headers["X-Hotspotsystem-Event"] == "customer.create"
        assert headers["X-Hotspotsystem-Location"] == "loc-1"
        assert headers["webhook-id"] == "evt-attempts"
        assert headers["Content-Type"] == "application/json"
        assert attempt["error"] is None
    assert moment(second["started_at"]) >= moment(first["started_at"])
    assert (first["status"], first["response_excerpt"]) == (500, "answer 500")
    assert (second["status"], second["response_excerpt"]) == (200, "answer 200")
    assert [r.header("X-Hotspotsystem-Attempt") for r in python_receiver.requests] == ["1", "2"]


async def test_retrying_a_succeeded_delivery_sends_it_again(
    api: LiveAPI, token: str, webhook: dict[str, Any], python_receiver: PythonReceiver
) -> None:
    await emit(api, token, "loc-1", event_id="evt-again")
    [delivery] = await deliveries_of(api, token, event_id="evt-again")
    await api.wait_for_delivery(token, delivery["id"], "succeeded")

    response = await api.call("POST", f"/v1/deliveries/{delivery['id']}/retry", token)

    assert response.status_code == 202
    retried = response.json()
    assert set(retried) == DELIVERY_FIELDS
    assert (retried["id"], retried["webhook_id"]) == (delivery["id"], webhook["id"])
    assert retried["status"] in ("pending", "succeeded")  # the dispatcher may already be at it
    await until(lambda: len(python_receiver.requests) == 2)
    again = await api.wait_for_delivery(token, delivery["id"], "succeeded")
    assert again["attempt_count"] == 2
    assert [a["number"] for a in again["attempts"]] == [1, 2]
    first, second = python_receiver.requests
    assert second.body == first.body
    assert second.header("X-Hotspotsystem-Attempt") == "2"
    assert second.header("webhook-id") == first.header("webhook-id") == "evt-again"
    assert verify_signature(second.body, signature_of(second), webhook["api_key"])


async def test_retrying_answers_the_delivery_made_due_now(make_api: Callable[..., Any]) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    token, _ = await api.hooked("loc-1", UNREACHABLE)
    await emit(api, token, "loc-1", event_id="evt-due")
    [delivery] = await deliveries_of(api, token, event_id="evt-due")

    retried = await api.ok("POST", f"/v1/deliveries/{delivery['id']}/retry", token)

    assert retried["status"] == "pending"
    assert retried["attempt_count"] == 0
    assert recent(retried["next_attempt_at"], within=5)


# health, OpenAPI, docs


async def test_health_and_readiness_answer_ok_without_a_token(api: LiveAPI) -> None:
    for path in ("/healthz", "/readyz"):
        response = await api.call("GET", path, token=None)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_openapi_lists_every_endpoint_and_an_example_per_event_type(api: LiveAPI) -> None:
    response = await api.call("GET", "/openapi.json", token=None)

    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    expected = {
        "/v1/event-types": {"get"},
        "/v1/event-types/{name}": {"get"},
        "/v1/operators": {"get", "post"},
        "/v1/operators/{operator_id}/tokens": {"post"},
        "/v1/locations": {"get", "post"},
        "/v1/locations/{location_id}": {"get"},
        "/v1/webhooks": {"get", "post"},
        "/v1/webhooks/{webhook_id}": {"get", "patch", "delete"},
        "/v1/webhooks/{webhook_id}/rotate-key": {"post"},
        "/v1/webhooks/{webhook_id}/test": {"post"},
        "/v1/webhooks/{webhook_id}/recover": {"post"},
        "/v1/events": {"get", "post"},
        "/v1/events/batch": {"post"},
        "/v1/events/{event_id}": {"get"},
        "/v1/deliveries": {"get"},
        "/v1/deliveries/{delivery_id}": {"get"},
        "/v1/deliveries/{delivery_id}/retry": {"post"},
        "/healthz": {"get"},
        "/readyz": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, f"{path} is missing from /openapi.json"
        assert methods <= set(paths[path]), f"{path}: {sorted(paths[path])}"
    emit_body = paths["/v1/events"]["post"]["requestBody"]
    examples = emit_body["content"]["application/json"]["examples"]
    assert sorted(examples) == sorted(SIX_TYPES)
    for name, example in examples.items():
        value = example["value"]
        assert value["type"] == name
        assert value["location_id"]
        # the whole sample, nulls included, in wire order: what a receiver will see
        sample = catalog.EVENT_TYPES[name].sample
        assert list(value["data"].items()) == list(sample.items())
    assert {"bearer", "sn-apikey"} <= {
        str(s.get("scheme", s.get("name", ""))).lower()
        for s in document["components"]["securitySchemes"].values()
    }


async def test_the_docs_page_answers_html(api: LiveAPI) -> None:
    response = await api.call("GET", "/docs", token=None)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "/openapi.json" in response.text


async def test_the_docs_page_needs_no_cdn_its_assets_are_served_here(api: LiveAPI) -> None:
    page = (await api.call("GET", "/docs", token=None)).text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+\.(?:js|css))['"]""", page)

    assert assets, page
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the service itself"
        served = await api.call("GET", asset, token=None)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


# authentication and tenancy


async def test_the_sn_apikey_header_authenticates_exactly_like_a_bearer_token(
    api: LiveAPI, python_receiver: PythonReceiver
) -> None:
    token = await api.operator("acme")

    async def by_sn_apikey(method: str, path: str, body: Any = None) -> httpx.Response:
        """The call with the token in the original platform's header only."""
        return await api.call(method, path, token=None, headers={"sn-apikey": token}, json=body)

    created = await by_sn_apikey("POST", "/v1/locations", {"id": "loc-sn", "name": "Plaza"})
    assert created.status_code == 201
    webhook = await by_sn_apikey(
        "POST",
        "/v1/webhooks",
        {
            "location_id": "loc-sn",
            "event_type": "customer.create",
            "callback_url": python_receiver.url,
        },
    )
    assert webhook.status_code == 201
    emitted = await by_sn_apikey(
        "POST",
        "/v1/events",
        {"type": "customer.create", "location_id": "loc-sn", "data": {}, "id": "sn-1"},
    )
    assert emitted.status_code == 202
    assert emitted.json() == {"id": "sn-1", "deliveries": 1, "duplicate": False}

    for path in (
        "/v1/locations",
        "/v1/locations/loc-sn",
        "/v1/webhooks",
        f"/v1/webhooks/{webhook.json()['id']}",
        "/v1/events",
        "/v1/events/sn-1",
    ):
        by_header = await by_sn_apikey("GET", path)
        by_bearer = await api.call("GET", path, token=token)
        assert by_header.status_code == by_bearer.status_code == 200, path
        assert by_header.json() == by_bearer.json(), path
    # the admin token works in the same header
    admin_view = await api.call(
        "GET", "/v1/operators", token=None, headers={"sn-apikey": ADMIN_TOKEN}
    )
    assert admin_view.status_code == 200
    assert [o["name"] for o in admin_view.json()["data"]] == ["acme"]


async def test_the_admin_sees_every_operators_objects(
    api: LiveAPI, python_receiver: PythonReceiver
) -> None:
    made: dict[str, dict[str, Any]] = {}
    for name in ("acme", "globex"):
        token, webhook = await api.hooked(f"{name}-loc", python_receiver.url, name=name)
        await emit(api, token, f"{name}-loc", event_id=f"{name}-evt")
        [delivery] = await deliveries_of(api, token, event_id=f"{name}-evt")
        made[name] = {"token": token, "webhook": webhook, "delivery": delivery}
    await until(lambda: len(python_receiver.requests) == 2)

    locations = await api.ok("GET", "/v1/locations")
    webhooks = await api.ok("GET", "/v1/webhooks")
    events = await api.ok("GET", "/v1/events")
    deliveries = await deliveries_of(api, ADMIN_TOKEN)

    assert sorted(loc["id"] for loc in locations["data"]) == ["acme-loc", "globex-loc"]
    assert {w["id"] for w in webhooks["data"]} == {m["webhook"]["id"] for m in made.values()}
    assert {e["id"] for e in events["data"]} == {"acme-evt", "globex-evt"}
    assert {d["id"] for d in deliveries} == {m["delivery"]["id"] for m in made.values()}
    for name, m in made.items():
        webhook_id = m["webhook"]["id"]
        assert (await api.ok("GET", f"/v1/locations/{name}-loc"))["id"] == f"{name}-loc"
        assert (await api.ok("GET", f"/v1/webhooks/{webhook_id}"))["id"] == webhook_id
        assert (await api.ok("GET", f"/v1/events/{name}-evt"))["location_id"] == f"{name}-loc"
        shown = await api.ok("GET", f"/v1/deliveries/{m['delivery']['id']}")
        assert shown["webhook_id"] == webhook_id
        # and each operator still sees only its own
        own = await api.ok("GET", "/v1/webhooks", m["token"])
        assert [w["id"] for w in own["data"]] == [webhook_id]
    # the admin acts on any operator's objects too
    rotated = await api.ok("POST", f"/v1/webhooks/{made['globex']['webhook']['id']}/rotate-key")
    assert rotated["api_key"] != made["globex"]["webhook"]["api_key"]
    tested = await api.ok("POST", f"/v1/webhooks/{made['acme']['webhook']['id']}/test")
    assert tested["status"] == "succeeded"


async def test_recovering_when_nothing_failed_requeues_nothing(
    api: LiveAPI, token: str, webhook: dict[str, Any]
) -> None:
    since = zulu(datetime.now(UTC) - timedelta(hours=1))

    result = await api.ok(
        "POST", f"/v1/webhooks/{webhook['id']}/recover", token, json={"since": since}
    )

    assert result["webhook_id"] == webhook["id"]
    assert result["requeued"] == 0
    assert moment(result["since"]) == moment(since)
