"""Hostile input, kept as tests: each attack of issue 9 that once got through, refused now.

The service was attacked over REST as an outsider and a rogue operator would. Each test here
replays one of the attacks that worked (a 500, a 503 for bad input, a webhook that could never
deliver, an SSRF spelling, an id that could never be fetched again, a token in the access log,
connections held open, a readable database file, a token in the service log, a plain-text
400, a filter that ignored nonsense) and checks the answer SPEC §5 and §6 ask for instead.

Everything goes through real HTTP against uvicorn (``make_api``), or through the real
``hotspot-webhooks`` process where the process is what is attacked (its log, its files, its
terminal); raw sockets where the attack is below HTTP. Tests that touch the database run on
SQLite and on PostgreSQL, where NUL bytes and time zones behave differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pty
import re
import secrets
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web

from hotspot_webhooks.api.app import create_app
from hotspot_webhooks.api.server import HTTP_PROTOCOL, H11JsonProtocol, server_config
from hotspot_webhooks.service import Service
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver, free_port, serving
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
PUBLIC_URL = "https://93.184.215.14/hook"  # a public literal: no DNS, never called here
CUSTOMER = "customer.create"


@dataclass
class Target:
    """An operator with location ``loc-1``, a webhook there and one event with a delivery."""

    api: LiveAPI
    token: str
    webhook_id: str
    delivery_id: str


async def target_on(api: LiveAPI, url: str = PUBLIC_URL) -> Target:
    token = await api.operator_at("loc-1")
    webhook = await api.webhook(token, "loc-1", url)
    event = {"type": CUSTOMER, "location_id": "loc-1", "data": {}, "id": "evt-1"}
    await api.ok("POST", "/v1/events", token, json=event)
    [delivery] = (await api.ok("GET", "/v1/deliveries", token))["data"]
    return Target(api, token, webhook["id"], delivery["id"])


@pytest.fixture
async def target(make_api: Callable[..., Any]) -> Target:
    """The target on an API without the dispatcher, private targets refused (production)."""
    return await target_on(await make_api(dispatch=False, allow_private_targets=False))


def customer(**fields: Any) -> dict[str, Any]:
    return {"type": CUSTOMER, "location_id": "loc-1", "data": {}, **fields}


# ---- 1. a time that overflows in UTC is 422, never 500 --------------------------------------


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_recovering_since_a_time_outside_utc_range_is_422_naming_since(
    target: Target, since: str
) -> None:
    path = f"/v1/webhooks/{target.webhook_id}/recover"

    response = await target.api.call("POST", path, target.token, json={"since": since})

    error = error_of(response, 422, "since")
    assert "out of range" in error["message"], error
    # the connection the 500 used to reset still serves the next request
    assert (
        await target.api.call("GET", f"/v1/webhooks/{target.webhook_id}", target.token)
    ).is_success


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59+14:00"])
async def test_recovering_since_the_extreme_times_utc_can_hold_is_accepted(
    target: Target, since: str
) -> None:
    path = f"/v1/webhooks/{target.webhook_id}/recover"

    recovered = await target.api.ok("POST", path, target.token, json={"since": since})

    assert recovered["requeued"] == 0


# ---- 2. a NUL byte is bad input (404/422), never "database unavailable" ----------------------

NUL = "a\x00b"
NUL_IN_PATH = "a%00b"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/v1/webhooks/{nul}", None, id="read webhook"),
        pytest.param("PATCH", "/v1/webhooks/{nul}", {"status": "disabled"}, id="change webhook"),
        pytest.param("DELETE", "/v1/webhooks/{nul}", None, id="delete webhook"),
        pytest.param("POST", "/v1/webhooks/{nul}/rotate-key", None, id="rotate key"),
        pytest.param(
            "POST", "/v1/webhooks/{nul}/recover", {"since": "2026-01-01T00:00:00Z"}, id="recover"
        ),
        pytest.param("GET", "/v1/locations/{nul}", None, id="read location"),
        pytest.param("GET", "/v1/events/{nul}", None, id="read event"),
        pytest.param("GET", "/v1/deliveries/{nul}", None, id="read delivery"),
        pytest.param("POST", "/v1/deliveries/{nul}/retry", None, id="retry delivery"),
        pytest.param("POST", "/v1/operators/{nul}/tokens", None, id="token for operator"),
    ],
)
async def test_a_nul_byte_in_a_path_id_is_404_and_logs_no_error(
    target: Target,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    token = ADMIN_TOKEN if "/operators/" in path else target.token
    with caplog.at_level(logging.WARNING):
        response = await target.api.call(
            method, path.format(nul=NUL_IN_PATH), token, **({"json": body} if body else {})
        )

    error = error_of(response, 404)
    assert "does not exist" in error["message"], error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("/v1/events", {"cursor": NUL}, "cursor", id="events cursor"),
        pytest.param("/v1/events", {"location_id": NUL}, "location_id", id="events location"),
        pytest.param("/v1/deliveries", {"cursor": NUL}, "cursor", id="deliveries cursor"),
        pytest.param("/v1/deliveries", {"webhook_id": NUL}, "webhook_id", id="deliveries webhook"),
        pytest.param("/v1/deliveries", {"event_id": NUL}, "event_id", id="deliveries event"),
        pytest.param("/v1/webhooks", {"location_id": NUL}, "location_id", id="webhooks location"),
        pytest.param("/v1/locations", {"operator_id": NUL}, "operator_id", id="locations operator"),
    ],
)
async def test_a_nul_byte_in_a_filter_or_cursor_is_422_naming_it(
    target: Target, caplog: pytest.LogCaptureFixture, path: str, params: dict[str, str], field: str
) -> None:
    token = ADMIN_TOKEN if field == "operator_id" else target.token
    with caplog.at_level(logging.WARNING):
        response = await target.api.call("GET", path, token, params=params)

    error_of(response, 422, field)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        pytest.param("/v1/locations", {"id": NUL, "name": "Plaza"}, "id", id="location id"),
        pytest.param("/v1/locations", {"id": "loc-2", "name": NUL}, "name", id="location name"),
        pytest.param("/v1/operators", {"name": NUL}, "name", id="operator name"),
        pytest.param(
            "/v1/webhooks",
            {"location_id": NUL, "event_type": CUSTOMER, "callback_url": PUBLIC_URL},
            "location_id",
            id="webhook location",
        ),
        pytest.param(
            "/v1/webhooks",
            {"location_id": "loc-1", "event_type": CUSTOMER, "callback_url": f"{PUBLIC_URL}{NUL}"},
            "callback_url",
            id="webhook url",
        ),
        pytest.param("/v1/events", customer(id=NUL), "id", id="event id"),
        pytest.param("/v1/events", customer(location_id=NUL), "location_id", id="event location"),
        pytest.param("/v1/events", customer(data={"email": NUL}), "data.email", id="payload"),
        pytest.param(
            "/v1/events/batch",
            {"events": [customer(), customer(data={"city": NUL})]},
            "events[1].data.city",
            id="payload in a batch",
        ),
    ],
)
async def test_a_nul_byte_in_a_body_is_422_naming_the_field_and_stores_nothing(
    target: Target, caplog: pytest.LogCaptureFixture, path: str, body: Any, field: str
) -> None:
    token = ADMIN_TOKEN if path == "/v1/operators" else target.token
    events_before = await target.api.ok("GET", "/v1/events", target.token)
    with caplog.at_level(logging.WARNING):
        response = await target.api.call("POST", path, token, json=body)

    error_of(response, 422, field)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await target.api.ok("GET", "/v1/events", target.token) == events_before


async def test_a_receiver_answering_nul_bytes_gets_its_attempt_recorded(
    make_api: Callable[..., Any],
) -> None:
    # a receiver's answer is stored (its first 4 KiB); PostgreSQL refuses NUL in text
    async def nul_answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"ok\x00\x00 and more", content_type="text/plain")

    api: LiveAPI = await make_api(dispatch=False)
    async with serving(nul_answer) as port:
        target = await target_on(api, f"http://127.0.0.1:{port}/hook")
        tested = await api.ok("POST", f"/v1/webhooks/{target.webhook_id}/test", target.token)

    assert tested["status"] == "succeeded", tested
    [attempt] = tested["attempts"]
    assert attempt["status"] == 200
    assert attempt["response_excerpt"] == "ok\ufffd\ufffd and more"


# ---- 3. an internationalized host is sent in its IDNA form ---------------------------------


async def test_a_non_ascii_host_is_stored_and_shown_in_its_idna_form(
    make_api: Callable[..., Any],
) -> None:
    # private targets allowed: no DNS lookup of a name this machine cannot resolve
    api: LiveAPI = await make_api(dispatch=False)
    token = await api.operator_at("loc-1")

    created = await api.webhook(token, "loc-1", "https://Bücher.example/hööks?q=ü#frag")
    shown = await api.ok("GET", f"/v1/webhooks/{created['id']}", token)

    expected = "https://xn--bcher-kva.example/h%C3%B6%C3%B6ks?q=%C3%BC#frag"
    assert created["callback_url"] == shown["callback_url"] == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hook",
            id="fullwidth localhost",
        ),
        pytest.param(
            "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", id="fullwidth 127.0.0.1"
        ),
        pytest.param("http://127\u30020\u30020\u30021/hook", id="ideographic full stops"),
    ],
)
async def test_a_non_ascii_spelling_of_an_internal_host_is_refused_by_the_ssrf_guard(
    target: Target, url: str
) -> None:
    body = {"location_id": "loc-1", "event_type": CUSTOMER, "callback_url": url}

    response = await target.api.call("POST", "/v1/webhooks", target.token, json=body)

    assert "not allowed" in error_of(response, 422, "callback_url")["message"]


@pytest.mark.parametrize("host", ["\u2603.example", "xn--bcher-kva\u3002\u00e9\u200d.example"])
async def test_a_host_that_is_no_valid_idna_name_is_422_naming_callback_url(
    target: Target, host: str
) -> None:
    body = {"location_id": "loc-1", "event_type": CUSTOMER, "callback_url": f"https://{host}/"}

    response = await target.api.call("POST", "/v1/webhooks", target.token, json=body)

    assert "internationalized" in error_of(response, 422, "callback_url")["message"]


async def test_a_webhook_to_a_non_ascii_host_is_delivered(
    make_api: Callable[..., Any], python_receiver: PythonReceiver
) -> None:
    # fullwidth "localhost": a name this machine resolves once it is IDNA-encoded
    api: LiveAPI = await make_api()  # private targets allowed, dispatcher on
    url = f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{python_receiver.port}/h\u00f6\u00f6k"
    target = await target_on(api, url)

    delivered = await api.wait_for_delivery(target.token, target.delivery_id, "succeeded")

    assert delivered["attempts"][0]["status"] == 200
    [received] = python_receiver.requests
    assert json.loads(received.body)["id"] is None
    shown = await api.ok("GET", f"/v1/webhooks/{target.webhook_id}", target.token)
    assert shown["callback_url"] == f"http://localhost:{python_receiver.port}/h%C3%B6%C3%B6k"


# ---- 4. SSRF spellings: an IPv6 wrapping a refused IPv4, 192.0.0.0/24, port 0 ---------------

SSRF_SPELLINGS = {
    "6to4 of 127.0.0.1": "http://[2002:7f00:1::]/",
    "6to4 of 10.0.0.1": "http://[2002:a00:1::1]/hook",
    "NAT64 of 127.0.0.1": "http://[64:ff9b::7f00:1]/",
    "NAT64 of 169.254.169.254": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "local-use NAT64": "http://[64:ff9b:1::a00:1]/",
    "Teredo": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "IETF protocol assignments": "http://192.0.0.8/",
    "site-local IPv6": "http://[fec0::1]/",
    "port 0": "http://1.1.1.1:0/",
}


@pytest.mark.parametrize("url", list(SSRF_SPELLINGS.values()), ids=list(SSRF_SPELLINGS))
async def test_an_ssrf_spelling_is_refused_at_creation_and_on_change(
    target: Target, url: str
) -> None:
    body = {"location_id": "loc-1", "event_type": CUSTOMER, "callback_url": url}

    created = await target.api.call("POST", "/v1/webhooks", target.token, json=body)
    changed = await target.api.call(
        "PATCH", f"/v1/webhooks/{target.webhook_id}", target.token, json={"callback_url": url}
    )

    error_of(created, 422, "callback_url")
    error_of(changed, 422, "callback_url")
    webhooks = (await target.api.ok("GET", "/v1/webhooks", target.token))["data"]
    assert [w["callback_url"] for w in webhooks] == [PUBLIC_URL]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[2002:7f00:1::]:{port}/hook", "6to4 address of 127.0.0.1, a loopback"),
        ("http://[64:ff9b::7f00:1]:{port}/hook", "NAT64 address of 127.0.0.1, a loopback"),
        ("http://192.0.0.8:{port}/hook", "192.0.0.8 is a non-global address"),
    ],
)
async def test_the_connect_time_guard_refuses_what_creation_refuses(
    make_api: Callable[..., Any], python_receiver: PythonReceiver, url: str, reason: str
) -> None:
    # stored while private targets were allowed (or before the guard knew better), then
    # sent by an API that refuses them: the attempt is refused before any connection
    lenient: LiveAPI = await make_api(dispatch=False)
    target = await target_on(lenient, url.format(port=python_receiver.port))
    strict: LiveAPI = await make_api(dispatch=False, allow_private_targets=False)

    tested = await strict.ok("POST", f"/v1/webhooks/{target.webhook_id}/test", target.token)

    assert tested["status"] == "pending", tested
    error = tested["attempts"][0]["error"]
    assert "refused to connect" in error and reason in error, error
    assert python_receiver.requests == []


# ---- 5. ids: one documented alphabet, or 422 naming the field ---------------------------------

BAD_IDS = {
    "slash": "x/y",
    "zero-width space": "\u200b",
    "right-to-left override": "loc\u202ename",
    "C1 control": "loc\x85",
    "another C1 control": "loc\x9b1",
    "dot": ".",
    "dot dot": "..",
    "leading dash": "-1",
    "space": "loc 1",
    "percent": "loc%2F1",
    "question mark": "loc?1",
    "non-ASCII letter": "lo\u00e7",
    "trailing newline": "loc-1\n",
    "201 characters": "a" * 201,
}
GOOD_IDS = ["59243583", "1", "loc-1042", "urn:hotspot:loc:7", "A_b.c-d", "_x", "a" * 200]


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
async def test_a_location_id_outside_the_id_alphabet_is_422_naming_id(
    target: Target, bad: str
) -> None:
    response = await target.api.call(
        "POST", "/v1/locations", target.token, json={"id": bad, "name": "Plaza"}
    )

    error = error_of(response, 422, "id")
    assert "letters, digits" in error["message"] or "non-empty" in error["message"], error
    locations = (await target.api.ok("GET", "/v1/locations", target.token))["data"]
    assert [loc["id"] for loc in locations] == ["loc-1"]


@pytest.mark.parametrize("good", GOOD_IDS)
async def test_realistic_ids_are_valid_and_can_be_fetched_back(target: Target, good: str) -> None:
    await target.api.ok("POST", "/v1/locations", target.token, json={"id": good, "name": "Plaza"})
    emitted = await target.api.ok(
        "POST", "/v1/events", target.token, json=customer(location_id=good, id=good)
    )

    assert (await target.api.ok("GET", f"/v1/locations/{good}", target.token))["id"] == good
    assert (await target.api.ok("GET", f"/v1/events/{emitted['id']}", target.token))["id"] == good


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        pytest.param("/v1/events", customer(id="a/b"), "id", id="event id"),
        pytest.param("/v1/events", customer(id="evt\u202e1"), "id", id="event id with override"),
        pytest.param(
            "/v1/events/batch",
            {"events": [customer(), customer(id="a/b")]},
            "events[1].id",
            id="event id in a batch",
        ),
        pytest.param("/v1/events", customer(location_id="x/y"), "location_id", id="event location"),
        pytest.param(
            "/v1/webhooks",
            {"location_id": "x/y", "event_type": CUSTOMER, "callback_url": PUBLIC_URL},
            "location_id",
            id="webhook location",
        ),
    ],
)
async def test_an_id_outside_the_alphabet_in_an_event_or_webhook_is_422_naming_it(
    target: Target, path: str, body: Any, field: str
) -> None:
    response = await target.api.call("POST", path, target.token, json=body)

    error_of(response, 422, field)
    assert len((await target.api.ok("GET", "/v1/events", target.token))["data"]) == 1


@pytest.mark.parametrize(
    "name", ["Caf\u00e9\u202eCentral", "Plaza\u200b", "Plaza\x85", "\u2066Plaza\u2069"]
)
async def test_a_name_with_invisible_or_control_characters_is_422_naming_name(
    target: Target, name: str
) -> None:
    response = await target.api.call(
        "POST", "/v1/locations", target.token, json={"id": "loc-2", "name": name}
    )

    error_of(response, 422, "name")


async def test_the_id_alphabet_is_published_in_the_openapi_schema(target: Target) -> None:
    openapi = (await target.api.client.get("/openapi.json")).json()
    schemas = openapi["components"]["schemas"]

    pattern = schemas["LocationCreate"]["properties"]["id"]["pattern"]
    assert re.fullmatch(pattern, "loc-1042") and not re.fullmatch(pattern, "x/y")
    parameters = openapi["paths"]["/v1/webhooks/{webhook_id}"]["get"]["parameters"]
    [webhook_id] = [p for p in parameters if p["name"] == "webhook_id"]
    assert webhook_id["schema"]["pattern"] == pattern


# ---- 6. a batch naming one id twice: the first is new, the second the duplicate ---------------


async def test_a_batch_with_the_same_id_twice_stores_it_once_first_new_then_duplicate(
    target: Target,
) -> None:
    batch = {"events": [customer(id="evt-twice"), customer(id="evt-twice"), customer(id="evt-1")]}

    answered = await target.api.ok("POST", "/v1/events/batch", target.token, json=batch)

    assert [(r["id"], r["duplicate"]) for r in answered["data"]] == [
        ("evt-twice", False),
        ("evt-twice", True),
        ("evt-1", True),  # stored by the target before
    ]
    assert [r["deliveries"] for r in answered["data"]] == [1, 1, 1]
    events = (await target.api.ok("GET", "/v1/events", target.token))["data"]
    assert sorted(e["id"] for e in events) == ["evt-1", "evt-twice"]
    listed = await target.api.ok(
        "GET", "/v1/deliveries", target.token, params={"event_id": "evt-twice"}
    )
    assert len(listed["data"]) == 1


# ---- the real process: its access log, its files, its first admin token ---------------------


@dataclass
class Process:
    """``hotspot-webhooks api|serve`` running on a SQLite file; stdout and stderr in files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


@contextlib.contextmanager
def running(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, db: Path | None = None
) -> Iterator[Process]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", *args, "--port", str(port),
             "--db", f"sqlite:///{db or tmp_path / 'hooks.db'}"],
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
            env={**clean, **(env or {})},
        )  # fmt: skip
    running = Process(process, f"http://127.0.0.1:{port}", out, err)
    try:
        wait_healthy(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_healthy(process: Process, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            pytest.fail(f"the process exited with {process.process.returncode}: {process.output()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{process.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail("the process did not answer /healthz in time")


# ---- 7. a token in a query string never reaches the access log -----------------------------


def test_tokens_and_keys_in_a_request_line_are_redacted_in_the_access_log(
    tmp_path: Path,
) -> None:
    token = "hwt_" + secrets.token_urlsafe(32)
    other_token = "hwt_" + secrets.token_urlsafe(32)
    api_key = secrets.token_urlsafe(32)
    signing = "whsec_" + secrets.token_urlsafe(24)
    chosen = "my-own-admin-password"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    env = {"HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN_TOKEN}

    with (
        running(tmp_path, "api", env=env) as api,
        httpx.Client(base_url=api.url, timeout=30) as client,
    ):
        statuses = [
            client.get("/v1/webhooks", params={"token": token}).status_code,
            client.get(f"/v1/webhooks/{other_token}", headers=admin).status_code,
            client.get("/v1/events", params={"api_key": api_key}, headers=admin).status_code,
            client.get("/v1/deliveries", params={"x": signing}, headers=admin).status_code,
            client.get("/v1/locations", params={"password": chosen}, headers=admin).status_code,
        ]
    log = api.output()

    assert statuses[:2] == [401, 404], statuses
    for secret in (token, other_token, api_key, signing, chosen, ADMIN_TOKEN):
        assert secret not in log, f"{secret!r} in the log:\n{log}"
    assert '"GET /v1/webhooks?token=[redacted] HTTP/1.1" 401' in log, log
    assert '"GET /v1/webhooks/[redacted] HTTP/1.1" 404' in log, log


# ---- 8. a body that never arrives: 408, and the connection closed ---------------------------


async def open_request(
    port: int, head: str, body_start: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent ``head`` and the start of a body; the caller keeps the writer
    (a writer collected as garbage closes its connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body_start)
    await writer.drain()
    return reader, writer


def slow_post(path: str, declared: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: hooks\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )


@pytest.mark.sqlite_only  # the server's sockets, whatever the database
async def test_connections_that_never_finish_their_body_get_408_and_are_closed(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False, body_timeout=1)
    started = time.monotonic()
    connections = await asyncio.gather(
        *(open_request(api.port, slow_post("/v1/events", 100), b"{") for _ in range(100))
    )

    try:
        answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in connections)), 10)
    finally:
        for _, writer in connections:
            writer.close()

    assert time.monotonic() - started < 6  # closed after the timeout, not held
    for answer in answers:  # read() returned: the server closed every connection
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in head.lower(), answer
        error = json.loads(body)
        assert error["success"] is False and error["error"]["code"] == 408, error
        assert "BODY_TIMEOUT" in error["error"]["message"]
    assert (await api.client.get("/healthz")).status_code == 200
    assert (await api.ok("GET", "/v1/events"))["data"] == []


@pytest.mark.sqlite_only
async def test_a_connection_answered_before_its_body_arrived_is_not_held_either(
    make_api: Callable[..., Any],
) -> None:
    # a route that does not read the body (an unknown one) answers at once; the server then
    # closes the connection once it falls idle (uvicorn's keep-alive timeout, 5 s)
    api: LiveAPI = await make_api(dispatch=False, body_timeout=30)
    reader, writer = await open_request(api.port, slow_post("/v1/nowhere", 100), b"{")
    started = time.monotonic()

    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()

    assert answer.startswith(b"HTTP/1.1 404"), answer
    assert time.monotonic() - started < 8


@pytest.mark.sqlite_only
async def test_a_body_sent_slowly_but_within_the_timeout_is_accepted(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False, body_timeout=5)
    token = await api.operator_at("loc-1")
    body = json.dumps(customer(id="evt-slow")).encode()
    head = slow_post("/v1/events", len(body)).replace(ADMIN_TOKEN, token)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(head.encode())
    for part in (body[:10], body[10:20], body[20:]):
        await asyncio.sleep(0.3)
        writer.write(part)
        await writer.drain()

    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()

    assert status_line.startswith(b"HTTP/1.1 202"), status_line


# ---- 9. the SQLite file and its neighbours are private -------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.sqlite_only
async def test_the_database_its_wal_and_shm_and_its_key_file_are_0600(
    make_settings: Callable[..., Any], database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite:///"))
    with umask(0o022):  # the usual one: files 0644 unless made private
        service = await Service.open(make_settings(), migrate=True)
        try:
            await service.operators.create("acme")
            await service.locations.create("loc-1", "Café", "acme")
            await service.events.emit(CUSTOMER, "loc-1", {"email": "guest@example.com"})
            files = [
                path,
                *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".secret-key")),
            ]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await service.close()


@pytest.mark.sqlite_only
async def test_an_existing_database_open_to_others_is_made_private(
    make_settings: Callable[..., Any], database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite:///"))
    await (await Service.open(make_settings(), migrate=True)).close()
    os.chmod(path, 0o644)

    await (await Service.open(make_settings())).close()

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_default_data_directory_is_created_0700_with_a_0600_database(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    with umask(0o022):
        done = subprocess.run(
            [sys.executable, "-m", "hotspot_webhooks", "migrate"],
            cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "hotspot-webhooks.db") == 0o600


# ---- 10. the first admin token: on a terminal, or in a private file, never in a log ---------

TOKEN = re.compile(r"hwt_[A-Za-z0-9_-]{20,}")


def test_without_a_terminal_the_first_admin_token_goes_to_a_0600_file_whose_path_is_logged(
    tmp_path: Path,
) -> None:
    db = tmp_path / "first.db"
    token_file = tmp_path / "first.db.admin-token"

    with running(tmp_path, "serve", "--dev", db=db) as server:
        token = token_file.read_text().strip()
        works = httpx.get(
            f"{server.url}/v1/operators", headers={"sn-apikey": token}, timeout=10
        ).status_code
    log = server.output()

    assert TOKEN.fullmatch(token), token
    assert mode(token_file) == 0o600
    assert works == 200
    assert not TOKEN.search(log), log  # not on stdout, not on stderr
    assert str(token_file) in log


def test_on_a_terminal_the_first_admin_token_is_shown_there_and_written_nowhere(
    tmp_path: Path,
) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    terminal, side = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hotspot_webhooks", "api", "--port", str(port),
         "--db", f"sqlite:///{tmp_path / 'tty.db'}"],
        stdout=side, stderr=subprocess.DEVNULL, cwd=tmp_path, env={**clean, "COLUMNS": "200"},
    )  # fmt: skip
    os.close(side)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while not TOKEN.search(shown.decode(errors="replace")) and time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if ready:
                with contextlib.suppress(OSError):
                    shown += os.read(terminal, 4096)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        os.close(terminal)

    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.decode(errors="replace"))  # the colours
    assert re.search(r"admin token: hwt_", text), text
    assert not (tmp_path / "tty.db.admin-token").exists()


# ---- 11. uvicorn's own 400s answer in the error shape ---------------------------------------


async def first_answer(port: int, request: bytes) -> tuple[list[str], bytes]:
    """Send ``request`` raw; the first response's head lines (lower case) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().lower().strip().split("\r\n")
        [length] = [int(line.split(":")[1]) for line in lines if line.startswith("content-length")]
        return lines, await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


MALFORMED_REQUESTS = {
    "control character in Content-Type": (
        b"POST /v1/events HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\x01\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    ),
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Trace: a\x00b\r\n\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.fixture(params=["served", "h11"])
async def protocol_api(request: pytest.FixtureRequest, make_settings: Callable[..., Any]) -> Any:
    """uvicorn as ``serve`` runs it (httptools), and with h11 (uvicorn's fallback); yields
    (protocol name, port)."""
    port = free_port()
    config = server_config(
        create_app(make_settings(admin_token=ADMIN_TOKEN), dispatch=False),
        host="127.0.0.1",
        port=port,
        forwarded_allow_ips="",
        log_level="error",
    )
    config.http = HTTP_PROTOCOL if request.param == "served" else H11JsonProtocol
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    yield request.param, port
    server.should_exit = True
    await task


@pytest.mark.sqlite_only
@pytest.mark.parametrize("case", list(MALFORMED_REQUESTS))
async def test_a_request_uvicorn_cannot_parse_is_answered_400_in_the_error_shape(
    protocol_api: tuple[str, int], case: str
) -> None:
    protocol, port = protocol_api

    head, body = await first_answer(port, MALFORMED_REQUESTS[case])

    error = json.loads(body)
    assert set(error) == {"success", "error"} and error["success"] is False, error
    assert "content-type: application/json" in head, head
    if protocol == "h11" and case == "control character in Content-Type":
        # h11 lets this one through to the app, which answers it (no token) in its shape
        assert head[0].startswith("http/1.1 401"), head
        return
    assert head[0].startswith("http/1.1 400"), head
    assert "connection: close" in head, head
    assert error["error"]["code"] == 400 and "not valid HTTP" in error["error"]["message"]
    assert error["error"]["details"] == []


# ---- 12. a list filter naming nothing that can exist is 422, like /v1/events?type= ----------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("/v1/webhooks", {"event_type": "bogus"}, "event_type", id="webhook type"),
        pytest.param("/v1/webhooks", {"event_type": "*"}, "event_type", id="webhook type star"),
        pytest.param("/v1/webhooks", {"location_id": "x/y"}, "location_id", id="webhook location"),
        pytest.param("/v1/events", {"type": "bogus"}, "type", id="event type"),
        pytest.param("/v1/events", {"location_id": "x/y"}, "location_id", id="event location"),
        pytest.param("/v1/events", {"cursor": "garbage!!"}, "cursor", id="event cursor"),
        pytest.param("/v1/deliveries", {"webhook_id": "wh/1"}, "webhook_id", id="delivery webhook"),
        pytest.param("/v1/deliveries", {"event_id": "a b"}, "event_id", id="delivery event"),
        pytest.param("/v1/deliveries", {"cursor": "garbage!!"}, "cursor", id="delivery cursor"),
    ],
)
async def test_a_list_filter_that_cannot_match_anything_is_422_naming_it(
    target: Target, path: str, params: dict[str, str], field: str
) -> None:
    response = await target.api.call("GET", path, target.token, params=params)

    error_of(response, 422, field)


async def test_a_well_formed_filter_naming_nothing_is_still_an_empty_page(target: Target) -> None:
    for path, params in [
        ("/v1/webhooks", {"event_type": "subscriber.create"}),
        ("/v1/webhooks", {"location_id": "loc-nowhere"}),
        ("/v1/events", {"cursor": "evt-nowhere"}),
        ("/v1/deliveries", {"webhook_id": "wh_nowhere"}),
    ]:
        page = await target.api.ok("GET", path, target.token, params=params)
        assert page["data"] == [], (path, params, page)


async def test_an_empty_filter_or_cursor_is_the_parameter_left_out(target: Target) -> None:
    for path, params in [
        ("/v1/webhooks", {"location_id": ""}),
        ("/v1/events", {"location_id": "", "cursor": ""}),
        ("/v1/deliveries", {"webhook_id": "", "event_id": "", "cursor": ""}),
    ]:
        assert await target.api.ok("GET", path, target.token, params=params) == await target.api.ok(
            "GET", path, target.token
        ), (path, params)
