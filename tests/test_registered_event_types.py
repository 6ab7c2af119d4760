"""An event catalog you can extend (SPEC §4 Event type, §5; issue 10): the admin registers
an event type with a JSON Schema (Draft 2020-12) and a sample; its events are validated
against the schema with the built-ins' field-naming errors, delivered like any other, listed
by the API, the OpenAPI document and the CLI. Built-ins cannot be changed, shadowed or
removed; a type in use cannot be removed. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.conftest import run_cli
from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.shapes import error_of
from tests.test_access_lifecycle import OtherProcess

BACKENDS = ("sqlite", "postgresql")
SESSION_START: dict[str, Any] = {
    "name": "session.start",
    "description": "A guest's Wi-Fi session has started.",
    "schema": {
        "type": "object",
        "properties": {
            "mac": {"type": "string", "pattern": "^([0-9A-F]{2}-){5}[0-9A-F]{2}$"},
            "started_at": {"type": "string"},
            "minutes": {"type": "integer", "minimum": 0},
            "plan": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
        "required": ["mac", "started_at"],
        "additionalProperties": False,
    },
    "sample": {"mac": "BE-72-B3-40-F9-BE", "started_at": "2026-11-30T12:00:00Z", "minutes": 60},
}


async def register(api: LiveAPI, **changes: Any) -> dict[str, Any]:
    created: dict[str, Any] = await api.ok(
        "POST", "/v1/event-types", json={**SESSION_START, **changes}
    )
    return created


async def test_a_registered_type_is_validated_delivered_and_listed(
    api: LiveAPI, python_receiver: PythonReceiver
) -> None:
    created = await register(api)
    assert created["builtin"] is False
    assert created["fields"] == ["mac", "started_at", "minutes", "plan"]
    token = await api.operator_at("loc-1", name="acme")
    hook = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_id": "loc-1", "event_types": ["session.start", "customer.create"],
              "callback_url": python_receiver.url},
    )  # fmt: skip

    data = {"minutes": 5, "mac": "AA-BB-CC-DD-EE-FF", "started_at": "2026-11-30T12:05:00Z"}
    emitted = await api.ok(
        "POST", "/v1/events", token,
        json={"type": "session.start", "location_id": "loc-1", "data": data},
    )  # fmt: skip

    assert emitted["deliveries"] == 1
    deadline = time.monotonic() + 15
    while not python_receiver.requests:
        assert time.monotonic() < deadline, "nothing was delivered"
        await asyncio.sleep(0.02)
    [request] = python_receiver.requests
    # the payload as given, keys in the order given, compact
    assert request.body == json.dumps(data, separators=(",", ":")).encode()
    assert request.header("X-Hotspotsystem-Event") == "session.start"
    StandardWebhook(hook["signing_secret"]).verify(request.body, request.header_dict)
    stored = await api.ok("GET", f"/v1/events/{emitted['id']}", token)
    assert stored["data"] == data and stored["type"] == "session.start"

    listed = (await api.ok("GET", "/v1/event-types"))["data"]
    assert [t["name"] for t in listed][-1] == "session.start"
    assert sum(t["builtin"] for t in listed) == 6
    shown = await api.ok("GET", "/v1/event-types/session.start")
    assert shown["json_schema"] == SESSION_START["schema"]
    assert shown["sample"] == SESSION_START["sample"]


@pytest.mark.parametrize(
    ("data", "field", "said"),
    [
        ({"mac": "AA-BB-CC-DD-EE-FF", "started_at": "x", "minutes": "five"},
         "data.minutes", "is not of type 'integer'"),
        ({"started_at": "x"}, "data.mac", "is required"),
        ({"mac": "nope", "started_at": "x"}, "data.mac", "does not match"),
        ({"mac": "AA-BB-CC-DD-EE-FF", "started_at": "x", "plan": {"name": 3}},
         "data.plan.name", "is not of type 'string'"),
        ({"mac": "AA-BB-CC-DD-EE-FF", "started_at": "x", "extra": 1}, "data", "extra"),
        ([1, 2], "data", "must be a JSON object"),
    ],
)  # fmt: skip
async def test_a_bad_payload_is_422_naming_the_field(
    api: LiveAPI, data: Any, field: str, said: str
) -> None:
    await register(api)
    token = await api.operator_at("loc-1", name="acme")
    response = await api.call(
        "POST", "/v1/events", token,
        json={"type": "session.start", "location_id": "loc-1", "data": data},
    )  # fmt: skip
    error = error_of(response, 422)
    assert field in [d["field"] for d in error["details"]], error
    assert said in error["message"], error["message"]
    assert "\n" not in error["message"]
    assert (await api.ok("GET", "/v1/events", token))["data"] == []  # nothing stored


async def test_unknown_types_are_refused_with_the_known_ones_listed(api: LiveAPI) -> None:
    await register(api)
    token = await api.operator_at("loc-1", name="acme")
    error = error_of(
        await api.call("POST", "/v1/events", token,
                       json={"type": "session.stop", "location_id": "loc-1", "data": {}}),
        422,
    )  # fmt: skip
    assert error["details"][0]["field"] == "type"
    assert "session.start" in error["message"] and "customer.create" in error["message"]


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"name": "customer.create"}, 409, "name"),
        ({"name": "Session Start"}, 422, "name"),
        ({"schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}, 422, "schema"),
        ({"schema": {"type": "array"}}, 422, "schema"),
        ({"sample": {"mac": "nope", "started_at": "x"}}, 422, "sample.mac"),
    ],
)
async def test_a_bad_registration_is_refused_naming_the_field(
    api: LiveAPI, changes: dict[str, Any], status: int, field: str
) -> None:
    body = copy.deepcopy(SESSION_START) | changes
    error = error_of(await api.call("POST", "/v1/event-types", json=body), status)
    assert field in [d["field"] for d in error["details"]], error


async def test_only_the_admin_registers_or_removes_and_builtins_stay(api: LiveAPI) -> None:
    token = await api.operator_at("loc-1", name="acme")
    error_of(await api.call("POST", "/v1/event-types", token, json=SESSION_START), 403)
    await register(api)
    error_of(await api.call("POST", "/v1/event-types", json=SESSION_START), 409)
    error_of(await api.call("DELETE", "/v1/event-types/session.start", token), 403)
    builtin = error_of(await api.call("DELETE", "/v1/event-types/customer.create"), 409)
    assert "built-in" in builtin["message"]
    error_of(await api.call("DELETE", "/v1/event-types/session.nothing"), 404)


async def test_a_type_in_use_cannot_be_removed(api: LiveAPI) -> None:
    await register(api)
    await register(api, name="session.stop")
    token = await api.operator_at("loc-1", name="acme")
    hook = await api.ok(
        "POST", "/v1/webhooks", token,
        json={"location_id": "loc-1", "event_type": "session.start",
              "callback_url": "http://127.0.0.1:9/"},
    )  # fmt: skip
    await api.ok(
        "POST", "/v1/events", token,
        json={"type": "session.stop", "location_id": "loc-1", "data": SESSION_START["sample"]},
    )  # fmt: skip

    subscribed = error_of(await api.call("DELETE", "/v1/event-types/session.start"), 409)
    used = error_of(await api.call("DELETE", "/v1/event-types/session.stop"), 409)

    assert "webhook" in subscribed["message"] and "events" in used["message"]
    await api.ok("DELETE", f"/v1/webhooks/{hook['id']}", token)
    await api.ok("DELETE", "/v1/event-types/session.start")
    assert [t["name"] for t in (await api.ok("GET", "/v1/event-types"))["data"]][-1] == (
        "session.stop"
    )


async def test_the_openapi_document_lists_registered_types_and_their_examples(
    api: LiveAPI,
) -> None:
    before = await api.ok("GET", "/openapi.json")
    assert "RegisteredEvent" not in before["components"]["schemas"]
    await register(api)

    after = await api.ok("GET", "/openapi.json")

    emit = after["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert emit["examples"]["session.start"]["value"]["data"] == SESSION_START["sample"]
    assert after["components"]["schemas"]["RegisteredEvent"]["properties"]["type"]["enum"] == [
        "session.start"
    ]
    filters = {p["name"]: p for p in after["paths"]["/v1/webhooks"]["get"]["parameters"]}
    assert "session.start" in json.dumps(filters["event_type"]["schema"])


async def test_another_api_process_knows_a_type_registered_here_at_once(
    api: LiveAPI, tmp_path: Path
) -> None:
    there = OtherProcess(api.settings, tmp_path / "other.log")
    try:
        await there.wait_healthy()
        token = await api.operator_at("loc-1", name="acme")
        body = {"type": "session.start", "location_id": "loc-1", "data": SESSION_START["sample"]}
        error_of(await there.call("POST", "/v1/events", token, json=body), 422)

        await register(api)

        accepted = await there.call("POST", "/v1/events", token, json=body)
        assert accepted.status_code == 202, accepted.text
    finally:
        await there.stop()


@pytest.mark.sqlite_only
def test_cli_registers_lists_and_shows_event_types(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SESSION_START["schema"]))

    created = run_cli(
        "event-types", "create", "session.start", "--description", "A session started.",
        "--schema", f"@{schema}", "--sample", json.dumps(SESSION_START["sample"]), db=db,
    )  # fmt: skip
    bad = run_cli(
        "event-types", "create", "session.stop", "--description", "x",
        "--schema", f"@{schema}", "--sample", '{"mac": 1}', db=db,
    )  # fmt: skip
    listed = run_cli("event-types", "list", db=db)
    shown = run_cli("event-types", "show", "session.start", "--json", db=db)

    assert created.returncode == 0, created.stderr
    assert bad.returncode == 1 and "sample.mac" in bad.stderr
    assert "session.start" in listed.stdout and "customer.create" in listed.stdout
    assert json.loads(shown.stdout)["json_schema"] == SESSION_START["schema"]
    assert run_cli("operators", "create", "acme", db=db).returncode == 0
    assert run_cli("locations", "create", "1", "--name", "Café", "--operator", "acme",
                   db=db).returncode == 0  # fmt: skip
    emitted = run_cli("emit", "session.start", "--location", "1", "--sample", "--json", db=db)
    assert emitted.returncode == 0, emitted.stderr
