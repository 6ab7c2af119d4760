"""The ``hotspot-webhooks`` command as people run it: real processes on a real SQLite file.

Every call starts the real CLI in a subprocess (``run_cli``), so each costs about half a
second: tests that do not get in each other's way share one migrated database (``db``), and
the ``--help`` pages are fetched side by side. What a command stored is read back with the
stdlib ``sqlite3`` module, independently of the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer.main

from hotspot_webhooks import catalog
from hotspot_webhooks.cli import app
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from hotspot_webhooks.store.migrate import head_revision
from tests.conftest import run_cli

PRIVATE = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
OPERATOR = "acme-cli"
LOCATION = "loc-cli"
UNREACHABLE = "http://127.0.0.1:9/hook"
CUSTOMER = "customer.create"
EMIT = ("emit", CUSTOMER, "--location", LOCATION)
TABLES = ("operators", "tokens", "locations", "webhooks", "events", "deliveries", "attempts")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one ``error:`` line a failed command prints; checks it names every fragment."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line
    return line


def signature(body: bytes, api_key: str) -> str:
    """SPEC §2, computed here independently: base64(HMAC-SHA256(api_key, body))."""
    return base64.b64encode(hmac.new(api_key.encode(), body, hashlib.sha256).digest()).decode()


def stored_body(path: Path, event_id: str) -> bytes:
    with sqlite3.connect(path) as conn:
        [(body,)] = conn.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchall()
    return bytes(body)


def schema_of(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


@dataclass(frozen=True)
class Database:
    """One SQLite file and the CLI pointed at it."""

    path: Path

    @property
    def url(self) -> str:
        return sqlite_url(self.path)

    def cli(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, db=self.url, env=env, input=input)

    def json(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
        return parsed(self.cli(*args, "--json", env=env, input=input))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        return {table: self.rows(f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}  # noqa: S608


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    database = Database(tmp_path_factory.mktemp("cli") / "hooks.db")
    assert database.cli("migrate").returncode == 0
    database.json("operators", "create", OPERATOR)
    database.json("locations", "create", LOCATION, "--name", "Café CLI", "--operator", OPERATOR)
    return database


@pytest.fixture(scope="module")
def customer_webhook(db: Database) -> str:
    """A webhook every customer.create at LOCATION matches (its receiver is never called)."""
    created = db.json(
        "webhooks",
        "create",
        "--location",
        LOCATION,
        "--event",
        CUSTOMER,
        "--url",
        UNREACHABLE,
        env=PRIVATE,
    )
    return str(created["id"])


# ---- migrate --------------------------------------------------------------------------------


def test_migrate_creates_the_database_at_the_newest_revision(tmp_path: Path) -> None:
    path = tmp_path / "new.db"

    result = run_cli("migrate", db=sqlite_url(path))

    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    tables = {name for name, _ in schema_of(path)}
    assert {*TABLES, "alembic_version"} <= tables
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]


def test_migrate_again_is_a_no_op_that_keeps_every_row(db: Database, customer_webhook: str) -> None:
    schema, counts = schema_of(db.path), db.counts()

    result = db.cli("migrate")

    assert result.returncode == 0, result.stderr
    assert schema_of(db.path) == schema
    assert db.counts() == counts
    assert db.rows("SELECT id FROM webhooks WHERE id = ?", customer_webhook) != []


# ---- operators, tokens, locations, webhooks -------------------------------------------------


def test_operators_tokens_and_locations_are_created_and_listed(db: Database) -> None:
    operator = db.json("operators", "create", "beta-cli")
    further = db.json("tokens", "create", "beta-cli")
    location = db.json(
        "locations", "create", "loc-beta", "--name", "Beta Bar", "--operator", "beta-cli"
    )
    operators = db.json("operators", "list")["data"]
    locations = db.json("locations", "list", "--operator", "beta-cli")["data"]

    assert operator["name"] == "beta-cli"
    assert operator["token"]
    assert further["token"] not in ("", operator["token"])
    assert location == {
        **location,
        "id": "loc-beta",
        "name": "Beta Bar",
        "operator_id": operator["id"],
    }
    assert {"beta-cli", OPERATOR} <= {o["name"] for o in operators}
    assert all("token" not in o for o in operators)
    assert [loc["id"] for loc in locations] == ["loc-beta"]
    hashes = {
        h for (h,) in db.rows("SELECT token_hash FROM tokens WHERE operator_id = ?", operator["id"])
    }
    assert len(hashes) == 2
    assert not {operator["token"], further["token"]} & hashes  # stored hashed, never plain


def test_webhooks_create_shows_the_api_key_once_then_list_and_show_hide_it(db: Database) -> None:
    created = db.json(
        "webhooks",
        "create",
        "--location",
        LOCATION,
        "--event",
        "transaction.paid.create",
        "--url",
        UNREACHABLE,
        env=PRIVATE,
    )
    listed = db.json(
        "webhooks", "list", "--location", LOCATION, "--event", "transaction.paid.create"
    )["data"]
    shown = db.json("webhooks", "show", created["id"])

    assert created["status"] == "enabled"
    assert created["disabled_reason"] is None
    assert (created["location_id"], created["event_type"], created["callback_url"]) == (
        LOCATION,
        "transaction.paid.create",
        UNREACHABLE,
    )
    api_key = created["api_key"]
    assert len(api_key) >= 32
    assert created["signing_secret"] == "whsec_" + base64.b64encode(api_key.encode()).decode()
    assert [w["id"] for w in listed] == [created["id"]]
    public = {k: v for k, v in created.items() if k not in ("api_key", "signing_secret")}
    assert shown == public
    assert listed[0] == public
    [(stored,)] = db.rows("SELECT api_key_encrypted FROM webhooks WHERE id = ?", created["id"])
    assert api_key not in stored  # encrypted at rest


# ---- emit and events ------------------------------------------------------------------------


def test_emit_with_data_stores_the_event_and_events_show_returns_it(
    db: Database, customer_webhook: str
) -> None:
    given = {"id": "1001", "email": "guest@example.com"}

    emitted = db.json(*EMIT, "--data", json.dumps(given), "--id", "evt-cli-data")
    event = db.json("events", "show", "evt-cli-data")

    assert emitted == {"id": "evt-cli-data", "deliveries": 1, "duplicate": False}
    assert (event["id"], event["type"], event["location_id"]) == (
        "evt-cli-data",
        CUSTOMER,
        LOCATION,
    )
    assert event["deliveries"] == 1
    fields = catalog.get_event_type(CUSTOMER).fields
    assert event["data"] == {name: given.get(name) for name in fields}
    assert list(event["data"]) == list(fields)


def test_emit_with_file_reads_the_payload_from_that_file(
    db: Database, customer_webhook: str, tmp_path: Path
) -> None:
    given = {"id": "1002", "UserName": "BE-72-B3-40-F9-BE", "name": "Zoë"}
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(given, ensure_ascii=False), encoding="utf-8")

    emitted = db.json(*EMIT, "--file", str(payload), "--id", "evt-cli-file")

    assert emitted == {"id": "evt-cli-file", "deliveries": 1, "duplicate": False}
    expected = catalog.validate(catalog.get_event_type(CUSTOMER), given)
    assert stored_body(db.path, "evt-cli-file") == catalog.serialize(expected)


def test_emit_with_file_dash_reads_the_payload_from_stdin(
    db: Database, customer_webhook: str
) -> None:
    given = {"id": "1003", "country_code": "AR"}

    emitted = db.json(*EMIT, "--file", "-", "--id", "evt-cli-stdin", input=json.dumps(given))

    assert emitted == {"id": "evt-cli-stdin", "deliveries": 1, "duplicate": False}
    expected = catalog.validate(catalog.get_event_type(CUSTOMER), given)
    assert stored_body(db.path, "evt-cli-stdin") == catalog.serialize(expected)


def test_emit_with_sample_stores_the_catalog_sample(db: Database, customer_webhook: str) -> None:
    emitted = db.json(*EMIT, "--sample", "--id", "evt-cli-sample")

    assert emitted == {"id": "evt-cli-sample", "deliveries": 1, "duplicate": False}
    sample = catalog.get_event_type(CUSTOMER).sample
    assert stored_body(db.path, "evt-cli-sample") == catalog.serialize(sample)


def test_emit_twice_with_the_same_id_is_idempotent(db: Database, customer_webhook: str) -> None:
    first = db.json(*EMIT, "--sample", "--id", "evt-cli-twice")
    second = db.json(*EMIT, "--data", '{"id": "something else"}', "--id", "evt-cli-twice")
    page = db.json("deliveries", "list", "--event", "evt-cli-twice")

    assert first == {"id": "evt-cli-twice", "deliveries": 1, "duplicate": False}
    assert second == {"id": "evt-cli-twice", "deliveries": 1, "duplicate": True}
    assert len(page["data"]) == 1
    sample = catalog.get_event_type(CUSTOMER).sample
    assert stored_body(db.path, "evt-cli-twice") == catalog.serialize(sample)


# ---- deliveries -----------------------------------------------------------------------------


def test_deliveries_list_show_and_retry(db: Database, customer_webhook: str) -> None:
    db.json(*EMIT, "--sample", "--id", "evt-cli-retry")
    page = db.json("deliveries", "list", "--event", "evt-cli-retry")
    [listed] = page["data"]
    shown = db.json("deliveries", "show", listed["id"])

    assert page["next_cursor"] is None
    assert (listed["event_id"], listed["webhook_id"], listed["event_type"]) == (
        "evt-cli-retry",
        customer_webhook,
        CUSTOMER,
    )
    assert (listed["status"], listed["attempt_count"]) == ("pending", 0)
    assert shown == {**listed, "attempts": []}

    with sqlite3.connect(db.path) as conn:  # as the dispatcher leaves it after 21 attempts
        conn.execute(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, "
            "attempt_count = 21 WHERE id = ?",
            (listed["id"],),
        )
    before = datetime.now(UTC)
    retried = db.json("deliveries", "retry", listed["id"])
    after = datetime.now(UTC)

    assert (retried["id"], retried["status"]) == (listed["id"], "pending")
    assert before <= datetime.fromisoformat(retried["next_attempt_at"]) <= after


def test_webhooks_delete_removes_the_webhook_with_its_deliveries(db: Database) -> None:
    webhook = db.json(
        "webhooks",
        "create",
        "--location",
        LOCATION,
        "--event",
        "subscriber.create",
        "--url",
        UNREACHABLE,
        env=PRIVATE,
    )["id"]
    db.json(
        "emit", "subscriber.create", "--location", LOCATION, "--sample", "--id", "evt-cli-delete"
    )
    assert len(db.rows("SELECT id FROM deliveries WHERE webhook_id = ?", webhook)) == 1

    deleted = db.json("webhooks", "delete", webhook, "--yes")
    page = db.json("deliveries", "list", "--webhook", webhook)

    assert deleted == {"id": webhook, "deleted": True}
    assert page == {"data": [], "next_cursor": None}
    assert db.rows("SELECT id FROM deliveries WHERE webhook_id = ?", webhook) == []
    error_line(db.cli("webhooks", "show", webhook), webhook, "does not exist")
    assert db.rows("SELECT id FROM events WHERE id = 'evt-cli-delete'") == [("evt-cli-delete",)]


# ---- bad input: one clear line, no traceback, nothing stored --------------------------------

BAD_INPUTS = [
    pytest.param(
        ("emit", "customer.nope", "--location", LOCATION, "--data", "{}"),
        None,
        ("'customer.nope'", "customer.create, subscriber.create", "transaction.social.create"),
        id="unknown event type",
    ),
    pytest.param(
        (*EMIT, "--data", '{"id": "1", "shoe_size": "44"}'),
        None,
        ("data.shoe_size", "unknown field"),
        id="unknown payload field",
    ),
    pytest.param(
        (*EMIT, "--data", '{"id": 59243583}'), None, ("data.id", "string"), id="non-string value"
    ),
    pytest.param(
        (*EMIT, "--data", '{"id": "1",'), None, ("--data", "not valid JSON"), id="malformed JSON"
    ),
    pytest.param(
        ("emit", CUSTOMER, "--location", "loc-nowhere", "--sample"),
        None,
        ("'loc-nowhere'", "does not exist"),
        id="missing location",
    ),
    pytest.param(
        EMIT, None, ("exactly one of", "--data", "--file", "--sample"), id="no payload option"
    ),
    pytest.param(
        (*EMIT, "--sample", "--data", "{}"),
        None,
        ("exactly one of", "--data", "--file", "--sample"),
        id="two payload options",
    ),
    pytest.param(
        (*EMIT, "--file", "/nonexistent-dir/payload.json"),
        None,
        ("/nonexistent-dir/payload.json", "No such file"),
        id="missing payload file",
    ),
    pytest.param(
        (
            "webhooks",
            "create",
            "--location",
            LOCATION,
            "--event",
            CUSTOMER,
            "--url",
            "http://127.0.0.1:8080/hook",
        ),
        None,
        ("callback_url", "loopback", "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS"),
        id="loopback callback without allow-private",
    ),
    pytest.param(
        (
            "webhooks",
            "create",
            "--location",
            LOCATION,
            "--event",
            CUSTOMER,
            "--url",
            "ftp://127.0.0.1/hook",
        ),
        PRIVATE,
        ("callback_url", "http or https", "'ftp'"),
        id="ftp callback",
    ),
    pytest.param(
        (
            "webhooks",
            "create",
            "--location",
            LOCATION,
            "--event",
            CUSTOMER,
            "--url",
            "http://user:hunter2@127.0.0.1/hook",
        ),
        PRIVATE,
        ("callback_url", "credentials"),
        id="credentials in callback",
    ),
    pytest.param(
        ("operators", "create", OPERATOR),
        None,
        (f"'{OPERATOR}'", "exists already"),
        id="duplicate operator",
    ),
    pytest.param(
        ("deliveries", "show", "dlv_unknown"),
        None,
        ("'dlv_unknown'", "does not exist"),
        id="unknown delivery",
    ),
    pytest.param(
        (*EMIT, "--sample"),
        {"HOTSPOT_WEBHOOKS_INTERVAL": "abc"},
        ("invalid setting", "interval"),
        id="invalid interval setting",
    ),
]


@pytest.mark.parametrize(("args", "env", "expected"), BAD_INPUTS)
def test_bad_input_fails_with_one_error_line_and_stores_nothing(
    db: Database,
    customer_webhook: str,
    args: tuple[str, ...],
    env: dict[str, str] | None,
    expected: tuple[str, ...],
) -> None:
    before = db.counts()

    line = error_line(db.cli(*args, env=env), *expected)

    assert db.counts() == before
    assert "hunter2" not in line  # a password in a refused URL is not echoed


def test_database_in_a_missing_directory_is_refused_naming_the_directory(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nonexistent-dir" / "sub"
    url = sqlite_url(missing / "x.db")

    for args in (("migrate",), (*EMIT, "--sample")):
        error_line(run_cli(*args, db=url), f"directory {missing}")

    assert list(tmp_path.iterdir()) == []


def test_database_under_a_regular_file_is_refused_naming_that_path(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a directory")

    error_line(run_cli("migrate", db=sqlite_url(plain / "x.db")), str(plain))

    assert plain.read_text() == "not a directory"


def test_database_under_a_regular_file_is_reported_as_not_a_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a directory")

    line = error_line(run_cli("migrate", db=sqlite_url(plain / "x.db")), str(plain))

    assert "not a directory" in line
    assert "does not exist" not in line


def test_a_database_file_never_migrated_says_to_run_migrate(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")

    error_line(run_cli(*EMIT, "--sample", db=sqlite_url(path)), "hotspot-webhooks migrate")

    assert [name for name, _ in schema_of(path)] == ["unrelated"]


def test_a_database_file_that_does_not_exist_is_not_created_by_other_commands(
    tmp_path: Path,
) -> None:
    path = tmp_path / "never.db"

    error_line(
        run_cli(*EMIT, "--sample", db=sqlite_url(path)), str(path), "hotspot-webhooks migrate"
    )

    assert list(tmp_path.iterdir()) == []


def test_emit_with_a_file_that_is_not_utf8_fails_with_one_error_line(
    db: Database, customer_webhook: str, tmp_path: Path
) -> None:
    payload = tmp_path / "latin1.json"
    payload.write_bytes('{"name": "Zoë"}'.encode("latin-1"))
    before = db.counts()

    error_line(db.cli(*EMIT, "--file", str(payload)), str(payload))

    assert db.counts() == before


# ---- --help everywhere ----------------------------------------------------------------------


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The top level and every runnable command (groups like ``webhooks`` only list theirs)."""
    subcommands = getattr(command, "commands", {})
    if not path or not subcommands:
        yield path
    for name, sub in sorted(subcommands.items()):
        yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def test_every_command_the_spec_names_so_far_is_registered() -> None:
    named = {
        (),
        ("migrate",),
        ("operators", "create"),
        ("operators", "list"),
        ("tokens", "create"),
        ("locations", "create"),
        ("locations", "list"),
        ("webhooks", "create"),
        ("webhooks", "list"),
        ("webhooks", "show"),
        ("webhooks", "delete"),
        ("emit",),
        ("events", "show"),
        ("worker",),
        ("serve",),
        ("deliveries", "list"),
        ("deliveries", "show"),
        ("deliveries", "retry"),
        ("listen",),
        ("verify",),
    }
    assert named <= set(COMMANDS)


@pytest.fixture(scope="module")
def help_pages() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = pool.map(lambda path: run_cli(*path, "--help"), COMMANDS)
        return dict(zip(COMMANDS, pages, strict=True))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "top level")
def test_help_is_available_for_every_command(
    help_pages: dict[tuple[str, ...], subprocess.CompletedProcess[str]], path: tuple[str, ...]
) -> None:
    result = help_pages[path]

    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert f"hotspot-webhooks {' '.join(path)}".rstrip() in result.stdout
    assert "Traceback" not in result.stderr
    # values are named (--url URL), flags carry none: no Typer type placeholders
    for placeholder in ("<str>", "<bool>", "<int>", "<float>", "<list[", "<path>"):
        assert placeholder not in result.stdout, (path, placeholder)


# ---- verify ---------------------------------------------------------------------------------


def test_verify_accepts_the_right_signature_and_rejects_a_wrong_one(tmp_path: Path) -> None:
    body = catalog.serialize(catalog.get_event_type(CUSTOMER).sample)
    path = tmp_path / "body.json"
    path.write_bytes(body)
    key = "key-for-verify"

    good = run_cli("verify", "--api-key", key, "--signature", signature(body, key), str(path))
    bad = run_cli("verify", "--api-key", key, "--signature", signature(b"{}", key), str(path))

    assert good.returncode == 0, good.stderr
    assert "valid signature" in good.stdout
    assert bad.returncode == 1
    error_line(bad, "does not match")


def test_verify_with_a_missing_file_fails_with_one_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"

    error_line(run_cli("verify", "--api-key", "k", "--signature", "s", str(missing)), str(missing))


# ---- worker ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A stdlib HTTP server on 127.0.0.1 answering every POST with 200."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received = Receiver()

    class AnswerOk(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.requests.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    received.server = ThreadingHTTPServer(("127.0.0.1", 0), AnswerOk)
    thread = threading.Thread(target=received.server.serve_forever, daemon=True)
    thread.start()
    yield received
    received.server.shutdown()
    received.server.server_close()
    thread.join(timeout=5)


def seed_one_pending_delivery(db: Database, callback_url: str) -> str:
    """Set up in-process (the commands doing this are tested above); returns the API key."""

    async def seed() -> str:
        settings = Settings(database_url=db.url, allow_private_targets=True, _env_file=None)
        service = await Service.open(settings, migrate=True)
        try:
            await service.operators.create(OPERATOR)
            await service.locations.create(LOCATION, "Café", OPERATOR)
            created = await service.webhooks.create(LOCATION, CUSTOMER, callback_url)
            sample = catalog.get_event_type(CUSTOMER).sample
            await service.events.emit(CUSTOMER, LOCATION, sample, id="evt-cli-worker")
            return created.api_key
        finally:
            await service.close()

    return asyncio.run(seed())


def test_worker_once_delivers_a_pending_delivery_and_records_the_attempt(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = Database(tmp_path / "worker.db")
    api_key = seed_one_pending_delivery(db, receiver.url)
    [(delivery_id,)] = db.rows("SELECT id FROM deliveries")

    summary = db.json("worker", "--once", env=PRIVATE)
    shown = db.json("deliveries", "show", delivery_id)

    assert (summary["claimed"], summary["succeeded"]) == (1, 1)
    assert (summary["retrying"], summary["failed"]) == (0, 0)
    assert (shown["status"], shown["attempt_count"], shown["last_status"]) == ("succeeded", 1, 200)
    [attempt] = shown["attempts"]
    assert (attempt["number"], attempt["status"], attempt["error"]) == (1, 200, None)
    [(headers, body)] = receiver.requests
    assert body == stored_body(db.path, "evt-cli-worker")
    assert headers["X-Hotspotsystem-Hmac-Sha256"] == signature(body, api_key)
    assert headers["X-Hotspotsystem-Delivery"] == delivery_id
