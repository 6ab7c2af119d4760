"""What the command line prints is text, never markup nor terminal control (issue 25, S7).

Names, URLs, ids, error messages, event data and a server's answers can hold anything: Rich
markup (``[/x]`` crashed the command, ``[link=…]`` hid a hyperlink) and terminal escape
sequences (a malicious server's ``ESC [2J`` cleared the screen, ``ESC ]8`` made a hidden link).
Every value is printed as the characters it holds: markup shown literally, each control
character written out as an escape (``\\x1b``); ``--json`` stays valid JSON with the values
intact. Each command is the real CLI in a subprocess (no terminal, so Rich adds no styling of
its own: any control byte in the output came from a value).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.receiver import compute_signature
from tests.conftest import run_cli
from tests.receivers import free_port, wait_for_port
from tests.test_serve_and_listen import post, start, stop

CLOSING_TAG = "[/x]"
LINK_MARKUP = "[link=http://evil]click[/link]"
CLEAR_SCREEN = "\x1b[2J"
HIDDEN_LINK = "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"
BELL = "\x07"
C1_CSI = "\x9b31m"  # CSI as one C1 character: some terminals obey it as ESC [
# every control character but the newline that ends a line
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")

MARKUP = f"{CLOSING_TAG} {LINK_MARKUP}"
CONTROLS = f"{CLEAR_SCREEN}{HIDDEN_LINK}{BELL}{C1_CSI}"
HOSTILE = f"{MARKUP} {CONTROLS} end"


def printed(done: subprocess.CompletedProcess[str]) -> str:
    """Both streams, checked: no traceback, no control character."""
    assert "Traceback" not in done.stderr, done.stderr
    for stream in (done.stdout, done.stderr):
        found = CONTROL.search(stream)
        assert found is None, f"control character {found.group()!r} printed: {stream!r}"
    return done.stdout + done.stderr


def strings(value: Any) -> list[str]:
    """Every string in a JSON value, at any depth."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def shows_hostile_text(output: str) -> None:
    """The markup as written; the control characters as escapes, the text around them kept."""
    assert CLOSING_TAG in output
    assert LINK_MARKUP in output
    assert "\\x1b[2J" in output
    assert "\\x1b]8;;http://evil\\x1b\\click" in output
    assert "\\x07" in output and "\\x9b31m" in output


# -- on the database --------------------------------------------------------------------------


@pytest.fixture
def hostile_db(tmp_path: Path) -> str:
    """A database with an operator named ``[/x]`` and a location whose name holds markup and
    control characters (as an older version or another tool might have stored it: names made
    through the API refuse control characters)."""
    db = f"sqlite:///{tmp_path / 'hostile.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    created = run_cli("operators", "create", CLOSING_TAG, db=db)
    assert created.returncode == 0, created.stderr
    output = printed(created)
    assert CLOSING_TAG in output
    assert "token" in output  # printed whole: the token is shown only this once
    located = run_cli(
        "locations", "create", "loc-1", "--name", LINK_MARKUP, "--operator", CLOSING_TAG, db=db
    )
    assert located.returncode == 0, located.stderr
    with sqlite3.connect(tmp_path / "hostile.db") as connection:
        connection.execute("UPDATE locations SET name = ? WHERE id = 'loc-1'", (HOSTILE,))
    return db


def test_hostile_names_on_the_database_are_printed_as_text(hostile_db: str) -> None:
    for args in (("operators", "list"), ("locations", "list"), ("locations", "disable", "loc-1")):
        done = run_cli(*args, db=hostile_db)
        assert done.returncode == 0, done.stderr
        output = printed(done)
        assert CLOSING_TAG in output, args
    shows_hostile_text(printed(run_cli("locations", "list", db=hostile_db)))
    shows_hostile_text(printed(run_cli("locations", "enable", "loc-1", db=hostile_db)))


def test_hostile_names_keep_their_exact_value_in_json(hostile_db: str) -> None:
    listed = run_cli("locations", "list", "--json", db=hostile_db)
    assert listed.returncode == 0, listed.stderr
    printed(listed)  # C1 characters too are escaped, as \u009b
    assert json.loads(listed.stdout)["data"][0]["name"] == HOSTILE
    shown = run_cli("locations", "disable", "loc-1", "--json", db=hostile_db)
    printed(shown)
    assert json.loads(shown.stdout)["name"] == HOSTILE
    operators = run_cli("operators", "list", "--json", db=hostile_db)
    assert json.loads(operators.stdout)["data"][0]["name"] == CLOSING_TAG


def test_hostile_event_data_is_printed_as_text(hostile_db: str) -> None:
    data = {"UserName": HOSTILE, "email": LINK_MARKUP}
    emitted = run_cli(
        "emit", "customer.create", "--location", "loc-1", "--id", "evt-1",
        "--data", json.dumps(data), db=hostile_db,
    )  # fmt: skip
    assert emitted.returncode == 0, emitted.stderr
    assert "evt-1" in printed(emitted)
    shown = run_cli("events", "show", "evt-1", db=hostile_db)
    assert shown.returncode == 0, shown.stderr
    output = printed(shown)
    assert LINK_MARKUP in output and CLOSING_TAG in output
    as_json = run_cli("events", "show", "evt-1", "--json", db=hostile_db)
    printed(as_json)
    assert json.loads(as_json.stdout)["data"]["UserName"] == HOSTILE


def test_an_error_naming_a_hostile_value_is_one_plain_line(hostile_db: str) -> None:
    done = run_cli("webhooks", "show", f"{MARKUP}{CONTROLS}", db=hostile_db)
    assert done.returncode == 1
    output = printed(done)
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert CLOSING_TAG in output and LINK_MARKUP in output
    deleting = run_cli("locations", "delete", f"{CLOSING_TAG}{CLEAR_SCREEN}", db=hostile_db)
    assert deleting.returncode == 2  # asks for --yes: the question names the id, escaped
    assert CLOSING_TAG in printed(deleting)


# -- a malicious server (the remote mode) ----------------------------------------------------

NOW = "2026-12-07T12:00:00Z"
LOCATION = {
    "id": f"loc-{CLOSING_TAG}",
    "name": HOSTILE,
    "operator_id": f"op-{LINK_MARKUP}",
    "status": "enabled",
    "disabled_reason": None,
    "created_at": NOW,
}
WEBHOOK = {
    "id": f"wh-{CLOSING_TAG}",
    "operator_id": "op-1",
    "location_id": None,
    "event_type": None,
    "location_ids": [HOSTILE, "loc-2"],
    "event_types": [LINK_MARKUP],
    "callback_url": f"https://evil.example/{HOSTILE}",
    "status": "disabled",
    "disabled_reason": HOSTILE,
    "created_at": NOW,
    "updated_at": NOW,
}
DELIVERY = {
    "id": "dl-1",
    "event_id": f"evt-{CLOSING_TAG}",
    "webhook_id": "wh-1",
    "event_type": LINK_MARKUP,
    "status": "failed",
    "attempt_count": 1,
    "next_attempt_at": None,
    "last_status": 500,
    "last_error": HOSTILE,
    "created_at": NOW,
    "delivered_at": None,
    "attempts": [
        {
            "number": 1,
            "started_at": NOW,
            "duration_ms": 12,
            "request_headers": {f"X-{CLOSING_TAG}": HOSTILE},
            "status": 500,
            "response_excerpt": HOSTILE,
            "error": HOSTILE,
        }
    ],
}
EVENTS_PAGE = {
    "data": [
        {
            "id": f"evt-{CLOSING_TAG}",
            "type": LINK_MARKUP,
            "location_id": HOSTILE,
            "data": {"UserName": HOSTILE},
            "created_at": NOW,
            "deliveries": 1,
        }
    ],
    "next_cursor": f"{CLOSING_TAG}{CLEAR_SCREEN}",
}
ANSWERS: dict[str, tuple[int, Any]] = {
    "/v1/locations": (200, {"data": [LOCATION], "next_cursor": None}),
    "/v1/webhooks": (200, {"data": [WEBHOOK], "next_cursor": None}),
    "/v1/deliveries/dl-1": (200, DELIVERY),
    "/v1/events": (200, EVENTS_PAGE),
    "/v1/events/evt-1": (200, EVENTS_PAGE["data"][0]),
    "/v1/webhooks/gone": (
        404,
        {"error": {"code": "not_found", "message": f"no such webhook: {HOSTILE}"}},
    ),
}


class _Malicious(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, answer = ANSWERS.get(
            self.path.split("?")[0],
            (500, {"error": {"code": "internal", "message": HOSTILE, "details": [HOSTILE]}}),
        )
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def malicious_server() -> Iterator[dict[str, str]]:
    """A server on 127.0.0.1 that answers as ours does, with hostile names and messages."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Malicious)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "HOTSPOT_WEBHOOKS_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "HOTSPOT_WEBHOOKS_TOKEN": "any",
        }
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "args",
    [
        ("locations", "list"),
        ("webhooks", "list"),
        ("deliveries", "show", "dl-1"),
        ("events", "list"),
        ("events", "show", "evt-1"),
    ],
)
def test_a_malicious_servers_answers_are_printed_as_text(
    malicious_server: dict[str, str], args: tuple[str, ...]
) -> None:
    done = run_cli(*args, env=malicious_server)
    assert done.returncode == 0, done.stderr
    shows_hostile_text(printed(done))
    as_json = run_cli(*args, "--json", env=malicious_server)
    assert as_json.returncode == 0, as_json.stderr
    printed(as_json)
    assert HOSTILE in strings(json.loads(as_json.stdout))  # the value, intact


def test_a_malicious_servers_error_messages_are_one_plain_line(
    malicious_server: dict[str, str],
) -> None:
    for args in (("webhooks", "show", "gone"), ("operators", "list")):
        done = run_cli(*args, env=malicious_server)
        assert done.returncode == 1, done.stdout
        shows_hostile_text(printed(done))
        assert done.stderr.startswith("error: ")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- listen -----------------------------------------------------------------------------------


def test_listen_answers_a_delivery_with_hostile_headers_and_data_and_prints_them_as_text() -> None:
    port = free_port()
    listener = start("listen", "--port", str(port), "--api-key", "the-key")
    try:
        wait_for_port(port)
        sample = dict(catalog.EVENT_TYPES["customer.create"].sample)
        body = json.dumps({**sample, "UserName": HOSTILE}, ensure_ascii=False).encode()
        headers = {
            "X-Hotspotsystem-Delivery": CLOSING_TAG,
            "X-Hotspotsystem-Event": LINK_MARKUP,
            "X-Hotspotsystem-Location": f"loc-{CLOSING_TAG}",
            "X-Hotspotsystem-Attempt": "1",
        }
        signed = {**headers, "X-Hotspotsystem-Hmac-Sha256": compute_signature(body, "the-key")}
        forged = {**headers, "X-Hotspotsystem-Hmac-Sha256": compute_signature(body, "other")}
        assert post(f"http://127.0.0.1:{port}/[/x]", body, signed) == 200
        assert post(f"http://127.0.0.1:{port}/[/x]%1b[2J", body, forged) == 401
    finally:
        _, output = stop(listener, signal.SIGINT)
    assert "Traceback" not in output
    found = CONTROL.search(output)
    assert found is None, f"control character {found.group()!r} printed: {output!r}"
    assert "verified" in output and "rejected" in output
    assert CLOSING_TAG in output and LINK_MARKUP in output
    assert "\\u009b31m" in output or "\\x9b31m" in output  # the C1 CSI, as an escape
