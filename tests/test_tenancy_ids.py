"""Every id an operator names in a query or a body is one of its own, or it names nothing.

Issue 25, S1: a test send on a webhook subscribed to all locations (``"*"``) took any location
id from the query string: another operator's location got the test event, and its delivery
(attempt, headers, signature, the receiver's answer) showed in the other operator's lists,
while the owner could not see it; a location that did not exist answered 500.

Here operator alpha (A) names bravo's (B's) ids in every query and body that takes a location,
webhook, event, delivery, operator or token id, through the REST API served by uvicorn, on
SQLite and PostgreSQL. Each verb answers 404 exactly as for an id that never existed (a list
filter: the empty page a filter naming nothing gives), never 500; nothing is stored, nothing
is sent, and B sees what it saw before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")
NOWHERE = "no-such-thing-0000"
CUSTOMER = "customer.create"


@dataclass
class World:
    """A with a location, a webhook on all its locations and one on its location alone; B with
    a location, a webhook, an event and its delivery. ``ids`` fills ``{name}`` in templates."""

    api: LiveAPI
    receiver: PythonReceiver
    a_token: str
    b_token: str
    ids: dict[str, str]

    def fill(self, value: Any, **overrides: str) -> Any:
        """``value`` with every ``{name}`` in its strings replaced by that id."""
        ids = {**self.ids, **overrides}
        if isinstance(value, str):
            return value.format(**ids)
        if isinstance(value, list):
            return [self.fill(v, **overrides) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v, **overrides) for k, v in value.items()}
        return value

    async def everything(self) -> dict[str, Any]:
        """What the admin sees of every list, and what B sees of its own objects."""
        api, b = self.api, self.b_token
        return {
            "admin": {
                path: await api.ok("GET", path, ADMIN_TOKEN, params={"limit": 1000})
                for path in ("/v1/events", "/v1/deliveries")
            }
            | {path: await api.ok("GET", path) for path in ("/v1/locations", "/v1/webhooks")},
            "b": {
                path: await api.ok("GET", self.fill(path), b)
                for path in (
                    "/v1/locations",
                    "/v1/webhooks",
                    "/v1/events",
                    "/v1/deliveries",
                    "/v1/tokens",
                    "/v1/locations/{b_location}",
                    "/v1/webhooks/{b_webhook}",
                    "/v1/events/{b_event}",
                    "/v1/deliveries/{b_delivery}",
                )
            },
        }


@pytest.fixture
async def world(make_api: Callable[..., Any], python_receiver: PythonReceiver) -> World:
    api: LiveAPI = await make_api(dispatch=False)
    url = python_receiver.url
    a_token = await api.operator_at("alpha-loc", name="alpha")
    a_every = await api.ok(
        "POST",
        "/v1/webhooks",
        a_token,
        json={"location_ids": ["*"], "event_types": ["*"], "callback_url": f"{url}?owner=alpha"},
    )
    a_single = await api.webhook(a_token, "alpha-loc", f"{url}?owner=alpha-single")
    b_token = await api.operator_at("bravo-loc", name="bravo")
    b_webhook = await api.webhook(b_token, "bravo-loc", f"{url}?owner=bravo")
    event = {"type": CUSTOMER, "location_id": "bravo-loc", "data": {}, "id": "bravo-evt"}
    await api.ok("POST", "/v1/events", b_token, json=event)
    [b_delivery] = (await api.ok("GET", "/v1/deliveries", b_token))["data"]
    [b_token_row] = (await api.ok("GET", "/v1/tokens", b_token))["data"]
    return World(
        api=api,
        receiver=python_receiver,
        a_token=a_token,
        b_token=b_token,
        ids={
            "a_location": "alpha-loc",
            "a_every": a_every["id"],
            "a_single": a_single["id"],
            "b_operator": b_token_row["operator_id"],
            "b_token": b_token_row["id"],
            "b_location": "bravo-loc",
            "b_webhook": b_webhook["id"],
            "b_event": "bravo-evt",
            "b_delivery": b_delivery["id"],
        },
    )


def text_of(response: httpx.Response) -> str:
    return json.dumps(response.json(), ensure_ascii=False)


# (method, path, query, body, B's id it names, the field the 404 names or None)
REFUSED = [
    pytest.param(
        "POST", "/v1/webhooks/{a_every}/test", {"location_id": "{b_location}"}, None,
        "b_location", "location_id", id="test send on all-locations webhook from B's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks/{a_every}/test",
        {"location_id": "{b_location}", "event_type": CUSTOMER}, None,
        "b_location", "location_id", id="test send of a type from B's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks/{a_single}/test", {"location_id": "{b_location}"}, None,
        "b_location", "location_id", id="test send on one-location webhook from B's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks/{b_webhook}/test", {"location_id": "{a_location}"}, None,
        "b_webhook", None, id="test send on B's webhook from A's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks", None,
        {"location_id": "{b_location}", "event_type": CUSTOMER, "callback_url": "{url}"},
        "b_location", None, id="create webhook at B's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks", None,
        {"location_ids": ["{a_location}", "{b_location}"], "event_types": ["*"],
         "callback_url": "{url}"},
        "b_location", None, id="create webhook at A's and B's locations",
    ),
    pytest.param(
        "PATCH", "/v1/webhooks/{a_single}", None, {"location_ids": ["{b_location}"]},
        "b_location", None, id="move webhook to B's location",
    ),
    pytest.param(
        "PATCH", "/v1/webhooks/{a_single}", None,
        {"location_ids": ["{a_location}", "{b_location}"], "event_types": ["*"]},
        "b_location", None, id="add B's location to a webhook",
    ),
    pytest.param(
        "PATCH", "/v1/webhooks/{b_webhook}", None, {"location_ids": ["{a_location}"]},
        "b_webhook", None, id="move B's webhook to A's location",
    ),
    pytest.param(
        "POST", "/v1/webhooks/{b_webhook}/recover", None, {"since": "2020-01-01T00:00:00Z"},
        "b_webhook", None, id="recover B's webhook",
    ),
    pytest.param(
        "POST", "/v1/webhooks/{b_webhook}/rotate-key", None, None,
        "b_webhook", None, id="rotate B's key",
    ),
    pytest.param(
        "POST", "/v1/events", None,
        {"type": CUSTOMER, "location_id": "{b_location}", "data": {}, "id": "planted-1"},
        "b_location", "location_id", id="emit at B's location",
    ),
    pytest.param(
        "POST", "/v1/events/batch", None,
        {"events": [
            {"type": CUSTOMER, "location_id": "{a_location}", "data": {}, "id": "planted-2"},
            {"type": CUSTOMER, "location_id": "{b_location}", "data": {}, "id": "planted-3"},
        ]},
        "b_location", "events[1].location_id", id="emit a batch touching B's location",
    ),
    pytest.param(
        "POST", "/v1/deliveries/{b_delivery}/retry", None, None,
        "b_delivery", None, id="retry B's delivery",
    ),
    pytest.param(
        "PATCH", "/v1/locations/{b_location}", None, {"status": "disabled"},
        "b_location", None, id="disable B's location",
    ),
    pytest.param(
        "DELETE", "/v1/locations/{b_location}", None, None,
        "b_location", None, id="delete B's location",
    ),
    pytest.param(
        "DELETE", "/v1/tokens/{b_token}", None, None, "b_token", None, id="revoke B's token",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "query", "body", "names", "field"), REFUSED)
async def test_naming_another_operators_id_is_404_as_for_none_and_stores_nothing(
    world: World,
    method: str,
    path: str,
    query: dict[str, str] | None,
    body: Any,
    names: str,
    field: str | None,
) -> None:
    before = await world.everything()
    url = f"{world.receiver.url}?owner=alpha-new"

    def call(**ids: str) -> Any:
        return world.api.call(
            method,
            world.fill(path, **ids),
            world.a_token,
            params=world.fill(query, **ids),
            json=world.fill(body, url=url, **ids),
        )

    response = await call()
    never = await call(**{names: NOWHERE})

    error = error_of(response, 404, field)
    missing = error_of(never, 404, field)
    hidden = world.ids[names]
    assert error["message"].replace(hidden, NOWHERE) == missing["message"]
    assert json.dumps(error["details"]).replace(hidden, NOWHERE) == json.dumps(missing["details"])
    assert world.receiver.requests == [], "something was sent"
    assert await world.everything() == before, "something was stored or changed"


# (path, query): each names one of B's ids as a filter
FILTERS = [
    pytest.param("/v1/webhooks", {"location_id": "{b_location}"}, "b_location", id="webhooks"),
    pytest.param("/v1/events", {"location_id": "{b_location}"}, "b_location", id="events"),
    pytest.param("/v1/events", {"cursor": "{b_event}"}, "b_event", id="events after B's"),
    pytest.param("/v1/deliveries", {"webhook_id": "{b_webhook}"}, "b_webhook", id="by webhook"),
    pytest.param("/v1/deliveries", {"event_id": "{b_event}"}, "b_event", id="by event"),
    pytest.param("/v1/deliveries", {"cursor": "{b_delivery}"}, "b_delivery", id="after B's"),
    pytest.param("/v1/locations", {"operator_id": "{b_operator}"}, "b_operator", id="locations"),
    pytest.param("/v1/tokens", {"operator_id": "{b_operator}"}, "b_operator", id="tokens"),
]


@pytest.mark.parametrize(("path", "query", "names"), FILTERS)
async def test_a_list_filter_naming_another_operators_id_answers_as_one_naming_nothing(
    world: World, path: str, query: dict[str, str], names: str
) -> None:
    before = await world.everything()

    response = await world.api.call("GET", path, world.a_token, params=world.fill(query))
    never = await world.api.call(
        "GET", path, world.a_token, params=world.fill(query, **{names: NOWHERE})
    )

    assert response.status_code == 200, response.text
    for hidden in world.fill(["{b_location}", "{b_webhook}", "{b_event}", "{b_delivery}"]):
        assert hidden not in text_of(response), f"{hidden!r} leaked: {response.text}"
    if "operator_id" in query:  # an operator's own list, whatever operator it names
        assert response.json() == (await world.api.ok("GET", path, world.a_token))
        assert never.status_code in (200, 404), never.text
    else:
        assert response.json() == never.json() == {"data": [], "next_cursor": None}
    assert await world.everything() == before


async def test_the_admin_cannot_test_send_an_operators_webhook_from_another_operators_location(
    world: World,
) -> None:
    """The admin sees every location, but a webhook's events come from its own operator's."""
    before = await world.everything()
    path = world.fill("/v1/webhooks/{a_every}/test")

    response = await world.api.call(
        "POST", path, params=world.fill({"location_id": "{b_location}"})
    )
    never = await world.api.call("POST", path, params={"location_id": NOWHERE})

    error = error_of(response, 404, "location_id")
    missing = error_of(never, 404, "location_id")
    assert error["message"].replace(world.ids["b_location"], NOWHERE) == missing["message"]
    assert world.receiver.requests == []
    assert await world.everything() == before


@pytest.mark.parametrize("location_id", ["x/y", "a b", "\u200bloc"])
async def test_a_test_send_from_a_location_id_outside_the_alphabet_is_422_naming_it(
    world: World, location_id: str
) -> None:
    before = await world.everything()

    response = await world.api.call(
        "POST",
        world.fill("/v1/webhooks/{a_every}/test"),
        world.a_token,
        params={"location_id": location_id},
    )

    error_of(response, 422, "location_id")
    assert world.receiver.requests == []
    assert await world.everything() == before


async def test_a_test_send_from_an_own_location_is_delivered_and_seen_by_its_owner_only(
    world: World,
) -> None:
    tested = await world.api.ok(
        "POST",
        world.fill("/v1/webhooks/{a_every}/test"),
        world.a_token,
        params={"location_id": "alpha-loc"},
    )

    assert tested["status"] == "succeeded", tested
    assert len(world.receiver.requests) == 1
    event = await world.api.ok("GET", f"/v1/events/{tested['event_id']}", world.a_token)
    assert event["location_id"] == "alpha-loc"
    a_deliveries = await world.api.ok("GET", "/v1/deliveries", world.a_token)
    assert tested["id"] in {d["id"] for d in a_deliveries["data"]}
    b_deliveries = await world.api.ok("GET", "/v1/deliveries", world.b_token)
    assert tested["id"] not in {d["id"] for d in b_deliveries["data"]}
    error_of(await world.api.call("GET", f"/v1/deliveries/{tested['id']}", world.b_token), 404)
