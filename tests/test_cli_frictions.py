"""What a new user hit in the CLI, each kept as a test: ids whole when piped or on a narrow
terminal, one JSON shape for lists, request headers in ``deliveries show``, named values and
help on every option, ``api --dev``, ``--since`` as an age, ``webhooks delete`` asking first,
and a refused connection told without aiohttp's ``ssl:default``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main

from hotspot_webhooks.cli import app
from hotspot_webhooks.cli.common import parse_since
from tests.conftest import run_cli
from tests.receivers import free_port

PRIVATE = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
NARROW = {"COLUMNS": "80"}  # run_cli's output is a pipe; Rich would assume 80 columns anyway


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(db: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ok(run_cli(*args, "--json", db=db, env=env)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A database with an operator, a location, a webhook to a closed port and one delivery
    that has been attempted (and refused a connection)."""
    db = f"sqlite:///{tmp_path_factory.mktemp('frictions') / 'hooks.db'}"
    ok(run_cli("migrate", db=db))
    as_json(db, "operators", "create", "acme")
    as_json(db, "locations", "create", "loc-1", "--name", "Café", "--operator", "acme")
    closed = f"http://127.0.0.1:{free_port()}/hook"
    webhook = as_json(
        db, "webhooks", "create", "--location", "loc-1", "--event", "customer.create",
        "--url", closed, env=PRIVATE,
    )  # fmt: skip
    tested = run_cli("webhooks", "test", webhook["id"], "--dev", "--json", db=db)
    return {
        "db": db,
        "webhook": webhook["id"],
        "closed": closed,
        "test_stdout": tested.stdout,
        "test_stderr": tested.stderr,
    }


def test_lists_show_whole_ids_when_piped_at_80_columns(world: dict[str, str]) -> None:
    db = world["db"]
    [delivery] = as_json(db, "deliveries", "list")["data"]

    webhooks = ok(run_cli("webhooks", "list", db=db, env=NARROW))
    deliveries = ok(run_cli("deliveries", "list", db=db, env=NARROW))

    assert world["webhook"] in webhooks
    assert delivery["id"] in deliveries
    assert "…" not in webhooks.split("\n", 3)[3]  # no cell of the table is cut


def test_every_list_prints_the_rest_shape_with_json(world: dict[str, str]) -> None:
    db = world["db"]
    for command in (
        ("webhooks", "list"),
        ("locations", "list"),
        ("operators", "list"),
        ("tokens", "list"),
        ("event-types", "list"),
        ("deliveries", "list"),
        ("events", "list"),
    ):
        page = as_json(db, *command)
        assert set(page) == {"data", "next_cursor"}, command
        assert isinstance(page["data"], list), command


def test_deliveries_show_prints_the_request_headers_of_each_attempt(
    world: dict[str, str],
) -> None:
    db = world["db"]
    [delivery] = as_json(db, "deliveries", "list")["data"]

    shown = ok(run_cli("deliveries", "show", delivery["id"], db=db))

    assert "request headers:" in shown
    for header in (
        "X-Hotspotsystem-Hmac-Sha256:",
        "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256:",
        "webhook-signature: v1,",
        f"X-Hotspotsystem-Delivery: {delivery['id']}",
    ):
        assert header in shown, header


def test_a_refused_connection_is_told_without_ssl_default(world: dict[str, str]) -> None:
    attempt = json.loads(world["test_stdout"])["attempts"][0]
    port = world["closed"].split(":")[2].split("/")[0]

    assert attempt["error"] == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert "ssl:default" not in world["test_stdout"] + world["test_stderr"]


def test_every_option_of_every_command_has_help_and_a_named_value() -> None:
    from hotspot_webhooks.cli import _name_the_values

    command = typer.main.get_command(app)
    _name_the_values(command)
    missing = []

    def walk(node: Any, path: str) -> None:
        for param in node.params:
            if param.param_type_name == "option" and not param.hidden:
                if not param.help:
                    missing.append(f"{path} {param.opts[0]}")
                assert param.metavar is not None, (path, param.name)
        for name, sub in getattr(node, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(command, "hotspot-webhooks")
    assert missing == [], "options without help: " + ", ".join(missing)


def test_api_dev_accepts_webhooks_to_local_receivers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    ok(run_cli("migrate", db=db))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hotspot_webhooks", "api", "--dev", "--port", str(port), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": "admin-token-api-dev-0123456789",
        },
    )
    try:
        env = {
            "HOTSPOT_WEBHOOKS_URL": f"http://127.0.0.1:{port}",
            "HOTSPOT_WEBHOOKS_TOKEN": "admin-token-api-dev-0123456789",
        }
        for _ in range(100):
            listed = run_cli("operators", "list", env=env)
            if listed.returncode == 0:
                break
        ok(run_cli("operators", "create", "acme", env=env))
        ok(run_cli("locations", "create", "loc-1", "--name", "x", "--operator", "acme", env=env))
        created = run_cli(
            "webhooks", "create", "--location", "loc-1", "--event", "customer.create",
            "--url", f"http://127.0.0.1:{free_port()}/hook", "--json", env=env,
        )  # fmt: skip
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["callback_url"].startswith("http://127.0.0.1:")
    assert "development mode" in output


@pytest.mark.parametrize(
    ("written", "age"),
    [
        ("1h", timedelta(hours=1)),
        ("90m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("1 hour ago", timedelta(hours=1)),
        ("30 minutes ago", timedelta(minutes=30)),
        ("3 days", timedelta(days=3)),
    ],
)
def test_since_accepts_an_age(written: str, age: timedelta) -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since(written, now) == now - age


@pytest.mark.parametrize(
    ("written", "moment"),
    [
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28 13:05", datetime(2026, 11, 28, 13, 5, tzinfo=UTC)),
        ("2026-11-28T13:05:00+01:00", datetime(2026, 11, 28, 12, 5, tzinfo=UTC)),
        ("2026-11-28T13:05:00Z", datetime(2026, 11, 28, 13, 5, tzinfo=UTC)),
    ],
)
def test_since_accepts_a_time(written: str, moment: datetime) -> None:
    assert parse_since(written) == moment


def test_recover_since_an_age_on_the_command_line(world: dict[str, str]) -> None:
    db = world["db"]
    recovered = as_json(db, "recover", world["webhook"], "--since", "1 hour ago")
    refused = run_cli("recover", world["webhook"], "--since", "last tuesday", db=db)

    since = datetime.fromisoformat(recovered["since"])
    assert recovered["webhook_id"] == world["webhook"]
    assert abs(since - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=5)
    assert refused.returncode == 2
    assert "'last tuesday' is neither a time" in refused.stderr


def test_webhooks_delete_asks_first(world: dict[str, str]) -> None:
    db = world["db"]
    extra = as_json(
        db, "webhooks", "create", "--location", "loc-1", "--event", "subscriber.create",
        "--url", world["closed"], env=PRIVATE,
    )  # fmt: skip

    unasked = run_cli("webhooks", "delete", extra["id"], db=db)  # stdin is not a terminal
    still_there = as_json(db, "webhooks", "show", extra["id"])
    confirmed = as_json(db, "webhooks", "delete", extra["id"], "--yes")

    assert unasked.returncode == 2
    assert "add --yes" in unasked.stderr
    assert still_there["id"] == extra["id"]
    assert confirmed == {"id": extra["id"], "deleted": True}


async def test_listen_says_why_a_delivery_under_another_key_is_refused() -> None:
    import io

    import aiohttp
    from aiohttp import web
    from rich.console import Console

    from hotspot_webhooks.listen import make_app
    from hotspot_webhooks.receiver import compute_signature

    output = io.StringIO()
    runner = web.AppRunner(make_app("this-listeners-key", Console(file=output, width=300)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    body = b'{"id": "1"}'
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"http://127.0.0.1:{port}/hook",
                data=body,
                headers={
                    "X-Hotspotsystem-Hmac-Sha256": compute_signature(body, "another-webhooks-key"),
                    "X-Hotspotsystem-Delivery": "dlv_01TESTDELIVERY",
                },
            )
    finally:
        await runner.cleanup()

    said = output.getvalue()
    assert response.status == 401
    assert "dlv_01TESTDELIVERY" in said
    assert "started with the key of the webhook that sent it" in said
