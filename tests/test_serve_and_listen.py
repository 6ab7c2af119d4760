"""`serve`, `listen` and the Python `emit` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import hotspot_webhooks
from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.receiver import compute_signature
from tests.conftest import run_cli
from tests.receivers import free_port, wait_for_port


def start(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hotspot_webhooks", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own server
        return response.status, json.loads(response.read())


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    output, _ = process.communicate(timeout=20)
    return process.returncode, output


def test_serve_dev_migrates_says_so_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    server = start("serve", "--dev", "--port", str(port), "--db", db)
    try:
        wait_for_port(port, timeout=30)
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, {"status": "ok"})
    finally:
        code, output = stop(server)
    # uvicorn re-raises the signal after a clean shutdown, as a service manager expects
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "development mode" in output
    assert "127.0.0.1" in output
    assert "Traceback" not in output
    assert (tmp_path / "serve.db").exists()


def test_serve_delivers_what_the_cli_emits_to_listen_which_verifies_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tour.db'}"
    private = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
    listen_port, serve_port = free_port(), free_port()
    assert run_cli("migrate", db=db).returncode == 0
    assert run_cli("operators", "create", "acme", db=db).returncode == 0
    assert run_cli("locations", "create", "1", "--name", "Café", "--operator", "acme",
                   db=db).returncode == 0  # fmt: skip
    created = run_cli("webhooks", "create", "--location", "1", "--event", "customer.create",
                      "--url", f"http://127.0.0.1:{listen_port}/hook", "--json", db=db,
                      env=private)  # fmt: skip
    api_key = json.loads(created.stdout)["api_key"]

    listener = start("listen", "--port", str(listen_port), "--api-key", api_key)
    server = start("serve", "--dev", "--port", str(serve_port), "--interval", "0.2", "--db", db)
    try:
        wait_for_port(listen_port)
        wait_for_port(serve_port, timeout=30)
        emitted = run_cli("emit", "customer.create", "--location", "1", "--sample", "--json",
                          db=db)  # fmt: skip
        assert emitted.returncode == 0, emitted.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = json.loads(run_cli("deliveries", "list", "--json", db=db).stdout)
            if listed["data"] and listed["data"][0]["status"] == "succeeded":
                break
            time.sleep(0.2)
        else:
            pytest.fail("the delivery did not succeed in time")
    finally:
        _, listened = stop(listener, signal.SIGINT)
        code, served = stop(server)
    assert "✓ verified customer.create" in listened
    assert '"UserName": "BE-72-B3-40-F9-BE"' in listened
    assert code in (0, -signal.SIGTERM), served
    assert "Application shutdown complete" in served


def test_listen_rejects_a_forged_delivery_with_401() -> None:
    port = free_port()
    listener = start("listen", "--port", str(port), "--api-key", "the-real-key")
    try:
        wait_for_port(port)
        body = catalog.serialize(catalog.EVENT_TYPES["customer.create"].sample)
        forged = {"X-Hotspotsystem-Hmac-Sha256": compute_signature(body, "another-key")}
        genuine = {"X-Hotspotsystem-Hmac-Sha256": compute_signature(body, "the-real-key")}
        assert post(f"http://127.0.0.1:{port}/hook", body, forged) == 401
        assert post(f"http://127.0.0.1:{port}/hook", body, genuine) == 200
    finally:
        _, output = stop(listener, signal.SIGINT)
    assert "rejected" in output


def test_python_emit_stores_the_event_with_its_deliveries(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'py.db'}"
    settings = Settings(database_url=db, allow_private_targets=True, _env_file=None)
    assert run_cli("migrate", db=db).returncode == 0
    assert run_cli("operators", "create", "acme", db=db).returncode == 0
    assert run_cli("locations", "create", "7", "--name", "Lobby", "--operator", "acme",
                   db=db).returncode == 0  # fmt: skip
    run_cli("webhooks", "create", "--location", "7", "--event", "subscriber.create",
            "--url", "http://127.0.0.1:9/hook", db=db,
            env={"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"})  # fmt: skip

    first = hotspot_webhooks.emit("subscriber.create", "7", {"id": "1", "email": "a@b.c"},
                                  id="sub-1", settings=settings)  # fmt: skip
    again = hotspot_webhooks.emit("subscriber.create", "7", {}, id="sub-1", settings=settings)

    assert (first.id, first.deliveries, first.duplicate) == ("sub-1", 1, False)
    assert (again.deliveries, again.duplicate) == (1, True)
    shown = json.loads(run_cli("events", "show", "sub-1", "--json", db=db).stdout)
    assert shown["data"]["email"] == "a@b.c"
    assert shown["data"]["name"] is None
