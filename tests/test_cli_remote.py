"""The CLI's remote mode: ``HOTSPOT_WEBHOOKS_URL`` + a token make every resource command talk to
a running server over REST, with the same output as on the database.

The server is the real API (uvicorn on a free port, the dispatcher beside it, as ``serve``
runs); each command is the real CLI in a subprocess, run in a thread so that the server, in
this test's event loop, can answer it. The shell running the CLI has no database at all.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.postgres import POSTGRES_SECRET_KEY
from tests.receivers import PythonReceiver, free_port

BACKENDS = ("sqlite", "postgresql")
PUBLIC = "https://93.184.216.34/hook"  # a public address, never contacted by these tests


def remote(url: str, token: str) -> dict[str, str]:
    return {"HOTSPOT_WEBHOOKS_URL": url, "HOTSPOT_WEBHOOKS_TOKEN": token}


async def cli(
    *args: str, env: dict[str, str], db: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, db=db, env=env)


async def cli_json(*args: str, env: dict[str, str], db: str | None = None) -> Any:
    done = await cli(*args, "--json", env=env, db=db)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


async def test_every_resource_command_works_through_a_running_server(
    make_api: Callable[..., Any], python_receiver: PythonReceiver, database_url: str
) -> None:
    api: LiveAPI = await make_api(interval=0.2)
    admin = remote(api.url, ADMIN_TOKEN)

    operator = await cli_json("operators", "create", "acme-remote", env=admin)
    mine = remote(api.url, operator["token"])
    location = await cli_json(
        "locations", "create", "loc-remote", "--name", "Remote Café", env=mine
    )
    created = await cli_json(
        "webhooks", "create", "--location", "loc-remote", "--event", "customer.create",
        "--url", python_receiver.url, env=mine,
    )  # fmt: skip
    listed = await cli_json("webhooks", "list", env=mine)
    emitted = await cli_json(
        "emit", "customer.create", "--location", "loc-remote", "--sample", "--id", "evt-remote-1",
        env=mine,
    )  # fmt: skip
    for _ in range(100):
        page = await cli_json("deliveries", "list", "--event", "evt-remote-1", env=mine)
        if page["data"] and page["data"][0]["status"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    shown = await cli("deliveries", "show", page["data"][0]["id"], env=mine)
    event = await cli_json("events", "show", "evt-remote-1", env=mine)
    tokens = await cli_json("tokens", "list", env=mine)
    types = await cli_json("event-types", "list", env=mine)

    assert operator["name"] == "acme-remote" and operator["token"]
    assert location["id"] == "loc-remote"
    assert created["api_key"] and created["signing_secret"].startswith("whsec_")
    assert set(listed) == {"data", "next_cursor"}  # the REST shape, as every list's --json
    assert [w["id"] for w in listed["data"]] == [created["id"]]
    assert "api_key" not in listed["data"][0]
    assert emitted["deliveries"] == 1
    assert page["data"][0]["status"] == "succeeded", page
    assert shown.returncode == 0, shown.stderr
    assert "request headers:" in shown.stdout
    assert "X-Hotspotsystem-Hmac-Sha256:" in shown.stdout
    assert event["id"] == "evt-remote-1" and event["deliveries"] == 1
    assert len(tokens["data"]) == 1 and set(tokens) == {"data", "next_cursor"}
    assert "customer.create" in {t["name"] for t in types["data"]}
    assert len(python_receiver.requests) == 1


async def test_the_output_is_the_same_remotely_and_on_the_database(
    make_api: Callable[..., Any], database_url: str
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    admin = remote(api.url, ADMIN_TOKEN)
    await cli_json("operators", "create", "acme-same", env=admin)
    await cli_json(
        "locations", "create", "loc-same", "--name", "Same", "--operator", "acme-same", env=admin
    )
    webhook = await cli_json(
        "webhooks", "create", "--location", "loc-same", "--event", "*",
        "--url", PUBLIC, env=admin,
    )  # fmt: skip
    await cli_json("emit", "subscriber.create", "--location", "loc-same", "--sample", env=admin)

    nothing = (  # the shell's own settings: the database directly, no server
        {"HOTSPOT_WEBHOOKS_SECRET_KEY": POSTGRES_SECRET_KEY}
        if database_url.startswith("postgresql")
        else {}
    )
    for command in (
        ("webhooks", "show", webhook["id"]),
        ("webhooks", "list"),
        ("locations", "list"),
        ("operators", "list"),
        ("deliveries", "list"),
        ("events", "list"),
    ):
        over_rest = await cli(*command, env=admin)
        on_database = await cli(*command, env=nothing, db=database_url)
        assert over_rest.returncode == on_database.returncode == 0, over_rest.stderr
        assert over_rest.stdout == on_database.stdout, command
        as_json = await cli_json(*command, env=admin)
        assert as_json == await cli_json(*command, env=nothing, db=database_url), command


async def test_webhooks_test_follows_the_servers_ssrf_setting_not_the_shells(
    make_api: Callable[..., Any], python_receiver: PythonReceiver
) -> None:
    allowing = await make_api(dispatch=False, allow_private_targets=True)
    guarded = await make_api(dispatch=False, allow_private_targets=False)
    results = {}
    for name, api in (("allowing", allowing), ("guarded", guarded)):
        admin = remote(api.url, ADMIN_TOKEN)
        await cli_json("operators", "create", f"acme-{name}", env=admin)
        await cli_json(
            "locations", "create", f"loc-{name}", "--name", name, "--operator", f"acme-{name}",
            env=admin,
        )  # fmt: skip
        url = python_receiver.url if name == "allowing" else PUBLIC
        webhook = await cli_json(
            "webhooks", "create", "--location", f"loc-{name}", "--event", "customer.create",
            "--url", url, env=admin,
        )  # fmt: skip
        results[name] = (api, webhook["id"], admin)

    api, webhook_id, admin = results["allowing"]
    sent = await cli("webhooks", "test", webhook_id, env=admin)  # the shell allows nothing
    api, webhook_id, admin = results["guarded"]
    refused = await cli(
        "webhooks", "update", webhook_id, "--url", python_receiver.url,
        env={**admin, "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"},  # the shell would allow
    )  # fmt: skip
    dev = await cli("webhooks", "test", webhook_id, "--dev", env=admin)

    assert sent.returncode == 0, sent.stderr
    assert "status 200" in sent.stdout
    assert "callback_url" in one_error(refused) or "loopback" in one_error(refused)
    assert "the server at" in one_error(dev) and dev.returncode == 2


async def test_remote_errors_are_the_servers_messages_or_say_what_to_set(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    first = remote(
        api.url,
        (await cli_json("operators", "create", "acme-a", env=remote(api.url, ADMIN_TOKEN)))[
            "token"
        ],
    )
    second = remote(
        api.url,
        (await cli_json("operators", "create", "acme-b", env=remote(api.url, ADMIN_TOKEN)))[
            "token"
        ],
    )
    await cli_json("locations", "create", "loc-a", "--name", "A", env=first)
    webhook = await cli_json(
        "webhooks", "create", "--location", "loc-a", "--event", "customer.create",
        "--url", PUBLIC, env=first,
    )  # fmt: skip

    hidden = await cli("webhooks", "show", webhook["id"], env=second)
    wrong_token = await cli("webhooks", "list", env=remote(api.url, "not-a-token"))
    closed = await cli("webhooks", "list", env=remote(f"http://127.0.0.1:{free_port()}", "x"))
    no_token = await cli("webhooks", "list", env={"HOTSPOT_WEBHOOKS_URL": api.url})
    bad_field = await cli(
        "emit", "customer.create", "--location", "loc-a", "--data", '{"nope": "1"}', env=first
    )

    assert "does not exist" in one_error(hidden) and webhook["id"] in one_error(hidden)
    assert wrong_token.returncode == 1 and "token" in one_error(wrong_token).lower()
    assert "cannot reach the server at http://127.0.0.1:" in one_error(closed)
    assert "connection refused" in one_error(closed)
    assert no_token.returncode == 2 and "HOTSPOT_WEBHOOKS_TOKEN" in one_error(no_token)
    assert "nope" in one_error(bad_field)


def test_without_a_server_or_a_database_the_cli_says_how_to_point_it_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hotspot_webhooks", "webhooks", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    error = one_error(done)

    assert f"database data/hotspot-webhooks.db does not exist (in {tmp_path})" in error
    assert "HOTSPOT_WEBHOOKS_URL" in error and "--db" in error
    assert list(tmp_path.iterdir()) == []  # no empty data/ left behind
