"""Shared fixtures: a real database per test (a SQLite file, or a PostgreSQL database of its
own), a migrated service, real receivers.

A test module that sets ``BACKENDS = ("sqlite", "postgresql")`` runs each of its tests that
use a database on both; ``@pytest.mark.sqlite_only`` keeps a test about SQLite itself on it.
PostgreSQL is the server at 127.0.0.1:5432: without it those runs skip (and say so), unless
``HW_TEST_POSTGRES=required`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.postgres import POSTGRES, POSTGRES_SECRET_KEY, admin_sql, require_postgres
from tests.receivers import PythonReceiver, RawSocketReceiver

# Settings must come from the tests, never from the developer's environment or .env
for _name in list(os.environ):
    if _name.startswith("HOTSPOT_WEBHOOKS_"):
        del os.environ[_name]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of SQLite itself; not run on others")
    config.addinivalue_line("markers", "postgresql_only: a test that needs PostgreSQL itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgresql_only") is not None:
        metafunc.parametrize("backend", ["postgresql"], indirect=True)
    elif metafunc.definition.get_closest_marker("sqlite_only") is None:
        backends = getattr(metafunc.module, "BACKENDS", None)
        if backends:
            metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind under test: SQLite unless the module asks for both."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of the backend under test; a PostgreSQL one is dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'hooks.db'}"
        return
    require_postgres()
    name = f"hw_test_{secrets.token_hex(6)}"
    await admin_sql(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        await admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "allow_private_targets": True,
            "interval": 0.05,
            "retry_policy": "next-pass",
            "_env_file": None,
        }
        if database_url.startswith("postgresql"):
            values["secret_key"] = POSTGRES_SECRET_KEY  # required there: no key file
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def service(make_settings: Callable[..., Settings]) -> AsyncIterator[Service]:
    opened = await Service.open(make_settings(), migrate=True)
    yield opened
    await opened.close()


@pytest.fixture
async def location(service: Service) -> str:
    await service.operators.create("acme")
    await service.locations.create("loc-1", "Café Central", "acme")
    return "loc-1"


@pytest.fixture
async def make_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Start the REST API (uvicorn on 127.0.0.1) with settings overrides; stopped at the end."""
    started: list[LiveAPI] = []

    async def make(*, dispatch: bool = True, **overrides: Any) -> LiveAPI:
        overrides.setdefault("admin_token", ADMIN_TOKEN)
        api = await LiveAPI(make_settings(**overrides), dispatch=dispatch).start()
        started.append(api)
        return api

    yield make
    for api in reversed(started):
        await api.stop()


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> LiveAPI:
    """The REST API with the dispatcher, as ``serve --dev`` runs it, on a fresh SQLite file."""
    live: LiveAPI = await make_api()
    return live


@pytest.fixture
async def python_receiver() -> AsyncIterator[PythonReceiver]:
    receiver = await PythonReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def raw_receiver() -> AsyncIterator[RawSocketReceiver]:
    receiver = await RawSocketReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def browsers(served: LiveAPI) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Cookie-keeping clients of the ``served`` app (the module's own fixture), closed after:
    ``browsers(**headers)`` opens one more, as another browser would."""
    opened: list[httpx.AsyncClient] = []

    def new(**headers: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=served.url, timeout=30, headers=headers)
        opened.append(client)
        return client

    yield new
    for client in opened:
        await client.aclose()


def run_cli(
    *args: str,
    db: str | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``hotspot-webhooks`` command in a subprocess."""
    command = [sys.executable, "-m", "hotspot_webhooks", *args]
    if db is not None:
        command += ["--db", db]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        cwd=tempfile.mkdtemp(prefix="hw-cli-"),  # no stray .env from the developer's tree
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
