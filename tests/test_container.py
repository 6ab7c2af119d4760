"""The deployment as an operator runs it: the container image (Containerfile) built and run
with podman, the compose topology, and the systemd units (deploy/).

The image is built once per session (layers cached by podman: a rebuild after a change to
src/ reinstalls the project only). The image tests need podman and the base image that
``deploy/container/base-image.sh`` makes; without podman they skip, unless
``HW_TEST_CONTAINER=required`` (set by ``.ci/run``), where they fail. The containers that
deliver use the host's network and listen on 127.0.0.1, so the receivers in this process and
the machine's PostgreSQL are reachable as from any process here; one runs as the docs say, on
its own network with its port published on the host's loopback.

``HW_CONTAINER_BASE`` names another base image (e.g. ``docker.io/library/python:3.12-slim``);
``HW_CONTAINER_CONTEXT`` builds another tree than this checkout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hotspot_webhooks.config import Settings
from hotspot_webhooks.receiver import parse, verify_standard_signature
from tests.postgres import POSTGRES, POSTGRES_SECRET_KEY, admin_sql, require_postgres
from tests.receivers import free_port

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = Path(os.environ.get("HW_CONTAINER_CONTEXT", ROOT))
BASE_IMAGE = os.environ.get("HW_CONTAINER_BASE", "localhost/hotspot-webhooks-base:bookworm")
IMAGE = "localhost/hotspot-webhooks:test"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ADMIN_TOKEN = "admin-token-for-the-container-tests-0123"
SETTINGS = {f"HOTSPOT_WEBHOOKS_{name.upper()}" for name in Settings.model_fields}

# The first test builds the image: cold, that is about a minute of downloads from the package
# index, more on a slow network; the tests themselves take seconds.
pytestmark = pytest.mark.timeout(900)


# --- podman -------------------------------------------------------------------------------


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def require_podman() -> None:
    required = os.environ.get("HW_TEST_CONTAINER") == "required"  # set by .ci/run
    if shutil.which("podman") is None:
        if required:
            pytest.fail("podman is not installed, and HW_TEST_CONTAINER=required")
        pytest.skip(
            "podman is not installed: the container image is neither built nor run "
            "(.ci/run installs it; HW_TEST_CONTAINER=required makes this a failure)"
        )
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        if required:
            pytest.fail(f"base image {BASE_IMAGE} is missing: run deploy/container/base-image.sh")
        pytest.skip(f"base image {BASE_IMAGE} is missing: run deploy/container/base-image.sh")


@pytest.fixture(scope="module")
def image(pytestconfig: pytest.Config) -> str:
    """The image, built once for the module from this checkout."""
    require_podman()
    command = ["build", "--format", "docker", "--network", "host"]
    command += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE]
    if HOST_CA_BUNDLE.is_file():  # a TLS-inspecting proxy's CA, for pip inside the build
        command += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    started = time.monotonic()
    podman(*command, "-f", str(CONTEXT / "Containerfile"), str(CONTEXT), timeout=840)
    seconds = time.monotonic() - started
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n{IMAGE}: built in {seconds:.1f} s, {size / 1e6:.0f} MB")
    return IMAGE


class Containers:
    """Containers started by one test, all removed after it (with their anonymous volumes)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.names: list[str] = []

    def run(self, *args: str, env: dict[str, str], volume: str | None = None) -> str:
        """Start a container in the background on the host's network; return its name."""
        name = f"hw-test-{secrets.token_hex(4)}"
        self.names.append(name)
        podman("run", "-d", "--name", name, *self.options(env, volume), self.image, *args)
        return name

    def once(self, *args: str, env: dict[str, str], volume: str | None = None) -> str:
        """Run a command to completion (``migrate``); return its output."""
        done = podman("run", "--rm", *self.options(env, volume), self.image, *args)
        return done.stdout + done.stderr

    @staticmethod
    def options(env: dict[str, str], volume: str | None) -> list[str]:
        options = ["--network", "host"]
        for key, value in env.items():
            options += ["-e", f"{key}={value}"]
        if volume is not None:
            options += ["-v", f"{volume}:/data"]
        return options

    def logs(self, name: str) -> str:
        done = podman("logs", name, check=False)
        return done.stdout + done.stderr

    def stop_with_sigterm(self, name: str, within: float = 20) -> tuple[int, float]:
        """SIGTERM, as ``podman stop`` and compose send it; the exit code and the time taken."""
        started = time.monotonic()
        podman("kill", "--signal", "TERM", name)
        code = podman("wait", name, timeout=within).stdout.strip()
        return int(code), time.monotonic() - started

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "-f", "-v", "-t", "0", name, check=False)  # -v: its anonymous /data


@pytest.fixture
def containers(image: str) -> Iterator[Containers]:
    running = Containers(image)
    try:
        yield running
    finally:
        running.remove_all()


@pytest.fixture
def volume(image: str) -> Iterator[str]:
    """A named volume for /data: it starts as the image's /data (the user's, 0700)."""
    name = f"hw-test-{secrets.token_hex(4)}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "-f", name, check=False)


# --- a receiver in this process -------------------------------------------------------------


class Receiver:
    """A stdlib HTTP receiver on 127.0.0.1 that keeps every request and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    try:
        yield running
    finally:
        running.close()


# --- what an operator does over REST --------------------------------------------------------


def wait_healthy(url: str, containers: Containers, name: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            pytest.fail(f"{name} is {state} before answering /healthz:\n{containers.logs(name)}")
        time.sleep(0.2)
    pytest.fail(f"{name} did not answer /healthz within {within} s:\n{containers.logs(name)}")


def deliver_one_event(url: str, receiver: Receiver) -> None:
    """Operator, location and webhook over REST; an event; its delivery arrives signed."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=url, timeout=30) as client:

        def ok(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
            answer = client.request(method, path, headers=headers, **kwargs)
            assert answer.is_success, f"{method} {path} → {answer.status_code} {answer.text}"
            return answer.json()

        token = ok("POST", "/v1/operators", admin, json={"name": "acme"})["token"]
        operator = {"Authorization": f"Bearer {token}"}
        ok("POST", "/v1/locations", operator, json={"id": "loc-1", "name": "Café Central"})
        webhook = ok(
            "POST",
            "/v1/webhooks",
            operator,
            json={
                "location_id": "loc-1",
                "event_type": "customer.create",
                "callback_url": receiver.url,
            },
        )
        event = {"type": "customer.create", "location_id": "loc-1", "data": {"id": "42"}}
        emitted = ok("POST", "/v1/events", operator, json=event)
        assert emitted["deliveries"] == 1

        assert receiver.arrived.wait(30), "no delivery reached the receiver within 30 s"
        headers, body = receiver.requests[0]
        received = parse(headers, body, api_key=webhook["api_key"])
        assert received.id == emitted["id"]
        assert received.type == "customer.create"
        assert received.location_id == "loc-1"
        assert received.data["id"] == "42"
        assert verify_standard_signature(headers, body, webhook["api_key"])

        deadline = time.monotonic() + 15  # the outcome is recorded just after the answer
        while True:
            listed = ok("GET", f"/v1/deliveries?event_id={emitted['id']}", operator)["data"]
            if listed and listed[0]["status"] == "succeeded":
                break
            assert time.monotonic() < deadline, f"delivery not recorded as succeeded: {listed}"
            time.sleep(0.2)


def pid1_uids(containers: Containers, name: str) -> list[int]:
    """Real, effective, saved and filesystem uid of the container's main process."""
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return [int(uid) for uid in line.split()[1:]]


def assert_healthcheck_passes(name: str) -> None:
    done = podman("healthcheck", "run", name, check=False)
    assert done.returncode == 0, f"healthcheck of {name}: {done.stdout} {done.stderr}"


def assert_stops_cleanly(containers: Containers, name: str) -> None:
    code, seconds = containers.stop_with_sigterm(name)
    assert code == 0, f"{name} exited {code} on SIGTERM:\n{containers.logs(name)}"
    assert seconds < 10, f"{name} took {seconds:.1f} s to stop on SIGTERM"


def local_settings(port: int) -> dict[str, str]:
    """What differs from the image's defaults in these tests: loopback (the host's network),
    a known admin token, receivers on 127.0.0.1, and events sent as soon as they are stored."""
    return {
        "HOTSPOT_WEBHOOKS_HOST": "127.0.0.1",
        "HOTSPOT_WEBHOOKS_PORT": str(port),
        "HOTSPOT_WEBHOOKS_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_LOW_LATENCY": "true",
        "HOTSPOT_WEBHOOKS_INTERVAL": "1",
    }


# --- the image ------------------------------------------------------------------------------


def test_image_defaults(image: str) -> None:
    """Non-root, listens on every interface, serve by default, a HEALTHCHECK, /data a volume."""
    found = json.loads(podman("image", "inspect", image).stdout)[0]
    config = found["Config"]
    assert config["User"] not in ("", "0", "root", "root:root")
    assert config["Entrypoint"] == ["hotspot-webhooks"]
    assert config["Cmd"] == ["serve"]
    assert "/data" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOTSPOT_WEBHOOKS_HOST"] == "0.0.0.0"
    assert env["HOTSPOT_WEBHOOKS_DATABASE_URL"] == "sqlite:////data/hotspot-webhooks.db"
    unknown = {key for key in env if key.startswith("HOTSPOT_WEBHOOKS_")} - SETTINGS
    assert not unknown, f"the image sets variables no setting reads: {unknown}"
    assert found["Healthcheck"]["Test"][0] == "CMD"


def test_serve_on_sqlite_in_a_volume(
    containers: Containers, volume: str, receiver: Receiver
) -> None:
    port = free_port()
    env = local_settings(port)
    assert "database is up to date" in containers.once("migrate", env=env, volume=volume)

    name = containers.run(env=env, volume=volume)  # the image's CMD: serve
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, containers, name)

    uids = pid1_uids(containers, name)
    assert 0 not in uids, f"serve runs as uid {uids}"
    # the database and its secret key are private to the service's user
    private = ["/data", "/data/hotspot-webhooks.db", "/data/hotspot-webhooks.db.secret-key"]
    modes = podman("exec", name, "stat", "-c", "%a %u", *private).stdout.split()
    assert modes == ["700", str(uids[0]), "600", str(uids[0]), "600", str(uids[0])]

    deliver_one_event(url, receiver)
    assert_healthcheck_passes(name)
    # and it is a real check: asked on a port where nothing answers, it fails
    check = ["/opt/hotspot-webhooks/bin/python", "/opt/hotspot-webhooks/healthcheck.py"]
    wrong_port = ["-e", f"HOTSPOT_WEBHOOKS_PORT={free_port()}"]
    assert podman("exec", *wrong_port, name, *check, check=False).returncode == 1
    assert_stops_cleanly(containers, name)


def test_defaults_published_on_loopback(containers: Containers) -> None:
    """The image as docs/deploy.md runs it, nothing set: on its own network, listening on
    every interface, port 8080 published on the host's loopback; the first admin token left
    in a private file, not in the log."""
    port = free_port()
    name = f"hw-test-{secrets.token_hex(4)}"
    containers.names.append(name)
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", containers.image)
    wait_healthy(f"http://127.0.0.1:{port}", containers, name)
    token_file = "/data/hotspot-webhooks.db.admin-token"
    assert podman("exec", name, "stat", "-c", "%a", token_file).stdout.strip() == "600"
    token = podman("exec", name, "cat", token_file).stdout.strip()
    assert token and token not in containers.logs(name)
    assert_stops_cleanly(containers, name)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped after the test."""
    require_postgres()
    name = f"hw_test_{secrets.token_hex(6)}"
    asyncio.run(admin_sql(f"CREATE DATABASE {name}"))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_api_and_workers_on_postgresql(
    containers: Containers, postgres_database: str, receiver: Receiver
) -> None:
    """compose.yaml's topology with plain podman: migrate once, then an api and two workers."""
    port = free_port()
    env = {
        **local_settings(port),
        "HOTSPOT_WEBHOOKS_DATABASE_URL": postgres_database,
        "HOTSPOT_WEBHOOKS_SECRET_KEY": POSTGRES_SECRET_KEY,
    }
    assert "database is up to date" in containers.once("migrate", env=env)

    api = containers.run("api", env=env)
    # compose's worker (one dispatcher per container), and the plain command, which runs one
    # dispatcher per core under a supervisor that must stop them all on SIGTERM
    workers = [
        containers.run("worker", "--processes", "1", env=env),
        containers.run("worker", env=env),
    ]
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, containers, api)
    for name in [api, *workers]:
        assert 0 not in pid1_uids(containers, name)

    deliver_one_event(url, receiver)
    for name in [api, *workers]:
        assert_healthcheck_passes(name)
        assert_stops_cleanly(containers, name)
    assert len(receiver.requests) == 1  # one delivery, by one of the two workers


# --- compose and systemd, read as files -----------------------------------------------------


def env_file_keys(path: Path) -> set[str]:
    """Variables an example env file names, set or commented out."""
    return set(re.findall(r"^#?(HOTSPOT_WEBHOOKS_[A-Z_]+)=", path.read_text(), re.MULTILINE))


def test_compose_topology() -> None:
    """PostgreSQL healthy → migrate exits 0 → api and N workers, secrets in env files."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for role in ("api", "worker"):
        assert services[role]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["api"]["command"] == ["api"]
    assert services["worker"]["command"][0] == "worker"
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["api"]
    for role in ("migrate", "api", "worker"):
        env_file = ROOT / (services[role]["env_file"] + ".example")
        assert env_file.is_file(), f"{role}: no {env_file.name} to copy"
        names = env_file_keys(env_file)
        assert {"HOTSPOT_WEBHOOKS_DATABASE_URL", "HOTSPOT_WEBHOOKS_SECRET_KEY"} <= names
        assert names <= SETTINGS, f"{env_file.name} names unknown settings: {names - SETTINGS}"
        assert "environment" not in services[role], "secrets belong in the env file"


SYSTEMD = ROOT / "deploy" / "systemd"


def test_systemd_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts every unit, and each one is hardened."""
    names = env_file_keys(SYSTEMD / "hotspot-webhooks.env.example")
    assert names <= SETTINGS, f"the env example names unknown settings: {names - SETTINGS}"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit files are not verified")
    # verify checks that ExecStart exists: point it at this environment's program
    program = Path(sys.executable).parent / "hotspot-webhooks"
    units = sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.target"))
    for unit in units:
        text = unit.read_text().replace("/opt/hotspot-webhooks/bin/hotspot-webhooks", str(program))
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "hotspot-webhooks-worker@1.service").symlink_to("hotspot-webhooks-worker@.service")
    verified = [p.name for p in tmp_path.iterdir() if "@." not in p.name]
    done = subprocess.run(
        ["systemd-analyze", "verify", *verified],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for unit in units:
        if unit.suffix == ".service":
            text = unit.read_text()
            for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "User=", "UMask=0077"):
                assert setting in text, f"{unit.name} lacks {setting}"
