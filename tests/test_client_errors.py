"""The remote CLI's client says why it cannot reach a server in plain words: a refused
connection and a certificate it does not trust, each one line (client.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from hotspot_webhooks.client import RemoteService, ServerUnreachable
from tests.receivers import free_port, serving
from tests.test_sender import certificate_authority


async def unreachable(base_url: str) -> str:
    """What the client says when asked for the operators of ``base_url``."""
    client = RemoteService(base_url, "token")
    try:
        with pytest.raises(ServerUnreachable) as info:
            await client.operators.get_all()
    finally:
        await client.close()
    return str(info.value)


async def test_a_refused_connection_is_named_without_aiohttp_wording() -> None:
    port = free_port()
    said = await unreachable(f"http://127.0.0.1:{port}")
    assert f"cannot reach the server at http://127.0.0.1:{port}: connection refused" in said
    assert "ssl:default" not in said


async def test_an_untrusted_certificate_is_named(tmp_path: Path) -> None:
    _, context = certificate_authority(tmp_path)  # a CA this machine does not trust

    async def handle(request: web.Request) -> web.Response:
        return web.json_response([])

    async with serving(handle, method="GET", ssl_context=context) as port:
        said = await unreachable(f"https://127.0.0.1:{port}")
    assert "certificate verify failed" in said
