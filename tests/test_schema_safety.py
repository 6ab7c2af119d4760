"""A registered type's schema cannot reach outside itself, stall the process or crash it
(issue 25, rows S2, S3 and S8).

S2: a ``$ref`` is resolved inside the schema only; one naming another document (``http:``,
``file:``, ``ftp:``, a relative name) is refused at registration (422 naming where it is), and
nothing is ever fetched, at registration or at emit, even for a type an older version stored.
S3: ``pattern`` and ``patternProperties`` run on RE2, in linear time; a pattern RE2 cannot
compile (backreferences, lookaround) is refused at registration.
S8: a reference that leads nowhere, to something that is not a schema, or round a cycle that
never moves into the data is refused at registration; an emit never answers 500.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.custom_types import CustomEventType
from hotspot_webhooks.service import Service
from tests.conftest import run_cli
from tests.live_api import LiveAPI
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")
NAME = "guest.note"
TREE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["name"],
}


class CountingServer:
    """A real HTTP server on 127.0.0.1 that counts the requests it gets and answers each
    with ``body`` (a JSON Schema by default, so a fetch would succeed if one were made)."""

    def __init__(self, body: bytes = b'{"type": "string"}', content_type: str = "") -> None:
        self.hits = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                counter.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def silent_port() -> Iterator[tuple[str, socket.socket]]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", listener


def pending_connections(listener: socket.socket) -> int:
    """How many connections the silent port got (it never accepts them on its own)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def with_property(subschema: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"note": subschema}, **extra}


async def register(api: LiveAPI, schema: Any, sample: Any = None) -> Any:
    body = {"name": NAME, "description": "A note.", "schema": schema, "sample": sample or {}}
    return await api.call("POST", "/v1/event-types", json=body)


async def emit(api: LiveAPI, token: str, data: Any) -> Any:
    body = {"type": NAME, "location_id": "loc-1", "data": data}
    return await api.call("POST", "/v1/events", token, json=body)


def refused_at(response: Any, field: str, *said: str) -> dict[str, Any]:
    error = error_of(response, 422)
    assert [d["field"] for d in error["details"]] == [field], error
    for words in said:
        assert words in error["message"], error["message"]
    return error


# S2: no remote or file reference is ever retrieved


@pytest.mark.parametrize("guard", ["guard off", "guard on"])
async def test_a_schema_naming_a_remote_ref_is_refused_and_nothing_is_fetched(
    make_api: Callable[..., Any], guard: str
) -> None:
    api: LiveAPI = await make_api(allow_private_targets=guard == "guard off")
    with CountingServer() as remote:
        in_sample = await register(api, with_property({"$ref": f"{remote.url}/note.json"}),
                                   {"note": "hello"})  # fmt: skip
        unused = await register(api, with_property({"$ref": f"{remote.url}/note.json"}))
        under_an_id = await register(
            api, {"$id": f"{remote.url}/root.json", **with_property({"$ref": "note.json"})}
        )
        remote_hits = remote.hits

    for response in (in_sample, unused, under_an_id):
        refused_at(response, "schema.properties.note.$ref", "outside this schema")
    assert remote_hits == 0
    listed = (await api.ok("GET", "/v1/event-types"))["data"]
    assert NAME not in [t["name"] for t in listed]


@pytest.mark.sqlite_only
def test_the_cli_refuses_a_remote_ref_and_fetches_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    with CountingServer() as remote:
        schema = with_property({"$ref": f"{remote.url}/note.json"})
        created = run_cli(
            "event-types", "create", NAME, "--description", "A note.",
            "--schema", json.dumps(schema), "--sample", '{"note": "x"}', db=db,
        )  # fmt: skip
        remote_hits = remote.hits

    assert created.returncode == 1, created.stdout + created.stderr
    assert "schema.properties.note.$ref" in created.stderr, created.stderr
    assert remote_hits == 0


async def test_a_schema_naming_a_file_ref_is_refused(api: LiveAPI, tmp_path: Path) -> None:
    secret = tmp_path / "note.json"
    secret.write_text('{"type": "string", "description": "read from disk"}')

    response = await register(api, with_property({"$ref": secret.as_uri()}), {"note": "x"})

    refused_at(response, "schema.properties.note.$ref", secret.as_uri(), "outside this schema")


@pytest.mark.timeout(60)  # the fault this guards against hung the whole process
async def test_a_ref_to_a_port_that_never_answers_is_refused_at_once(api: LiveAPI) -> None:
    with silent_port() as (url, listener):
        started = time.monotonic()
        response = await register(api, with_property({"$ref": f"{url}/note.json"}),
                                  {"note": "x"})  # fmt: skip
        took = time.monotonic() - started
        connections = pending_connections(listener)

    refused_at(response, "schema.properties.note.$ref", "outside this schema")
    assert connections == 0
    assert took < 10, f"registration took {took:.1f} s"


@pytest.mark.parametrize(
    "schema",
    [
        with_property({"$ref": "{remote}/note.json"}),
        with_property({"$ref": "#/nope/x"}),
        {"$ref": "#", "type": "object"},
        with_property({"$dynamicRef": "#nothing"}),
        with_property({"type": "string", "pattern": "^(a)\\1$"}),
        # never valid, but nothing stopped a hand-made row
        {"type": "object", "$id": 5},
        with_property({"$ref": "#/items/0"}, items=[1]),
        {"type": "object", "properties": 5},
    ],
    ids=[
        "remote",
        "bad-pointer",
        "recursive",
        "missing-dynamic-anchor",
        "backreference",
        "id-not-text",
        "pointer-through-a-list",
        "properties-not-an-object",
    ],
)
async def test_a_type_stored_by_an_older_version_never_fetches_nor_fails_at_emit(
    api: LiveAPI, schema: dict[str, Any]
) -> None:
    token = await api.operator_at("loc-1", name="acme")
    with CountingServer() as remote:
        stored = json.loads(json.dumps(schema).replace("{remote}", remote.url))
        service = await Service.open(api.settings, migrate=False)
        try:  # as an older version stored it: no checks on the way in
            await service.store.event_types.insert_event_type(
                CustomEventType(NAME, "A note.", stored, {}, datetime.now(UTC))
            )
        finally:
            await service.close()

        response = await emit(api, token, {"note": "hello"})
        remote_hits = remote.hits

    error = error_of(response, 422)
    assert error["details"][0]["field"] == "type", error
    assert NAME in error["message"] and "schema" in error["message"], error["message"]
    assert remote_hits == 0
    assert (await api.ok("GET", "/v1/events", token))["data"] == []
    shown = await api.ok("GET", f"/v1/event-types/{NAME}")  # still listed, shown as stored
    assert shown["json_schema"] == stored


# S3: patterns run in linear time


async def test_a_hostile_pattern_cannot_stall_the_process(api: LiveAPI) -> None:
    schema = with_property({"type": "string", "pattern": "^(a+)+$"}, required=["note"])
    assert (await register(api, schema, {"note": "aaa"})).status_code == 201
    token = await api.operator_at("loc-1", name="acme")
    polls: list[float] = []
    done = asyncio.Event()

    async def poll_health() -> None:
        async with api.client.stream("GET", "/healthz"):  # warm a connection of its own
            pass
        while not done.is_set():
            started = time.monotonic()
            response = await api.client.get("/healthz")
            polls.append(time.monotonic() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll_health())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    hostile = await emit(api, token, {"note": "a" * 29 + "!"})
    took = time.monotonic() - started
    await asyncio.sleep(0.3)
    done.set()
    await poller

    assert took < 5, f"the emit took {took:.1f} s"
    refused_at(hostile, "data.note", "does not match")
    assert polls, "/healthz was never answered"
    assert max(polls) < 1, f"/healthz took up to {max(polls):.2f} s"
    assert (await emit(api, token, {"note": "a" * 10_000})).status_code == 202


@pytest.mark.parametrize(
    ("pattern", "where"),
    [
        ({"pattern": "^(a)\\1$"}, "schema.properties.note.pattern"),
        ({"pattern": "^(?=a)a$"}, "schema.properties.note.pattern"),
        ({"patternProperties": {"(?<!x)y": {}}}, "schema.properties.note.patternProperties"),
    ],
    ids=["backreference", "lookahead", "lookbehind"],
)
async def test_a_pattern_re2_cannot_compile_is_refused_naming_it(
    api: LiveAPI, pattern: dict[str, Any], where: str
) -> None:
    response = await register(api, with_property(pattern))

    refused_at(response, where, "RE2")


async def test_pattern_properties_run_on_re2_too(api: LiveAPI) -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "properties": {"tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}},
    }
    assert (await register(api, schema, {"aaa": 1})).status_code == 201
    token = await api.operator_at("loc-1", name="acme")

    started = time.monotonic()
    hostile = await emit(api, token, {"a" * 29 + "!": "x", "aaaa": "four", "tags": {"B": 1}})
    took = time.monotonic() - started

    assert took < 5, f"the emit took {took:.1f} s"
    error = error_of(hostile, 422)
    assert {d["field"] for d in error["details"]} == {"data.aaaa", "data.tags"}, error


# S8: references that lead nowhere or round in circles are refused at registration


@pytest.mark.parametrize(
    ("schema", "field", "said"),
    [
        ({"$ref": "#", "type": "object"}, "schema.$ref", "cycle"),
        (
            {"type": "object", "$ref": "#/$defs/a",
             "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}},
            "schema.$defs.b.allOf[0].$ref", "cycle",
        ),
        ({"type": "object", "anyOf": [{"type": "object"}, {"$ref": "#"}]},
         "schema.anyOf[1].$ref", "cycle"),
        (with_property({"$dynamicRef": "#nothing"}), "schema.properties.note.$dynamicRef",
         "nothing"),
        (with_property({"$ref": "#/nope/x"}), "schema.properties.note.$ref", "points at nothing"),
        (with_property({"$ref": "#/properties/note/$ref"}), "schema.properties.note.$ref",
         "not a schema"),
        (with_property({"$ref": "#/x"}, x={"required": 5}), "schema.properties.note.$ref",
         "not a valid schema"),
        (with_property({"$ref": "ftp://127.0.0.1:9/note.json"}), "schema.properties.note.$ref",
         "outside this schema"),
        (with_property({"$ref": "note.json"}), "schema.properties.note.$ref",
         "outside this schema"),
        (with_property({"$ref": "https://json-schema.org/draft/2020-12/schema"}),
         "schema.properties.note.$ref", "outside this schema"),
        (with_property({"$ref": "http://[::1/x"}), "schema.properties.note.$ref", "[::1"),
    ],
    ids=["self", "mutual-through-allOf", "anyOf", "missing-dynamic-anchor", "bad-pointer",
         "not-a-schema", "invalid-schema", "ftp", "relative", "metaschema", "malformed-uri"],
)  # fmt: skip
async def test_a_ref_that_leads_nowhere_or_round_in_circles_is_refused(
    api: LiveAPI, schema: dict[str, Any], field: str, said: str
) -> None:
    response = await register(api, schema)

    refused_at(response, field, said)


async def test_a_ref_to_a_document_that_is_not_json_is_refused(api: LiveAPI) -> None:
    with CountingServer(b"<html>not a schema</html>", "text/html") as remote:
        response = await register(api, with_property({"$ref": f"{remote.url}/page.html"}),
                                  {"note": "x"})  # fmt: skip
        remote_hits = remote.hits

    refused_at(response, "schema.properties.note.$ref", "outside this schema")
    assert remote_hits == 0


async def test_references_inside_the_schema_work_including_a_recursive_tree(
    api: LiveAPI,
) -> None:
    sample = {"name": "root", "children": [{"name": "leaf"}]}
    assert (await register(api, TREE, sample)).status_code == 201
    token = await api.operator_at("loc-1", name="acme")
    tree = {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}

    accepted = await emit(api, token, tree)
    bad = await emit(api, token, {"name": "a", "children": [{"children": [{"name": 3}]}]})

    assert accepted.status_code == 202, accepted.text
    error = error_of(bad, 422)
    assert {d["field"] for d in error["details"]} == {
        "data.children[0].name",
        "data.children[0].children[0].name",
    }, error


async def test_anchors_ids_and_dynamic_refs_inside_the_schema_resolve(api: LiveAPI) -> None:
    schema = {
        "$id": "https://hotspot.example/note.json",
        "type": "object",
        "properties": {
            "by_anchor": {"$ref": "#word"},
            "by_id": {"$ref": "https://hotspot.example/count.json"},
            "by_relative_id": {"$ref": "count.json"},
            "by_dynamic": {"$dynamicRef": "#word"},
            "list": {"$ref": "#/$defs/words"},
        },
        "$defs": {
            "word": {"$anchor": "word", "$dynamicAnchor": "word", "type": "string"},
            "count": {"$id": "count.json", "type": "integer", "minimum": 0},
            "words": {"type": "array", "items": {"$ref": "#/$defs/word"}},
        },
    }
    sample = {"by_anchor": "a", "by_id": 1, "by_relative_id": 2, "by_dynamic": "b",
              "list": ["c"]}  # fmt: skip
    created = await register(api, schema, sample)
    assert created.status_code == 201, created.text
    token = await api.operator_at("loc-1", name="acme")

    bad = await emit(api, token, {"by_anchor": 1, "by_id": -1, "by_dynamic": 2, "list": [3]})

    error = error_of(bad, 422)
    assert {d["field"] for d in error["details"]} == {
        "data.by_anchor", "data.by_id", "data.by_dynamic", "data.list[0]"
    }, error  # fmt: skip


async def test_data_nested_too_deep_for_a_recursive_schema_is_422_not_500(api: LiveAPI) -> None:
    assert (await register(api, TREE, {"name": "root"})).status_code == 201
    token = await api.operator_at("loc-1", name="acme")
    deep: dict[str, Any] = {"name": "leaf"}
    for _ in range(400):
        deep = {"name": "n", "children": [deep]}

    response = await emit(api, token, deep)

    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        assert "deep" in error_of(response, 422)["message"]


async def test_a_schema_nested_too_deep_is_refused_not_500(api: LiveAPI) -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        deep = {"type": "object", "properties": {"a": deep}}

    response = await register(api, deep)

    refused_at(response, "schema", "levels deep")


async def test_patterns_are_re2_syntax_which_python_re_would_refuse(api: LiveAPI) -> None:
    schema = with_property({"type": "string", "pattern": "^\\p{L}+$"})
    assert (await register(api, schema, {"note": "Café"})).status_code == 201, schema
    token = await api.operator_at("loc-1", name="acme")

    accepted = await emit(api, token, {"note": "Ünïcode"})
    refused = await emit(api, token, {"note": "digits 123"})
    trailing_newline = await emit(api, token, {"note": "Café\n"})  # RE2's $ is the very end

    assert accepted.status_code == 202, accepted.text
    refused_at(refused, "data.note", "does not match")
    refused_at(trailing_newline, "data.note", "does not match")


# beyond S3: other keywords that made one payload stall the process


async def test_unique_items_of_thousands_of_objects_is_checked_promptly(api: LiveAPI) -> None:
    schema = with_property({"type": "array", "uniqueItems": True})
    assert (await register(api, schema, {"note": [{"k": 1}, {"k": 2}]})).status_code == 201
    token = await api.operator_at("loc-1", name="acme")
    distinct = [{"k": i} for i in range(5000)]

    started = time.monotonic()
    accepted = await emit(api, token, {"note": distinct})
    repeated = await emit(api, token, {"note": [*distinct, {"k": 4999.0}]})
    took = time.monotonic() - started

    assert took < 5, f"the two emits took {took:.1f} s"
    assert accepted.status_code == 202, accepted.text
    refused_at(repeated, "data.note", "non-unique")


async def test_a_payload_wrong_in_thousands_of_places_is_refused_promptly(api: LiveAPI) -> None:
    schema = with_property({"type": "array", "items": {"enum": list(range(500))}})
    assert (await register(api, schema, {"note": [1]})).status_code == 201
    token = await api.operator_at("loc-1", name="acme")

    started = time.monotonic()
    response = await emit(api, token, {"note": list(range(1000, 21_000))})
    took = time.monotonic() - started

    assert took < 5, f"the emit took {took:.1f} s"
    error = error_of(response, 422)
    assert len(error["details"]) == 10, error
    assert "more at least" in error["message"], error["message"]
