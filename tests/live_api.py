"""The REST API served for real: uvicorn on a free 127.0.0.1 port, in the test's event loop,
configured as ``serve`` configures it (``api.server.server_config``), talked to over HTTP with
httpx. With ``dispatch`` the dispatcher runs beside it, as in ``serve``."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import httpx
import uvicorn

from hotspot_webhooks.api.app import create_app
from hotspot_webhooks.api.server import server_config
from hotspot_webhooks.config import Settings
from tests.receivers import free_port

ADMIN_TOKEN = "admin-token-for-the-tests-0123456789"


class Hooked(NamedTuple):
    """An operator's token and a webhook at one of its locations (as created: with its key)."""

    token: str
    webhook: dict[str, Any]


class LiveAPI:
    def __init__(self, settings: Settings, *, dispatch: bool = True) -> None:
        self.settings = settings
        self.dispatch = dispatch
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30)

    async def start(self) -> LiveAPI:
        config = server_config(
            create_app(self.settings, dispatch=self.dispatch),
            host="127.0.0.1",
            port=self.port,
            forwarded_allow_ips=self.settings.forwarded_allow_ips,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the API stopped before it started")
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        await self.client.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    # helpers that read as what a caller does

    async def call(
        self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(
        self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any
    ) -> Any:
        """Call and insist on a 2xx answer; return its JSON (None for 204)."""
        response = await self.call(method, path, token, **kwargs)
        assert response.is_success, f"{method} {path} → {response.status_code} {response.text}"
        return None if response.status_code == 204 else response.json()

    async def operator(self, name: str) -> str:
        """Create an operator; return its token."""
        created = await self.ok("POST", "/v1/operators", json={"name": name})
        return str(created["token"])

    async def location(self, token: str, location_id: str, name: str = "Café") -> None:
        await self.ok("POST", "/v1/locations", token, json={"id": location_id, "name": name})

    async def operator_at(self, *location_ids: str, name: str = "acme") -> str:
        """Create operator ``name`` with these locations; return its token."""
        token = await self.operator(name)
        for location_id in location_ids:
            await self.location(token, location_id)
        return token

    async def webhook(
        self, token: str, location_id: str, url: str, event_type: str = "customer.create"
    ) -> dict[str, Any]:
        body = {"location_id": location_id, "event_type": event_type, "callback_url": url}
        created: dict[str, Any] = await self.ok("POST", "/v1/webhooks", token, json=body)
        return created

    async def hooked(
        self,
        location_id: str,
        url: str,
        event_type: str = "customer.create",
        *,
        name: str = "acme",
    ) -> Hooked:
        """Create operator ``name`` with ``location_id`` and a webhook there to ``url``."""
        token = await self.operator_at(location_id, name=name)
        return Hooked(token, await self.webhook(token, location_id, url, event_type))

    async def wait_for_delivery(
        self, token: str, delivery_id: str, status: str, within: float = 15
    ) -> dict[str, Any]:
        """Poll a delivery until it reaches ``status``."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found: dict[str, Any] = await self.ok("GET", f"/v1/deliveries/{delivery_id}", token)
            if found["status"] == status:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"delivery stayed {found['status']}: {found}")
            await asyncio.sleep(0.05)
