"""The rig ``bench/dispatch.py`` measures with: receivers, worker processes, the bench's own
databases and the CPU meters. Nothing here is product code; it imports none of it.

* receivers: one process (always uvloop) serving several ports: answering (``200`` at once),
  hanging (accept the connection, read, never answer) and recording (answer ``200`` and note
  the arrival time of each ``webhook-id``);
* ``Workers``: ``hotspot-webhooks worker`` processes (run as ``python -m hotspot_webhooks`` with
  this tree's ``src`` first, so ``bench/versus.py`` measures the tree it means), their CPU and
  peak RSS from ``/proc/<pid>``;
* ``Databases`` and ``Probe``: the bench's SQLite files or PostgreSQL databases
  (``hw_bench_<hex>``, dropped at the end), and the bench's own connection to one: deliveries
  left, and holding every delivery back until the workers are up;
* ``PostgresCpu``: the PostgreSQL server's CPU during a measurement, from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the code measured: this tree's, or another revision's that bench/versus.py names (a script
# run from this tree still measures that revision's code, in this process and in its children)
SRC = Path(os.environ.get("HW_BENCH_SRC") or ROOT / "src")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.postgres import POSTGRES, admin_sql  # noqa: E402  (the machine's server, as tests use it)

SECRET_KEY = "bench-secret-key-0123456789"
TICK = 1 / os.sysconf("SC_CLK_TCK")  # seconds per clock tick of /proc/<pid>/stat
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK"
# a held-back delivery is due then; released, it is due at its creation again, as emitted
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
SQLITE_FAR_FUTURE = "2999-01-01 00:00:00.000000"  # SQLAlchemy's SQLite DATETIME text


def use_uvloop(*, always: bool = False) -> None:
    """uvloop for this process when ``BENCH_LOOP=uvloop`` (or ``always``), if installed."""
    if os.environ.get("BENCH_LOOP", "asyncio") != "uvloop" and not always:
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---- the fastest bare client (bench/senders.py measured it) -----------------------------------


async def bare_curl_loop(
    url: str, body: bytes, count: int, concurrency: int, *, epoll: bool = False
) -> float:
    """``count`` POSTs of ``body`` to ``url``, ``concurrency`` at a time, through libcurl's multi
    interface on the running loop: one header, keep-alive, the answer read; no database, no
    signing, none of the sender's guarantees. Driven by pycurl's own ``AsyncCurlMulti``, or
    (``epoll``) by the sender's ``EpollCurlLoop``, which is cheaper. Returns requests/s."""
    import pycurl

    if epoll:
        from hotspot_webhooks.delivery.curl_loop import EpollCurlLoop

        multi: Any = EpollCurlLoop(asyncio.get_running_loop())
    else:
        multi = pycurl.AsyncCurlMulti()
    remaining = count

    async def lane() -> None:
        nonlocal remaining
        curl, answer = pycurl.Curl(), list[bytes]()
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.POSTFIELDS, body)
        curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json", "Expect:"])
        curl.setopt(pycurl.WRITEFUNCTION, answer.append)
        while remaining > 0:
            remaining -= 1
            answer.clear()
            await multi.perform(curl)
            assert curl.getinfo(pycurl.RESPONSE_CODE) == 200
        curl.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await multi.aclose()
    return count / seconds


# ---- receivers (their own process) -----------------------------------------------------------


class Answering(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server answering 200 to every request; with ``record``,
    it also notes when each request arrived, under its ``webhook-id``."""

    def __init__(self, record: dict[str, float] | None = None) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.record = record

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = int(_header(head, b"content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            if self.record is not None:
                at = head.find(b"\r\nwebhook-id:")
                if at >= 0:  # the id's own case: the original bytes at the same offsets
                    stop = head.find(b"\r\n", at + 2)
                    name = self.buffer[at + 13 : stop if stop > 0 else end].strip().decode()
                    self.record.setdefault(name, time.time())
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(RESPONSE)


def _header(head: bytes, name: bytes) -> bytes | None:
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop > 0 else len(head)].strip()


class Hanging(asyncio.Protocol):
    """Accepts the connection, reads the request, and never answers."""

    def data_received(self, data: bytes) -> None:
        pass


def serve_receivers(
    answering: Sequence[int],
    hanging: Sequence[int] = (),
    recording: Sequence[int] = (),
    record_file: Path | None = None,
) -> None:
    """Serve until SIGTERM. SIGUSR1 writes the arrivals recorded so far to ``record_file``
    (``{webhook-id: unix time}``, written whole, then renamed into place) and forgets them."""
    use_uvloop(always=True)  # the receiver is the test rig: as fast as it can be, always
    arrivals: dict[str, float] = {}

    def dump() -> None:
        assert record_file is not None
        partial = record_file.with_suffix(".partial")
        partial.write_text(json.dumps(arrivals))
        partial.rename(record_file)
        arrivals.clear()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [
            *[await loop.create_server(Answering, "127.0.0.1", p, backlog=1024) for p in answering],
            *[await loop.create_server(Hanging, "127.0.0.1", p, backlog=1024) for p in hanging],
            *[
                await loop.create_server(lambda: Answering(arrivals), "127.0.0.1", p, backlog=1024)
                for p in recording
            ],
        ]
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if record_file is not None:
            loop.add_signal_handler(signal.SIGUSR1, dump)
        print("ready", flush=True)
        await stop.wait()
        for server in servers:
            server.close()

    asyncio.run(main())


def take_arrivals(receiver: subprocess.Popen[bytes], record_file: Path) -> dict[str, float]:
    """The recording receiver's arrivals since the last call (it forgets them)."""
    record_file.unlink(missing_ok=True)
    receiver.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not record_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the recording receiver did not write its arrivals")
        time.sleep(0.01)
    arrivals: dict[str, float] = json.loads(record_file.read_text())
    return arrivals


# ---- processes' CPU and memory, from /proc ----------------------------------------------------


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields from the 3rd on) of /proc/<pid>/stat; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    close = text.rindex(")")
    return text[text.index("(") + 1 : close], text[close + 2 :].split()


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (every thread of it), in clock ticks."""
    stat = _stat(pid)
    return None if stat is None else int(stat[1][11]) + int(stat[1][12])


def run_step(script: str, *args: str) -> dict[str, Any]:
    """Run a bench ``script``'s step in a fresh interpreter (its CPU and peak RSS its own)
    and return the JSON its last line printed; stop with its stderr if it failed."""
    done = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def tree_ticks(pid: int) -> int:
    """utime + stime of ``pid`` and every process below it, in clock ticks."""
    return sum(cpu_ticks(member) or 0 for member in process_tree(pid))


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a supervisor and its children)."""
    found, index = [pid], 0
    while index < len(found):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{found[index]}/task").iterdir():
                found += [int(n) for n in (task / "children").read_text().split()]
        index += 1
    return found


def peak_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def postmaster_of(backend: int) -> int:
    """The PostgreSQL server's postmaster: the parent of one of its backends."""
    stat = _stat(backend)
    if stat is None:
        raise SystemExit(f"no process {backend}: is the PostgreSQL server on this machine?")
    return int(stat[1][1])


def server_ticks(postmaster: int) -> int:
    """CPU of one PostgreSQL server so far, in clock ticks: utime + stime of the postmaster
    and of every child of it (backends, WAL writer, checkpointer, autovacuum...), plus what
    the postmaster has reaped of its exited children (cutime + cstime), so backends that
    ended count too."""
    stat = _stat(postmaster)
    if stat is None:
        raise SystemExit(f"the postmaster {postmaster} is gone")
    fields = stat[1]
    total = sum(int(f) for f in fields[11:15])  # its own, and its reaped children's
    for entry in os.scandir("/proc"):
        child = _stat(int(entry.name)) if entry.name.isdigit() else None
        if child is not None and int(child[1][1]) == postmaster:
            total += int(child[1][11]) + int(child[1][12])
    return total


class PostgresCpu:
    """The PostgreSQL server's CPU during a measurement, two ways, both without ``probe``'s
    own backend (the bench's probing connection):

    * ``database``: the backends serving the bench's database, found in ``pg_stat_activity``
      at every ``sample`` (a backend first seen during the measurement counts from its start;
      one that ends between samples keeps its last sample);
    * ``server``: the whole server (the probe backend's postmaster and all its children: WAL
      writer, checkpointer, autovacuum, and the backends of anyone else using the shared
      server at the same time).
    """

    def __init__(self, probe: int) -> None:
        self.probe = probe
        self.postmaster = postmaster_of(probe)
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.server = self.excluded = 0

    def start(self, pids: Iterable[int]) -> None:
        self.server = server_ticks(self.postmaster)
        self.excluded = cpu_ticks(self.probe) or 0
        for pid in set(pids) - {self.probe}:
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self.first[pid] = self.last[pid] = ticks

    def sample(self, pids: Iterable[int]) -> None:
        for pid in set(pids) - {self.probe}:
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self.first.setdefault(pid, 0)
                self.last[pid] = ticks

    def stop(self, pids: Iterable[int]) -> tuple[float, float]:
        """(database's backends, whole server) CPU seconds since ``start``."""
        self.sample(pids)
        database = sum(self.last[pid] - self.first[pid] for pid in self.last)
        probe = (cpu_ticks(self.probe) or self.excluded) - self.excluded
        server = server_ticks(self.postmaster) - self.server - probe
        return database * TICK, server * TICK


# ---- the bench's databases ---------------------------------------------------------------------


def postgres_url(name: str) -> str:
    return f"{POSTGRES}/{name}"


class Databases:
    """The bench's databases: SQLite files in ``tmp``, or databases ``hw_bench_<hex>`` on the
    machine's PostgreSQL server, every one dropped (WITH (FORCE)) when the block ends."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.made: list[str] = []  # PostgreSQL database names

    async def __aenter__(self) -> Databases:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name in list(self.made):
            await self._drop(name)

    async def create(self, template: str | None = None) -> str:
        """A new database's URL: empty (the fill step migrates it), or a copy of ``template``."""
        if self.kind == "sqlite":
            path = self.tmp / f"hw_bench_{secrets.token_hex(6)}.db"
            if template is not None:
                source = Path(template.removeprefix("sqlite:///"))
                shutil.copy(source, path)
                wal = source.with_name(source.name + "-wal")
                if wal.exists():
                    shutil.copy(wal, path.with_name(path.name + "-wal"))
            return f"sqlite:///{path}"
        name = f"hw_bench_{secrets.token_hex(6)}"
        statement = f'CREATE DATABASE "{name}"'
        if template is not None:
            statement += f' TEMPLATE "{template.rsplit("/", 1)[1]}"'
        for tries_left in range(20, -1, -1):  # the template may be busy a moment (autovacuum)
            try:
                await admin_sql(statement)
                break
            except Exception as exc:
                if "being accessed by other users" not in str(exc) or not tries_left:
                    raise
                await asyncio.sleep(0.25)
        self.made.append(name)
        return postgres_url(name)

    async def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        else:
            await self._drop(url.rsplit("/", 1)[1])

    async def _drop(self, name: str) -> None:
        await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self.made.remove(name)


class Probe:
    """The bench's own connection to a database (sqlite3 or asyncpg, not the product's store):
    counts deliveries, holds them back and releases them."""

    def __init__(self, url: str, sqlite: sqlite3.Connection | None, pg: Any) -> None:
        self.url = url
        self.sqlite = sqlite
        self.pg = pg
        self.backend_pid: int | None = None

    @classmethod
    async def open(cls, url: str) -> Probe:
        if url.startswith("sqlite:///"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
            return cls(url, conn, None)
        import asyncpg

        probe = cls(url, None, await asyncpg.connect(url))
        probe.backend_pid = await probe.pg.fetchval("SELECT pg_backend_pid()")
        return probe

    async def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()

    async def count(self, status: str, webhooks: Sequence[str] | None = None) -> int:
        """Deliveries in ``status`` (of these webhooks, or all)."""
        if self.sqlite is not None:
            where = "status = ?"
            if webhooks is not None:
                where += f" AND webhook_id IN ({','.join('?' * len(webhooks))})"
            sql = f"SELECT count(*) FROM deliveries WHERE {where}"  # noqa: S608 (placeholders)
            row = self.sqlite.execute(sql, (status, *(webhooks or ()))).fetchone()
            return int(row[0])
        if webhooks is None:
            found = await self.pg.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = $1", status
            )
        else:
            found = await self.pg.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = $1 AND webhook_id = ANY($2)",
                status,
                list(webhooks),
            )
        return int(found)

    async def hold(self) -> None:
        """Make every pending delivery due only in the far future (workers start idle)."""
        if self.sqlite is not None:
            self.sqlite.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE status = 'pending'",
                (SQLITE_FAR_FUTURE,),
            )
            return
        await self.pg.execute(
            "UPDATE deliveries SET next_attempt_at = $1 WHERE status = 'pending'", FAR_FUTURE
        )
        await self.pg.execute("VACUUM ANALYZE deliveries")

    async def release(self) -> None:
        """Every held delivery due again at its creation, as it was emitted; one commit."""
        sql = "UPDATE deliveries SET next_attempt_at = created_at WHERE status = 'pending'"
        if self.sqlite is not None:
            self.sqlite.execute(sql)
        else:
            await self.pg.execute(sql)

    async def wal_position(self) -> int | None:
        """Bytes of WAL the PostgreSQL server has written so far (the whole server's)."""
        if self.pg is None:
            return None
        return int(await self.pg.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    async def sessions(self) -> set[int]:
        """The PostgreSQL backends serving this database now, the probe's own left out."""
        if self.pg is None:
            return set()
        rows = await self.pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {int(row["pid"]) for row in rows}


# ---- worker processes ---------------------------------------------------------------------------


def worker_env(database_url: str, **settings: object) -> dict[str, str]:
    """The environment of a ``hotspot-webhooks worker`` for the bench: ``HOTSPOT_WEBHOOKS_*``
    settings, and the measured ``src`` (``SRC``) first on the path."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    values: dict[str, object] = {
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "allow_private_targets": "true",
        **settings,
    }
    for name, value in values.items():
        env[f"HOTSPOT_WEBHOOKS_{name.upper()}"] = str(value)
    return env


class Workers:
    """``count`` dispatcher commands (``hotspot-webhooks worker --processes N``) on one
    database, each logging to its own file under ``logs``. CPU and RSS are read over each
    command's process tree: with N > 1 a supervisor and its N children."""

    def __init__(self, count: int, env: dict[str, str], logs: Path, processes: int = 1) -> None:
        self.count = count
        self.env = env
        self.logs = logs
        self.per_command = processes
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for number in range(self.count):
            with (self.logs / f"worker-{number}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "hotspot_webhooks", "worker"),
                            *("--processes", str(self.per_command)),
                        ],
                        env=self.env,
                        cwd=self.logs,  # no stray .env file is read
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    async def ready(self, patience: float = 60.0) -> None:
        """Wait until every worker has started up and idles (no held delivery is due): over
        the last half second each used under 15 % of a core per process."""
        window = 0.5
        history: list[list[int]] = []
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            self.check()
            history.append([tree_ticks(p.pid) for p in self.processes])
            if len(history) > int(window / 0.1):
                pairs = zip(history[-1], history[0], strict=True)
                used = [(now - then) * TICK for now, then in pairs]
                history.pop(0)
                children_up = self.per_command == 1 or all(
                    len(process_tree(p.pid)) > self.per_command for p in self.processes
                )  # a supervisor and its N children
                idle = all(seconds < 0.15 * window * self.per_command for seconds in used)
                if children_up and idle and min(history[-1]):
                    return
            await asyncio.sleep(0.1)
        raise SystemExit(f"the workers did not settle within {patience:.0f} s:\n{self.log_tails()}")

    def ticks(self) -> int:
        return sum(tree_ticks(p.pid) for p in self.processes)

    def peak_rss_mb(self) -> float:
        """The largest dispatcher process's peak RSS (a supervisor's children each count
        alone: each holds its own backlog window)."""
        return max(
            (peak_rss_mb(member) for p in self.processes for member in process_tree(p.pid)),
            default=0.0,
        )

    def check(self) -> None:
        if any(p.poll() is not None for p in self.processes):
            raise SystemExit(f"a worker process ended early:\n{self.log_tails()}")

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for number in range(len(self.processes)):
            text = (self.logs / f"worker-{number}.log").read_text(errors="replace")
            tails.append(f"--- worker {number}:\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)

    def stop(self) -> None:
        """End them now (SIGTERM, then SIGKILL after 3 s): what they still hold is not measured."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
