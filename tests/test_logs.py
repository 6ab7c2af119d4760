"""Structured logs: ``LOG_FORMAT=json`` through a full run of the real ``serve``: every line
of its output is a JSON object of one schema (the access log's too), every request's lines
carry its request id (the client's, when sane), delivery lines name their webhook, a 410 that
disables a webhook and a circuit that opens each get a WARNING line, and no secret is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hotspot_webhooks import catalog, logs
from hotspot_webhooks.api.request_ids import incoming_id
from hotspot_webhooks.redaction import redact
from tests.receivers import PythonReceiver, free_port

EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
ADMIN_TOKEN = "hwt_" + secrets.token_urlsafe(32)
SCHEMA = {"time", "level", "logger", "message"}


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    env = {**clean, **{f"HOTSPOT_WEBHOOKS_{k.upper()}": v for k, v in settings.items()}}
    with (tmp_path / "out.log").open("wb") as out, (tmp_path / "err.log").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", "serve", "--port", str(port),
             "--db", f"sqlite:///{tmp_path / 'hooks.db'}"],
            stdout=out, stderr=err, cwd=tmp_path, env=env,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def wait_healthy(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        assert process.poll() is None, "serve exited"
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not answer /healthz")


async def test_json_logs_of_a_full_run_are_json_lines_with_ids_and_no_secret(
    tmp_path: Path,
) -> None:
    ok = await PythonReceiver().start()
    failing = await PythonReceiver(respond=lambda n: 500).start()
    gone = await PythonReceiver(respond=lambda n: 410).start()
    refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
    seen: dict[str, str] = {"admin token": ADMIN_TOKEN}
    settings = {
        "log_format": "json",
        "admin_token": ADMIN_TOKEN,
        "allow_private_targets": "true",
        "interval": "0.1",
        "retry_policy": "next-pass",
        "max_retries": "0",
        "circuit_threshold": "2",
    }
    try:
        with serving(tmp_path, **settings) as (url, process):
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                await wait_healthy(client, process)
                answer = await client.post("/v1/operators", json={"name": "acme"}, headers=admin)
                token = seen["operator token"] = answer.json()["token"]
                operator = {"Authorization": f"Bearer {token}"}
                await client.post("/v1/locations", json={"id": "loc-1", "name": "Café"},
                                  headers=operator)  # fmt: skip
                hooks: dict[str, dict[str, Any]] = {}
                for name, receiver_url in (
                    ("ok", ok.url), ("failing", failing.url), ("gone", gone.url),
                    ("refused", refused),
                ):  # fmt: skip
                    body = {"location_id": "loc-1", "event_type": EVENT,
                            "callback_url": receiver_url}  # fmt: skip
                    answer = await client.post("/v1/webhooks", json=body, headers=operator)
                    hooks[name] = answer.json()
                    seen[f"{name} api key"] = hooks[name]["api_key"]
                    seen[f"{name} signing secret"] = hooks[name]["signing_secret"]
                emitted = await client.post(
                    "/v1/events",
                    json={"type": EVENT, "location_id": "loc-1", "data": SAMPLE},
                    headers={**operator, "X-Request-Id": "emit-42"},
                )
                assert emitted.headers["x-request-id"] == "emit-42"
                for _ in range(3):  # enough unreachable attempts to open the circuit
                    await client.post(
                        "/v1/events",
                        json={"type": EVENT, "location_id": "loc-1", "data": SAMPLE},
                        headers=operator,
                    )
                made_up = await client.get("/healthz", headers={"X-Request-Id": token})
                generated = made_up.headers["x-request-id"]
                assert generated != token and generated.startswith("req_")
                await client.get("/v1/webhooks", params={"token": ADMIN_TOKEN})

                async def disabled() -> bool:
                    found = await client.get(f"/v1/webhooks/{hooks['gone']['id']}",
                                             headers=operator)  # fmt: skip
                    return bool(found.json()["status"] == "disabled")

                for _ in range(200):
                    if await disabled() and len(failing.requests) >= 4:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # the circuit's line and the last outcomes
    finally:
        for receiver in (ok, failing, gone):
            await receiver.stop()

    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    output = (tmp_path / "err.log").read_text() + (tmp_path / "out.log").read_text()
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    for line in lines:
        assert set(line) >= SCHEMA, line
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access and all(line.get("request_id") for line in access)
    assert any(
        line["request_id"] == "emit-42" and line["method"] == "POST" and line["status"] == 202
        for line in access
    ), access
    assert any(line["request_id"] == generated for line in access)

    gone_id = hooks["gone"]["id"]
    disabled_lines = [line for line in lines if "disabled" in line["message"]
                      and line.get("webhook_id") == gone_id]  # fmt: skip
    assert disabled_lines and disabled_lines[0]["level"] == "WARNING", lines
    assert "410" in disabled_lines[0]["message"]
    circuit = [line for line in lines if line["message"].startswith("circuit open")]
    assert circuit and circuit[0]["level"] == "WARNING", lines
    assert hooks["refused"]["id"] in circuit[0]["webhook_ids"]
    assert "endpoint" in circuit[0]
    given_up = [line for line in lines if "failed for good" in line["message"]]
    assert given_up, lines
    assert {line["webhook_id"] for line in given_up} <= {h["id"] for h in hooks.values()}
    assert all(line["delivery_id"] in line["message"] for line in given_up)

    for name, secret in seen.items():
        assert secret not in output, f"the {name} is in the log"


def test_text_lines_carry_the_same_fields_after_the_message() -> None:
    formatter = logs.TextLines()
    record = logging.LogRecord("hotspot_webhooks.x", logging.INFO, "", 0, "sent %s", ("it",), None)
    record.event_type = EVENT
    token = logs.request_id.set("req-1")
    try:
        with logs.delivery_context("wh_1", "dlv_1"):
            line = formatter.format(record)
    finally:
        logs.request_id.reset(token)
    assert line.endswith(
        f"INFO hotspot_webhooks.x sent it request_id=req-1 webhook_id=wh_1 delivery_id=dlv_1 "
        f"event_type={EVENT}"
    ), line


def test_a_secret_in_a_message_is_cut_out_and_cannot_forge_a_line() -> None:
    key = secrets.token_urlsafe(32)
    record = logging.LogRecord("x", logging.WARNING, "", 0, "key %s then\nFAKE line", (key,), None)
    line = logs.JsonLines().format(record)
    assert key not in line
    assert "\n" not in line and json.loads(line)["message"].startswith("key [redacted] then")


def test_a_signing_secret_is_cut_out_whole_in_base64_and_base64url() -> None:
    # a "-" or "_" right after the prefix once left a base64url secret whole in the log,
    # and one further in left its tail
    for secret in ("whsec_-uJoavB-mi9HbiwjOaBGQs6UlgICwLG9", "whsec_ab+c/d=_e-fGh", "whsec_x%2By"):
        assert redact(f"/v1/deliveries?x={secret}&y=1") == "/v1/deliveries?x=[redacted]&y=1"


def test_only_a_sane_request_id_is_taken_from_the_client() -> None:
    assert incoming_id(b"abc-123.x:y_z") == "abc-123.x:y_z"
    assert incoming_id(b"8c1d5c8e-9b7f-4a57-9d2c-0d1f0b7f3e11") is not None  # a UUID
    assert incoming_id(b"x" * 101) is None
    assert incoming_id(b"has space") is None
    assert incoming_id(b"hwt_" + b"a" * 20) is None  # a token's shape: not echoed, not logged
    assert incoming_id("caf\u00e9".encode()) is None
