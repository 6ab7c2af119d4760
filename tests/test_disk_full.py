"""A full disk, for real (a small tmpfs): a backup to it names the archive it could not write,
``purge`` on a full SQLite disk says why it cannot and where the runbook is, and the runbook's
commands, as docs/operations.md prints them, bring the service back to writing, on SQLite and
on PostgreSQL (issue 25, F6).

The file systems are tmpfs mounts made for each test (root only; CI runs as root), unmounted
after it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.config import Settings
from hotspot_webhooks.errors import DatabaseUnavailable
from hotspot_webhooks.service import EmitRequest, Service
from tests.conftest import run_cli
from tests.pg_cluster import PgCluster, pg_cluster_fixture  # noqa: F401  (the pg_cluster fixture)
from tests.postgres import POSTGRES_SECRET_KEY

BACKENDS = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
EVENT = "customer.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample
BIN = Path(sys.executable).parent  # where `hotspot-webhooks` is installed


@pytest.fixture
def make_tmpfs() -> Iterator[Callable[[str], Path]]:
    """``make_tmpfs("2m")``: a tmpfs of that size, mounted for the test, unmounted after (in a
    directory of /tmp that other users may traverse: PostgreSQL's server writes in one)."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        where = Path(tempfile.mkdtemp(prefix="hw-tmpfs-"))
        where.chmod(0o755)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            where.rmdir()
            pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte with one file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for block in (1 << 16, 4096, 1):  # big blocks, then the last bytes
            try:
                while out.write(b"\0" * block):
                    pass
            except OSError:
                pass
    return filler


def cli_env(database_url: str) -> dict[str, str]:
    env = {"HOTSPOT_WEBHOOKS_DATABASE_URL": database_url}
    if database_url.startswith("postgresql"):
        env["HOTSPOT_WEBHOOKS_SECRET_KEY"] = POSTGRES_SECRET_KEY
    return env


# ---- backup to a full disk ------------------------------------------------------------------


async def test_a_backup_to_a_full_disk_names_the_archive_not_the_database(
    service: Service, database_url: str, make_tmpfs: Callable[[str], Path]
) -> None:
    await service.operators.create("acme")  # something to back up
    target = make_tmpfs("1m")
    fill(target)
    env = cli_env(database_url)

    for destination, shown in (
        (target / "nightly.tar.gz", target / "nightly.tar.gz"),
        (target, target / "hotspot-webhooks-"),  # a directory: a dated archive in it
    ):
        done = await asyncio.to_thread(run_cli, "backup", str(destination), env=env)
        assert done.returncode == 1
        assert done.stderr.startswith(f"error: cannot write {shown}"), done.stderr
        assert "its file system is full (no space left on device)" in done.stderr
        live = database_url.removeprefix("sqlite:///")
        assert live not in done.stderr  # not the database it read
        assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in target.iterdir()) == ["filler"]  # nothing half-written


@pytest.mark.sqlite_only
def test_a_backup_of_a_database_on_a_full_disk_says_that_disk_is_full(
    make_tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    disk = make_tmpfs("2m")
    database = disk / "hooks.db"
    assert run_cli("migrate", db=f"sqlite:///{database}").returncode == 0
    fill(disk)  # with the database closed: no -shm left for a reader

    done = run_cli("backup", str(tmp_path / "b.tar.gz"), db=f"sqlite:///{database}")

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: cannot back up database {database}: its file system is full, and SQLite "
        "needs a little room even to read it (docs/operations.md, 'Disk full')"
    )


# ---- a SQLite database that filled its disk -------------------------------------------------


async def _emit_until_full(url: str, *, secret_key: str | None = None) -> int:
    """Emit events (at a location no webhook listens to) until the disk is full; how many
    went in. The refusal must say the disk is full, in the database's own words."""
    settings = Settings(_env_file=None, database_url=url, secret_key=secret_key)
    service = await Service.open(settings, migrate=True)
    try:
        await service.operators.create("acme")
        await service.locations.create("loc-1", "Café Central", "acme")
        emitted, refused = 0, ""
        while not refused:
            batch = [EmitRequest(EVENT, "loc-1", SAMPLE, None) for _ in range(100)]
            try:
                await service.events.emit_many(batch)
            except DatabaseUnavailable as exc:
                refused = str(exc)
            else:
                emitted += len(batch)
                assert emitted < 1_000_000, "the disk never filled"
    finally:
        await service.close()
    assert "database or disk is full" in refused or "No space left on device" in refused, refused
    return emitted


async def _emits_again(url: str, events: int) -> None:
    """The service writes: ``events`` more events are stored."""
    service = await Service.open(Settings(_env_file=None, database_url=url))
    try:
        for _ in range(events // 100):
            await service.events.emit_many([EmitRequest(EVENT, "loc-1", SAMPLE, None)] * 100)
    finally:
        await service.close()


def _purge_refused(url: str) -> None:
    done = run_cli("purge", "--older-than", "1s", env=cli_env(url))
    assert done.returncode == 1
    assert done.stderr.startswith("error: purge failed: the database's disk is full"), done.stderr
    assert "docs/operations.md, 'Disk full'" in done.stderr


def runbook(heading: str) -> str:
    """The first shell block under ``heading`` in docs/operations.md."""
    text = OPERATIONS.read_text()
    section = text[text.index(f"\n### {heading}\n") :]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, heading
    return found.group(1)


def run_runbook(
    script: str, env: dict[str, str] | None = None, **values: str
) -> subprocess.CompletedProcess[str]:
    """Run the runbook's commands as printed, with its variables set to ``values``."""
    for name, value in values.items():
        script, n = re.subn(
            rf"^(export )?{name}=.*$", rf"\g<1>{name}={value}", script, flags=re.MULTILINE
        )
        assert n == 1, f"the runbook sets {name} once"
    path = f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_WEBHOOKS_")}
    env = {**inherited, "PATH": path, **(env or {})}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=300,
        check=False,
    )


@pytest.mark.sqlite_only
async def test_purge_on_a_full_disk_says_so_and_moving_the_database_as_the_runbook_says_recovers(
    make_tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    disk = make_tmpfs("8m")
    database = disk / "hooks.db"
    url = f"sqlite:///{database}"
    emitted = await _emit_until_full(url)
    assert emitted > 1000
    await asyncio.sleep(1.5)  # everything is older than 1 s
    await asyncio.to_thread(_purge_refused, url)

    spare = tmp_path / "spare"
    spare.mkdir()
    done = await asyncio.to_thread(
        run_runbook,
        runbook("SQLite: move it where there is room"),
        DB=str(database),
        SPARE=str(spare),
        OLDER_THAN="1s",
    )
    assert done.returncode == 0, done.stderr

    assert database.stat().st_size < 1 << 20  # purged and compacted
    assert oct(database.stat().st_mode & 0o777) == "0o600"
    await _emits_again(url, 1000)  # the service writes again
    assert (spare / "before-purge.tar.gz").is_file()  # the safety copy


@pytest.mark.sqlite_only
async def test_making_room_of_the_wal_size_lets_purge_run_in_place_as_the_runbook_says(
    make_tmpfs: Callable[[str], Path],
) -> None:
    disk = make_tmpfs("12m")
    old_logs = disk / "old-logs"
    old_logs.write_bytes(b"\0" * (5 << 20))  # something else on that disk, that can go
    database = disk / "hooks.db"
    url = f"sqlite:///{database}"
    emitted = await _emit_until_full(url)
    await asyncio.sleep(1.5)
    await asyncio.to_thread(_purge_refused, url)
    wal = database.with_name("hooks.db-wal").stat().st_size
    assert old_logs.stat().st_size >= wal  # room enough for the pending checkpoint

    old_logs.unlink()
    script = runbook("SQLite: make room where it is").replace("7d", "1s")
    done = await asyncio.to_thread(
        run_runbook, f"export HOTSPOT_WEBHOOKS_DATABASE_URL={url}\n{script}"
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"events\s+{emitted}\b", done.stdout), done.stdout

    size = database.stat().st_size
    await _emits_again(url, emitted // 2)  # into the pages purged: the file does not grow
    assert database.stat().st_size <= size + (1 << 20)


# ---- a PostgreSQL database whose data filled its disk ----------------------------------------


@pytest.fixture
async def postgres_on_small_disk(
    make_tmpfs: Callable[[str], Path], pg_cluster: PgCluster
) -> tuple[str, Path]:
    """A database of a throwaway cluster in a tablespace on a 16 MiB tmpfs (its WAL stays in
    the cluster's data directory, which has room), and 2 MiB of something else on that disk
    that can go. Never the machine's shared server: while that tablespace is full, every
    checkpoint of its server fails, and with it every other test's ``DROP DATABASE``."""
    disk = make_tmpfs("16m")
    old_logs = disk / "old-logs"
    old_logs.write_bytes(b"\0" * (2 << 20))
    tablespace = disk / "tablespace"
    tablespace.mkdir(mode=0o700)
    if os.geteuid() == 0:  # the cluster's server runs as `postgres` (tests/pg_cluster.py)
        server = pwd.getpwnam("postgres")
        os.chown(tablespace, server.pw_uid, server.pw_gid)
    await pg_cluster.admin_sql(
        f"CREATE TABLESPACE small LOCATION '{tablespace}'",
        "CREATE DATABASE hooks TABLESPACE small",
    )
    return pg_cluster.database_url("hooks"), old_logs


@pytest.mark.postgresql_only
async def test_postgres_with_a_full_data_disk_purges_and_vacuums_as_the_runbook_says(
    postgres_on_small_disk: tuple[str, Path],
) -> None:
    url, old_logs = postgres_on_small_disk
    emitted = await _emit_until_full(url, secret_key=POSTGRES_SECRET_KEY)
    await asyncio.sleep(1.5)

    # a purge runs on the full disk: deleting takes no new pages
    purged = await asyncio.to_thread(run_cli, "purge", "--older-than", "1s", env=cli_env(url))
    assert purged.returncode == 0, purged.stderr
    assert re.search(rf"events\s+{emitted}\b", purged.stdout), purged.stdout

    # VACUUM needs a few pages of its own: with a few MiB freed, the runbook's commands work
    old_logs.unlink()
    script = runbook("PostgreSQL").replace("7d", "1s")
    done = await asyncio.to_thread(
        run_runbook,
        script,
        HOTSPOT_WEBHOOKS_DATABASE_URL=url,
        env={"HOTSPOT_WEBHOOKS_SECRET_KEY": POSTGRES_SECRET_KEY},
    )
    assert done.returncode == 0, done.stderr

    settings = Settings(_env_file=None, database_url=url, secret_key=POSTGRES_SECRET_KEY)
    service = await Service.open(settings)
    # the space purged is reused: the service writes again, and a good share of what filled
    # the disk fits again (not all of it at once: emptied B-tree pages are recycled only by a
    # later VACUUM, once no transaction can still see them)
    try:
        for _ in range(emitted // 4 // 100):
            await service.events.emit_many([EmitRequest(EVENT, "loc-1", SAMPLE, None)] * 100)
    finally:
        await service.close()
