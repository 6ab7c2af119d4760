"""Operators are isolated: one operator can neither see nor touch another's objects.

SPEC §5: an operator's token sees and changes only its own locations, webhooks, events and
deliveries; another operator's objects answer 404, exactly as if they did not exist (never
403, never the object). Two operators, alpha (A) and bravo (B), each get a location, a webhook
to a real receiver, an event and its delivery; A then tries everything on B's objects, through
real HTTP against the API served by uvicorn on a real SQLite file. Each test checks A's answer
and that B's objects are exactly as they were, seen by B.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from hotspot_webhooks.receiver import ORIGINAL_HEADER, verify_signature
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver
from tests.shapes import OBJECT_ROUTES, error_of

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
NEVER_EXISTED = "no-such-thing-0000"


# helpers


def text_of(response: httpx.Response) -> str:
    """The answer's JSON as text, non-ASCII unescaped, to search for what must not be there."""
    return json.dumps(response.json(), ensure_ascii=False)


@dataclass
class Tenant:
    """One operator with a location, a webhook, an event and that event's delivery."""

    name: str
    token: str
    operator_id: str
    location_id: str
    location_name: str
    webhook: dict[str, Any]
    event_id: str
    data: dict[str, Any]
    delivery_id: str

    @property
    def webhook_id(self) -> str:
        return str(self.webhook["id"])

    @property
    def ids(self) -> set[str]:
        """Every identifier of this tenant's objects."""
        return {
            self.operator_id,
            self.location_id,
            self.webhook_id,
            self.event_id,
            self.delivery_id,
        }

    @property
    def secrets(self) -> list[str]:
        """What must never appear in another operator's answers."""
        return [
            self.location_name,
            self.webhook["callback_url"],
            self.webhook["api_key"],
            self.data["email"],
        ]

    def fill(self, template: str) -> str:
        return template.format(
            location=self.location_id,
            webhook=self.webhook_id,
            event=self.event_id,
            delivery=self.delivery_id,
            operator=self.operator_id,
        )


async def make_tenant(api: LiveAPI, name: str, callback_url: str) -> Tenant:
    created = await api.ok("POST", "/v1/operators", json={"name": name})
    token = created["token"]
    location_id, location_name = f"{name}-loc", f"{name.title()} Café"
    await api.location(token, location_id, location_name)
    webhook = await api.webhook(token, location_id, f"{callback_url}?owner={name}")
    data = {"id": f"{name}-customer", "name": f"{name} guest", "email": f"guest@{name}.example"}
    event_id = f"{name}-evt-1"
    await api.ok(
        "POST",
        "/v1/events",
        token,
        json={"type": "customer.create", "location_id": location_id, "data": data, "id": event_id},
    )
    listed = await api.ok("GET", "/v1/deliveries", token, params={"event_id": event_id})
    [delivery] = listed["data"]
    return Tenant(
        name=name,
        token=token,
        operator_id=created["id"],
        location_id=location_id,
        location_name=location_name,
        webhook=webhook,
        event_id=event_id,
        data=data,
        delivery_id=delivery["id"],
    )


async def view_of(api: LiveAPI, tenant: Tenant) -> dict[str, Any]:
    """Everything the tenant sees of its own objects."""
    token = tenant.token
    return {
        "location": await api.ok("GET", f"/v1/locations/{tenant.location_id}", token),
        "webhook": await api.ok("GET", f"/v1/webhooks/{tenant.webhook_id}", token),
        "event": await api.ok("GET", f"/v1/events/{tenant.event_id}", token),
        "delivery": await api.ok("GET", f"/v1/deliveries/{tenant.delivery_id}", token),
        "locations": await api.ok("GET", "/v1/locations", token),
        "webhooks": await api.ok("GET", "/v1/webhooks", token),
        "events": await api.ok("GET", "/v1/events", token),
        "deliveries": await api.ok("GET", "/v1/deliveries", token),
    }


async def admin_view(api: LiveAPI) -> dict[str, Any]:
    return {
        "locations": await api.ok("GET", "/v1/locations"),
        "webhooks": await api.ok("GET", "/v1/webhooks"),
        "events": await api.ok("GET", "/v1/events", params={"limit": 1000}),
        "deliveries": await api.ok("GET", "/v1/deliveries", params={"limit": 1000}),
    }


@dataclass
class Pair:
    api: LiveAPI
    receiver: PythonReceiver
    a: Tenant
    b: Tenant
    b_before: dict[str, Any] = field(default_factory=dict)
    everything_before: dict[str, Any] = field(default_factory=dict)

    async def assert_b_unchanged(self) -> None:
        """B sees exactly what it saw before, nothing new exists, and nothing was sent."""
        assert await view_of(self.api, self.b) == self.b_before
        assert await admin_view(self.api) == self.everything_before
        assert self.receiver.requests == [], "a request reached B's receiver"


@pytest.fixture
async def pair(make_api: Callable[..., Any], python_receiver: PythonReceiver) -> Pair:
    """A and B on one API without the dispatcher, so deliveries stay as they were made.

    A's objects are made first, so A's event is older than B's.
    """
    api: LiveAPI = await make_api(dispatch=False)
    a = await make_tenant(api, "alpha", python_receiver.url)
    b = await make_tenant(api, "bravo", python_receiver.url)
    made = Pair(api=api, receiver=python_receiver, a=a, b=b)
    made.b_before = await view_of(api, b)
    made.everything_before = await admin_view(api)
    return made


async def assert_looks_missing(
    pair: Pair, method: str, template: str, body: Any, hidden_id: str
) -> None:
    """A asking for one of B's objects gets 404, exactly as for an id that never existed."""
    path = pair.b.fill(template)
    response = await pair.api.call(method, path, pair.a.token, json=body)

    error = error_of(response, 404)
    for secret in pair.b.secrets:
        assert secret not in text_of(response), f"{secret!r} leaked: {response.text}"
    never = await pair.api.call(
        method, path.replace(hidden_id, NEVER_EXISTED), pair.a.token, json=body
    )
    missing = error_of(never, 404)
    assert error["message"].replace(hidden_id, NEVER_EXISTED) == missing["message"]
    assert error["details"] == missing["details"]
    await pair.assert_b_unchanged()


# reading and acting on another operator's objects


async def test_an_operator_cannot_see_another_operators_location(pair: Pair) -> None:
    await assert_looks_missing(pair, *OBJECT_ROUTES["location"]["read"], pair.b.location_id)


def routes_of(kind: str) -> list[Any]:
    """The routes that act on one object of ``kind``, each named by what it does."""
    return [pytest.param(*route, id=action) for action, route in OBJECT_ROUTES[kind].items()]


@pytest.mark.parametrize(("method", "template", "body"), routes_of("webhook"))
async def test_an_operator_cannot_see_or_change_another_operators_webhook(
    pair: Pair, method: str, template: str, body: Any
) -> None:
    await assert_looks_missing(pair, method, template, body, pair.b.webhook_id)


async def test_an_operator_cannot_see_another_operators_event(pair: Pair) -> None:
    await assert_looks_missing(pair, *OBJECT_ROUTES["event"]["read"], pair.b.event_id)


@pytest.mark.parametrize(("method", "template", "body"), routes_of("delivery"))
async def test_an_operator_cannot_see_or_retry_another_operators_delivery(
    pair: Pair, method: str, template: str, body: Any
) -> None:
    await assert_looks_missing(pair, method, template, body, pair.b.delivery_id)


# lists


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/v1/locations", {}, id="locations"),
        pytest.param("/v1/locations", {"operator_id": "{operator}"}, id="locations of B"),
        pytest.param("/v1/webhooks", {}, id="webhooks"),
        pytest.param("/v1/webhooks", {"location_id": "{location}"}, id="webhooks at B's location"),
        pytest.param(
            "/v1/webhooks",
            {"event_type": "customer.create", "status": "enabled"},
            id="webhooks of B's type and status",
        ),
        pytest.param("/v1/events", {}, id="events"),
        pytest.param("/v1/events", {"location_id": "{location}"}, id="events at B's location"),
        pytest.param("/v1/events", {"type": "customer.create"}, id="events of B's type"),
        pytest.param("/v1/deliveries", {}, id="deliveries"),
        pytest.param("/v1/deliveries", {"webhook_id": "{webhook}"}, id="deliveries of B's webhook"),
        pytest.param("/v1/deliveries", {"event_id": "{event}"}, id="deliveries of B's event"),
        pytest.param("/v1/deliveries", {"status": "pending"}, id="deliveries of B's status"),
    ],
)
async def test_an_operators_lists_never_show_another_operators_objects(
    pair: Pair, path: str, params: dict[str, str]
) -> None:
    response = await pair.api.call(
        "GET", path, pair.a.token, params={k: pair.b.fill(v) for k, v in params.items()}
    )

    for hidden in sorted(pair.b.ids) + pair.b.secrets:
        assert hidden not in text_of(response), f"{hidden!r} leaked: {response.text}"
    if response.status_code == 200:
        listed = response.json()["data"]
        assert {item["id"] for item in listed} <= pair.a.ids, listed
        if not params or "status" in params or "type" in params or "event_type" in params:
            assert listed, "A's own objects are listed (the list works at all)"
    else:  # refusing a filter that names another's object is fine, if it says nothing more
        error_of(response, response.status_code)
        assert response.status_code in (403, 404, 422), response.text
    await pair.assert_b_unchanged()


async def test_an_events_cursor_naming_another_operators_event_answers_as_an_unknown_one(
    pair: Pair,
) -> None:
    """Continuing after B's event must not tell A that the event exists, or when it was made:
    the answer is the one for an id that never existed. (Deliveries page by comparing ids, any
    string is a position there, so they reveal nothing and are not tested here.)"""
    # A's own events: one older than B's (from the fixture) and one newer
    await pair.api.ok(
        "POST",
        "/v1/events",
        pair.a.token,
        json={"type": "customer.create", "location_id": pair.a.location_id, "data": {}},
    )

    with_b = await pair.api.call(
        "GET", "/v1/events", pair.a.token, params={"cursor": pair.b.event_id}
    )
    unknown = await pair.api.call(
        "GET", "/v1/events", pair.a.token, params={"cursor": NEVER_EXISTED}
    )

    assert with_b.status_code == unknown.status_code, (with_b.text, unknown.text)
    if with_b.status_code == 200:
        assert with_b.json() == unknown.json(), "the page after B's event is A's older ones"
    else:
        with_b_error = error_of(with_b, with_b.status_code)
        unknown_error = error_of(unknown, unknown.status_code)
        assert with_b_error["details"] == unknown_error["details"]


# creating in another operator's place


async def test_an_operator_cannot_emit_into_another_operators_location(pair: Pair) -> None:
    event = {"type": "customer.create", "location_id": pair.b.location_id, "data": {}}

    single = await pair.api.call("POST", "/v1/events", pair.a.token, json={**event, "id": "a-1"})
    batch = await pair.api.call(
        "POST",
        "/v1/events/batch",
        pair.a.token,
        json={
            "events": [
                {**event, "location_id": pair.a.location_id, "id": "a-2"},
                {**event, "id": "a-3"},
            ]
        },
    )
    never = await pair.api.call(
        "POST", "/v1/events", pair.a.token, json={**event, "location_id": NEVER_EXISTED}
    )

    error = error_of(single, 404, "location_id")
    missing = error_of(never, 404, "location_id")
    assert error["message"].replace(pair.b.location_id, NEVER_EXISTED) == missing["message"]
    error_of(batch, 404, "events[1].location_id")
    for event_id in ("a-1", "a-2", "a-3"):
        error_of(await pair.api.call("GET", f"/v1/events/{event_id}", pair.a.token), 404)
    await pair.assert_b_unchanged()


async def test_an_operator_cannot_create_a_webhook_on_another_operators_location(
    pair: Pair,
) -> None:
    body = {
        "location_id": pair.b.location_id,
        "event_type": "customer.create",
        "callback_url": "https://attacker.example/steal",
    }

    response = await pair.api.call("POST", "/v1/webhooks", pair.a.token, json=body)
    never = await pair.api.call(
        "POST", "/v1/webhooks", pair.a.token, json={**body, "location_id": NEVER_EXISTED}
    )

    error = error_of(response, 404)
    missing = error_of(never, 404)
    assert error["message"].replace(pair.b.location_id, NEVER_EXISTED) == missing["message"]
    assert "api_key" not in text_of(response)
    await pair.assert_b_unchanged()


async def test_an_operator_cannot_create_a_location_for_another_operator(pair: Pair) -> None:
    response = await pair.api.call(
        "POST",
        "/v1/locations",
        pair.a.token,
        json={"id": "planted-loc", "name": "Planted", "operator_id": pair.b.operator_id},
    )

    error_of(response, 403, "operator_id")
    error_of(await pair.api.call("GET", "/v1/locations/planted-loc"), 404)
    await pair.assert_b_unchanged()


@pytest.mark.parametrize("how", ["single", "batch"])
async def test_an_operator_reusing_another_operators_event_id_is_409_and_changes_nothing(
    pair: Pair, how: str
) -> None:
    event = {
        "type": "customer.create",
        "location_id": pair.a.location_id,
        "data": {"email": "impostor@alpha.example"},
        "id": pair.b.event_id,
    }
    if how == "single":
        response = await pair.api.call("POST", "/v1/events", pair.a.token, json=event)
    else:
        fresh = {**event, "id": "alpha-fresh"}
        response = await pair.api.call(
            "POST", "/v1/events/batch", pair.a.token, json={"events": [fresh, event]}
        )

    error = error_of(response, 409)
    assert pair.b.event_id in error["message"]
    assert pair.b.data["email"] not in text_of(response)
    shown = await pair.api.ok("GET", f"/v1/events/{pair.b.event_id}", pair.b.token)
    assert shown["location_id"] == pair.b.location_id
    assert {k: v for k, v in shown["data"].items() if v is not None} == pair.b.data
    error_of(await pair.api.call("GET", f"/v1/events/{pair.b.event_id}", pair.a.token), 404)
    error_of(await pair.api.call("GET", "/v1/events/alpha-fresh", pair.a.token), 404)
    await pair.assert_b_unchanged()


# after everything


async def test_after_every_attempt_the_other_operators_objects_are_unchanged_and_working(
    pair: Pair,
) -> None:
    a, b, api = pair.a, pair.b, pair.api
    every_route = [route for routes in OBJECT_ROUTES.values() for route in routes.values()]
    # the attempt to delete comes last, after every other attempt on the same webhook
    for method, template, body in sorted(every_route, key=lambda route: route[0] == "DELETE"):
        error_of(await api.call(method, b.fill(template), a.token, json=body), 404)
    emitted = {"type": "customer.create", "location_id": b.location_id, "data": {}}
    error_of(await api.call("POST", "/v1/events", a.token, json=emitted), 404, "location_id")
    hook = {
        "location_id": b.location_id,
        "event_type": "customer.create",
        "callback_url": "https://attacker.example/steal",
    }
    error_of(await api.call("POST", "/v1/webhooks", a.token, json=hook), 404)
    location = {"id": "planted", "name": "Planted", "operator_id": b.operator_id}
    error_of(await api.call("POST", "/v1/locations", a.token, json=location), 403)
    reused = {**emitted, "location_id": a.location_id, "id": b.event_id}
    error_of(await api.call("POST", "/v1/events", a.token, json=reused), 409)

    await pair.assert_b_unchanged()
    webhook = await api.ok("GET", f"/v1/webhooks/{b.webhook_id}", b.token)
    assert webhook["status"] == "enabled" and webhook["disabled_reason"] is None
    assert webhook["callback_url"] == b.webhook["callback_url"]
    deliveries = await api.ok("GET", "/v1/deliveries", b.token, params={"webhook_id": b.webhook_id})
    assert [d["id"] for d in deliveries["data"]] == [b.delivery_id]
    # B's webhook still works, still at its URL, still signed with the key B was given
    tested = await api.ok("POST", f"/v1/webhooks/{b.webhook_id}/test", b.token)
    assert tested["status"] == "succeeded", tested
    [received] = pair.receiver.requests
    signature = received.header(ORIGINAL_HEADER)
    assert signature is not None
    assert verify_signature(received.body, signature, b.webhook["api_key"])


async def test_the_admin_sees_and_reaches_both_operators_objects(pair: Pair) -> None:
    view = await admin_view(pair.api)

    for tenant in (pair.a, pair.b):
        assert tenant.location_id in {loc["id"] for loc in view["locations"]["data"]}
        assert tenant.webhook_id in {w["id"] for w in view["webhooks"]["data"]}
        assert tenant.event_id in {e["id"] for e in view["events"]["data"]}
        assert tenant.delivery_id in {d["id"] for d in view["deliveries"]["data"]}
        shown = await view_of(pair.api, tenant)
        for name, path in (
            ("location", f"/v1/locations/{tenant.location_id}"),
            ("webhook", f"/v1/webhooks/{tenant.webhook_id}"),
            ("event", f"/v1/events/{tenant.event_id}"),
            ("delivery", f"/v1/deliveries/{tenant.delivery_id}"),
        ):
            assert await pair.api.ok("GET", path, ADMIN_TOKEN) == shown[name], name
        of_operator = await pair.api.ok(
            "GET", "/v1/locations", params={"operator_id": tenant.operator_id}
        )
        assert [loc["id"] for loc in of_operator["data"]] == [tenant.location_id]
