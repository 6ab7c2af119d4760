"""The whole product driven only over REST, as an integrator would.

The admin creates an operator; the operator creates a location and, for every event type,
one webhook to a PHP receiver written like the original platform's sample and one to a
receiver that verifies with the official ``standardwebhooks`` library. One event of each
type is emitted; each is delivered to both and verified by both. A receiver that fails
twice is retried until it answers 200, and its three attempts are listed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from hotspot_webhooks import catalog
from tests.live_api import LiveAPI
from tests.receivers import PhpReceiver, PythonReceiver, serving

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
EVENT_TYPES = list(catalog.EVENT_TYPES)


async def pending_deliveries(api: LiveAPI, token: str) -> list[dict[str, Any]]:
    page = await api.ok("GET", "/v1/deliveries", token, params={"status": "pending"})
    data: list[dict[str, Any]] = page["data"]
    return data


async def settle(api: LiveAPI, token: str) -> None:
    """Wait until every delivery has left ``pending``."""
    for _ in range(300):
        if not await pending_deliveries(api, token):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still pending: {await pending_deliveries(api, token)}")


async def test_rest_only_every_event_type_reaches_php_and_standard_webhooks_receivers(
    api: LiveAPI, tmp_path: Path
) -> None:
    token = await api.operator("acme-hotspots")
    await api.ok("POST", "/v1/locations", token, json={"id": "loc-1042", "name": "Café Central"})

    secrets: dict[str, str] = {}  # webhook id → whsec_ signing secret
    verified: list[tuple[str, dict[str, Any]]] = []  # (event type header, payload)

    async def standard_receiver(request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.match_info["tail"]
        try:
            payload = StandardWebhook(secrets[webhook_id]).verify(body, dict(request.headers))
        except (WebhookVerificationError, KeyError):
            return web.Response(status=401, text="invalid signature")
        verified.append((request.headers["X-Hotspotsystem-Event"], payload))
        return web.Response(text="OK")

    php_receivers: list[PhpReceiver] = []
    try:
        async with serving(standard_receiver) as standard_port:
            for event_type in EVENT_TYPES:
                # the PHP receiver needs the key at start: create, start it, then point there
                php_hook = await api.webhook(token, "loc-1042", "http://127.0.0.1:9/", event_type)
                php = PhpReceiver(php_hook["api_key"], tmp_path / f"{event_type}.log")
                php_receivers.append(php)
                await api.ok(
                    "PATCH", f"/v1/webhooks/{php_hook['id']}", token, json={"callback_url": php.url}
                )
                standard_hook = await api.webhook(
                    token, "loc-1042", f"http://127.0.0.1:{standard_port}/placeholder", event_type
                )
                secrets[standard_hook["id"]] = standard_hook["signing_secret"]
                await api.ok(
                    "PATCH",
                    f"/v1/webhooks/{standard_hook['id']}",
                    token,
                    json={
                        "callback_url": f"http://127.0.0.1:{standard_port}/{standard_hook['id']}"
                    },
                )

            emitted = {}
            for event_type in EVENT_TYPES:
                sample = dict(catalog.EVENT_TYPES[event_type].sample)
                body = {"type": event_type, "location_id": "loc-1042", "data": sample}
                result = await api.ok("POST", "/v1/events", token, json=body)
                assert result["deliveries"] == 2
                emitted[event_type] = result["id"]

            await settle(api, token)

        for event_type, php in zip(EVENT_TYPES, php_receivers, strict=True):
            [entry] = php.entries()
            assert entry["literal_header_verified"] is True
            assert entry["event"] == event_type
            assert entry["payload"] == dict(catalog.EVENT_TYPES[event_type].sample)
        assert sorted(verified, key=lambda v: v[0]) == sorted(
            ((t, dict(catalog.EVENT_TYPES[t].sample)) for t in EVENT_TYPES), key=lambda v: v[0]
        )
        for event_type, event_id in emitted.items():
            page = await api.ok("GET", "/v1/deliveries", token, params={"event_id": event_id})
            assert [d["status"] for d in page["data"]] == ["succeeded", "succeeded"]
            assert {d["event_type"] for d in page["data"]} == {event_type}
            event = await api.ok("GET", f"/v1/events/{event_id}", token)
            assert event["data"] == dict(catalog.EVENT_TYPES[event_type].sample)
    finally:
        for php in php_receivers:
            php.stop()


async def test_rest_only_a_failing_receiver_is_retried_and_its_attempts_are_listed(
    api: LiveAPI,
) -> None:
    receiver = await PythonReceiver(respond=lambda n: 503 if n <= 2 else 200).start()
    try:
        token, hook = await api.hooked(
            "loc-7", receiver.url, "transaction.paid.create", name="acme-hotspots"
        )
        sample = dict(catalog.EVENT_TYPES["transaction.paid.create"].sample)
        sent = await api.ok(
            "POST",
            "/v1/events",
            token,
            json={"type": "transaction.paid.create", "location_id": "loc-7", "data": sample},
        )
        [delivery] = (
            await api.ok("GET", "/v1/deliveries", token, params={"webhook_id": hook["id"]})
        )["data"]
        assert delivery["event_id"] == sent["id"]

        done = await api.wait_for_delivery(token, delivery["id"], "succeeded")

        assert done["attempt_count"] == 3
        assert [a["number"] for a in done["attempts"]] == [1, 2, 3]
        assert [a["status"] for a in done["attempts"]] == [503, 503, 200]
        assert [a["response_excerpt"] for a in done["attempts"]] == [
            "answer 503",
            "answer 503",
            "answer 200",
        ]
        assert [a["error"] for a in done["attempts"]] == [None, None, None]  # no transport error
        assert (done["last_status"], done["last_error"]) == (200, None)
        for attempt in done["attempts"]:
            assert attempt["request_headers"]["X-Hotspotsystem-Delivery"] == delivery["id"]
            assert attempt["duration_ms"] >= 0
        assert [json.loads(r.body) for r in receiver.requests] == [sample] * 3
    finally:
        await receiver.stop()
