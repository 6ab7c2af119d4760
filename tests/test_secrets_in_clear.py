"""No secret in clear where it does not belong: a full run of the real ``hotspot-webhooks
serve``, then every secret it handed out is looked for in storage and in its logs.

The server is started as a user starts it (the installed command, stdout and stderr to files:
no terminal), at debug level with the access log on, on a SQLite file and on a PostgreSQL
database. There is no log-level flag, so a ``sitecustomize`` on ``PYTHONPATH`` sets the root
logger to DEBUG before the CLI's ``basicConfig`` (then a no-op), and ``sqlalchemy.engine`` too
(SQLAlchemy holds its loggers at WARNING otherwise): every SQL statement with its parameters,
aiosqlite's calls, the dispatcher's and the API's lines all land in the log.

Through REST it is used as an operator would: the admin (configured, then generated on a
first start without a terminal) creates operators and tokens, an operator creates a location
and webhooks (Bearer and ``sn-apikey``; with headers and basic, bearer and OAuth2 auth of
their own, SPEC §9), rotates a key, emits events that are delivered, some after failed
attempts, backs the database up, revokes a token; requests carry wrong, revoked and misplaced tokens
(in a query string, in a path). Then no secret may be in the database (every file beside the
SQLite file but the two that must hold one; a plain ``pg_dump``) nor in stdout or stderr:
tokens are stored hashed, API keys encrypted, request lines redacted; and no secret of a
webhook (header value, password, token, client secret, the access token fetched) in a
backup. The generated admin token is expected in its 0600 file, and the secret key in its key
file, and only there.

A canary planted in each place the test searches (a table row, a logged request path) is
found first, so that a search that silently reads nothing cannot pass.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from aiohttp import web

from tests.postgres import POSTGRES, admin_sql, require_postgres
from tests.receivers import PythonReceiver, free_port, start_app

BACKENDS = ("sqlite", "postgresql")  # the search test has no database; the other runs on both
HOTSPOT_WEBHOOKS = Path(sys.executable).with_name("hotspot-webhooks")
PG_DUMP = "/usr/bin/pg_dump"
CANARY = "canary-" + secrets.token_hex(8)  # nothing redacts it: short, no secret's shape
SITECUSTOMIZE = """\
import logging
logging.basicConfig(
    level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s %(message)s"
)
logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)  # it keeps itself at WARNING
"""


class Secrets(dict[str, str]):
    """Every secret seen, by a name that says which it is."""

    def webhook(self, name: str, created: dict[str, Any]) -> None:
        """A webhook's API key and its signing secret, with the key base64 inside that."""
        api_key, signing_secret = str(created["api_key"]), str(created["signing_secret"])
        assert signing_secret.startswith("whsec_")
        inner = signing_secret.removeprefix("whsec_")
        assert base64.b64decode(inner).decode() == api_key
        self[f"{name} api key"] = api_key
        self[f"{name} signing secret"] = signing_secret
        self[f"{name} signing secret's base64"] = inner.rstrip("=")


class TokenEndpoint:
    """An OAuth2 token endpoint that issues one access token (the client credentials grant)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.issued = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth/token"

    async def start(self) -> TokenEndpoint:
        async def token(request: web.Request) -> web.Response:
            self.issued += 1
            answer = {"access_token": self.token, "token_type": "Bearer", "expires_in": 3600}
            return web.json_response(answer)

        app = web.Application()
        app.router.add_post("/oauth/token", token)
        self._runner, self.port = await start_app(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def forms(secret: str) -> Iterator[bytes]:
    """A secret as it may be written: as is, and percent-encoded (a logged URL)."""
    yield secret.encode()
    encoded = quote(secret, safe="")
    if encoded != secret:
        yield encoded.encode()


def leaks(found_in: dict[str, bytes], seen: dict[str, str]) -> list[str]:
    """Each (secret, place) where a secret is found."""
    return [
        f"{name} ({value[:12]}...) is in {place}"
        for place, content in found_in.items()
        for name, value in seen.items()
        if any(form in content for form in forms(value))
    ]


def test_the_search_finds_a_secret_in_each_form() -> None:
    """The search itself: as is, percent-encoded, and inside other bytes."""
    seen = {"key": "ab+c/d=", "token": "hwt_x"}
    assert leaks({"log": b"GET /?k=ab%2Bc%2Fd%3D 200"}, seen) == ["key (ab+c/d=...) is in log"]
    assert leaks({"db": b"\x00hwt_x\x00", "log": b"nothing"}, seen) == ["token (hwt_x...) is in db"]


@pytest.fixture
def sitecustomize(tmp_path: Path) -> Path:
    directory = tmp_path / "debug-logging"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory


class Server:
    """``hotspot-webhooks serve`` in a subprocess, its stdout and stderr kept in files."""

    def __init__(self, env: dict[str, str], cwd: Path, logs: Path, number: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = logs / f"serve-{number}.stdout"
        self.stderr = logs / f"serve-{number}.stderr"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [HOTSPOT_WEBHOOKS, "serve", "--dev", "--port", str(self.port), "--interval", "0.1"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
            )

    def output(self) -> str:
        return (self.stdout.read_bytes() + self.stderr.read_bytes()).decode(errors="replace")

    async def ready(self, client: httpx.AsyncClient, within: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{self.url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        pytest.fail(f"serve did not get ready in {within} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


@contextlib.asynccontextmanager
async def serving(
    env: dict[str, str], cwd: Path, logs: Path, number: int, client: httpx.AsyncClient
) -> AsyncIterator[Server]:
    server = Server(env, cwd, logs, number)
    try:
        await server.ready(client)
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture
async def database(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """The database URL, and the PostgreSQL database's name (None on SQLite)."""
    if backend == "sqlite":
        data = tmp_path / "data"
        data.mkdir()
        yield f"sqlite:///{data / 'hooks.db'}", None
        return
    require_postgres()
    name = f"hw_test_{secrets.token_hex(6)}"
    await admin_sql(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}", name
    finally:
        await admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Caller:
    """REST calls to the server under test, each answer checked."""

    def __init__(self, client: httpx.AsyncClient, server: Server) -> None:
        self.client = client
        self.server = server

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        json: object = None,
        *,
        header: str = "Authorization",
    ) -> httpx.Response:
        """With ``token`` as ``Authorization: Bearer`` or, ``header="sn-apikey"``, as is."""
        headers: dict[str, str] = {}
        if token is not None:
            headers[header] = f"Bearer {token}" if header == "Authorization" else token
        return await self.client.request(
            method, f"{self.server.url}{path}", headers=headers, json=json
        )

    async def ok(
        self,
        method: str,
        path: str,
        token: str,
        json: object = None,
        *,
        header: str = "Authorization",
    ) -> dict[str, Any]:
        response = await self.call(method, path, token, json, header=header)
        assert response.is_success, f"{method} {path} → {response.status_code} {response.text}"
        return {} if response.status_code == 204 else dict(response.json())

    async def refused(
        self,
        status: int,
        method: str,
        path: str,
        token: str | None,
        *,
        header: str = "Authorization",
    ) -> None:
        response = await self.call(method, path, token, header=header)
        assert response.status_code == status, f"{method} {path} → {response.text}"


async def wait_until_delivered(
    caller: Caller, token: str, event_id: str, within: float = 15
) -> list[dict[str, Any]]:
    """Poll the event's deliveries until none is pending; return them, shown singly."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        listed = await caller.ok("GET", f"/v1/deliveries?event_id={event_id}", token)
        data = listed["data"]
        assert isinstance(data, list) and data
        if all(d["status"] in ("succeeded", "failed") for d in data):
            return [await caller.ok("GET", f"/v1/deliveries/{d['id']}", token) for d in data]
        assert asyncio.get_running_loop().time() < deadline, f"still pending: {data}"
        await asyncio.sleep(0.05)


def storage_files(data: Path, expected: set[Path]) -> dict[str, bytes]:
    """Every file in the SQLite file's directory (-wal and -shm included) but ``expected``."""
    return {
        f"file {path.name}": path.read_bytes()
        for path in sorted(data.iterdir())
        if path.is_file() and path not in expected
    }


def pg_dump(name: str) -> bytes:
    dumped = subprocess.run(
        [PG_DUMP, "--format=plain", "--no-owner", f"{POSTGRES}/{name}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return dumped.stdout


@pytest.mark.timeout(90)
async def test_no_secret_is_in_storage_or_logs_in_clear(
    backend: str,
    database: tuple[str, str | None],
    tmp_path: Path,
    sitecustomize: Path,
) -> None:
    url, pg_name = database
    data = tmp_path / "data" if pg_name is None else tmp_path  # where serve leaves its files
    logs = tmp_path / "logs"
    logs.mkdir()
    seen = Secrets()
    running: dict[str, bytes] = {}  # SQLite's files while serve runs
    seen["configured admin token"] = "configured-admin-" + secrets.token_urlsafe(24)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")},
        "PYTHONPATH": str(sitecustomize),
        "COLUMNS": "200",
        "HOTSPOT_WEBHOOKS_DATABASE_URL": url,
        "HOTSPOT_WEBHOOKS_RETRY_POLICY": "next-pass",
        "HOTSPOT_WEBHOOKS_MAX_RETRIES": "3",
    }
    if pg_name is not None:
        seen["secret key"] = "secret-key-" + secrets.token_urlsafe(24)
        env["HOTSPOT_WEBHOOKS_SECRET_KEY"] = seen["secret key"]
    # the first admin token's file: beside the SQLite file, or (PostgreSQL) in the working directory
    token_file = data / (
        "hooks.db.admin-token" if pg_name is None else "hotspot-webhooks.admin-token"
    )
    key_file = data / "hooks.db.secret-key"
    ok = PythonReceiver()
    flaky = PythonReceiver(respond=lambda n: 500 if n <= 2 else 200)  # two failed attempts first
    await ok.start()
    await flaky.start()
    # a webhook's own headers and auth (SPEC §9), and the access token an OAuth2 endpoint issues
    for name in ("header value", "basic password", "bearer token", "oauth2 client secret"):
        seen[name] = f"{name.replace(' ', '-')}-" + secrets.token_urlsafe(24)
    seen["oauth2 access token"] = "issued-access-" + secrets.token_urlsafe(24)
    token_endpoint = await TokenEndpoint(seen["oauth2 access token"]).start()
    client = httpx.AsyncClient(timeout=30)
    try:
        # 1. The admin token configured: none is generated, so no token file is written.
        configured = {**env, "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": seen["configured admin token"]}
        async with serving(configured, tmp_path, logs, 1, client) as server:
            api = Caller(client, server)
            admin = seen["configured admin token"]
            acme = await api.ok("POST", "/v1/operators", admin, {"name": "acme"})
            seen["operator token"] = acme["token"]
            further = await api.ok("POST", f"/v1/operators/{acme['id']}/tokens", admin)
            seen["further operator token"] = further["token"]
        assert not token_file.exists()

        # 2. A first start without one, and without a terminal: the token goes to a 0600 file.
        async with serving(env, tmp_path, logs, 2, client) as server:
            api = Caller(client, server)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            seen["generated admin token"] = admin = token_file.read_text().strip()
            other = await api.ok("POST", "/v1/operators", admin, {"name": "other"})
            seen["token put in a path"] = other["token"]  # used nowhere else: see the end
            operator = seen["operator token"]
            await api.ok("POST", "/v1/locations", operator, {"id": "loc-1", "name": "Café"})
            subscription = {"location_id": "loc-1", "event_type": "customer.create"}
            hook = await api.ok(
                "POST", "/v1/webhooks", operator, {**subscription, "callback_url": ok.url}
            )
            seen.webhook("webhook", hook)
            flaky_hook = await api.ok(
                "POST",
                "/v1/webhooks",
                operator,
                {**subscription, "callback_url": flaky.url},
                header="sn-apikey",
            )
            seen.webhook("flaky webhook", flaky_hook)
            rotated = await api.ok("POST", f"/v1/webhooks/{hook['id']}/rotate-key", operator)
            seen.webhook("rotated webhook", rotated)
            for name, auth in (
                ("basic", {"type": "basic", "username": "crm", "password": seen["basic password"]}),
                ("bearer", {"type": "bearer", "token": seen["bearer token"]}),
                (
                    "oauth2",
                    {
                        "type": "oauth2",
                        "token_url": token_endpoint.url,
                        "client_id": "crm-client",
                        "client_secret": seen["oauth2 client secret"],
                    },
                ),
            ):
                shaped = await api.ok(
                    "POST",
                    "/v1/webhooks",
                    operator,
                    {
                        **subscription,
                        "callback_url": ok.url,
                        "headers": {"X-Api-Key": seen["header value"]},
                        "auth": auth,
                    },
                )
                seen.webhook(f"{name} webhook", shaped)

            types = (await api.ok("GET", "/v1/event-types", operator))["data"]
            sample = next(t["sample"] for t in types if t["name"] == "customer.create")
            emitted = {"type": "customer.create", "location_id": "loc-1", "data": sample}
            event = await api.ok("POST", "/v1/events", operator, emitted, header="sn-apikey")
            batch = await api.ok("POST", "/v1/events/batch", operator, {"events": [emitted]})
            await api.ok("POST", f"/v1/webhooks/{hook['id']}/test", operator)
            delivered = await wait_until_delivered(api, operator, event["id"])
            delivered += await wait_until_delivered(api, operator, batch["data"][0]["id"])
            assert {d["status"] for d in delivered} == {"succeeded"}, delivered
            assert token_endpoint.issued == 1  # the oauth2 webhook's deliveries were authorized
            sent = [h for r in ok.requests for k, h in r.headers if k == "Authorization"]
            assert f"Bearer {seen['oauth2 access token']}" in sent, sent
            statuses = [a["status"] for d in delivered for a in d["attempts"]]
            assert statuses.count(500) == 2, statuses  # the flaky receiver's two failures
            await api.call("POST", f"/v1/deliveries/{delivered[0]['id']}/retry", operator)

            # tokens where they do not belong, wrong and revoked ones
            seen["wrong token"] = "hwt_" + secrets.token_urlsafe(32)
            await api.refused(401, "GET", "/v1/webhooks", seen["wrong token"])
            await api.refused(401, "GET", "/v1/webhooks", seen["wrong token"], header="sn-apikey")
            await api.refused(401, "GET", "/v1/webhooks", operator, header="X-Api-Key")
            for query in (
                f"token={operator}",
                f"api_key={hook['api_key']}",
                f"x={seen['webhook signing secret']}",
            ):
                await api.refused(401, "GET", f"/v1/webhooks?{query}", None)
            await api.refused(404, "GET", f"/v1/webhooks/{seen['token put in a path']}", operator)
            no_bearer = await client.get(
                f"{server.url}/v1/webhooks", headers={"Authorization": operator}
            )
            assert no_bearer.status_code == 401, no_bearer.text
            tokens = (await api.ok("GET", "/v1/tokens", operator))["data"]
            assert len(tokens) == 2, tokens
            # which token is which is not shown: revoke one, then find it by trying both
            await api.ok("DELETE", f"/v1/tokens/{tokens[1]['id']}", admin)
            answers = [
                (await api.call("GET", "/v1/webhooks", t)).status_code
                for t in (seen["operator token"], seen["further operator token"])
            ]
            assert sorted(answers) == [200, 401], answers
            await api.call("GET", f"/v1/{CANARY}", operator)  # a canary in the access log

            if pg_name is None:  # while it runs: the WAL holds what is not checkpointed yet
                running = storage_files(data, {token_file, key_file})
                assert any(name.endswith("-wal") for name in running), running.keys()
            # a backup holds the database and its secret key (which opens the sealed
            # secrets: that is what a backup is for), but no secret of a webhook in clear
            backup = tmp_path / "backup.tar.gz"
            made = await asyncio.to_thread(
                subprocess.run,
                [str(HOTSPOT_WEBHOOKS), "backup", str(backup)],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                timeout=120,
            )
            assert made.returncode == 0, made.stderr
    finally:
        await client.aclose()
        await ok.stop()
        await flaky.stop()
        await token_endpoint.stop()

    output = {path.name: path.read_bytes() for path in sorted(logs.iterdir())}
    places = {f"log {name}": content for name, content in output.items()}
    assert any(CANARY.encode() in content for content in output.values()), "no access log?"
    assert any(b" DEBUG " in content for content in output.values()), "no debug log?"
    if pg_name is None:
        seen["secret key"] = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with sqlite3.connect(data / "hooks.db") as db:  # stopped: its WAL is checkpointed
            db.execute("CREATE TABLE canary (value TEXT)")
            db.execute("INSERT INTO canary VALUES (?)", (CANARY,))
        db.close()
        stored = storage_files(data, {token_file, key_file})
        places |= {f"while running, {name}": content for name, content in running.items()}
    else:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE canary (value text)")
            await conn.execute("INSERT INTO canary VALUES ($1)", CANARY)
        finally:
            await conn.close()
        stored = {"pg_dump": await asyncio.to_thread(pg_dump, pg_name)}
    assert any(CANARY.encode() in content for content in stored.values()), "storage unread?"
    places |= stored

    assert len(seen) >= 13, seen.keys()
    assert leaks(places, seen) == []
    webhook_secrets = {
        name: value
        for name, value in seen.items()
        if name in ("header value", "basic password", "bearer token") or name.startswith("oauth2")
    }
    with tarfile.open(tmp_path / "backup.tar.gz") as archive:
        members = {
            f"backup's {member.name}": archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }
    assert members, "an empty backup?"
    assert leaks(members, webhook_secrets) == []
    # the generated admin token is in its file, and nowhere else
    assert leaks({"token file": token_file.read_bytes()}, seen) == [
        f"generated admin token ({seen['generated admin token'][:12]}...) is in token file"
    ]
