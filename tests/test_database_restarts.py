"""The whole PostgreSQL server goes away and comes back, again and again, under load.

Every process is real: ``hotspot-webhooks api`` and two ``hotspot-webhooks worker`` processes
on a throwaway cluster of the test's own (``tests/pg_cluster.py``; the machine's shared server
is never stopped), delivering to a real receiver, while the test emits events over REST and
stops the cluster (``pg_ctl stop -m fast``) and starts it again, five times, about 2 s down each.

What must hold (the README's promises): an event the API accepted (2xx) was committed with its
delivery before the answer, so it is delivered and its delivery ends ``succeeded``; while the
database is down the API answers ``503`` in the one error shape, and answers 2xx again once it
is back, without being restarted; the workers ride the outages out (a bad pass must not end
the dispatcher, and the recorder keeps what it could not write until the database is back).

The leases keep their production length (300 s): a worker that dropped what it could not
record would leave its deliveries leased far beyond the test, so a lost record shows as a
delivery that never ends ``succeeded``.

The restart test takes 25-45 s (most of it the five outages; then as long as the workers take to
deliver the rest, at most 30 s), the other about 4 s. When something fails the message says
what the API answered around each outage and shows excerpts of the workers' logs.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from hotspot_webhooks import catalog
from hotspot_webhooks.store.database import create_engine, transaction
from tests.live_api import ADMIN_TOKEN
from tests.pg_cluster import PgCluster, pg_cluster_fixture  # noqa: F401  (the pg_cluster fixture)
from tests.postgres import POSTGRES_SECRET_KEY
from tests.receivers import PythonReceiver, free_port
from tests.shapes import error_of

pytestmark = [pytest.mark.postgresql_only, pytest.mark.timeout(120)]

OUTAGES = 5
DOWN_FOR = 2.0  # seconds the database stays down, each time
UP_FOR = 1.5  # seconds of accepted emits between two outages
EMITTERS = 2  # concurrent REST clients emitting events
PAUSE = 0.02  # between one client's emits
# The receiver takes its time to answer, so that each outage begins with attempts in flight:
# sent, not yet recorded. Their outcomes must be written once the database is back.
RECEIVER_DELAY = 0.5
WORKER_SETTINGS = {
    "interval": "0.5",
    "timeout": "2",
    "allow_private_targets": "true",
    "retry_policy": "next-pass",
}
SAMPLE = catalog.EVENT_TYPES["customer.create"].sample


# the processes


@dataclass
class Process:
    """A ``hotspot-webhooks`` subprocess; its stdout and stderr go to ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int:
        """SIGTERM (the graceful way), then SIGKILL if it lingers; the exit code."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@dataclass
class Api:
    process: Process
    url: str
    client: httpx.AsyncClient


class App:
    """The service's processes on one database of a throwaway cluster, as an operator runs
    them: settings in ``HOTSPOT_WEBHOOKS_*`` variables, each process started by the CLI."""

    def __init__(self, cluster: PgCluster, database_url: str, workdir: Path) -> None:
        self.cluster = cluster
        self.database_url = database_url
        self.workdir = workdir
        self.processes: list[Process] = []
        self.clients: list[httpx.AsyncClient] = []

    def env(self, **settings: str) -> dict[str, str]:
        values = {
            "database_url": self.database_url,
            "secret_key": POSTGRES_SECRET_KEY,
            "admin_token": ADMIN_TOKEN,
            **WORKER_SETTINGS,
            **settings,
        }
        return {
            **os.environ,
            "HOTSPOT_WEBHOOKS_DEBUG": "1",  # a traceback rather than one line, if one dies
            **{f"HOTSPOT_WEBHOOKS_{k.upper()}": v for k, v in values.items()},
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hotspot_webhooks", *args]

    async def migrate(self) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            self.command("migrate"),
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def spawn(self, name: str, *args: str, **settings: str) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                self.command(*args),
                env=self.env(**settings),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    async def api(self) -> Api:
        """``hotspot-webhooks api`` on a free port, once it answers ``/readyz`` with 200."""
        port = free_port()
        process = self.spawn("api", "api", host="127.0.0.1", port=str(port))
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=10)
        self.clients.append(client)

        async def ready() -> bool:
            assert process.alive, f"the API exited:\n{process.output()}"
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        assert await until(ready, within=30), f"the API never became ready:\n{process.output()}"
        return Api(process, url, client)

    async def worker(self, name: str) -> Process:
        """``hotspot-webhooks worker``, once it has said it runs its passes."""
        process = self.spawn(name, "worker", "--processes", "1")

        async def running() -> bool:
            assert process.alive, f"{name} exited:\n{process.output()}"
            return "a pass every" in process.output()

        assert await until(running, within=30), f"{name} never started:\n{process.output()}"
        return process

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for process in reversed(self.processes):
            await asyncio.to_thread(process.stop)


@pytest.fixture
async def app(pg_cluster: PgCluster, tmp_path: Path) -> AsyncIterator[App]:
    """A migrated database on the test's own cluster; every process started on it is stopped
    at the end, before the cluster is."""
    started = App(pg_cluster, await pg_cluster.create_database("hooks"), tmp_path)
    await started.migrate()
    try:
        yield started
    finally:
        await started.close()


async def until(check: Callable[[], Any], within: float, every: float = 0.05) -> bool:
    """Poll ``check`` (sync or async) until it is true or ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


async def set_up_operator(api: Api, callback_url: str | None = None) -> str:
    """Operator ``acme`` with location ``loc-1`` (and a customer.create webhook to
    ``callback_url``); the operator's token."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await api.client.post("/v1/operators", headers=admin, json={"name": "acme"})
    assert created.status_code == 201, created.text
    token = str(created.json()["token"])
    headers = {"Authorization": f"Bearer {token}"}
    location = await api.client.post(
        "/v1/locations", headers=headers, json={"id": "loc-1", "name": "Café Central"}
    )
    assert location.status_code == 201, location.text
    if callback_url is not None:
        body = {
            "location_id": "loc-1",
            "event_type": "customer.create",
            "callback_url": callback_url,
        }
        webhook = await api.client.post("/v1/webhooks", headers=headers, json=body)
        assert webhook.status_code == 201, webhook.text
    return token


def emit_body(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "customer.create", "location_id": "loc-1", "data": SAMPLE}


# what the API answered


@dataclass
class Answer:
    event_id: str
    sent: float  # time.monotonic() when the request left
    answered: float
    response: httpx.Response | None  # None: no HTTP answer at all (see error)
    error: str = ""

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    @property
    def accepted(self) -> bool:
        return self.response is not None and self.response.is_success

    def shape_problem(self, status: int) -> str | None:
        """None if this is exactly the one error shape with ``status`` naming the database."""
        if self.response is None:
            return f"no answer: {self.error}"
        try:
            error = error_of(self.response, status)
        except AssertionError as exc:
            return str(exc).splitlines()[0]
        if "database" not in error["message"].lower():
            return f"the message does not say the database is the cause: {error['message']!r}"
        return None

    def message(self) -> str:
        """The error's message, or what the answer was instead."""
        if self.response is None:
            return self.error
        try:
            return str(self.response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return self.response.text[:200]

    def describe(self) -> str:
        if self.response is None:
            return f"{self.event_id}: no answer ({self.error})"
        return f"{self.event_id}: {self.response.status_code} {self.response.text[:200]}"


@dataclass
class Emitter:
    """One REST client emitting events one after another until told to stop."""

    client: httpx.AsyncClient
    token: str
    prefix: str
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        number = 0
        while not self.stopping.is_set():
            number += 1
            event_id = f"{self.prefix}-{number:05d}"
            sent = time.monotonic()
            try:
                response = await self.client.post(
                    "/v1/events", headers=headers, json=emit_body(event_id)
                )
            except httpx.HTTPError as exc:
                self.answers.append(Answer(event_id, sent, time.monotonic(), None, repr(exc)))
            else:
                self.answers.append(Answer(event_id, sent, time.monotonic(), response))
            await asyncio.sleep(PAUSE)


@dataclass
class Outage:
    number: int
    down_from: float  # `pg_ctl stop` has returned: the server is gone
    down_until: float = math.inf  # `pg_ctl start` is about to run
    up_from: float = math.inf  # `pg_ctl start` has returned: the server accepts connections
    up_until: float = math.inf  # the next outage began (or the emitters stopped)
    recovered_after: float | None = None  # seconds from up_from to the first 2xx sent after it
    dead_workers: list[str] = field(default_factory=list)  # found dead after this outage

    def during(self, answer: Answer) -> bool:
        """Sent and answered while the server was down."""
        return self.down_from <= answer.sent and answer.answered <= self.down_until

    def after(self, answer: Answer) -> bool:
        """Sent once the server was back, before the next outage."""
        return self.up_from <= answer.sent and answer.answered <= self.up_until


def answered_so_far(emitters: list[Emitter]) -> list[Answer]:
    return [answer for emitter in emitters for answer in emitter.answers]


# the workers' logs


def log_excerpts(text: str, tracebacks: int = 2, tail: int = 25) -> str:
    """The first ``tracebacks`` tracebacks, a count of each distinct error, the last lines."""
    lines = text.splitlines()
    blocks: list[list[str]] = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            block = [line]
            for following in lines[index + 1 :]:
                block.append(following)
                if following and not following.startswith((" ", "\t")):
                    break  # the exception's own line ends the traceback
            blocks.append(block)
    endings = Counter(block[-1] for block in blocks)
    errors = Counter(
        re.sub(r"^\d{4}-\d\d-\d\d \S+ ", "", line)[:160]
        for line in lines
        if " ERROR " in line or " WARNING " in line or line.startswith("error:")
    )
    parts = [f"{len(blocks)} traceback(s)"]
    parts += [f"  {count}× {ending}" for ending, count in endings.most_common(6)]
    parts.append("log lines at WARNING/ERROR:")
    parts += [f"  {count}× {message}" for message, count in errors.most_common(8)]
    for block in blocks[:tracebacks]:
        parts.append("--- traceback ---")
        parts += block[-30:]
    parts.append(f"--- last {tail} lines ---")
    parts += lines[-tail:]
    return "\n".join(parts)


# the database, read directly once it is back


async def deliveries_of(database_url: str, event_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each stored event among ``event_ids`` → its deliveries (missing: never stored)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT e.id AS event_id, d.id AS delivery_id, d.status, d.attempt_count,
                   d.lease_owner, d.next_attempt_at, d.last_status, d.last_error
            FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
            WHERE e.id = ANY($1::text[])
            """,
            event_ids,
        )
    finally:
        await conn.close()
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        deliveries = found.setdefault(row["event_id"], [])
        if row["delivery_id"] is not None:
            deliveries.append(dict(row))
    return found


async def attempt_errors(database_url: str) -> Counter[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT coalesce(error, status::text) AS what FROM attempts")
    finally:
        await conn.close()
    return Counter(str(row["what"])[:100] for row in rows)


# the scenario


async def test_five_database_restarts_under_load_lose_no_accepted_event_and_kill_no_worker(
    pg_cluster: PgCluster, app: App, python_receiver: PythonReceiver
) -> None:
    python_receiver.delay = RECEIVER_DELAY
    api = await app.api()
    token = await set_up_operator(api, python_receiver.url)
    workers = await asyncio.gather(app.worker("worker-1"), app.worker("worker-2"))
    emitters = [Emitter(api.client, token, f"evt-{n}") for n in range(1, EMITTERS + 1)]
    emitting = [asyncio.create_task(emitter.run()) for emitter in emitters]
    problems: list[str] = []
    outages: list[Outage] = []
    up_from = time.monotonic()
    try:
        for number in range(1, OUTAGES + 1):
            since = up_from

            def accepted_and_up_long_enough(since: float = since) -> bool:
                return time.monotonic() - since >= UP_FOR and any(
                    a.accepted and a.sent >= since for a in answered_so_far(emitters)
                )

            if not await until(accepted_and_up_long_enough, within=20):
                problems.append(f"before outage {number}: no event accepted in 20 s")

            if outages:  # what is answered from here on may meet the server shutting down
                outages[-1].up_until = time.monotonic()
            await asyncio.to_thread(pg_cluster.stop)
            outage = Outage(number, down_from=time.monotonic())
            outages.append(outage)

            def refused_and_down_long_enough(outage: Outage = outage) -> bool:
                return time.monotonic() - outage.down_from >= DOWN_FOR and any(
                    outage.during(a) and a.status == 503 for a in answered_so_far(emitters)
                )

            await until(refused_and_down_long_enough, within=DOWN_FOR + 8)
            outage.down_until = time.monotonic()
            await asyncio.to_thread(pg_cluster.start)
            outage.up_from = up_from = time.monotonic()

            def accepted_again(outage: Outage = outage) -> bool:
                return any(outage.after(a) and a.accepted for a in answered_so_far(emitters))

            if await until(accepted_again, within=20):
                first = min(
                    a.answered for a in answered_so_far(emitters) if outage.after(a) and a.accepted
                )
                outage.recovered_after = first - outage.up_from
            outage.dead_workers = [w.name for w in workers if not w.alive]
    finally:
        for emitter in emitters:
            emitter.stopping.set()
        await asyncio.gather(*emitting)

    answers = answered_so_far(emitters)
    accepted = [a for a in answers if a.accepted]

    # every accepted event reaches its receiver and is recorded as such, once the database is back
    async def all_delivered() -> bool:
        if not any(w.alive for w in workers):
            return True  # nobody left to deliver: stop waiting, report below
        found = await deliveries_of(app.database_url, [a.event_id for a in accepted])
        return all(
            found.get(a.event_id) and all(d["status"] == "succeeded" for d in found[a.event_id])
            for a in accepted
        )

    draining = time.monotonic()
    drained = await until(all_delivered, within=30, every=0.5)
    drain_seconds = time.monotonic() - draining
    stored = await deliveries_of(app.database_url, [a.event_id for a in accepted])
    received = {r.header("webhook-id") for r in python_receiver.requests}

    # what the API answered
    statuses = Counter(a.status for a in answers)
    summary = [
        f"{len(answers)} emits: answered {dict(statuses)}; {len(accepted)} accepted",
        f"receiver: {len(python_receiver.requests)} requests, {len(received)} distinct events",
        f"once the emits stopped, the rest was delivered in {drain_seconds:.1f} s"
        if drained and any(w.alive for w in workers)
        else f"once the emits stopped, {drain_seconds:.1f} s did not deliver the rest",
        f"503 messages: {dict(Counter(a.message() for a in answers if a.status == 503))}",
    ]
    for outage in outages:
        during = [a for a in answers if outage.during(a)]
        after = [a for a in answers if outage.after(a)]
        summary.append(
            f"outage {outage.number}: down {outage.down_until - outage.down_from:.1f} s, "
            f"answered {dict(Counter(a.status for a in during))} meanwhile; after the start "
            f"{dict(Counter(a.status for a in after))}, first 2xx "
            + (
                "never"
                if outage.recovered_after is None
                else f"{outage.recovered_after:.2f} s after the start"
            )
            + (f"; dead workers: {outage.dead_workers}" if outage.dead_workers else "")
        )
        late = [a for a in after if a.status == 503]
        if late:
            summary.append(
                f"  503 after the start: sent {min(a.sent for a in late) - outage.up_from:.2f}"
                f"–{max(a.sent for a in late) - outage.up_from:.2f} s after it, "
                f"{dict(Counter(a.message() for a in late))}"
            )
        if not any(a.status == 503 for a in during):
            problems.append(f"outage {outage.number}: the API never answered 503 while down")
        wrong = [(a, p) for a in during if (p := a.shape_problem(503)) is not None]
        if wrong:
            problems.append(
                f"outage {outage.number}: {len(wrong)} of {len(during)} answers while down were "
                f"not the 503 error shape, e.g. {wrong[0][0].describe()} ({wrong[0][1]})"
            )
        if outage.recovered_after is None:
            problems.append(f"outage {outage.number}: no 2xx in 20 s after the database was back")
    others = [a for a in answers if not a.accepted and a.shape_problem(503) is not None]
    if others:
        problems.append(
            f"{len(others)} answers were neither 2xx nor the 503 error shape, e.g. "
            + "; ".join(a.describe() for a in others[:3])
        )
    not_one_delivery = [a for a in accepted if a.response and a.response.json()["deliveries"] != 1]
    if not_one_delivery:
        problems.append(f"accepted without its one delivery: {not_one_delivery[0].describe()}")

    # nothing lost
    never_stored = [a.event_id for a in accepted if a.event_id not in stored]
    if never_stored:
        problems.append(
            f"{len(never_stored)} accepted events are not in the database: {never_stored[:5]}"
        )
    undelivered = [
        (a.event_id, d)
        for a in accepted
        for d in stored.get(a.event_id, [])
        if d["status"] != "succeeded"
    ]
    if undelivered:
        states = Counter(
            f"{d['status']}, {'leased' if d['lease_owner'] else 'not leased'}"
            for _, d in undelivered
        )
        problems.append(
            f"{len(undelivered)} deliveries of accepted events did not succeed "
            f"({dict(states)}), e.g. "
            + "; ".join(
                f"{event_id}: {d['status']} attempts={d['attempt_count']} "
                f"lease_owner={d['lease_owner']} next={d['next_attempt_at']} "
                f"last_error={d['last_error']!r}"
                for event_id, d in undelivered[:3]
            )
        )
    not_received = [a.event_id for a in accepted if a.event_id not in received]
    if not_received:
        problems.append(
            f"{len(not_received)} accepted events never reached the receiver: {not_received[:5]}"
        )

    # every process rode it out
    for process in [api.process, *workers]:
        if not process.alive:
            last = (process.output().strip().splitlines() or ["(no output)"])[-1]
            problems.append(f"{process.name} died (exit {process.popen.returncode}): {last}")
    summary.append(f"attempts recorded: {dict(await attempt_errors(app.database_url))}")
    for worker in workers:
        summary.append(f"--- {worker.name} ---\n" + log_excerpts(worker.output(), tracebacks=1))
    print("\n".join(summary))
    assert not problems, "\n".join(problems) + "\n\n" + "\n".join(summary)


async def test_the_api_alone_answers_503_while_the_database_is_down_and_recovers_by_itself(
    pg_cluster: PgCluster, app: App
) -> None:
    api = await app.api()
    token = await set_up_operator(api)
    headers = {"Authorization": f"Bearer {token}"}
    before = await api.client.post("/v1/events", headers=headers, json=emit_body("evt-before"))
    assert before.status_code == 202, before.text
    pid = api.process.popen.pid

    await asyncio.to_thread(pg_cluster.stop)

    async def not_ready() -> bool:
        return (await api.client.get("/readyz")).status_code == 503

    assert await until(not_ready, within=10), "/readyz did not answer 503 with the database down"
    down = {
        "emit": await api.client.post(
            "/v1/events", headers=headers, json=emit_body("evt-during-outage")
        ),
        "list locations": await api.client.get("/v1/locations", headers=headers),
        "list events": await api.client.get("/v1/events", headers=headers),
        "admin lists operators": await api.client.get(
            "/v1/operators", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ),
    }
    for what, response in down.items():
        error = error_of(response, 503)
        assert "database" in error["message"].lower(), (what, error)

    await asyncio.to_thread(pg_cluster.start)
    answered: list[int] = []

    async def ready() -> bool:
        answered.append((await api.client.get("/readyz")).status_code)
        return answered[-1] == 200

    assert await until(ready, within=15), f"/readyz answered {answered} after the start"
    assert api.process.alive and api.process.popen.pid == pid  # the same process, not restarted
    after = await api.client.post("/v1/events", headers=headers, json=emit_body("evt-after"))
    assert after.status_code == 202, after.text
    events = await api.client.get("/v1/events", headers=headers)
    assert events.status_code == 200, events.text
    # nothing was half-written while it was down
    assert [e["id"] for e in events.json()["data"]] == ["evt-after", "evt-before"]


async def test_a_restart_leaves_no_closed_connection_to_hand_out(pg_cluster: PgCluster) -> None:
    """The pool holds connections the restart closed; the first transaction after it must get
    a live one (the checkout knows without asking the server), not fail as an outage."""
    engine = create_engine(pg_cluster.database_url())
    try:
        held = [await engine.connect() for _ in range(3)]  # three pooled connections
        for conn in held:
            await conn.close()
        await asyncio.to_thread(pg_cluster.stop)
        await asyncio.to_thread(pg_cluster.start)
        await asyncio.sleep(0.2)  # the loop reads the closed sockets' end
        for _ in range(4):  # each checkout, the closed ones included, gets a live one
            async with transaction(engine, write=True) as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
