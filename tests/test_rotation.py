"""Key rotation with grace (SPEC §7 ``ROTATION_GRACE``, issue 9), end to end over REST.

After ``rotate-key`` the original header is signed with the new key at once, while for the
grace period ``webhook-signature`` carries a signature under each key, so a Standard Webhooks
receiver still configured with the old secret accepts every delivery until it switches.
After the window the old key no longer signs and is erased from storage. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from hotspot_webhooks.store.schema import webhooks
from tests.live_api import LiveAPI
from tests.receivers import PhpReceiver, PythonReceiver

BACKENDS = ("sqlite", "postgresql")
MakeAPI = Callable[..., Any]
GRACE = 8  # seconds: long enough for the deliveries made within it, short for the test


async def emit(api: LiveAPI, token: str) -> None:
    data = dict(catalog.get_event_type("customer.create").sample)
    body = {"type": "customer.create", "location_id": "loc-1", "data": data}
    await api.ok("POST", "/v1/events", token, json=body)


async def next_request(receiver: PythonReceiver, seen: int, within: float = 15) -> Any:
    deadline = time.monotonic() + within
    while len(receiver.requests) <= seen:
        assert time.monotonic() < deadline, "no delivery arrived"
        await asyncio.sleep(0.02)
    return receiver.requests[seen]


def original_signature(api_key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(api_key.encode(), body, hashlib.sha256).digest()).decode()


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        StandardWebhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def test_during_the_grace_both_keys_verify_and_after_it_only_the_new_one(
    make_api: MakeAPI, python_receiver: PythonReceiver, tmp_path: Path
) -> None:
    api: LiveAPI = await make_api(
        rotation_grace=timedelta(seconds=GRACE), heartbeat=0.2, worker_timeout=1
    )
    hooked = await api.hooked("loc-1", python_receiver.url)
    old = hooked.webhook

    rotated = await api.ok("POST", f"/v1/webhooks/{old['id']}/rotate-key", hooked.token)
    rotated_at = time.monotonic()

    assert rotated["api_key"] != old["api_key"]
    assert rotated["previous_key_expires_at"] is not None
    await emit(api, hooked.token)
    during = await next_request(python_receiver, 0)
    headers = during.header_dict
    assert time.monotonic() - rotated_at < GRACE, "the machine was too slow for this test"
    # the original header: the new key only (a PHP receiver switches keys at once)
    assert headers["X-Hotspotsystem-Hmac-Sha256"] == original_signature(
        rotated["api_key"], during.body
    )
    # Standard Webhooks: one signature per key, the new one first; either secret verifies
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verifies(rotated["signing_secret"], during.body, headers)
    assert verifies(old["signing_secret"], during.body, headers)
    assert not verifies("whsec_" + base64.b64encode(b"some other key" * 3).decode(),
                        during.body, headers)  # fmt: skip

    # the receiver as the original docs write it, given the new key, verifies at once
    php = PhpReceiver(rotated["api_key"], tmp_path / "php.log")
    try:
        await api.ok(
            "PATCH", f"/v1/webhooks/{old['id']}", hooked.token, json={"callback_url": php.url}
        )
        await emit(api, hooked.token)
        deadline = time.monotonic() + 15
        while not php.entries():
            assert time.monotonic() < deadline, "the PHP receiver got nothing"
            await asyncio.sleep(0.05)
        [entry] = php.entries()
        assert entry["literal_header_verified"] is True and entry["server_var_verified"] is True
    finally:
        php.stop()
    await api.ok(
        "PATCH", f"/v1/webhooks/{old['id']}", hooked.token,
        json={"callback_url": python_receiver.url},
    )  # fmt: skip

    # after the window: erased from storage, and signing with the new key alone
    service = await Service.open(api.settings)
    try:
        deadline = time.monotonic() + GRACE + 10
        while await previous_key_of(service, old["id"]) is not None:
            assert time.monotonic() < deadline, "the previous key was never erased"
            await asyncio.sleep(0.1)
    finally:
        await service.close()
    shown = await api.ok("GET", f"/v1/webhooks/{old['id']}", hooked.token)
    assert shown["previous_key_expires_at"] is None
    seen = len(python_receiver.requests)
    await emit(api, hooked.token)
    after = await next_request(python_receiver, seen)
    headers = after.header_dict
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verifies(rotated["signing_secret"], after.body, headers)
    assert not verifies(old["signing_secret"], after.body, headers)


async def previous_key_of(service: Service, webhook_id: str) -> str | None:
    async with service.store.db.read() as conn:
        query = select(webhooks.c.previous_api_key_encrypted).where(webhooks.c.id == webhook_id)
        found: str | None = (await conn.execute(query)).scalar_one()
        return found


@pytest.mark.parametrize("grace", ["0", "24h"])
async def test_rotating_twice_keeps_one_previous_key_and_a_zero_grace_keeps_none(
    make_api: MakeAPI, python_receiver: PythonReceiver, grace: str
) -> None:
    api: LiveAPI = await make_api(rotation_grace=grace)
    hooked = await api.hooked("loc-1", python_receiver.url)
    path = f"/v1/webhooks/{hooked.webhook['id']}/rotate-key"
    second = await api.ok("POST", path, hooked.token)
    third = await api.ok("POST", path, hooked.token)

    await emit(api, hooked.token)
    request = await next_request(python_receiver, 0)
    headers = request.header_dict

    assert verifies(third["signing_secret"], request.body, headers)
    assert not verifies(hooked.webhook["signing_secret"], request.body, headers)
    if grace == "0":
        assert third["previous_key_expires_at"] is None
        assert not verifies(second["signing_secret"], request.body, headers)
    else:
        assert verifies(second["signing_secret"], request.body, headers)


@pytest.mark.sqlite_only
def test_rotation_grace_is_read_from_the_environment_with_a_clear_error() -> None:
    assert Settings(_env_file=None, rotation_grace="90m").rotation_grace == timedelta(minutes=90)
    assert Settings(_env_file=None).rotation_grace == timedelta(hours=24)
    with pytest.raises(ValidationError, match="is not a duration"):
        Settings(_env_file=None, rotation_grace="soon")
