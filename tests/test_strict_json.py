"""Every body on the wire is RFC 8259 JSON in UTF-8, and no payload holds a NUL (issue 25).

S4: a lone surrogate (``"\\ud800"``) in a registered type's payload was a 500, and the
keep-alive connection was reset. S5: ``NaN``, ``-Infinity`` and ``1e999`` were accepted
(202) and the receiver got ``NaN``, which is not JSON; NUL was accepted inside keys.

Now each is 422 naming the field, from the REST API (over a raw keep-alive connection, which
then serves the next request), the Python API, the CLI, and at registration (a schema and a
sample are JSON too); nothing is stored or sent. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks import catalog, strict_json
from hotspot_webhooks.custom_types import CustomEventType
from hotspot_webhooks.custom_types import serialize as serialize_custom
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.service import Service
from tests.conftest import run_cli
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")
OPEN = "note.added"  # a registered type whose schema takes any JSON object
REGISTRATION = {
    "name": OPEN,
    "description": "A note, with whatever it carries.",
    "schema": {"type": "object"},
    "sample": {"note": "hello", "count": 1},
}


def strict_loads(body: bytes) -> Any:
    """RFC 8259 only: what a strict receiver's parser accepts."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    text = body.decode("utf-8")  # strict: a lone surrogate has no UTF-8 form
    value = json.loads(text, parse_constant=refuse)
    assert not strict_json.problems(value, nul=False), value
    return value


# ---- the walk, as a function -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "said"),
    [
        pytest.param({"a": "\ud800"}, "data.a", "unpaired UTF-16 surrogate (\\ud800)", id="value"),
        pytest.param({"\udc00x": 1}, "data.\\udc00x", "its name contains an unpaired", id="key"),
        pytest.param({"a": [1, {"b": math.nan}]}, "data.a[1].b", "not a finite number", id="NaN"),
        pytest.param({"a": math.inf}, "data.a", "not a finite number", id="Infinity"),
        pytest.param({"a": -math.inf}, "data.a", "not a finite number", id="-Infinity"),
        pytest.param({"a": "x\x00y"}, "data.a", "NUL character (\\u0000)", id="NUL value"),
        pytest.param({"a\x00b": 1}, "data.a\\u0000b", "its name contains a NUL", id="NUL key"),
        pytest.param({"a": b"bytes"}, "data.a", "is not a JSON value (bytes)", id="bytes"),
    ],
)
def test_the_first_place_json_cannot_carry_is_named_as_a_caller_writes_it(
    value: Any, field: str, said: str
) -> None:
    [first, *_] = strict_json.problems(value, "data")

    assert first["field"] == field
    assert said in first["message"]
    json.dumps(first, ensure_ascii=False).encode()  # a message that can itself be sent


def test_problems_are_named_in_document_order_and_a_body_starts_at_its_keys() -> None:
    body = {"events": [{"data": {"z": math.nan, "a": "\ud800"}}, {"\x00": "ok"}]}

    found = strict_json.problems(body, nul=True)

    assert [p["field"] for p in found] == [
        "events[0].data.z",
        "events[0].data.a",
        "events[1].\\u0000",
    ]
    assert strict_json.problems(math.nan) == [
        {"field": "body", "message": strict_json.problems([math.nan])[0]["message"]}
    ]


def test_finite_numbers_text_and_nesting_are_json() -> None:
    value = {"big": 1.7976931348623157e308, "n": -(10**40), "t": "ü 日本 🎉", "l": [None, True]}

    assert strict_json.problems(value) == []
    assert strict_loads(serialize_custom(value)) == value


@pytest.mark.parametrize("payload", [{"a": math.nan}, {"a": math.inf}, {"a": "\ud800"}])
def test_serializing_never_writes_what_json_cannot_carry(payload: dict[str, Any]) -> None:
    for serialize in (serialize_custom, catalog.serialize):
        with pytest.raises(ValueError, match=r"JSON compliant|surrogates not allowed"):
            serialize(payload)


# ---- the REST API, over one keep-alive connection ----------------------------------------


@dataclass
class Raw:
    """One HTTP/1.1 connection to the API, kept alive between requests."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def post(self, path: str, token: str, body: str) -> tuple[int, Any]:
        data = body.encode("utf-8", "surrogatepass")  # a raw lone surrogate, if asked
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        async with asyncio.timeout(30):
            raw_head = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            assert headers.get("connection") != "close", raw_head
            answer = await self.reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), json.loads(answer)


@dataclass
class Setup:
    api: LiveAPI
    token: str  # an operator's, at loc-1
    webhook_id: str  # at loc-1, for every type
    connection: Raw
    receiver: PythonReceiver


@pytest.fixture
async def raw(
    make_api: Callable[..., Any], python_receiver: PythonReceiver
) -> AsyncIterator[Setup]:
    """The open type registered; an operator at loc-1 with a webhook for every type."""
    api: LiveAPI = await make_api(dispatch=False)
    await api.ok("POST", "/v1/event-types", json=REGISTRATION)
    token = await api.operator_at("loc-1")
    webhook = await api.ok(
        "POST",
        "/v1/webhooks",
        token,
        json={"location_ids": ["loc-1"], "event_types": ["*"], "callback_url": python_receiver.url},
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    yield Setup(api, token, webhook["id"], Raw(reader, writer), python_receiver)
    writer.close()


def event(data: str, type: str = OPEN) -> str:
    """An event as JSON text, ``data`` written as given."""
    return f'{{"type": "{type}", "location_id": "loc-1", "data": {data}}}'


def batch(*events: str) -> str:
    return '{"events": [' + ", ".join(events) + "]}"


# (path, body as JSON text, field named)
BAD_BODIES = [
    pytest.param("/v1/events", event('{"note": "\\ud800"}'), "data.note", id="escaped surrogate"),
    pytest.param("/v1/events", event('{"note": "\ud800"}'), "data.note", id="raw surrogate"),
    pytest.param("/v1/events", event('{"\\udfff": 1}'), "data.\\udfff", id="surrogate key"),
    pytest.param("/v1/events", event('{"a": {"b": [NaN]}}'), "data.a.b[0]", id="NaN"),
    pytest.param("/v1/events", event('{"a": Infinity}'), "data.a", id="Infinity"),
    pytest.param("/v1/events", event('{"a": -Infinity}'), "data.a", id="-Infinity"),
    pytest.param("/v1/events", event('{"a": 1e999}'), "data.a", id="1e999"),
    pytest.param("/v1/events", event('{"a": -1e999}'), "data.a", id="-1e999"),
    pytest.param("/v1/events", event('{"a": "x\\u0000y"}'), "data.a", id="NUL value"),
    pytest.param("/v1/events", event('{"a\\u0000": "x"}'), "data.a\\u0000", id="NUL key"),
    pytest.param(
        "/v1/events/batch",
        batch(event("{}"), event('{"n": NaN}')),
        "events[1].data.n",
        id="NaN in a batch",
    ),
    pytest.param(
        "/v1/events/batch",
        batch(event("{}"), event('{"a": {"\\u0000": 1}}')),
        "events[1].data.a.\\u0000",
        id="NUL key in a batch",
    ),
    pytest.param(
        "/v1/events",
        event('{"\\ud800": "x"}', "customer.create"),
        "data.\\ud800",
        id="built-in type, surrogate key",
    ),
    pytest.param(
        "/v1/events",
        event('{"a\\u0000b": "x"}', "customer.create"),
        "data.a\\u0000b",
        id="built-in type, NUL key",
    ),
    pytest.param(
        "/v1/events", event('{"email": NaN}', "customer.create"), "data.email", id="built-in NaN"
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_BODIES)
async def test_a_body_json_cannot_carry_is_422_naming_the_field_and_the_connection_serves_on(
    raw: Setup, path: str, body: str, field: str
) -> None:
    status, answer = await raw.connection.post(path, raw.token, body)

    assert status == 422, answer
    assert field in [d["field"] for d in answer["error"]["details"]], answer
    # the same connection serves the next request
    good = event('{"note": "ü", "big": 1.7976931348623157e308}')
    status, accepted = await raw.connection.post("/v1/events", raw.token, good)
    assert status == 202, accepted
    listed = await raw.api.ok("GET", "/v1/events", raw.token)
    assert [e["id"] for e in listed["data"]] == [accepted["id"]], "only the good one is stored"
    # and what is sent is RFC 8259 JSON
    test_send = f"/v1/webhooks/{raw.webhook_id}/test"
    await raw.api.ok("POST", test_send, raw.token, params={"event_type": OPEN})
    [sent] = raw.receiver.requests
    assert strict_loads(sent.body) == REGISTRATION["sample"]


# ---- registration: a schema and a sample are JSON too --------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param(
            '"schema": {"type": "object", "properties": {"a": {"const": NaN}}}',
            "schema.properties.a.const",
            id="NaN in the schema",
        ),
        pytest.param(
            '"schema": {"type": "object", "properties": {"\\ud800": {}}}',
            "schema.properties.\\ud800",
            id="surrogate in the schema",
        ),
        pytest.param('"sample": {"a": 1e999}', "sample.a", id="1e999 in the sample"),
        pytest.param('"sample": {"a": "\\u0000"}', "sample.a", id="NUL in the sample"),
        pytest.param('"sample": {"\\u0000": 1}', "sample.\\u0000", id="NUL key in the sample"),
    ],
)
async def test_a_registration_json_cannot_carry_is_422_naming_the_field(
    raw: Setup, changes: str, field: str
) -> None:
    given = json.dumps({"name": "note.bad", "description": "notes"})[:-1] + ", " + changes
    if '"schema"' not in changes:
        given += ', "schema": {"type": "object"}'
    if '"sample"' not in changes:
        given += ', "sample": {}'

    status, answer = await raw.connection.post("/v1/event-types", ADMIN_TOKEN, given + "}")

    assert status == 422, answer
    assert field in [d["field"] for d in answer["error"]["details"]], answer
    error_of(await raw.api.call("GET", "/v1/event-types/note.bad"), 404)


async def test_a_schema_may_name_nul_in_a_pattern(api: LiveAPI) -> None:
    """A schema is not a payload: a pattern refusing control characters holds a NUL."""
    text = {"type": "string", "pattern": "^[^\x00-\x1f]*$"}
    schema = {"type": "object", "properties": {"a": text}}

    await api.ok("POST", "/v1/event-types", json={**REGISTRATION, "schema": schema})

    token = await api.operator_at("loc-1")
    bad = {"type": OPEN, "location_id": "loc-1", "data": {"a": "\x01"}}
    error_of(await api.call("POST", "/v1/events", token, json=bad), 422, "data.a")
    await api.ok("POST", "/v1/events", token, json={**bad, "data": {"a": "fine"}})


# ---- the Python API and the CLI get the same answer ---------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"a": math.nan}, "data.a"),
        ({"a": [math.inf]}, "data.a[0]"),
        ({"a": "\ud800"}, "data.a"),
        ({"a\x00": 1}, "data.a\\u0000"),
        ({"a": {"b": "\x00"}}, "data.a.b"),
    ],
)
async def test_the_service_refuses_a_payload_json_cannot_carry(
    service: Service, location: str, data: dict[str, Any], field: str
) -> None:
    await service.event_types.register(OPEN, "notes", {"type": "object"}, {"note": "x"})

    with pytest.raises(InvalidInput) as refused:
        await service.events.emit(OPEN, location, data)

    assert field in [d["field"] for d in refused.value.details]
    assert (await service.events.get_all()).data == []


async def test_the_service_refuses_a_sample_json_cannot_carry(service: Service) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.event_types.register(OPEN, "notes", {"type": "object"}, {"n": math.nan})

    assert [d["field"] for d in refused.value.details] == ["sample.n"]


def test_the_cli_refuses_nan_naming_the_field(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    for args in (
        ("operators", "create", "acme"),
        ("locations", "create", "loc-1", "--name", "Café", "--operator", "acme"),
        ("event-types", "create", OPEN, "--description", "notes",
         "--schema", '{"type": "object"}', "--sample", '{"note": "x"}'),
    ):  # fmt: skip
        made = run_cli(*args, db=db)
        assert made.returncode == 0, made.stderr

    refused = run_cli("emit", OPEN, "--location", "loc-1", "--data", '{"n": NaN}', db=db)

    assert refused.returncode != 0
    assert "data.n" in refused.stderr and "finite" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.sqlite_only  # PostgreSQL's json type never took NaN
async def test_a_sample_stored_before_strict_json_is_never_a_500(api: LiveAPI) -> None:
    """A registered type stored by an older version with ``NaN`` in its sample (SQLite kept
    it): listing the types still answers (the sample shown empty), and a test send of it is
    422 naming the sample, not a 500 from serializing what JSON cannot carry."""
    service = await Service.open(api.settings, migrate=False)
    try:  # as an older version stored it: no checks on the way in
        await service.store.event_types.insert_event_type(
            CustomEventType(
                "legacy.reading", "A reading.", {"type": "object"}, {"value": math.nan},
                datetime.now(UTC),
            )
        )  # fmt: skip
    finally:
        await service.close()
    hooked = await api.hooked("loc-1", "https://receiver.example/hook", "legacy.reading")

    listed = await api.ok("GET", "/v1/event-types")
    legacy = next(t for t in listed["data"] if t["name"] == "legacy.reading")
    assert legacy["sample"] == {}
    response = await api.call("POST", f"/v1/webhooks/{hooked.webhook['id']}/test", hooked.token)
    error = error_of(response, 422)
    assert error["details"][0]["field"].startswith("sample"), error
    assert (await api.ok("GET", "/v1/deliveries", hooked.token))["data"] == []
