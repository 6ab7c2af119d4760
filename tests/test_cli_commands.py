"""The newer commands of SPEC §5 as people run them: ``tokens create``, ``webhooks update``,
``webhooks rotate-key``, ``webhooks test``, ``events list``, ``recover``, ``api`` and the
admin token ``serve`` prints on its first start.

Every command under test runs as the real ``hotspot-webhooks`` process (``run_cli``, or a
long-running subprocess for ``api`` and ``serve``) on a real SQLite file in ``tmp_path``.
Setup that other tests already cover (operators, locations, webhooks, events) is done in
process through ``Service`` on the same file, which keeps each test to a few seconds. Real
receivers (``PythonReceiver``) answer deliveries; while one runs in the test's event loop,
the CLI is started from a thread so that the loop keeps serving it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.receiver import verify_signature
from hotspot_webhooks.service import Service
from tests.conftest import run_cli
from tests.receivers import PythonReceiver, free_port
from tests.shapes import EVENT_FIELDS, SECRET_FIELDS, TOKEN_FIELDS, WEBHOOK_FIELDS

PRIVATE = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
OPERATOR = "acme-commands"
LOCATION = "loc-commands"
OTHER_LOCATION = "loc-commands-2"
CUSTOMER = "customer.create"
SUBSCRIBER = "subscriber.create"
UNREACHABLE = "http://127.0.0.1:9/hook"
SIGNATURE_HEADER = "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"


# ---- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """One SQLite file and the CLI pointed at it."""

    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def settings(self) -> Settings:
        return Settings(database_url=self.url, allow_private_targets=True, _env_file=None)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, db=self.url, env=env)

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return parsed(self.cli(*args, "--json", env=env))

    async def acli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The CLI from a thread, so a receiver in this event loop can answer it."""
        return await asyncio.to_thread(self.cli, *args, env=env)

    async def ajson(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return parsed(await self.acli(*args, "--json", env=env))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one ``error:`` line an expected error prints (exit 1); checks every fragment."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A usage error: exit 2, no traceback, nothing on stdout, every fragment on stderr."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def whsec(api_key: str) -> str:
    """Standard Webhooks' secret form of an API key, computed here independently."""
    return "whsec_" + base64.b64encode(api_key.encode()).decode()


async def seed(
    db: Database,
    *,
    locations: tuple[str, ...] = (LOCATION,),
    callback_url: str | None = None,
    event_type: str = CUSTOMER,
) -> tuple[str, str] | None:
    """Migrate; create the operator and its locations and, given a URL, a webhook on the
    first location. Returns (webhook id, api key) for the webhook."""
    service = await Service.open(db.settings(), migrate=True)
    try:
        await service.operators.create(OPERATOR)
        for location in locations:
            await service.locations.create(location, f"Café {location}", OPERATOR)
        if callback_url is None:
            return None
        created = await service.webhooks.create(locations[0], event_type, callback_url)
        return created.id, created.api_key
    finally:
        await service.close()


async def seed_hooked(
    db: Database, callback_url: str, event_type: str = CUSTOMER
) -> tuple[str, str]:
    """``seed`` with a webhook to ``callback_url`` on ``LOCATION``: (webhook id, api key)."""
    seeded = await seed(db, callback_url=callback_url, event_type=event_type)
    assert seeded is not None
    return seeded


async def seed_webhook(db: Database, callback_url: str, event_type: str = CUSTOMER) -> str:
    """One more webhook on ``LOCATION`` of an already seeded database; returns its id."""
    service = await Service.open(db.settings())
    try:
        return (await service.webhooks.create(LOCATION, event_type, callback_url)).id
    finally:
        await service.close()


async def poll(check: Any, within: float = 20, every: float = 0.1) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {within} s")
        await asyncio.sleep(every)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """An operator with one location, shared by the tests that make their own webhooks."""
    database = Database(tmp_path_factory.mktemp("commands") / "hooks.db")
    asyncio.run(seed(database))
    return database


@pytest.fixture
def webhook(db: Database) -> str:
    """A fresh enabled webhook on ``LOCATION`` (to an unreachable loopback URL)."""
    return asyncio.run(seed_webhook(db, UNREACHABLE))


# ---- tokens create --------------------------------------------------------------------------


def operator_row(db: Database) -> tuple[str, str]:
    [(operator_id, name)] = db.rows("SELECT id, name FROM operators WHERE name = ?", OPERATOR)
    return operator_id, name


def test_tokens_create_for_an_operator_prints_a_new_stored_token_of_that_operator(
    db: Database,
) -> None:
    operator_id, _ = operator_row(db)
    before = db.rows("SELECT count(*) FROM tokens WHERE operator_id = ?", operator_id)[0][0]

    by_name = db.json("tokens", "create", OPERATOR)
    by_id = db.json("tokens", "create", operator_id)

    for created in (by_name, by_id):
        assert set(created) == TOKEN_FIELDS
        assert created["operator_id"] == operator_id
        assert created["token"].startswith("hwt_")
        assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert by_name["token"] != by_id["token"]
    assert by_name["id"] != by_id["id"]
    stored = db.rows("SELECT id, operator_id FROM tokens WHERE operator_id = ?", operator_id)
    assert len(stored) == before + 2
    assert {(by_name["id"], operator_id), (by_id["id"], operator_id)} <= set(stored)


def test_tokens_create_stores_the_token_hashed_never_in_clear(db: Database) -> None:
    created = db.json("tokens", "create", OPERATOR)

    with sqlite3.connect(db.path) as conn:
        dump = "\n".join(conn.iterdump())
    assert created["id"] in dump
    assert created["token"] not in dump


def test_tokens_create_admin_prints_a_token_with_no_operator(db: Database) -> None:
    created = db.json("tokens", "create", "--admin")

    assert set(created) == TOKEN_FIELDS
    assert created["operator_id"] is None
    assert created["token"].startswith("hwt_")
    assert db.rows("SELECT operator_id FROM tokens WHERE id = ?", created["id"]) == [(None,)]


def test_tokens_create_without_json_shows_the_token_and_says_to_keep_it(db: Database) -> None:
    result = db.cli("tokens", "create", "--admin")

    assert result.returncode == 0, result.stderr
    assert re.search(r"token\s+hwt_[A-Za-z0-9_-]+", result.stdout), result.stdout
    assert "cannot be shown again" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("tokens", "create", OPERATOR, "--admin"), id="both"),
        pytest.param(("tokens", "create"), id="neither"),
    ],
)
def test_tokens_create_needs_exactly_one_of_an_operator_or_admin(
    db: Database, args: tuple[str, ...]
) -> None:
    before = db.rows("SELECT count(*) FROM tokens")

    message = usage_error(db.cli(*args), "operator", "--admin")

    assert len(message.strip().splitlines()) == 1
    assert db.rows("SELECT count(*) FROM tokens") == before


def test_tokens_create_for_an_unknown_operator_says_it_does_not_exist(db: Database) -> None:
    before = db.rows("SELECT count(*) FROM tokens")

    error_line(db.cli("tokens", "create", "op-nobody"), "'op-nobody'", "does not exist")

    assert db.rows("SELECT count(*) FROM tokens") == before


# ---- webhooks update ------------------------------------------------------------------------


def test_webhooks_update_url_changes_only_the_callback_url(db: Database, webhook: str) -> None:
    before = db.json("webhooks", "show", webhook)
    new_url = "http://127.0.0.1:8081/new-hook"

    updated = db.json("webhooks", "update", webhook, "--url", new_url, env=PRIVATE)
    shown = db.json("webhooks", "show", webhook)

    assert set(updated) >= WEBHOOK_FIELDS
    assert updated["callback_url"] == new_url
    assert shown == updated
    unchanged = WEBHOOK_FIELDS - {"callback_url", "updated_at"}
    assert {k: updated[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert "api_key" not in updated
    assert "signing_secret" not in updated


def test_webhooks_update_disable_records_a_reason_and_enable_clears_it(
    db: Database, webhook: str
) -> None:
    disabled = db.json("webhooks", "update", webhook, "--disable")
    listed = db.json("webhooks", "list", "--status", "disabled")["data"]
    enabled = db.json("webhooks", "update", webhook, "--enable")

    assert disabled["status"] == "disabled"
    assert isinstance(disabled["disabled_reason"], str)
    assert disabled["disabled_reason"].strip()
    assert webhook in {w["id"] for w in listed}
    assert (enabled["status"], enabled["disabled_reason"]) == ("enabled", None)
    assert db.rows("SELECT status, disabled_reason FROM webhooks WHERE id = ?", webhook) == [
        ("enabled", None)
    ]


def test_webhooks_update_with_nothing_to_change_names_the_options_to_give(
    db: Database, webhook: str
) -> None:
    before = db.rows("SELECT * FROM webhooks WHERE id = ?", webhook)

    # a CLI user acts on the command's own options, not on the REST field names
    usage_error(db.cli("webhooks", "update", webhook), "--url", "--enable", "--disable")

    assert db.rows("SELECT * FROM webhooks WHERE id = ?", webhook) == before


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        pytest.param("ftp://example.com/hook", PRIVATE, "http or https", id="ftp scheme"),
        pytest.param("not a url", PRIVATE, "http or https", id="no scheme"),
        pytest.param("http://user:hunter2@127.0.0.1/hook", PRIVATE, "credentials", id="userinfo"),
        pytest.param("http://127.0.0.1:8080/hook", None, "loopback", id="loopback not allowed"),
    ],
)
def test_webhooks_update_with_a_bad_url_fails_naming_callback_url_and_changes_nothing(
    db: Database, webhook: str, url: str, env: dict[str, str] | None, expected: str
) -> None:
    before = db.rows("SELECT * FROM webhooks WHERE id = ?", webhook)

    line = error_line(db.cli("webhooks", "update", webhook, "--url", url, env=env), "callback_url")

    assert expected in line
    assert "hunter2" not in line
    assert db.rows("SELECT * FROM webhooks WHERE id = ?", webhook) == before


def test_webhooks_update_of_an_unknown_webhook_says_it_does_not_exist(db: Database) -> None:
    error_line(
        db.cli("webhooks", "update", "wh_nowhere", "--disable"), "'wh_nowhere'", "does not exist"
    )


# ---- webhooks rotate-key --------------------------------------------------------------------


def test_webhooks_rotate_key_prints_a_new_api_key_and_its_signing_secret(db: Database) -> None:
    created = db.json(
        "webhooks", "create", "--location", LOCATION, "--event", CUSTOMER, "--url", UNREACHABLE,
        env=PRIVATE,
    )  # fmt: skip

    rotated = db.json("webhooks", "rotate-key", created["id"])
    shown = db.json("webhooks", "show", created["id"])

    assert set(rotated) >= WEBHOOK_FIELDS | SECRET_FIELDS
    assert rotated["id"] == created["id"]
    assert rotated["api_key"] != created["api_key"]
    assert len(rotated["api_key"]) >= 32
    assert rotated["signing_secret"].startswith("whsec_")
    assert rotated["signing_secret"] == whsec(rotated["api_key"])
    assert rotated["signing_secret"] != created["signing_secret"]
    unchanged = WEBHOOK_FIELDS - {"updated_at", "previous_key_expires_at"}
    assert {k: rotated[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert "api_key" not in shown  # shown once, by rotate-key only


def test_webhooks_rotate_key_of_an_unknown_webhook_says_it_does_not_exist(db: Database) -> None:
    error_line(db.cli("webhooks", "rotate-key", "wh_nowhere"), "'wh_nowhere'", "does not exist")


# ---- webhooks test --------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", [CUSTOMER, "transaction.paid.create"])
async def test_webhooks_test_dev_delivers_the_signed_sample_once_and_shows_the_attempt(
    tmp_path: Path, python_receiver: PythonReceiver, event_type: str
) -> None:
    db = Database(tmp_path / "test-send.db")
    webhook_id, api_key = await seed_hooked(db, python_receiver.url, event_type)

    delivery = await db.ajson("webhooks", "test", webhook_id, "--dev")

    assert (delivery["webhook_id"], delivery["event_type"]) == (webhook_id, event_type)
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status"]) == (
        "succeeded",
        1,
        200,
    )
    [attempt] = delivery["attempts"]
    assert (attempt["number"], attempt["status"], attempt["error"]) == (1, 200, None)
    [received] = python_receiver.requests
    assert json.loads(received.body) == catalog.EVENT_TYPES[event_type].sample
    signature = received.header(SIGNATURE_HEADER)
    assert signature is not None
    assert verify_signature(received.body, signature, api_key)
    assert received.header("X-Hotspotsystem-Delivery") == delivery["id"]
    # a real delivery: listed like any other
    listed = await db.ajson("deliveries", "list", "--webhook", webhook_id)
    assert [d["id"] for d in listed["data"]] == [delivery["id"]]


async def test_webhooks_test_signs_with_the_key_from_the_last_rotation(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "rotated.db")
    webhook_id, old_key = await seed_hooked(db, python_receiver.url)

    new_key = (await db.ajson("webhooks", "rotate-key", webhook_id))["api_key"]
    delivery = await db.ajson("webhooks", "test", webhook_id, "--dev")

    assert delivery["status"] == "succeeded"
    [received] = python_receiver.requests
    signature = received.header(SIGNATURE_HEADER)
    assert signature is not None
    assert verify_signature(received.body, signature, new_key)
    assert not verify_signature(received.body, signature, old_key)


async def test_webhooks_test_without_dev_refuses_a_loopback_receiver_at_send_time(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "no-dev.db")
    webhook_id, _ = await seed_hooked(db, python_receiver.url)  # allowed when it was created

    result = await db.acli("webhooks", "test", webhook_id, "--json")

    assert result.returncode == 1  # the delivery is shown, and the exit code says it failed
    assert result.stderr.startswith("error: the test delivery did not succeed")
    delivery = json.loads(result.stdout)
    assert delivery["status"] != "succeeded"
    assert delivery["delivered_at"] is None
    [attempt] = delivery["attempts"]
    assert attempt["status"] is None
    assert "loopback" in attempt["error"]
    assert "127.0.0.1" in attempt["error"]
    assert delivery["last_error"] == attempt["error"]
    assert python_receiver.requests == []


async def test_webhooks_test_without_json_prints_the_attempt_line(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "test-table.db")
    webhook_id, _ = await seed_hooked(db, python_receiver.url)

    result = await db.acli("webhooks", "test", webhook_id, "--dev")

    assert result.returncode == 0, result.stderr
    assert re.search(r"status\s+succeeded", result.stdout), result.stdout
    assert re.search(r"attempt 1 at .* status 200", result.stdout), result.stdout


def test_webhooks_test_of_an_unknown_webhook_says_it_does_not_exist(db: Database) -> None:
    error_line(db.cli("webhooks", "test", "wh_nowhere", "--dev"), "'wh_nowhere'", "does not exist")


# ---- events list ----------------------------------------------------------------------------

# emitted in this order, so listed newest first in the reverse order
EMITTED = [
    ("evt-list-1", CUSTOMER, LOCATION),
    ("evt-list-2", SUBSCRIBER, LOCATION),
    ("evt-list-3", CUSTOMER, OTHER_LOCATION),
    ("evt-list-4", CUSTOMER, LOCATION),
    ("evt-list-5", SUBSCRIBER, OTHER_LOCATION),
]
NEWEST_FIRST = [event_id for event_id, _, _ in reversed(EMITTED)]


@pytest.fixture(scope="module")
def events_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """Five events over two locations and two types; one webhook gets customer.create at
    ``LOCATION``, so those events have one delivery each."""
    database = Database(tmp_path_factory.mktemp("events") / "events.db")

    async def fill() -> None:
        await seed(database, locations=(LOCATION, OTHER_LOCATION), callback_url=UNREACHABLE)
        service = await Service.open(database.settings())
        try:
            for event_id, event_type, location in EMITTED:
                sample = catalog.EVENT_TYPES[event_type].sample
                await service.events.emit(event_type, location, sample, id=event_id)
        finally:
            await service.close()

    asyncio.run(fill())
    return database


def test_events_list_json_is_a_page_of_events_newest_first(events_db: Database) -> None:
    page = events_db.json("events", "list")

    assert set(page) == {"data", "next_cursor"}
    assert page["next_cursor"] is None
    assert [e["id"] for e in page["data"]] == NEWEST_FIRST
    for event, (event_id, event_type, location) in zip(
        page["data"], reversed(EMITTED), strict=True
    ):
        assert set(event) >= EVENT_FIELDS
        assert (event["id"], event["type"], event["location_id"]) == (
            event_id,
            event_type,
            location,
        )
        assert event["data"] == catalog.EVENT_TYPES[event_type].sample
        assert event["deliveries"] == (1 if (event_type, location) == (CUSTOMER, LOCATION) else 0)


def test_events_list_pages_with_limit_and_cursor_without_repeats(events_db: Database) -> None:
    seen: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    for _ in range(len(EMITTED)):  # a bound, so a cursor that never ends fails the test
        args = ("events", "list", "--limit", "2") + (("--cursor", cursor) if cursor else ())
        page = events_db.json(*args)
        assert len(page["data"]) <= 2
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)

    assert cursor is None
    assert seen == NEWEST_FIRST
    assert len(cursors) == 2  # 5 events in pages of 2, 2 and 1
    assert cursors[0] == NEWEST_FIRST[1]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(("--location", OTHER_LOCATION), ["evt-list-5", "evt-list-3"], id="location"),
        pytest.param(("--type", SUBSCRIBER), ["evt-list-5", "evt-list-2"], id="type"),
        pytest.param(
            ("--location", LOCATION, "--type", CUSTOMER),
            ["evt-list-4", "evt-list-1"],
            id="location and type",
        ),
        pytest.param(("--location", "loc-nowhere"), [], id="unknown location"),
    ],
)
def test_events_list_filters_by_location_and_type(
    events_db: Database, filters: tuple[str, ...], expected: list[str]
) -> None:
    page = events_db.json("events", "list", *filters)

    assert [e["id"] for e in page["data"]] == expected
    assert page["next_cursor"] is None


def test_events_list_filter_and_cursor_combine(events_db: Database) -> None:
    first = events_db.json("events", "list", "--location", LOCATION, "--limit", "2")
    rest = events_db.json(
        "events", "list", "--location", LOCATION, "--limit", "2", "--cursor", first["next_cursor"]
    )

    assert [e["id"] for e in first["data"]] == ["evt-list-4", "evt-list-2"]
    assert [e["id"] for e in rest["data"]] == ["evt-list-1"]
    assert rest["next_cursor"] is None


def test_events_list_table_shows_the_columns_and_how_to_get_more(events_db: Database) -> None:
    result = events_db.cli("events", "list", "--limit", "2")

    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if " id " in f" {line} ")
    for column in ("id", "type", "location_id", "deliveries", "created_at"):
        assert column in header
    assert NEWEST_FIRST[0] in result.stdout
    assert NEWEST_FIRST[1] in result.stdout
    assert NEWEST_FIRST[2] not in result.stdout
    assert f"more: --cursor {NEWEST_FIRST[1]}" in result.stdout


def test_events_list_with_an_unknown_type_names_it(events_db: Database) -> None:
    error_line(events_db.cli("events", "list", "--type", "customer.nope"), "'customer.nope'")


def test_events_list_with_limit_zero_is_a_usage_error(events_db: Database) -> None:
    usage_error(events_db.cli("events", "list", "--limit", "0"), "--limit")


# ---- recover --------------------------------------------------------------------------------

NO_RETRIES = {"HOTSPOT_WEBHOOKS_MAX_RETRIES": "0"}


async def failed_for_good(db: Database, receiver: PythonReceiver) -> tuple[str, str]:
    """A webhook whose one delivery failed for good against a receiver answering 500.
    Returns (webhook id, delivery id)."""
    receiver.respond = lambda n: 500
    webhook_id, _ = await seed_hooked(db, receiver.url)
    emitted = await db.ajson("emit", CUSTOMER, "--location", LOCATION, "--sample", env=NO_RETRIES)
    assert emitted["deliveries"] == 1
    summary = await db.ajson("worker", "--once", "--dev", env=NO_RETRIES)
    assert (summary["claimed"], summary["failed"]) == (1, 1), summary
    [delivery] = (await db.ajson("deliveries", "list", "--webhook", webhook_id))["data"]
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status"]) == (
        "failed",
        1,
        500,
    )
    assert delivery["next_attempt_at"] is None
    return webhook_id, delivery["id"]


async def test_recover_requeues_a_failed_delivery_and_the_next_pass_delivers_it(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "recover.db")
    webhook_id, delivery_id = await failed_for_good(db, python_receiver)

    before = datetime.now(UTC)
    recovered = await db.ajson("recover", webhook_id, "--since", "2000-01-01")
    after = datetime.now(UTC)
    pending = await db.ajson("deliveries", "show", delivery_id)

    assert recovered["webhook_id"] == webhook_id
    assert recovered["requeued"] == 1
    assert datetime.fromisoformat(recovered["since"]) == datetime(2000, 1, 1, tzinfo=UTC)
    assert pending["status"] == "pending"
    assert before <= datetime.fromisoformat(pending["next_attempt_at"]) <= after

    python_receiver.respond = lambda n: 200  # the receiver is fixed
    summary = await db.ajson("worker", "--once", "--dev")
    delivered = await db.ajson("deliveries", "show", delivery_id)

    assert (summary["claimed"], summary["succeeded"]) == (1, 1)
    assert (delivered["status"], delivered["attempt_count"]) == ("succeeded", 2)
    assert [a["status"] for a in delivered["attempts"]] == [500, 200]
    assert len(python_receiver.requests) == 2


async def test_recover_since_a_future_time_requeues_nothing(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "recover-future.db")
    webhook_id, delivery_id = await failed_for_good(db, python_receiver)

    recovered = await db.ajson("recover", webhook_id, "--since", "2999-01-01T00:00:00")
    shown = await db.ajson("deliveries", "show", delivery_id)

    assert (recovered["webhook_id"], recovered["requeued"]) == (webhook_id, 0)
    assert (shown["status"], shown["next_attempt_at"]) == ("failed", None)


async def test_recover_on_a_disabled_webhook_says_to_enable_it_first(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "recover-disabled.db")
    webhook_id, delivery_id = await failed_for_good(db, python_receiver)
    await db.ajson("webhooks", "update", webhook_id, "--disable")

    result = await db.acli("recover", webhook_id, "--since", "2000-01-01")
    shown = await db.ajson("deliveries", "show", delivery_id)

    line = error_line(result, webhook_id, "disabled", "enable it first")
    assert "--enable" in line
    assert (shown["status"], shown["next_attempt_at"]) == ("failed", None)


def test_recover_with_a_since_that_is_not_a_date_is_a_usage_error(
    db: Database, webhook: str
) -> None:
    usage_error(db.cli("recover", webhook, "--since", "notadate"), "--since", "notadate")


def test_recover_of_an_unknown_webhook_says_it_does_not_exist(db: Database) -> None:
    error_line(
        db.cli("recover", "wh_nowhere", "--since", "2000-01-01"), "'wh_nowhere'", "does not exist"
    )


# ---- api: HTTP only, no dispatcher ----------------------------------------------------------

ADMIN_TOKEN = "admin-token-for-the-api-command-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any HOTSPOT_WEBHOOKS_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    return {**env, "COLUMNS": "200", **extra}


async def wait_healthy_async(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, within: float = 30
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.returncode is not None:
            output = await process.stdout.read() if process.stdout else b""
            pytest.fail(f"the server exited with {process.returncode}: {output.decode()}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    pytest.fail("the server did not answer /healthz in time")


async def test_api_serves_http_without_delivering_until_a_worker_runs(
    tmp_path: Path, python_receiver: PythonReceiver
) -> None:
    db = Database(tmp_path / "api.db")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "api", "--port", str(port), "--db", db.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=clean_env(
            HOTSPOT_WEBHOOKS_ADMIN_TOKEN=ADMIN_TOKEN,
            HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
            # were a dispatcher running, it would pass every 0.1 s and deliver at once
            HOTSPOT_WEBHOOKS_INTERVAL="0.1",
            HOTSPOT_WEBHOOKS_RETRY_POLICY="next-pass",
        ),
    )  # fmt: skip
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=admin, timeout=10
        ) as client:
            await wait_healthy_async(client, process)
            operator = await client.post("/v1/operators", json={"name": OPERATOR})
            assert operator.status_code == 201, operator.text
            location = await client.post(
                "/v1/locations",
                json={"id": LOCATION, "name": "Lobby", "operator_id": operator.json()["id"]},
            )
            assert location.status_code == 201, location.text
            hook = await client.post(
                "/v1/webhooks",
                json={
                    "location_id": LOCATION,
                    "event_type": CUSTOMER,
                    "callback_url": python_receiver.url,
                },
            )
            assert hook.status_code == 201, hook.text
            sample = catalog.EVENT_TYPES[CUSTOMER].sample
            emitted = await client.post(
                "/v1/events", json={"type": CUSTOMER, "location_id": LOCATION, "data": sample}
            )
            assert emitted.status_code == 202, emitted.text
            assert emitted.json()["deliveries"] == 1
            event_id = emitted.json()["id"]

            # no dispatcher: for a second (ten passes of one at this interval) nothing is sent
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                page = await client.get("/v1/deliveries", params={"event_id": event_id})
                [delivery] = page.json()["data"]
                assert (delivery["status"], delivery["attempt_count"]) == ("pending", 0)
                assert python_receiver.requests == []
                await asyncio.sleep(0.1)

            summary = await db.ajson("worker", "--once", "--dev")
            delivered = (await client.get(f"/v1/deliveries/{delivery['id']}")).json()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 20)
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()

    assert (summary["claimed"], summary["succeeded"]) == (1, 1)
    assert (delivered["status"], delivered["attempt_count"]) == ("succeeded", 1)
    [received] = python_receiver.requests
    assert json.loads(received.body) == sample
    signature = received.header(SIGNATURE_HEADER)
    assert signature is not None
    assert verify_signature(received.body, signature, hook.json()["api_key"])
    text = output.decode()
    assert process.returncode in (0, -signal.SIGTERM), text
    assert "Traceback" not in text
    assert "admin token:" not in text  # one is configured: none is made


# ---- serve: the first start's admin token ---------------------------------------------------


@dataclass
class Server:
    """``serve --dev`` as a subprocess; stdout and stderr go to files, read at any time."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text()

    def wait_healthy(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"serve exited with {self.process.returncode}: {self.stderr.read_text()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail("serve did not answer /healthz in time")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


@contextlib.contextmanager
def serving(tmp_path: Path, db: Database, name: str) -> Iterator[Server]:
    """Run ``serve --dev`` on ``db`` with no admin token configured; always stopped."""
    env = clean_env()
    assert not [k for k in env if k.startswith("HOTSPOT_WEBHOOKS_")]
    port = free_port()
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", "serve", "--dev", "--port", str(port),
             "--db", db.url],
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,  # no .env from the developer's tree
            env=env,
        )  # fmt: skip
    server = Server(process, out, err, port)
    try:
        server.wait_healthy()
        yield server
    finally:
        code = server.stop()
        assert code in (0, -signal.SIGTERM), err.read_text()
        assert "Traceback" not in err.read_text()


def operators_status(server: Server, token: str | None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.url}/v1/operators", headers=headers, timeout=10).status_code


def admin_token_file(db: Database) -> Path:
    """Where ``serve`` leaves the first admin token when its stdout is no terminal."""
    return db.path.with_name(db.path.name + ".admin-token")


def test_serve_first_start_without_admin_token_leaves_one_that_works_as_admin(
    tmp_path: Path,
) -> None:
    # stdout is a file here, as under systemd or docker: the token goes to a private file
    # beside the database, never to the output (tests/test_hostile_input.py has the terminal)
    db = Database(tmp_path / "fresh.db")

    with serving(tmp_path, db, "first") as server:
        token = admin_token_file(db).read_text().strip()
        assert token.startswith("hwt_"), token
        assert operators_status(server, token) == 200
        sn = httpx.get(f"{server.url}/v1/operators", headers={"sn-apikey": token}, timeout=10)
        assert sn.status_code == 200
        assert operators_status(server, None) == 401
        assert operators_status(server, "hwt_not-the-admin-token") == 401

    assert "admin token:" not in server.output()
    assert token not in server.output() + server.stderr.read_text()
    assert str(admin_token_file(db)) in server.stderr.read_text()  # the log says where
    assert db.rows("SELECT operator_id FROM tokens") == [(None,)]


def test_serve_second_start_prints_no_token_and_tokens_create_admin_makes_one_that_works(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "again.db")
    with serving(tmp_path, db, "first"):
        token = admin_token_file(db).read_text().strip()
    admin_token_file(db).unlink()  # as the first start's log asks

    with serving(tmp_path, db, "second") as second:
        created = db.json("tokens", "create", "--admin")
        assert operators_status(second, created["token"]) == 200
        assert operators_status(second, token) == 200  # the first one still works

    assert "admin token" not in second.output()
    assert not admin_token_file(db).exists()
    assert created["token"] != token
    assert db.rows("SELECT count(*) FROM tokens WHERE operator_id IS NULL") == [(2,)]
