"""The remote CLI's client says why it cannot reach a server in plain words: a refused
connection and a certificate it does not trust, each one line (client.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from hotspot_webhooks.client import RemoteService, ServerUnreachable
from tests.receivers import free_port
from tests.test_sender import certificate_authority


async def test_a_refused_connection_is_named_without_aiohttp_wording() -> None:
    port = free_port()
    client = RemoteService(f"http://127.0.0.1:{port}", "token")
    try:
        with pytest.raises(ServerUnreachable) as info:
            await client.list_operators()
    finally:
        await client.close()
    assert f"cannot reach the server at http://127.0.0.1:{port}: connection refused" in str(
        info.value
    )
    assert "ssl:default" not in str(info.value)


async def test_an_untrusted_certificate_is_named(tmp_path: Path) -> None:
    _, context = certificate_authority(tmp_path)  # a CA this machine does not trust

    async def handle(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = RemoteService(f"https://127.0.0.1:{port}", "token")
    try:
        with pytest.raises(ServerUnreachable) as info:
            await client.list_operators()
    finally:
        await client.close()
        await runner.cleanup()
    assert "certificate verify failed" in str(info.value)
