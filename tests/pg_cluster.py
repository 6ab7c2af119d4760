"""A throwaway PostgreSQL cluster for the tests that stop and restart the database.

The machine's server at 127.0.0.1:5432 (``tests/postgres.py``) is shared and is never stopped;
a test that takes the whole database away gets a cluster of its own instead: ``initdb`` in a
temporary directory (trust authentication, no fsync, small buffers, no Unix socket), served by
``pg_ctl`` on a free port of 127.0.0.1, stopped and removed afterwards. Making one and starting
it takes about 0.7 s, so the ``pg_cluster`` fixture gives each test a fresh one.

Without the server binaries (``initdb``, ``pg_ctl``: on the ``PATH`` or in
``/usr/lib/postgresql/*/bin``) the tests that use it are skipped, and say so; where CI requires
PostgreSQL (``HW_TEST_POSTGRES=required``, set by ``.ci/run``) they fail instead. As root the
binaries run as the ``postgres`` user (``initdb`` refuses root), through ``runuser``.

A test module uses the fixture by importing it::

    from tests.pg_cluster import PgCluster, pg_cluster_fixture  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.receivers import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",  # TCP only: nothing to clash with the machine's server
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "max_wal_size": "64MB",
    "log_min_messages": "warning",
}
COMMAND_TIMEOUT = 60.0


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: the ``PATH`` first, then the newest Debian version."""
    found = shutil.which("initdb")
    if found is not None:
        bindir = Path(found).resolve().parent
        if all((bindir / name).exists() for name in SERVER_BINARIES):
            return bindir
    versions = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if all((bindir / name).exists() for name in SERVER_BINARIES):
            version = re.match(r"\d+", bindir.parent.name)
            versions.append((int(version.group()) if version else 0, bindir))
    return max(versions)[1] if versions else None


def _runs_as() -> list[str] | None:
    """The prefix that runs a server binary as a user it accepts (None: no such way)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return None if runuser is None else [runuser, "-u", "postgres", "--"]


def unavailable_reason() -> str | None:
    """Why no throwaway cluster can be made here (None: one can)."""
    if find_bindir() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl) on the PATH or in "
            "/usr/lib/postgresql/*/bin: `apt-get install postgresql`"
        )
    if _runs_as() is None:
        return "running as root, but there is no `postgres` user or no `runuser` to run initdb"
    return None


def require_pg_tools() -> Path:
    """The server binaries' directory; skip the test (or fail it, where CI requires
    PostgreSQL) when they are missing."""
    reason = unavailable_reason()
    bindir = find_bindir()
    if reason is None and bindir is not None:
        return bindir
    message = f"cannot make a throwaway PostgreSQL cluster: {reason}"
    if os.environ.get("HW_TEST_POSTGRES") == "required":  # set by .ci/run
        pytest.fail(f"{message}, and CI requires PostgreSQL")
    pytest.skip(f"{message}; the database restart tests are skipped")


class PgCluster:
    """One PostgreSQL cluster in a temporary directory, on its own 127.0.0.1 port."""

    def __init__(self, bindir: Path, *, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port if port is not None else free_port()
        self._as = _runs_as() or []
        self.root = Path(tempfile.mkdtemp(prefix="hw-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.running = False
        self.seconds_to_create = 0.0  # initdb and the first start, as measured
        if self._as:  # the server's user must own its directory
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @classmethod
    def create(cls, bindir: Path | None = None) -> PgCluster:
        """``initdb`` a new cluster and start it."""
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(unavailable_reason())
        cluster = cls(found)
        began = time.monotonic()
        try:
            cluster._initdb()
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        cluster.seconds_to_create = time.monotonic() - began
        return cluster

    @property
    def url(self) -> str:
        """The server's base URL; append ``/<database>`` (like ``tests.postgres.POSTGRES``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def database_url(self, database: str = "postgres") -> str:
        return f"{self.url}/{database}"

    def _command(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._as, str(self.bindir / name), *args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            check=False,
        )
        return done

    def _check(self, what: str, done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            raise RuntimeError(
                f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\n--- server log ---\n{self.log_tail()}"
            )

    def _initdb(self) -> None:
        done = self._command(
            "initdb",
            "--pgdata",
            str(self.data),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        self._check("initdb", done)
        lines = [f"port = {self.port}", *(f"{k} = {v}" for k, v in SETTINGS.items())]
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:  # the server's own user can still read it (0644, in its dir)
            f.write("\n# tests/pg_cluster.py\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        done = self._command(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout",
            str(int(COMMAND_TIMEOUT / 2)),
        )
        self._check("pg_ctl start", done)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close every connection)."""
        done = self._command(
            "pg_ctl",
            "stop",
            "--pgdata",
            str(self.data),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            str(int(COMMAND_TIMEOUT / 2)),
        )
        self._check("pg_ctl stop", done)
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        """What ``pg_ctl status`` says (``running`` is what this object last did)."""
        return self._command("pg_ctl", "status", "--pgdata", str(self.data)).returncode == 0

    async def create_database(self, name: str) -> str:
        """Create database ``name``; return its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a plain database name")
        await self.admin_sql(f"CREATE DATABASE {name}")
        return self.database_url(name)

    async def admin_sql(self, *statements: str) -> None:
        """Run ``statements`` in turn as the superuser, in the ``postgres`` database."""
        conn = await asyncpg.connect(self.database_url("postgres"))
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def destroy(self) -> None:
        """Stop the server if it runs (immediately: nothing in it is kept), remove the files."""
        try:
            if self.data.exists() and self.is_running():
                self.stop(mode="immediate")
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(name="pg_cluster")
def pg_cluster_fixture() -> Iterator[PgCluster]:
    """A fresh cluster of this test's own, running; stopped and removed afterwards."""
    bindir = require_pg_tools()
    cluster = PgCluster.create(bindir)
    try:
        yield cluster
    finally:
        cluster.destroy()
