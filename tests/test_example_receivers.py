"""The example receivers in examples/, run for real and fed by the service (issue 13).

Each stack runs as a person would run it: PHP's built-in server for the ``getallheaders()``
receiver, nginx + PHP-FPM for the ``$_SERVER`` one, Node, Flask's server, FastAPI under
uvicorn, Django's runserver. A real dispatcher delivers all six event types to it; it must
verify each, keep each event once in its inbox (a SQLite table or a file per event) across a
restart and a redelivery of every event, keep one of many copies arriving at once, and refuse
deliveries signed with another key.

A missing runtime skips its stack, unless ``HW_TEST_RECEIVERS=required`` (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers
from tests.live_api import LiveAPI
from tests.receivers import PHP_RECEIVER, ROOT, free_port

EXAMPLES = ROOT / "examples"
EVENT_TYPES = tuple(catalog.EVENT_TYPES)
COPIES = 8  # of one event, sent at the same moment
NEW, SEEN = "OK", "OK (already received)"  # what every example answers, by design


def require(what: str, found: object, install: str) -> Any:
    """``found`` if present; else skip, or fail where CI says the receivers are required."""
    if found:
        return found
    reason = f"{what} is not installed ({install})"
    if os.environ.get("HW_TEST_RECEIVERS") == "required":
        pytest.fail(f"{reason}; HW_TEST_RECEIVERS=required")
    pytest.skip(reason)


def python_module(name: str) -> None:
    require(f"Python package {name}", importlib.util.find_spec(name), "pip install -e '.[dev]'")


def php_fpm() -> str | None:
    for name in ("php-fpm", *(f"php-fpm{v}" for v in ("8.4", "8.3", "8.2", "8.1"))):
        for candidate in (shutil.which(name), f"/usr/sbin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    return None


@dataclass
class Example:
    """One example receiver's processes, where it listens and what its inbox holds."""

    url: str
    inbox: Callable[[], dict[str, dict[str, Any]]]  # event id → {type, location_id, payload}
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')}"
            for log in self.logs
            if log.exists()
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sqlite_inbox(db: Path) -> Callable[[], dict[str, dict[str, Any]]]:
    def read() -> dict[str, dict[str, Any]]:
        if not db.exists():
            return {}
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT event_id, type, location_id, payload FROM inbox").fetchall()
        assert len({row[0] for row in rows}) == len(rows), "an event id is in the inbox twice"
        return {
            event_id: {"type": type_, "location_id": location, "payload": json.loads(payload)}
            for event_id, type_, location, payload in rows
        }

    return read


def file_inbox(directory: Path) -> Callable[[], dict[str, dict[str, Any]]]:
    def read() -> dict[str, dict[str, Any]]:
        events = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
        found = {event.pop("id"): event for event in events}
        assert len(found) == len(events), "two inbox files hold the same event id"
        return found

    return read


def launch(
    example: Example, command: list[str], work: Path, name: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start one process of an example, its output in ``work/<name>.log``."""
    log = work / f"{name}.log"
    example.logs.append(log)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=work, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    example.processes.append(process)
    return process


def wait_until_listening(example: Example, port: int, within: float = 20) -> Example:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for process in example.processes:
            if process.poll() is not None:
                example.stop()
                raise AssertionError(f"{process.args!r} exited:\n{example.output()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return example
        time.sleep(0.05)
    example.stop()
    raise AssertionError(f"nothing listens on {port}:\n{example.output()}")


# One starter per stack: (API key, working directory) → the example, listening on a free port,
# its inbox in the working directory; started again on the same directory after a restart.


def start_php(api_key: str, work: Path) -> Example:
    php = require("php", shutil.which("php"), "apt-get install php-cli")
    inbox = work / "inbox"
    port = free_port()
    example = Example(f"http://127.0.0.1:{port}/receiver.php", file_inbox(inbox))
    env = {"API_KEY": api_key, "INBOX_DIR": str(inbox), "RECEIVER_LOG": str(work / "php.jsonl")}
    launch(example, [php, "-S", f"127.0.0.1:{port}", str(PHP_RECEIVER)], work, "php", env)
    return wait_until_listening(example, port)


def substitute(text: str, pattern: str, replacement: str) -> str:
    """Replace the one line of a shipped config that ``pattern`` matches (or fail loudly)."""
    changed, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"expected one line matching {pattern!r} in the shipped config"
    return changed


def start_php_nginx(api_key: str, work: Path) -> Example:
    """examples/php-nginx as shipped (server block, pool), on free ports in ``work``."""
    nginx = require(
        "nginx", shutil.which("nginx") or shutil.which("/usr/sbin/nginx"), "apt-get install nginx"
    )
    fpm = require("php-fpm", php_fpm(), "apt-get install php-fpm")
    require(
        "nginx's fastcgi_params",
        Path("/etc/nginx/fastcgi_params").exists(),
        "apt-get install nginx",
    )
    root = os.geteuid() == 0  # both drop to a user when started as root: run them as root
    source = EXAMPLES / "php-nginx"
    www, inbox = work / "www", work / "inbox"
    www.mkdir(exist_ok=True)
    shutil.copy(source / "receiver.php", www / "receiver.php")
    shutil.copy("/etc/nginx/fastcgi_params", work / "fastcgi_params")
    fpm_port, port = free_port(), free_port()

    pool = (source / "php-fpm-pool.conf").read_text()
    pool = substitute(pool, r"^listen = .*$", f"listen = 127.0.0.1:{fpm_port}")
    pool = re.sub(r"^listen\.(owner|group|mode) = .*\n", "", pool, flags=re.MULTILINE)
    pool = substitute(pool, r"^user = .*$", "user = root" if root else "")
    pool = substitute(pool, r"^group = .*$", "group = root" if root else "")
    pool = substitute(pool, r"^env\[INBOX_DIR\] = .*$", f"env[INBOX_DIR] = {inbox}")
    (work / "php-fpm.conf").write_text(
        f"[global]\npid = {work}/php-fpm.pid\nerror_log = {work}/php-fpm.log\n"
        f"daemonize = no\n\n{pool}"
    )
    server = (source / "nginx.conf").read_text()
    server = substitute(server, r"^\s*listen 80;$", f"    listen 127.0.0.1:{port};")
    server = substitute(server, r"^\s*root .*;$", f"    root {www};")
    server = substitute(
        server, r"^\s*fastcgi_pass .*;$", f"        fastcgi_pass 127.0.0.1:{fpm_port};"
    )
    temp_paths = "".join(
        f"    {kind}_temp_path {work}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "server.conf").write_text(server)
    (work / "nginx.conf").write_text(
        ("user root;\n" if root else "")
        + f"daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\n"
        f"error_log {work}/nginx-error.log info;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {work}/nginx-access.log;\n{temp_paths}"
        f"    include {work}/server.conf;\n}}\n"
    )

    example = Example(f"http://127.0.0.1:{port}/hotspot-webhook", file_inbox(inbox))
    inbox.mkdir(exist_ok=True, mode=0o700)
    example.logs += [work / "php-fpm.log", work / "nginx-error.log"]
    command = [fpm, "--nodaemonize", "--fpm-config", str(work / "php-fpm.conf")]
    launch(
        example,
        [*command, *(["--allow-to-run-as-root"] if root else [])],
        work,
        "fpm",
        {"API_KEY": api_key},
    )
    wait_until_listening(example, fpm_port)
    launch(
        example,
        [
            nginx,
            "-p",
            str(work),
            "-c",
            str(work / "nginx.conf"),
            "-e",
            str(work / "nginx-error.log"),
        ],
        work,
        "nginx",
        {},
    )
    return wait_until_listening(example, port)


def start_node(api_key: str, work: Path) -> Example:
    node = require("node", shutil.which("node"), "Node.js 20: apt-get install nodejs")
    inbox, port = work / "inbox", free_port()
    example = Example(f"http://127.0.0.1:{port}/hotspot-webhook", file_inbox(inbox))
    env = {"API_KEY": api_key, "INBOX_DIR": str(inbox), "PORT": str(port), "HOST": "127.0.0.1"}
    launch(example, [node, str(EXAMPLES / "node" / "receiver.js")], work, "node", env)
    return wait_until_listening(example, port)


def start_python(command: Callable[[int], list[str]], module: str) -> Callable[..., Example]:
    def start(api_key: str, work: Path) -> Example:
        python_module(module)
        db, port = work / "inbox.sqlite3", free_port()
        example = Example(f"http://127.0.0.1:{port}/hotspot-webhook", sqlite_inbox(db))
        env = {"API_KEY": api_key, "INBOX_DB": str(db), "PYTHONUNBUFFERED": "1"}
        launch(example, command(port), work, module, env)
        return wait_until_listening(example, port)

    return start


STACKS: dict[str, Callable[[str, Path], Example]] = {
    "php": start_php,
    "php-nginx": start_php_nginx,
    "node": start_node,
    "flask": start_python(
        lambda port: [
            sys.executable,
            "-m",
            "flask",
            "--app",
            str(EXAMPLES / "flask" / "app.py"),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        "flask",
    ),
    "fastapi": start_python(
        lambda port: [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--app-dir",
            str(EXAMPLES / "fastapi"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        "fastapi",
    ),
    "django": start_python(
        lambda port: [
            sys.executable,
            str(EXAMPLES / "django" / "app.py"),
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
        ],
        "django",
    ),
}


async def until(check: Callable[[], Any], what: str, example: Example, within: float = 20) -> Any:
    """Poll ``check`` until it returns something true; on timeout show the example's output."""
    deadline = time.monotonic() + within
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{example.output()}")
        await asyncio.sleep(0.05)
    return found


async def point(api: LiveAPI, token: str, webhook_id: str, url: str) -> None:
    await api.ok("PATCH", f"/v1/webhooks/{webhook_id}", token, json={"callback_url": url})


async def emit(api: LiveAPI, token: str, event_type: str, location_id: str) -> str:
    """Emit the type's sample over REST; return the event id."""
    data = dict(catalog.EVENT_TYPES[event_type].sample)
    body = {"type": event_type, "location_id": location_id, "data": data}
    emitted = await api.ok("POST", "/v1/events", token, json=body)
    return str(emitted["id"])


async def answered(
    api: LiveAPI, token: str, example: Example, *, attempts: int = 1, **query: str
) -> list[dict[str, Any]]:
    """The deliveries ``query`` finds, once each has had ``attempts`` attempts answered."""

    async def done() -> list[dict[str, Any]] | None:
        page = await api.ok("GET", "/v1/deliveries", token, params=query)
        found: list[dict[str, Any]] = page["data"]
        finished = all(d["attempt_count"] >= attempts for d in found)
        return found if found and finished else None

    found: list[dict[str, Any]] = await until(done, f"deliveries {query} answered", example)
    return found


def signed(api_key: str, event_id: str, event_type: str) -> tuple[bytes, dict[str, str]]:
    """A delivery as the service signs it (signing.py), for requests the test sends itself."""
    body = catalog.serialize(catalog.EVENT_TYPES[event_type].sample)
    request = DeliveryRequest(event_id, event_type, "loc-1", f"dlv_{event_id}", 1)
    return body, delivery_headers(request, body, [Signer(api_key)], int(time.time()))


def kept(event_type: str, location_id: str = "loc-1") -> dict[str, Any]:
    """What an inbox holds for an event of this type's sample."""
    payload = dict(catalog.EVENT_TYPES[event_type].sample)
    return {"type": event_type, "location_id": location_id, "payload": payload}


@pytest.mark.parametrize("stack", list(STACKS))
async def test_example_verifies_every_type_refuses_forgeries_and_keeps_each_event_once(
    stack: str, make_api: Callable[..., Any], tmp_path: Path
) -> None:
    api: LiveAPI = await make_api()
    token = await api.operator_at("loc-1", "loc-2")
    every_type = {
        "location_ids": ["loc-1"],
        "event_types": ["*"],
        "callback_url": "http://127.0.0.1:9/",
    }
    hook = await api.ok("POST", "/v1/webhooks", token, json=every_type)
    example = STACKS[stack](hook["api_key"], tmp_path)  # it needs the key to start
    try:
        await point(api, token, hook["id"], example.url)
        # another webhook has another key: what it sends is a forgery to this receiver
        forger = await api.webhook(token, "loc-2", example.url)
        emitted = {
            await emit(api, token, event_type, "loc-1"): event_type for event_type in EVENT_TYPES
        }
        forged = await emit(api, token, "customer.create", "loc-2")

        # every type verified and kept once, with the payload the platform emitted
        delivered = await answered(api, token, example, webhook_id=hook["id"])
        statuses = {d["event_id"]: d["status"] for d in delivered}
        assert statuses == dict.fromkeys(emitted, "succeeded"), example.output()
        expected = {event_id: kept(event_type) for event_id, event_type in emitted.items()}
        assert example.inbox() == expected
        # the forgery: refused (and retried until it fails), never kept
        [refused] = await answered(api, token, example, webhook_id=forger["id"])
        assert refused["last_status"] == 401, example.output()
        await api.ok("PATCH", f"/v1/webhooks/{forger['id']}", token, json={"status": "disabled"})
        assert forged not in example.inbox()

        # restarted on the same inbox, it gets every event again, answers 200, keeps each once
        example.stop()
        example = STACKS[stack](hook["api_key"], tmp_path)
        await point(api, token, hook["id"], example.url)
        for delivery in delivered:
            await api.ok("POST", f"/v1/deliveries/{delivery['id']}/retry", token)
        await answered(api, token, example, attempts=2, webhook_id=hook["id"])
        for delivery in delivered:
            shown = await api.ok("GET", f"/v1/deliveries/{delivery['id']}", token)
            assert shown["status"] == "succeeded"
            assert [a["status"] for a in shown["attempts"]] == [200, 200]
            # the receiver's own word: kept the first time, recognised the second
            assert [a["response_excerpt"] for a in shown["attempts"]] == [NEW, SEEN]
            assert all(a["duration_ms"] < 5000 for a in shown["attempts"])  # answered at once
        assert example.inbox() == expected

        await copies_at_once_keep_one(example, hook["api_key"])
        await unsigned_and_forged_requests_are_refused(example)
        assert len(example.inbox()) == len(expected) + 1  # the copies' one event
    finally:
        example.stop()


async def copies_at_once_keep_one(example: Example, api_key: str) -> None:
    """Many copies of one new event at the same moment: each answered 200, one kept."""
    body, headers = signed(api_key, "evt_copies_1", "transaction.paid.create")
    async with httpx.AsyncClient(timeout=20) as client:
        copies = (client.post(example.url, content=body, headers=headers) for _ in range(COPIES))
        answers = await asyncio.gather(*copies)
    assert [a.status_code for a in answers] == [200] * COPIES, example.output()
    assert sorted(a.text for a in answers) == [NEW] + [SEEN] * (COPIES - 1)
    assert example.inbox()["evt_copies_1"] == kept("transaction.paid.create")


async def unsigned_and_forged_requests_are_refused(example: Example) -> None:
    body, signed_otherwise = signed("not-the-api-key", "evt_forged_1", "customer.create")
    unsigned = {"Content-Type": "application/json", "webhook-id": "evt_unsigned_1"}
    async with httpx.AsyncClient(timeout=20) as client:
        for headers in (signed_otherwise, unsigned):
            answer = await client.post(example.url, content=body, headers=headers)
            assert answer.status_code == 401, (headers, answer.text, example.output())
    assert not {"evt_forged_1", "evt_unsigned_1"} & set(example.inbox())


async def test_a_standard_webhooks_receiver_switches_keys_without_refusing_a_delivery(
    make_api: Callable[..., Any], tmp_path: Path
) -> None:
    """docs/receiving.md's rotation: rotate, then give the receiver the new key (the Node
    example verifies webhook-signature, which carries both keys during ROTATION_GRACE)."""
    api: LiveAPI = await make_api()
    token, hook = await api.hooked("loc-1", "http://127.0.0.1:9/")
    example = start_node(hook["api_key"], tmp_path)
    try:
        await point(api, token, hook["id"], example.url)
        rotated = await api.ok("POST", f"/v1/webhooks/{hook['id']}/rotate-key", token)
        assert rotated["api_key"] != hook["api_key"]

        # the receiver still has the old key: webhook-signature's second entry verifies
        before = await emit(api, token, "customer.create", "loc-1")
        [delivery] = await answered(api, token, example, event_id=before)
        assert delivery["last_status"] == 200, example.output()

        example.stop()
        example = start_node(rotated["api_key"], tmp_path)
        await point(api, token, hook["id"], example.url)
        after = await emit(api, token, "customer.create", "loc-1")
        [delivery] = await answered(api, token, example, event_id=after)
        assert delivery["last_status"] == 200, example.output()
        assert set(example.inbox()) == {before, after}
    finally:
        example.stop()


async def test_behind_nginx_the_signature_is_read_from_the_cgi_variable(tmp_path: Path) -> None:
    """Why examples/php-nginx reads $_SERVER: nginx drops the literal (underscored) header,
    as its log says, so a request signed only there is refused; X-Hotspotsystem-Hmac-Sha256,
    which PHP sees as $_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'], is what counts."""
    example = start_php_nginx("the-key", tmp_path)
    try:
        body, headers = signed("the-key", "evt_nginx_1", "customer.create")
        literal_only = {k: v for k, v in headers.items() if k != "X-Hotspotsystem-Hmac-Sha256"}
        canonical_only = {
            k: v for k, v in headers.items() if k != "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"
        }
        async with httpx.AsyncClient(timeout=20) as client:
            dropped = await client.post(example.url, content=body, headers=literal_only)
            read = await client.post(example.url, content=body, headers=canonical_only)
        assert (dropped.status_code, read.status_code) == (401, 200), example.output()
        nginx_log = (tmp_path / "nginx-error.log").read_text()
        assert 'invalid header line: "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256' in nginx_log, nginx_log
        assert list(example.inbox()) == ["evt_nginx_1"]
    finally:
        example.stop()
