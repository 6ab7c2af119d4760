"""Subscriptions (SPEC §4, §5; issue 10): a webhook subscribes to ``location_ids`` x
``event_types``, either list ``["*"]`` for all; the original platform's one location + one
type form stays exactly what it was.

Over real HTTP, with real receivers (the PHP receiver as the original docs write it, and the
``standardwebhooks`` library), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from hotspot_webhooks.store import migrate
from hotspot_webhooks.store.database import create_engine
from hotspot_webhooks.store.schema import attempts, deliveries, subscriptions
from tests.conftest import run_cli
from tests.live_api import LiveAPI
from tests.receivers import PhpReceiver, PythonReceiver
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")
EVENT_TYPES = list(catalog.EVENT_TYPES)
MakeAPI = Callable[..., Any]


def sample(event_type: str) -> dict[str, Any]:
    return dict(catalog.get_event_type(event_type).sample)


async def emit(api: LiveAPI, token: str, event_type: str, location_id: str) -> dict[str, Any]:
    body = {"type": event_type, "location_id": location_id, "data": sample(event_type)}
    result: dict[str, Any] = await api.ok("POST", "/v1/events", token, json=body)
    return result


async def received(receiver: PythonReceiver, count: int, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} arrived"
        await asyncio.sleep(0.02)


# ---- the original form, unchanged ---------------------------------------------------------


async def test_the_original_form_sends_exactly_the_original_request_for_every_type(
    api: LiveAPI, python_receiver: PythonReceiver
) -> None:
    """Headers in name, case and order, body and both signatures, recomputed here from the
    wire format (not with our signing code), for a one-location one-type webhook."""
    token = await api.operator_at("loc-1042", name="acme")
    hooks = {t: await api.webhook(token, "loc-1042", python_receiver.url, t) for t in EVENT_TYPES}
    for event_type, hook in hooks.items():
        assert (hook["location_id"], hook["event_type"]) == ("loc-1042", event_type)
        assert (hook["location_ids"], hook["event_types"]) == (["loc-1042"], [event_type])
    emitted = {t: await emit(api, token, t, "loc-1042") for t in EVENT_TYPES}
    await received(python_receiver, len(EVENT_TYPES))

    for request in python_receiver.requests:
        headers = dict(request.headers)
        event_type = headers["X-Hotspotsystem-Event"]
        key = hooks[event_type]["api_key"]
        body = catalog.serialize(catalog.validate(catalog.EVENT_TYPES[event_type],
                                                  sample(event_type)))  # fmt: skip
        assert request.body == body
        original = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        stamp = headers["webhook-timestamp"]
        signed = f"{emitted[event_type]['id']}.{stamp}.".encode() + body
        standard = base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest())
        ours = [(k, v) for k, v in request.headers
                if k not in ("Host", "Content-Length", "Accept-Encoding", "Accept")]  # fmt: skip
        assert ours == [
            ("Content-Type", "application/json"),
            ("User-Agent", headers["User-Agent"]),
            ("X-Hotspotsystem-Hmac-Sha256", original),
            ("HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256", original),
            ("webhook-id", emitted[event_type]["id"]),
            ("webhook-timestamp", stamp),
            ("webhook-signature", "v1," + standard.decode()),
            ("X-Hotspotsystem-Event", event_type),
            ("X-Hotspotsystem-Location", "loc-1042"),
            ("X-Hotspotsystem-Delivery", headers["X-Hotspotsystem-Delivery"]),
            ("X-Hotspotsystem-Attempt", "1"),
        ]
        assert headers["User-Agent"].startswith("hotspot-webhooks/")


# ---- one wildcard webhook -------------------------------------------------------------------


async def test_one_wildcard_webhook_gets_every_type_from_every_location_with_one_key(
    api: LiveAPI, tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    """Three locations (one created after the webhook) x six types: 18 deliveries to one
    endpoint, each verified with the webhook's one key by the PHP receiver of the original
    docs and by the standardwebhooks library; headers name each event's location and type."""
    token = await api.operator_at("loc-a", "loc-b", name="acme")
    hook = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_ids": ["*"], "event_types": ["*"], "callback_url": "http://127.0.0.1:9/"},
    )  # fmt: skip
    assert (hook["location_id"], hook["event_type"]) == (None, None)
    assert (hook["location_ids"], hook["event_types"]) == (["*"], ["*"])
    await api.location(token, "loc-c")  # after the webhook: "*" covers it too
    php = PhpReceiver(hook["api_key"], tmp_path / "php.log")
    try:
        await api.ok("PATCH", f"/v1/webhooks/{hook['id']}", token, json={"callback_url": php.url})
        pairs = [(loc, t) for loc in ("loc-a", "loc-b", "loc-c") for t in EVENT_TYPES]
        for location, event_type in pairs:
            assert (await emit(api, token, event_type, location))["deliveries"] == 1
        deadline = time.monotonic() + 30
        while len(php.entries()) < len(pairs):
            assert time.monotonic() < deadline, f"{len(php.entries())} of {len(pairs)} arrived"
            await asyncio.sleep(0.05)
        entries = php.entries()
        assert all(e["literal_header_verified"] and e["server_var_verified"] for e in entries)
        assert sorted((e["payload"]["id"], e["event"]) for e in entries) == sorted(
            (sample(t)["id"], t) for _, t in pairs
        )
    finally:
        php.stop()

    # the same deliveries, as a Standard Webhooks receiver sees them
    await api.ok(
        "PATCH", f"/v1/webhooks/{hook['id']}", token, json={"callback_url": python_receiver.url}
    )
    for location, event_type in pairs:
        await emit(api, token, event_type, location)
    await received(python_receiver, len(pairs))
    seen = set()
    for request in python_receiver.requests:
        StandardWebhook(hook["signing_secret"]).verify(request.body, request.header_dict)
        seen.add(
            (request.header("X-Hotspotsystem-Location"), request.header("X-Hotspotsystem-Event"))
        )
    assert seen == set(pairs)


# ---- tenancy --------------------------------------------------------------------------------


async def test_a_wildcard_never_crosses_operators_and_others_locations_cannot_be_named(
    api: LiveAPI, python_receiver: PythonReceiver
) -> None:
    alpha = await api.operator_at("loc-a1", name="alpha")
    bravo = await api.operator_at("loc-b1", name="bravo")
    everything = {"location_ids": ["*"], "event_types": ["*"],
                  "callback_url": python_receiver.url}  # fmt: skip
    await api.ok("POST", "/v1/webhooks", alpha, json=everything)

    assert (await emit(api, bravo, "customer.create", "loc-b1"))["deliveries"] == 0
    assert (await emit(api, alpha, "customer.create", "loc-a1"))["deliveries"] == 1
    await received(python_receiver, 1)
    await asyncio.sleep(0.3)
    assert [r.header("X-Hotspotsystem-Location") for r in python_receiver.requests] == ["loc-a1"]

    for body in (
        {**everything, "location_ids": ["loc-a1", "loc-b1"]},
        {**everything, "location_ids": ["loc-b1"]},
        {**everything, "location_ids": ["loc-nowhere"]},
    ):
        refused = error_of(await api.call("POST", "/v1/webhooks", alpha, json=body), 404)
        assert "bravo" not in refused["message"]
    same = error_of(
        await api.call(
            "POST", "/v1/webhooks", alpha, json={**everything, "location_ids": ["loc-b1"]}
        ),
        404,
    )
    unknown = error_of(
        await api.call("POST", "/v1/webhooks", alpha,
                       json={**everything, "location_ids": ["loc-zz"]}), 404
    )  # fmt: skip
    # no hint that loc-b1 exists: the same answer as for an id nobody has
    assert same["message"].replace("loc-b1", "X") == unknown["message"].replace("loc-zz", "X")
    # nor through PATCH
    [mine] = (await api.ok("GET", "/v1/webhooks", alpha))["data"]
    error_of(
        await api.call("PATCH", f"/v1/webhooks/{mine['id']}", alpha,
                       json={"location_ids": ["loc-b1"]}), 404,
    )  # fmt: skip


async def test_the_admin_creates_a_wildcard_webhook_for_a_named_operator(api: LiveAPI) -> None:
    await api.operator_at("loc-1", name="acme")
    body = {"location_ids": ["*"], "event_types": ["customer.create"],
            "callback_url": "http://127.0.0.1:9/"}  # fmt: skip
    missing = error_of(await api.call("POST", "/v1/webhooks", json=body), 422)
    assert "operator_id" in missing["message"]
    created = await api.ok("POST", "/v1/webhooks", json={**body, "operator_id": "acme"})
    assert created["location_ids"] == ["*"]
    # the admin's explicit locations name their operator
    explicit = await api.ok("POST", "/v1/webhooks", json={**body, "location_ids": ["loc-1"]})
    assert explicit["operator_id"] == created["operator_id"]


# ---- the subscription, checked and changed -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "said"),
    [
        ({"location_id": "loc-1", "location_ids": ["loc-1"], "event_type": "customer.create"},
         "location_ids", "not both"),
        ({"location_ids": ["*", "loc-1"], "event_type": "customer.create"},
         "location_ids", "alone"),
        ({"location_ids": [], "event_type": "customer.create"}, "location_ids", "at least"),
        ({"location_ids": ["loc-1"], "event_types": ["customer.create", "session.start"]},
         "event_types[1]", "session.start"),
        ({"location_ids": ["loc-1", "bad/id"], "event_type": "customer.create"},
         "location_ids[1]", "bad/id"),
        ({"event_type": "customer.create"}, "location_id", "required"),
    ],
)  # fmt: skip
async def test_a_bad_subscription_is_422_naming_the_field(
    api: LiveAPI, body: dict[str, Any], field: str, said: str
) -> None:
    token = await api.operator_at("loc-1", name="acme")
    response = await api.call(
        "POST", "/v1/webhooks", token, json={**body, "callback_url": "http://127.0.0.1:9/"}
    )
    error = error_of(response, 422)
    assert field in [d["field"] for d in error["details"]], error
    assert said in error["message"]


async def test_patch_changes_the_subscription_and_lists_filter_by_what_matches(
    api: LiveAPI,
) -> None:
    token = await api.operator_at("loc-1", "loc-2", "loc-3", name="acme")
    one = await api.webhook(token, "loc-1", "http://127.0.0.1:9/one")
    wild = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_ids": ["*"], "event_types": ["transaction.paid.create"],
              "callback_url": "http://127.0.0.1:9/wild"},
    )  # fmt: skip

    changed = await api.ok(
        "PATCH", f"/v1/webhooks/{one['id']}", token,
        json={"location_ids": ["loc-2", "loc-1"], "event_types": ["*"]},
    )  # fmt: skip

    assert changed["location_ids"] == ["loc-1", "loc-2"] and changed["event_types"] == ["*"]
    assert (changed["location_id"], changed["event_type"]) == (None, None)
    assert (await emit(api, token, "subscriber.create", "loc-2"))["deliveries"] == 1
    assert (await emit(api, token, "transaction.paid.create", "loc-2"))["deliveries"] == 2
    assert (await emit(api, token, "subscriber.create", "loc-3"))["deliveries"] == 0

    def ids(page: dict[str, Any]) -> set[str]:
        return {w["id"] for w in page["data"]}

    listed = await api.ok("GET", "/v1/webhooks?location_id=loc-3", token)
    assert ids(listed) == {wild["id"]}  # through "*"
    listed = await api.ok("GET", "/v1/webhooks?location_id=loc-2&event_type=customer.create", token)
    assert ids(listed) == {one["id"]}
    listed = await api.ok("GET", "/v1/webhooks?event_type=transaction.paid.create", token)
    assert ids(listed) == {one["id"], wild["id"]}

    narrowed = await api.ok(
        "PATCH", f"/v1/webhooks/{one['id']}", token, json={"event_types": ["customer.create"]}
    )
    assert narrowed["location_ids"] == ["loc-1", "loc-2"]
    assert narrowed["event_types"] == ["customer.create"]


async def test_a_disabled_location_is_skipped_by_wildcards_and_its_queue_fails_unsent(
    make_api: MakeAPI,
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    token = await api.operator_at("loc-1", "loc-2", name="acme")
    wild = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_ids": ["*"], "event_types": ["*"], "callback_url": "http://127.0.0.1:9/"},
    )  # fmt: skip
    only_here = await api.webhook(token, "loc-1", "http://127.0.0.1:9/only")
    await emit(api, token, "customer.create", "loc-1")  # two queued deliveries
    await emit(api, token, "customer.create", "loc-2")  # one

    await api.ok("PATCH", "/v1/locations/loc-1", token, json={"status": "disabled"})

    assert (await api.ok("GET", f"/v1/webhooks/{wild['id']}", token))["status"] == "enabled"
    assert (await api.ok("GET", f"/v1/webhooks/{only_here['id']}", token))["status"] == "disabled"
    assert (await emit(api, token, "customer.create", "loc-1"))["deliveries"] == 0
    queued = (await api.ok("GET", "/v1/deliveries", token))["data"]
    by_webhook = {(d["webhook_id"], d["status"]) for d in queued}
    assert (wild["id"], "failed") in by_webhook and (wild["id"], "pending") in by_webhook
    failed = [d for d in queued if d["status"] == "failed" and d["webhook_id"] == wild["id"]]
    assert failed[0]["last_error"] == "location loc-1 is disabled; not sent"

    await api.ok("PATCH", "/v1/locations/loc-1", token, json={"status": "enabled"})
    assert (await api.ok("GET", f"/v1/webhooks/{only_here['id']}", token))["status"] == "enabled"
    assert (await emit(api, token, "customer.create", "loc-1"))["deliveries"] == 2


async def test_deleting_a_location_keeps_the_webhooks_that_name_others(api: LiveAPI) -> None:
    token = await api.operator_at("loc-1", "loc-2", name="acme")
    both = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_ids": ["loc-1", "loc-2"], "event_types": ["*"],
              "callback_url": "http://127.0.0.1:9/"},
    )  # fmt: skip
    only = await api.webhook(token, "loc-1", "http://127.0.0.1:9/only")

    await api.ok("DELETE", "/v1/locations/loc-1", token)

    assert (await api.ok("GET", f"/v1/webhooks/{both['id']}", token))["location_ids"] == ["loc-2"]
    error_of(await api.call("GET", f"/v1/webhooks/{only['id']}", token), 404)


# ---- migration ------------------------------------------------------------------------------


async def test_existing_webhooks_and_their_deliveries_migrate_unchanged(
    make_settings: Callable[..., Settings],
) -> None:
    """A database at revision 0005 with webhooks, deliveries and attempts: after the upgrade
    each webhook subscribes to exactly its one location and type, and nothing else changed
    (on SQLite the webhooks table is rebuilt: with foreign keys on, that would have cascaded
    away every delivery)."""
    settings = make_settings()
    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine, "0005")
        now = datetime.now(UTC)
        await seed_at_0005(engine, now)
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()

    service = await Service.open(settings)
    try:
        webhook = await service.webhooks.get("wh_1")
        assert (webhook.location_id, webhook.event_type) == ("loc-1", "subscriber.create")
        assert (webhook.location_ids, webhook.event_types) == (["loc-1"], ["subscriber.create"])
        assert webhook.operator_id == "op_1"
        async with service.store.db.read() as conn:
            counted = [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (deliveries, attempts, subscriptions)
            ]
        assert counted == [3, 2, 1]
        assert [d.webhook_id for d in (await service.deliveries.get_all()).data] == ["wh_1"] * 3
    finally:
        await service.close()


async def seed_at_0005(engine: Any, now: datetime) -> None:
    """Rows as revision 0005 stored them (its tables, written with plain SQL)."""
    stamp = f"{now:%Y-%m-%d %H:%M:%S}"
    rows: list[tuple[str, dict[str, Any]]] = [
        (
            "INSERT INTO operators (id, name, status, created_at) "
            "VALUES ('op_1', 'acme', 'enabled', :at)",
            {},
        ),
        (
            "INSERT INTO locations (id, name, operator_id, status, created_at) "
            "VALUES ('loc-1', 'Café', 'op_1', 'enabled', :at)",
            {},
        ),
        (
            "INSERT INTO webhooks (id, location_id, event_type, callback_url, "
            "api_key_encrypted, status, created_at, updated_at) VALUES ('wh_1', 'loc-1', "
            "'subscriber.create', 'http://127.0.0.1:9/', 'not-a-real-ciphertext', 'enabled', "
            ":at, :at)",
            {},
        ),
    ]
    for n in range(3):
        ids = {"event": f"evt_{n}", "delivery": f"dlv_{n}"}
        rows += [
            (
                "INSERT INTO events (id, type, location_id, body, delivery_count, created_at) "
                "VALUES (:event, 'subscriber.create', 'loc-1', :body, 1, :at)",
                {"event": ids["event"], "body": b"{}"},
            ),
            (
                "INSERT INTO deliveries (id, event_id, webhook_id, status, attempt_count, "
                "next_attempt_at, created_at) "
                "VALUES (:delivery, :event, 'wh_1', 'pending', 0, :at, :at)",
                ids,
            ),
        ]
    async with engine.begin() as conn:
        for statement, params in rows:
            at: Any = stamp if engine.dialect.name == "sqlite" else now
            await conn.execute(text(statement), {"at": at, **params})
        await conn.execute(
            insert(attempts),
            [
                {"delivery_id": "dlv_0", "number": n, "started_at": now, "duration_ms": 5,
                 "request_headers": {}, "status": 500, "response_excerpt": None, "error": None}
                for n in (1, 2)
            ],
        )  # fmt: skip


# ---- the CLI --------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_cli_creates_and_lists_subscriptions(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    assert run_cli("operators", "create", "acme", db=db).returncode == 0
    for location in ("1", "2"):
        made = run_cli("locations", "create", location, "--name", "Café", "--operator", "acme",
                       db=db)  # fmt: skip
        assert made.returncode == 0, made.stderr

    local = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
    several = run_cli("webhooks", "create", "--location", "1", "--location", "2", "--event", "*",
                      "--url", "http://127.0.0.1:9/", "--json", db=db, env=local)  # fmt: skip
    everywhere = run_cli("webhooks", "create", "--all-locations", "--event", "customer.create",
                         "--operator", "acme", "--url", "http://127.0.0.1:9/", "--json",
                         db=db, env=local)  # fmt: skip
    both = run_cli("webhooks", "create", "--all-locations", "--location", "1", "--event", "*",
                   "--url", "http://127.0.0.1:9/", db=db)  # fmt: skip

    assert several.returncode == 0, several.stderr
    assert '"location_ids": [\n    "1",\n    "2"\n  ]' in several.stdout
    assert everywhere.returncode == 0, everywhere.stderr
    assert '"location_ids": [\n    "*"\n  ]' in everywhere.stdout
    assert both.returncode == 2 and "not both" in both.stderr
    listed = run_cli("webhooks", "list", db=db)
    assert "1, 2" in listed.stdout and "customer.create" in listed.stdout
