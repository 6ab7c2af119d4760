"""Whose address a request comes from (S11): ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are
believed only from the proxies ``HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS`` names; by default from
none, so a client cannot dodge the failed-authentication limit (``api/lockout.py``) by sending a
new ``X-Forwarded-For`` with each guess. uvicorn's own ``FORWARDED_ALLOW_IPS`` variable turns
nothing on.

Through the real ``api`` command, started as a subprocess on a free port of 127.0.0.1, the way
a deployment runs it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from hotspot_webhooks.api.lockout import FAILURES_ALLOWED
from hotspot_webhooks.config import Settings
from tests.live_api import LiveAPI
from tests.receivers import free_port
from tests.shapes import error_of

ADMIN_TOKEN = "hwt_admin-token-for-the-proxy-header-tests-0123456789"
BAD_TOKEN = "hwt_not-a-token-anyone-was-given"


def start_api(tmp_path: Path, port: int, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HOTSPOT_WEBHOOKS_") and name != "FORWARDED_ALLOW_IPS"
    }
    env = {**clean, "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN_TOKEN, **environment}
    with (tmp_path / "api.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", "api", "--port", str(port),
             "--db", f"sqlite:///{tmp_path / 'hooks.db'}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip


@asynccontextmanager
async def api_process(
    tmp_path: Path, environment: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """``hotspot-webhooks api`` on a free port with ``environment`` added; a client for it."""
    port = free_port()
    process = start_api(tmp_path, port, environment or {})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(1200):  # up to a minute on a loaded machine
                assert process.poll() is None, (tmp_path / "api.log").read_text()
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("api did not answer /healthz within a minute")
            yield client
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def forwarded_for(n: int) -> dict[str, str]:
    """A different client address claimed on each request."""
    return {"Authorization": f"Bearer {BAD_TOKEN}", "X-Forwarded-For": f"203.0.113.{n % 250}"}


async def guess(client: httpx.AsyncClient, n: int) -> httpx.Response:
    return await client.get("/v1/locations", headers=forwarded_for(n))


# uvicorn's own variable, set as its documentation suggests: it must not turn trust on
@pytest.mark.parametrize(
    "environment", [{}, {"FORWARDED_ALLOW_IPS": "127.0.0.1"}, {"FORWARDED_ALLOW_IPS": "*"}]
)
async def test_a_new_x_forwarded_for_on_each_bad_token_does_not_dodge_the_lockout(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    async with api_process(tmp_path, environment) as client:
        for n in range(FAILURES_ALLOWED):
            error_of(await guess(client, n), 401)

        refused = error_of(await guess(client, FAILURES_ALLOWED), 429)
        # the address counted is the peer's, whatever the header claims
        assert "127.0.0.1" in refused["message"], refused
        assert "203.0.113." not in refused["message"], refused
    if environment:
        log = (tmp_path / "api.log").read_text()
        assert "FORWARDED_ALLOW_IPS is uvicorn's variable and is ignored" in log, log


async def test_a_trusted_proxy_s_x_forwarded_for_names_the_client_address(
    tmp_path: Path,
) -> None:
    environment = {"HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    async with api_process(tmp_path, environment) as client:
        for _ in range(FAILURES_ALLOWED):
            error_of(await guess(client, 7), 401)

        refused = error_of(await guess(client, 7), 429)
        assert "203.0.113.7" in refused["message"], refused
        # another client behind the same proxy is not locked out with it
        error_of(await guess(client, 8), 401)
        # nor is the proxy itself, for a request that carries no X-Forwarded-For
        mine = await client.get("/v1/locations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert mine.status_code == 200, mine.text


async def test_a_proxy_that_is_not_trusted_is_not_believed_either(tmp_path: Path) -> None:
    environment = {"HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS": "192.0.2.1, 10.0.0.0/8"}
    async with api_process(tmp_path, environment) as client:
        for n in range(FAILURES_ALLOWED):
            error_of(await guess(client, n), 401)
        error_of(await guess(client, FAILURES_ALLOWED), 429)


# ---- the setting --------------------------------------------------------------------------


def test_by_default_no_proxy_is_trusted() -> None:
    assert Settings(_env_file=None).forwarded_allow_ips == ""


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "127.0.0.1,::1", " 10.0.0.0/8 , 192.0.2.7 ", "*", "fd00::/8", ""]
)
def test_proxies_are_named_by_address_network_or_star(value: str) -> None:
    assert Settings(forwarded_allow_ips=value, _env_file=None).forwarded_allow_ips == value


@pytest.mark.parametrize(
    "value", ["proxy.internal", "127.0.0.1,", "10.0.0.0/33", "127.0.0.1 10.0.0.1", "*,127.0.0.1"]
)
def test_a_proxy_that_is_not_an_address_or_a_network_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(forwarded_allow_ips=value, _env_file=None)
    assert [e["loc"] for e in info.value.errors()] == [("forwarded_allow_ips",)]
    assert "FORWARDED_ALLOW_IPS" in str(info.value) or "forwarded_allow_ips" in str(info.value)


def test_the_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS", "127.0.0.1")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's: not ours
    assert Settings(_env_file=None).forwarded_allow_ips == "127.0.0.1"


# ---- X-Forwarded-Proto: the control center's Secure cookie ---------------------------------


async def test_x_forwarded_proto_from_a_peer_that_is_not_trusted_is_ignored(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    form = await api.client.get("/ui/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert form.status_code == 200
    assert "Secure" not in form.headers["set-cookie"]


async def test_x_forwarded_proto_from_a_trusted_proxy_makes_the_cookie_secure(
    make_api: Callable[..., Any],
) -> None:
    api: LiveAPI = await make_api(dispatch=False, forwarded_allow_ips="127.0.0.1,::1")
    form = await api.client.get("/ui/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert form.status_code == 200
    assert "Secure" in form.headers["set-cookie"]
