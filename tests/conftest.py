"""Shared fixtures: a real SQLite file per test, a migrated service, real receivers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.receivers import PythonReceiver, RawSocketReceiver

# Settings must come from the tests, never from the developer's environment or .env
for _name in list(os.environ):
    if _name.startswith("HOTSPOT_WEBHOOKS_"):
        del os.environ[_name]


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'hooks.db'}",
            "allow_private_targets": True,
            "interval": 0.05,
            "retry_policy": "next-pass",
            "_env_file": None,
        }
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
    await service.create_operator("acme")
    await service.create_location("loc-1", "Café Central", "acme")
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
