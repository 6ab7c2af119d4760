"""Every kind of error the REST API answers, through real HTTP, in its one shape.

SPEC §5: every error is ``{"success": false, "error": {"code", "message", "details"}}`` with
``code`` equal to the HTTP status, a message a person can act on, and ``details`` naming each
bad field. Each test sends a request that must fail, checks the exact status, the shape and the
field named, and then checks that nothing was half-written: the admin's view of every operator,
location, webhook, event and delivery is exactly what it was before the request.

The API is served by uvicorn on 127.0.0.1 (``make_api`` from ``conftest``) on a real SQLite
file; the 503 test runs it on a real PostgreSQL database that is made to refuse connections.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.postgres import admin_sql, terminate_connections
from tests.shapes import OBJECT_ROUTES, error_of

# A public address literal: passes the SSRF guard without a DNS lookup. Nothing is ever sent to
# it (the dispatcher is off in these tests).
BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
PUBLIC_URL = "https://93.184.215.14/hook"


# helpers


def fields_of(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error["details"]}


def customer(**data: Any) -> dict[str, Any]:
    """A valid customer.create event for loc-1, or with ``data`` as given."""
    return {"type": "customer.create", "location_id": "loc-1", "data": data}


async def everything(api: LiveAPI) -> dict[str, Any]:
    """The admin's view of every object the API holds."""
    return {
        "operators": (await api.ok("GET", "/v1/operators"))["data"],
        "locations": (await api.ok("GET", "/v1/locations"))["data"],
        "webhooks": (await api.ok("GET", "/v1/webhooks"))["data"],
        "events": (await api.ok("GET", "/v1/events", params={"limit": 1000}))["data"],
        "deliveries": (await api.ok("GET", "/v1/deliveries", params={"limit": 1000}))["data"],
    }


@dataclass
class World:
    """One operator with a location, an enabled and a disabled webhook, and an event with a
    pending delivery for each; ``before`` is the admin's view of it all."""

    api: LiveAPI
    token: str
    operator_id: str
    webhook_id: str
    delivery_id: str
    disabled_webhook_id: str
    disabled_delivery_id: str
    before: dict[str, Any] = field(default_factory=dict)

    def path(self, template: str) -> str:
        return template.format(
            webhook=self.webhook_id,
            delivery=self.delivery_id,
            disabled_webhook=self.disabled_webhook_id,
            disabled_delivery=self.disabled_delivery_id,
            operator=self.operator_id,
        )

    async def assert_unchanged(self) -> None:
        assert await everything(self.api) == self.before, "the failed request changed something"


async def deliveries_of(api: LiveAPI, token: str, event_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (
        await api.ok("GET", "/v1/deliveries", token, params={"event_id": event_id})
    )["data"]
    return listed


async def populate(api: LiveAPI) -> World:
    created = await api.ok("POST", "/v1/operators", json={"name": "acme"})
    token = created["token"]
    await api.location(token, "loc-1", "Café Central")
    webhook = await api.webhook(token, "loc-1", PUBLIC_URL, "customer.create")
    disabled = await api.webhook(token, "loc-1", PUBLIC_URL, "subscriber.create")
    await api.ok("POST", "/v1/events", token, json={**customer(), "id": "evt-existing"})
    await api.ok(
        "POST",
        "/v1/events",
        token,
        json={"type": "subscriber.create", "location_id": "loc-1", "data": {}, "id": "evt-sub"},
    )
    await api.ok("PATCH", f"/v1/webhooks/{disabled['id']}", token, json={"status": "disabled"})
    [delivery] = await deliveries_of(api, token, "evt-existing")
    [disabled_delivery] = await deliveries_of(api, token, "evt-sub")
    world = World(
        api=api,
        token=token,
        operator_id=created["id"],
        webhook_id=webhook["id"],
        delivery_id=delivery["id"],
        disabled_webhook_id=disabled["id"],
        disabled_delivery_id=disabled_delivery["id"],
    )
    world.before = await everything(api)
    return world


@pytest.fixture
async def world(make_api: Callable[..., Any]) -> World:
    """The world on an API without the dispatcher (deliveries stay as they are)."""
    return await populate(await make_api(dispatch=False))


# 400: not JSON at all

MALFORMED = b'{"type": "customer.create", "location_id": "loc-1", "data": {'


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/v1/events", id="single event"),
        pytest.param("POST", "/v1/events/batch", id="batch"),
        pytest.param("POST", "/v1/webhooks", id="webhook create"),
        pytest.param("PATCH", "/v1/webhooks/{webhook}", id="webhook update"),
        pytest.param("POST", "/v1/webhooks/{webhook}/recover", id="recover"),
        pytest.param("POST", "/v1/locations", id="location create"),
        pytest.param("POST", "/v1/operators", id="operator create"),
    ],
)
async def test_malformed_json_is_400_naming_the_body_and_stores_nothing(
    world: World, method: str, path: str
) -> None:
    token = ADMIN_TOKEN if path == "/v1/operators" else world.token
    response = await world.api.call(
        method,
        world.path(path),
        token,
        content=MALFORMED,
        headers={"Content-Type": "application/json"},
    )

    error = error_of(response, 400, "body")
    assert "JSON" in error["message"]
    await world.assert_unchanged()


# 415: a body that is not JSON


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        pytest.param(
            "application/x-www-form-urlencoded",
            b"type=customer.create&location_id=loc-1",
            id="form",
        ),
        pytest.param("text/plain", json.dumps(customer()).encode(), id="text with JSON in it"),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="type"\r\n\r\ncustomer.create'
            b"\r\n--xyz--\r\n",
            id="multipart form",
        ),
    ],
)
async def test_a_body_that_is_not_json_is_415_and_stores_nothing(
    world: World, content_type: str, content: bytes
) -> None:
    response = await world.api.call(
        "POST", "/v1/events", world.token, content=content, headers={"Content-Type": content_type}
    )

    error = error_of(response, 415)
    assert "application/json" in error["message"]
    await world.assert_unchanged()


# 401: who is calling?

AUTHENTICATED_REQUESTS = [
    pytest.param("GET", "/v1/locations", None, id="list locations"),
    pytest.param("POST", "/v1/events", customer(), id="emit"),
    pytest.param("POST", "/v1/events/batch", {"events": [customer()]}, id="emit batch"),
    pytest.param("GET", "/v1/webhooks/{webhook}", None, id="show webhook"),
    pytest.param("DELETE", "/v1/webhooks/{webhook}", None, id="delete webhook"),
    pytest.param("POST", "/v1/deliveries/{delivery}/retry", None, id="retry delivery"),
    pytest.param("POST", "/v1/operators", {"name": "intruder"}, id="create operator"),
]


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED_REQUESTS)
async def test_a_request_without_a_token_is_401_asking_for_a_bearer_token(
    world: World, method: str, path: str, body: Any
) -> None:
    response = await world.api.call(method, world.path(path), token=None, json=body)

    error = error_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in error["message"]
    await world.assert_unchanged()


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED_REQUESTS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer hwt_not-a-token-we-gave-out"}, id="bearer"),
        pytest.param({"sn-apikey": "hwt_not-a-token-we-gave-out"}, id="sn-apikey"),
    ],
)
async def test_an_unknown_token_is_401(
    world: World, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    response = await world.api.call(
        method, world.path(path), token=None, json=body, headers=headers
    )

    error_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    await world.assert_unchanged()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic YWNtZTpzZWNyZXQ=", id="basic"),
        pytest.param(f"Basic {ADMIN_TOKEN}", id="basic with the admin token"),
        pytest.param(ADMIN_TOKEN, id="bare admin token without a scheme"),
        pytest.param("Bearer", id="bearer without a token"),
    ],
)
async def test_an_authorization_header_that_is_not_a_bearer_token_is_401(
    world: World, authorization: str
) -> None:
    response = await world.api.call(
        "POST", "/v1/events", token=None, json=customer(), headers={"Authorization": authorization}
    )

    error_of(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    await world.assert_unchanged()


# 403: an operator asking for an admin action


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/v1/operators", {"name": "globex"}, id="create operator"),
        pytest.param("GET", "/v1/operators", None, id="list operators"),
        pytest.param("POST", "/v1/operators/{operator}/tokens", None, id="token for itself"),
        pytest.param("POST", "/v1/operators/acme/tokens", None, id="token by operator name"),
    ],
)
async def test_an_operator_token_is_403_on_the_admin_endpoints(
    world: World, method: str, path: str, body: Any
) -> None:
    response = await world.api.call(method, world.path(path), world.token, json=body)

    error = error_of(response, 403)
    assert "admin" in error["message"]
    await world.assert_unchanged()


# 404: no such object, no such route


UNKNOWN_IDS = {
    "location": "no-such-location",
    "webhook": "wh_nosuchwebhook",
    "event": "evt_nosuchevent",
    "delivery": "dlv_nosuchdelivery",
}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        *(
            pytest.param(method, path.format(**UNKNOWN_IDS), body, id=f"{kind}: {action}")
            for kind, routes in OBJECT_ROUTES.items()
            for action, (method, path, body) in routes.items()
        ),
        pytest.param("GET", "/v1/event-types/customer.created", None, id="event type"),
    ],
)
@pytest.mark.parametrize("who", ["operator", "admin"])
async def test_an_unknown_id_is_404_and_changes_nothing(
    world: World, method: str, path: str, body: Any, who: str
) -> None:
    token = world.token if who == "operator" else ADMIN_TOKEN

    response = await world.api.call(method, path, token, json=body)

    error = error_of(response, 404)
    unknown_id = path.split("/")[3]
    assert unknown_id in error["message"], "the message names what was not found"
    await world.assert_unchanged()


async def test_a_token_for_an_unknown_operator_is_404_and_creates_nothing(world: World) -> None:
    response = await world.api.call("POST", "/v1/operators/op_nosuchoperator/tokens", ADMIN_TOKEN)

    assert "op_nosuchoperator" in error_of(response, 404)["message"]
    await world.assert_unchanged()


async def test_emitting_into_an_unknown_location_is_404_naming_location_id(world: World) -> None:
    single = await world.api.call(
        "POST", "/v1/events", world.token, json={**customer(), "location_id": "no-such-loc"}
    )
    batch = await world.api.call(
        "POST",
        "/v1/events/batch",
        world.token,
        json={"events": [customer(), {**customer(), "location_id": "no-such-loc"}]},
    )

    assert "no-such-loc" in error_of(single, 404, "location_id")["message"]
    error_of(batch, 404, "events[1].location_id")
    await world.assert_unchanged()


async def test_a_webhook_on_an_unknown_location_is_404(world: World) -> None:
    response = await world.api.call(
        "POST", "/v1/webhooks", world.token, json=webhook(location_id="no-such-loc")
    )

    assert "no-such-loc" in error_of(response, 404)["message"]
    await world.assert_unchanged()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("GET", "/nothing-here"),
        ("POST", "/v1/events/batch/more"),
        ("GET", "/v1/webhooks/wh_x/keys"),
        ("GET", "/v2/events"),
    ],
)
async def test_an_unknown_route_is_404_in_the_error_shape(
    world: World, method: str, path: str
) -> None:
    response = await world.api.call(method, path, world.token)

    error = error_of(response, 404)
    assert path in error["message"]


# 405: the route exists, the method does not


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("PUT", "/v1/webhooks/{webhook}", {"GET", "PATCH", "DELETE"}, id="PUT webhook"),
        pytest.param("DELETE", "/v1/locations", {"GET", "POST"}, id="DELETE locations"),
        pytest.param("PUT", "/v1/events", {"GET", "POST"}, id="PUT events"),
        pytest.param("GET", "/v1/deliveries/{delivery}/retry", {"POST"}, id="GET retry"),
        pytest.param("POST", "/healthz", {"GET"}, id="POST healthz"),
    ],
)
async def test_a_wrong_method_is_405_in_the_error_shape_naming_the_allowed_methods(
    world: World, method: str, path: str, allowed: set[str]
) -> None:
    response = await world.api.call(method, world.path(path), world.token, json={})

    error = error_of(response, 405)
    assert method in error["message"]
    listed = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= listed, f"Allow: {response.headers.get('Allow')!r}"
    await world.assert_unchanged()


# 413: too large, declared or not


async def small_limits_api(make_api: Callable[..., Any]) -> tuple[LiveAPI, str]:
    api: LiveAPI = await make_api(dispatch=False, max_body_bytes=2048, max_batch_body_bytes=8192)
    return api, await api.operator_at("loc-1")


def event_of_size(size: int, **extra: Any) -> bytes:
    """A valid customer.create event whose JSON is exactly ``size`` bytes."""
    base = json.dumps({**customer(name=""), **extra}).encode()
    body = json.dumps({**customer(name="x" * (size - len(base))), **extra}).encode()
    assert len(body) == size
    return body


async def events_stored(api: LiveAPI) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await api.ok("GET", "/v1/events"))["data"]
    return listed


async def test_a_body_over_max_body_bytes_is_413_by_its_content_length_and_stores_nothing(
    make_api: Callable[..., Any],
) -> None:
    api, token = await small_limits_api(make_api)

    response = await api.call(
        "POST",
        "/v1/events",
        token,
        content=event_of_size(2049),
        headers={"Content-Type": "application/json"},
    )

    error = error_of(response, 413)
    assert "2048" in error["message"]
    assert await events_stored(api) == []
    # a body of exactly the limit is accepted
    fits = await api.call(
        "POST",
        "/v1/events",
        token,
        content=event_of_size(2048),
        headers={"Content-Type": "application/json"},
    )
    assert fits.status_code == 202, fits.text


async def chunks(body: bytes, size: int = 500) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def batch_of(count: int, prefix: str = "evt", event_size: int = 1500) -> bytes:
    """A batch of ``count`` valid events of ``event_size`` bytes each, as JSON."""
    one = json.loads(event_of_size(event_size))
    return json.dumps({"events": [{**one, "id": f"{prefix}-{i}"} for i in range(count)]}).encode()


@pytest.mark.parametrize(
    ("path", "fits", "too_large", "limit"),
    [
        pytest.param(
            "/v1/events",
            event_of_size(2000, id="evt-fits"),
            event_of_size(6000, id="evt-too-large"),
            2048,
            id="single event",
        ),
        pytest.param(
            "/v1/events/batch",
            batch_of(3, "evt-fits"),
            batch_of(9, "evt-too-large"),
            8192,
            id="batch",
        ),
    ],
)
async def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(
    make_api: Callable[..., Any], path: str, fits: bytes, too_large: bytes, limit: int
) -> None:
    api, token = await small_limits_api(make_api)
    assert len(fits) <= limit < len(too_large)
    # sent chunked, a body that fits is accepted: what follows is about the size alone
    accepted = await api.call(
        "POST", path, token, content=chunks(fits), headers={"Content-Type": "application/json"}
    )
    assert accepted.status_code == 202, accepted.text
    assert "content-length" not in accepted.request.headers
    assert accepted.request.headers["transfer-encoding"] == "chunked"
    stored = await events_stored(api)

    response = await api.call(
        "POST", path, token, content=chunks(too_large), headers={"Content-Type": "application/json"}
    )

    error = error_of(response, 413)
    assert str(limit) in error["message"]
    assert await events_stored(api) == stored
    assert not any(e["id"].startswith("evt-too-large") for e in stored)


async def test_the_batch_endpoint_has_its_own_larger_limit(
    make_api: Callable[..., Any],
) -> None:
    api, token = await small_limits_api(make_api)
    json_headers = {"Content-Type": "application/json"}
    over_single_limit, over_batch_limit = batch_of(3), batch_of(6, "big")
    assert 2048 < len(over_single_limit) < 8192 < len(over_batch_limit)

    accepted = await api.call(
        "POST", "/v1/events/batch", token, content=over_single_limit, headers=json_headers
    )
    refused = await api.call(
        "POST", "/v1/events/batch", token, content=over_batch_limit, headers=json_headers
    )
    single = await api.call(
        "POST", "/v1/events", token, content=event_of_size(3000), headers=json_headers
    )

    assert accepted.status_code == 202, accepted.text
    assert "8192" in error_of(refused, 413)["message"]
    assert "2048" in error_of(single, 413)["message"], "the single-event limit is its own"
    assert sorted(e["id"] for e in await events_stored(api)) == ["evt-0", "evt-1", "evt-2"]


# 422: a field is missing or wrong


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({**customer(), "type": "customer.created"}, "type", id="unknown type"),
        pytest.param({"location_id": "loc-1", "data": {}}, "type", id="missing type"),
        pytest.param({**customer(), "type": None}, "type", id="null type"),
        pytest.param({**customer(), "type": 5}, "type", id="numeric type"),
        pytest.param(customer(emial="a@example.com"), "data.emial", id="unknown payload field"),
        pytest.param(customer(name=5), "data.name", id="number value"),
        pytest.param(customer(name=["Ana"]), "data.name", id="list value"),
        pytest.param(customer(name={"first": "Ana"}), "data.name", id="object value"),
        pytest.param(customer(name=True), "data.name", id="boolean value"),
        pytest.param({**customer(), "data": "name=Ana"}, "data", id="data a string"),
        pytest.param({**customer(), "data": [{"name": "Ana"}]}, "data", id="data a list"),
        pytest.param({**customer(), "data": None}, "data", id="data null"),
        pytest.param({"type": "customer.create", "location_id": "loc-1"}, "data", id="no data"),
        pytest.param({**customer(), "priority": "high"}, "priority", id="extra top-level field"),
        pytest.param({"type": "customer.create", "data": {}}, "location_id", id="no location"),
        pytest.param({**customer(), "location_id": ""}, "location_id", id="empty location"),
        pytest.param({**customer(), "location_id": "   "}, "location_id", id="blank location"),
        pytest.param({**customer(), "location_id": 7}, "location_id", id="numeric location"),
        pytest.param({**customer(), "id": ""}, "id", id="empty id"),
        pytest.param({**customer(), "id": " \t "}, "id", id="blank id"),
        pytest.param({**customer(), "id": 42}, "id", id="numeric id"),
        pytest.param(["not", "an", "object"], "body", id="body a list"),
    ],
)
async def test_an_invalid_event_is_422_naming_the_field_and_stores_nothing(
    world: World, body: Any, field: str
) -> None:
    response = await world.api.call("POST", "/v1/events", world.token, json=body)

    error = error_of(response, 422, field)
    assert field in error["message"], "the message names the field too"
    await world.assert_unchanged()


async def test_every_bad_payload_field_is_named_at_once(world: World) -> None:
    response = await world.api.call(
        "POST", "/v1/events", world.token, json=customer(emial="x", name=5, city="Rosario")
    )

    assert fields_of(error_of(response, 422)) == {"data.emial", "data.name"}
    await world.assert_unchanged()


@pytest.mark.parametrize(
    ("events", "field"),
    [
        pytest.param(
            [customer(), customer(), {**customer(), "type": "customer.created"}],
            "events[2].type",
            id="unknown type",
        ),
        pytest.param(
            [customer(), {"location_id": "loc-1", "data": {}}], "events[1].type", id="no type"
        ),
        pytest.param(
            [customer(), customer(), customer(emial="x")],
            "events[2].data.emial",
            id="unknown payload field",
        ),
        pytest.param([customer(name=5)], "events[0].data.name", id="number value"),
        pytest.param(
            [customer(), {**customer(), "location_id": " "}],
            "events[1].location_id",
            id="blank location",
        ),
        pytest.param([customer(), {**customer(), "id": ""}], "events[1].id", id="empty id"),
        pytest.param([customer(), "customer.create"], "events[1]", id="event not an object"),
    ],
)
async def test_an_invalid_event_in_a_batch_is_422_naming_it_and_stores_none_of_the_batch(
    world: World, events: list[Any], field: str
) -> None:
    response = await world.api.call(
        "POST", "/v1/events/batch", world.token, json={"events": events}
    )

    error_of(response, 422, field)
    await world.assert_unchanged()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"events": [customer()] * 1001}, "events", id="1001 events"),
        pytest.param({"events": customer()}, "events", id="events not a list"),
        pytest.param({}, "events", id="no events"),
        pytest.param({"events": [customer()], "atomic": True}, "atomic", id="extra field"),
    ],
)
async def test_an_invalid_batch_is_422_and_stores_nothing(
    world: World, body: Any, field: str
) -> None:
    response = await world.api.call("POST", "/v1/events/batch", world.token, json=body)

    error_of(response, 422, field)
    await world.assert_unchanged()


def webhook(**changes: Any) -> dict[str, Any]:
    body = {"location_id": "loc-1", "event_type": "customer.create", "callback_url": PUBLIC_URL}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


BAD_CALLBACK_URLS = {
    "ftp": "ftp://example.com/hook",
    "javascript": "javascript:alert(1)",
    "file": "file:///etc/passwd",
    "no scheme": "example.com/hook",
    "user and password": "https://user:pw@example.com/hook",
    "user only": "https://token@example.com/hook",
    "no host": "https:///hook",
    "space": "https://example.com/ho ok",
    "empty": "",
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        *(
            pytest.param(webhook(callback_url=url), "callback_url", id=name)
            for name, url in BAD_CALLBACK_URLS.items()
        ),
        pytest.param(webhook(event_type="customer.created"), "event_type", id="unknown type"),
        pytest.param(webhook(event_type=...), "event_type", id="no event type"),
        pytest.param(webhook(location_id=...), "location_id", id="no location"),
        pytest.param(webhook(location_id=""), "location_id", id="empty location"),
        pytest.param(webhook(location_id="  "), "location_id", id="blank location"),
        pytest.param(webhook(callback_url=...), "callback_url", id="no callback url"),
        pytest.param(webhook(callback_url=5), "callback_url", id="numeric callback url"),
        pytest.param(webhook(secret="mine"), "secret", id="extra field"),
    ],
)
async def test_an_invalid_webhook_is_422_naming_the_field_and_creates_nothing(
    world: World, body: dict[str, Any], field: str
) -> None:
    response = await world.api.call("POST", "/v1/webhooks", world.token, json=body)

    error_of(response, 422, field)
    await world.assert_unchanged()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1/hook", id="loopback"),
        pytest.param("http://127.0.0.1:8080/hook", id="loopback with port"),
        pytest.param("http://localhost/hook", id="localhost"),
        pytest.param("http://[::1]/hook", id="IPv6 loopback"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud metadata"),
        pytest.param("http://10.0.0.7/hook", id="private 10/8"),
        pytest.param("http://192.168.1.1/hook", id="private 192.168/16"),
        pytest.param("http://0.0.0.0/hook", id="unspecified"),
        pytest.param("http://[::ffff:127.0.0.1]/hook", id="IPv4-mapped loopback"),
    ],
)
async def test_a_private_callback_url_is_422_when_private_targets_are_not_allowed(
    make_api: Callable[..., Any], url: str
) -> None:
    world = await populate(await make_api(dispatch=False, allow_private_targets=False))

    created = await world.api.call(
        "POST", "/v1/webhooks", world.token, json=webhook(callback_url=url)
    )
    patched = await world.api.call(
        "PATCH", f"/v1/webhooks/{world.webhook_id}", world.token, json={"callback_url": url}
    )

    assert "not allowed" in error_of(created, 422, "callback_url")["message"]
    error_of(patched, 422, "callback_url")
    await world.assert_unchanged()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="nothing to change"),
        pytest.param({"status": "paused"}, id="status paused"),
        pytest.param({"status": None}, id="status null"),
        pytest.param({"status": "ENABLED"}, id="status in capitals"),
        pytest.param({"callback_url": None}, id="callback url null"),
        pytest.param({"callback_url": "ftp://example.com/hook"}, id="callback url ftp"),
        pytest.param({"callback_url": "https://u:p@example.com/hook"}, id="credentials"),
        pytest.param({"status": "disabled", "event_type": "subscriber.create"}, id="extra field"),
        pytest.param(
            {"status": "disabled", "callback_url": "javascript:alert(1)"},
            id="a good change with a bad one",
        ),
    ],
)
async def test_an_invalid_webhook_change_is_422_and_changes_nothing(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.api.call(
        "PATCH", f"/v1/webhooks/{world.webhook_id}", world.token, json=body
    )

    error = error_of(response, 422)
    assert error["details"], "details say what to send"
    named = fields_of(error)
    if body:
        assert named & (set(body) - {"status"} or {"status"}), error
    else:
        assert named <= {"callback_url", "status", "body"}, error
    await world.assert_unchanged()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"since": "2026-01-01T00:00:00"}, id="no time zone"),
        pytest.param({"since": "2026-01-01 00:00:00"}, id="space, no time zone"),
        pytest.param({"since": "yesterday"}, id="not a time"),
        pytest.param({"since": 1767225600}, id="a bare number"),
        pytest.param({}, id="missing"),
    ],
)
async def test_recovering_since_a_time_without_a_zone_or_not_a_time_is_422_naming_since(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.api.call(
        "POST", f"/v1/webhooks/{world.webhook_id}/recover", world.token, json=body
    )

    error_of(response, 422, "since")
    await world.assert_unchanged()


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("/v1/events", {"limit": 0}, "limit", id="events limit 0"),
        pytest.param("/v1/events", {"limit": 1001}, "limit", id="events limit 1001"),
        pytest.param("/v1/events", {"limit": "ten"}, "limit", id="events limit not a number"),
        pytest.param("/v1/deliveries", {"limit": 0}, "limit", id="deliveries limit 0"),
        pytest.param("/v1/deliveries", {"limit": 1001}, "limit", id="deliveries limit 1001"),
        pytest.param("/v1/deliveries", {"status": "bogus"}, "status", id="delivery status"),
        pytest.param("/v1/webhooks", {"status": "paused"}, "status", id="webhook status"),
        pytest.param("/v1/events", {"type": "customer.created"}, "type", id="event type filter"),
    ],
)
async def test_an_invalid_list_query_is_422_naming_the_parameter(
    world: World, path: str, params: dict[str, Any], field: str
) -> None:
    response = await world.api.call("GET", path, world.token, params=params)

    error_of(response, 422, field)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/deliveries"])
@pytest.mark.parametrize("cursor", ["not-a-cursor-we-gave-out", "evt_0000000000000000000000000"])
async def test_a_cursor_naming_nothing_gives_an_empty_last_page_not_an_error(
    world: World, path: str, cursor: str
) -> None:
    # a cursor is the last id of the previous page; an id that is not there (or not yours)
    # has nothing after it. Any id is a well-formed cursor, as the schema says (one that
    # cannot be an id, like "garbage!!", is 422: tests/test_hostile_input.py).
    page = await world.api.ok("GET", path, world.token, params={"cursor": cursor})

    assert page == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"id": "", "name": "Café"}, "id", id="empty id"),
        pytest.param({"id": "   ", "name": "Café"}, "id", id="blank id"),
        pytest.param({"id": "loc-2", "name": " "}, "name", id="blank name"),
        pytest.param({"name": "Café"}, "id", id="no id"),
        pytest.param({"id": "loc-2"}, "name", id="no name"),
        pytest.param({"id": "loc\n2", "name": "Café"}, "id", id="control character"),
        pytest.param({"id": "loc-2", "name": "Café", "city": "Rosario"}, "city", id="extra"),
    ],
)
async def test_an_invalid_location_is_422_naming_the_field_and_creates_nothing(
    world: World, body: dict[str, Any], field: str
) -> None:
    response = await world.api.call("POST", "/v1/locations", world.token, json=body)

    error_of(response, 422, field)
    await world.assert_unchanged()


async def test_the_admin_creating_a_location_without_operator_id_is_422_naming_it(
    world: World,
) -> None:
    response = await world.api.call(
        "POST", "/v1/locations", ADMIN_TOKEN, json={"id": "loc-2", "name": "Plaza"}
    )

    error = error_of(response, 422, "operator_id")
    assert "operator_id" in error["message"]
    await world.assert_unchanged()
    error_of(await world.api.call("GET", "/v1/locations/loc-2"), 404)


async def test_the_admin_creating_a_location_for_an_unknown_operator_is_404(
    world: World,
) -> None:
    response = await world.api.call(
        "POST",
        "/v1/locations",
        ADMIN_TOKEN,
        json={"id": "loc-2", "name": "Plaza", "operator_id": "op_nosuchoperator"},
    )

    error_of(response, 404)
    await world.assert_unchanged()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": ""}, id="empty name"),
        pytest.param({"name": "  "}, id="blank name"),
        pytest.param({}, id="no name"),
        pytest.param({"name": 5}, id="numeric name"),
        pytest.param({"name": "globex", "token": "chosen"}, id="extra field"),
    ],
)
async def test_an_invalid_operator_is_422_and_creates_nothing(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.api.call("POST", "/v1/operators", ADMIN_TOKEN, json=body)

    error = error_of(response, 422)
    assert fields_of(error) & {"name", "token"}, error
    await world.assert_unchanged()


# 409: conflicts with what exists


async def test_an_operator_name_that_is_taken_is_409(world: World) -> None:
    response = await world.api.call("POST", "/v1/operators", ADMIN_TOKEN, json={"name": "acme"})

    assert "acme" in error_of(response, 409)["message"]
    await world.assert_unchanged()


@pytest.mark.parametrize("by", ["the same operator", "another operator", "the admin"])
async def test_a_location_id_that_is_taken_is_409_and_the_location_keeps_its_name(
    world: World, by: str
) -> None:
    body: dict[str, Any] = {"id": "loc-1", "name": "Impostor"}
    if by == "the same operator":
        token = world.token
    elif by == "another operator":
        token = await world.api.operator("globex")
        world.before = await everything(world.api)
    else:
        token, body["operator_id"] = ADMIN_TOKEN, world.operator_id

    response = await world.api.call("POST", "/v1/locations", token, json=body)

    assert "loc-1" in error_of(response, 409)["message"]
    await world.assert_unchanged()
    shown = await world.api.ok("GET", "/v1/locations/loc-1", world.token)
    assert shown["name"] == "Café Central"


async def test_retrying_a_delivery_of_a_disabled_webhook_is_409_saying_to_enable_it(
    world: World,
) -> None:
    response = await world.api.call(
        "POST", f"/v1/deliveries/{world.disabled_delivery_id}/retry", world.token
    )

    error = error_of(response, 409)
    assert "disabled" in error["message"] and "enable" in error["message"]
    await world.assert_unchanged()


async def test_recovering_a_disabled_webhook_is_409_saying_to_enable_it(world: World) -> None:
    response = await world.api.call(
        "POST",
        f"/v1/webhooks/{world.disabled_webhook_id}/recover",
        world.token,
        json={"since": "2020-01-01T00:00:00Z"},
    )

    error = error_of(response, 409)
    assert "disabled" in error["message"] and "enable" in error["message"]
    await world.assert_unchanged()


# 503: the database is unavailable


@pytest.mark.postgresql_only  # a database it can take away without stopping the server
async def test_a_database_that_refuses_connections_is_503_and_the_api_recovers_afterwards(
    make_api: Callable[..., Any], database_url: str
) -> None:
    database = database_url.rsplit("/", 1)[1]
    api: LiveAPI | None = None
    try:
        api = await make_api(dispatch=False)
        token = await api.operator_at("loc-1")
        assert (await api.client.get("/readyz")).status_code == 200

        await admin_sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        await terminate_connections(database)

        down = {
            "operator emits": await api.call(
                "POST", "/v1/events", token, json={**customer(), "id": "evt-during-outage"}
            ),
            "admin emits": await api.call(
                "POST", "/v1/events", json={**customer(), "id": "evt-admin-during-outage"}
            ),
            "operator lists locations": await api.call("GET", "/v1/locations", token),
            "admin lists locations": await api.call("GET", "/v1/locations"),
            "admin creates an operator": await api.call(
                "POST", "/v1/operators", json={"name": "globex"}
            ),
        }
        for what, response in down.items():
            error = error_of(response, 503)
            assert "database" in error["message"].lower(), (what, error)
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503, ready.text

        await admin_sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")

        assert (await api.client.get("/readyz")).status_code == 200
        locations = await api.ok("GET", "/v1/locations", token)
        assert [loc["id"] for loc in locations["data"]] == ["loc-1"]
        emitted = await api.ok("POST", "/v1/events", token, json={**customer(), "id": "evt-after"})
        assert emitted["id"] == "evt-after"
        # nothing was half-written while it was down
        assert [e["id"] for e in (await api.ok("GET", "/v1/events"))["data"]] == ["evt-after"]
        operators = await api.ok("GET", "/v1/operators")
        assert [o["name"] for o in operators["data"]] == ["acme"]
    finally:
        if api is not None:
            await api.stop()
        await admin_sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
