"""``backup`` and ``restore`` as an operator runs them: one archive holds the database and the
secret key the API keys are encrypted with, so that after losing both, a restore brings back
every webhook with the very key its receiver was given.

Data is set up over the real REST API (``make_api``) and delivered to a real receiver that
checks each request's HMAC signature against the API key shown at the webhook's creation;
the commands run as the real ``hotspot-webhooks`` process (``run_cli``), from a thread while a
server or receiver runs in the test's event loop. Each round trip runs on SQLite and on
PostgreSQL (``pg_dump``/``pg_restore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sqlite3
import stat
import subprocess
import tarfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from hotspot_webhooks.receiver import verify_signature
from hotspot_webhooks.store.migrate import head_revision
from tests.conftest import run_cli
from tests.live_api import LiveAPI
from tests.postgres import POSTGRES_SECRET_KEY, admin_sql
from tests.receivers import serving

BACKENDS = ("sqlite", "postgresql")
SIGNATURE = "X-Hotspotsystem-Hmac-Sha256"


@dataclass
class VerifyingReceiver:
    """Answers 200 only to a request signed with the API key registered for its path (as the
    operator's receiver would, holding the key it was shown once); records every verdict."""

    port: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # path → API key
    verdicts: list[tuple[str, str, bool]] = field(default_factory=list)  # path, event id, ok

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = self.keys.get(request.path)
        signature = request.headers.get(SIGNATURE, "")
        ok = key is not None and verify_signature(body, signature, key)
        self.verdicts.append((request.path, request.headers.get("webhook-id", ""), ok))
        return web.Response(status=200 if ok else 401)


@pytest.fixture
async def receiver() -> AsyncIterator[VerifyingReceiver]:
    verifying = VerifyingReceiver()
    async with serving(verifying.handle) as port:
        verifying.port = port
        yield verifying


def cli_env(database_url: str) -> dict[str, str]:
    """The command's environment as the service's: PostgreSQL needs the key set; SQLite
    keeps it in the file beside the database."""
    env = {"HOTSPOT_WEBHOOKS_DATABASE_URL": database_url}
    if database_url.startswith("postgresql"):
        env["HOTSPOT_WEBHOOKS_SECRET_KEY"] = POSTGRES_SECRET_KEY
    return env


async def cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, env={**cli_env(database_url), **env})


async def deliver(api: LiveAPI, token: str, event_type: str, location_id: str) -> str:
    """Emit one event and wait until its one delivery succeeded; return the event id."""
    body = {"type": event_type, "location_id": location_id, "data": {"email": "g@example.com"}}
    emitted = await api.ok("POST", "/v1/events", token, json=body)
    assert emitted["deliveries"] == 1
    found = await api.ok("GET", f"/v1/deliveries?event_id={emitted['id']}", token)
    await api.wait_for_delivery(token, found["data"][0]["id"], "succeeded")
    return str(emitted["id"])


async def destroy(database_url: str) -> None:
    """Lose the database and, on SQLite, the key file beside it."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite"):
        path = Path(str(url.database))
        for lost in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            lost.unlink(missing_ok=True)
        path.with_name(path.name + ".secret-key").unlink()
        return
    name = url.database
    await admin_sql(f"DROP DATABASE {name} WITH (FORCE)", f"CREATE DATABASE {name}")


# ---- the round trip -------------------------------------------------------------------------

HOOKS = (  # (path, event type, location): three webhooks, three API keys
    ("/crm", "customer.create", "loc-1"),
    ("/mailing", "subscriber.create", "loc-1"),
    ("/second-site", "customer.create", "loc-2"),
)


async def test_back_up_destroy_restore_and_every_api_key_still_signs(
    make_api: Callable[..., Any],
    receiver: VerifyingReceiver,
    database_url: str,
    backend: str,
    tmp_path: Path,
) -> None:
    api: LiveAPI = await make_api()
    token = await api.operator_at("loc-1", "loc-2")
    for path, event_type, location_id in HOOKS:
        created = await api.webhook(token, location_id, receiver.url(path), event_type)
        receiver.keys[path] = created["api_key"]  # the key the receiver was given, once
    before = [await deliver(api, token, t, loc) for _, t, loc in HOOKS]
    await api.stop()

    archive = tmp_path / "backups" / "nightly.tar.gz"
    archive.parent.mkdir()
    made = await cli(database_url, "backup", str(archive), "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["backend"] == backend and summary["schema_revision"] == head_revision()
    if backend == "sqlite":
        assert summary["secret_key"] == "archive"
    else:  # the key comes from the environment: said, not copied
        assert summary["secret_key"] == "environment"
        assert "NOT in the archive" in made.stderr

    await destroy(database_url)
    restored = await cli(database_url, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr

    again: LiveAPI = await make_api()
    after = [await deliver(again, token, t, loc) for _, t, loc in HOOKS]  # the old token too
    paths = [path for path, _, _ in HOOKS]
    assert [(p, e) for p, e, ok in receiver.verdicts if ok] == [
        *zip(paths, before, strict=True),
        *zip(paths, after, strict=True),
    ]
    assert all(ok for _, _, ok in receiver.verdicts)  # no attempt was refused on the way


# ---- while the service writes ---------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_backup_while_the_server_writes_is_consistent_and_blocks_no_writer(
    make_api: Callable[..., Any],
    receiver: VerifyingReceiver,
    database_url: str,
    tmp_path: Path,
) -> None:
    api: LiveAPI = await make_api()
    token = await api.operator_at("loc-1")
    created = await api.webhook(token, "loc-1", receiver.url("/crm"))
    receiver.keys["/crm"] = created["api_key"]
    accepted = 0
    stop = asyncio.Event()

    async def keep_emitting() -> None:
        nonlocal accepted
        sample = {"type": "customer.create", "location_id": "loc-1", "data": {"id": "1"}}
        while not stop.is_set():
            await api.ok("POST", "/v1/events/batch", token, json={"events": [sample] * 20})
            accepted += 20

    writer = asyncio.create_task(keep_emitting())
    try:
        for number in range(2):
            start = accepted
            archive = tmp_path / f"during-{number}.tar.gz"
            made = await cli(database_url, "backup", str(archive))
            assert made.returncode == 0, made.stderr
            assert accepted > start, "the server kept accepting events during the backup"
            copy = tmp_path / f"restored-{number}" / "hooks.db"
            restored = await cli(f"sqlite:///{copy}", "restore", str(archive))
            assert restored.returncode == 0, restored.stderr
            with contextlib.closing(sqlite3.connect(copy)) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                (events,) = db.execute("SELECT count(*) FROM events").fetchone()
                (deliveries,) = db.execute("SELECT count(*) FROM deliveries").fetchone()
            # an event and its delivery are one transaction: the copy holds both or neither
            assert events == deliveries
            assert start <= events <= accepted  # a snapshot taken amid the writes
    finally:
        stop.set()
        await writer
    assert writer.exception() is None


# ---- refusals -------------------------------------------------------------------------------


async def test_restore_refuses_to_overwrite_a_database_unless_forced(
    make_api: Callable[..., Any],
    database_url: str,
    backend: str,
    tmp_path: Path,
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    await api.operator("kept")
    await api.stop()
    archive = tmp_path / "b.tar.gz"
    assert (await cli(database_url, "backup", str(archive))).returncode == 0
    api = await make_api(dispatch=False)
    await api.operator("after-the-backup")
    await api.stop()

    refused = await cli(database_url, "restore", str(archive))
    assert refused.returncode == 1
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert ("already exists" if backend == "sqlite" else "is not empty") in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    forced = await cli(database_url, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    api = await make_api(dispatch=False)
    names = {o["name"] for o in (await api.ok("GET", "/v1/operators"))["data"]}
    assert names == {"kept"}  # the database is the archive's, not what came after


# ---- what an archive is ---------------------------------------------------------------------


def test_archive_is_private_and_restores_private_files(tmp_path: Path) -> None:
    database = tmp_path / "hooks.db"
    assert run_cli("migrate", db=f"sqlite:///{database}").returncode == 0
    archive = tmp_path / "b.tar.gz"
    assert run_cli("backup", str(archive), db=f"sqlite:///{database}").returncode == 0
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.tar.gz")]  # no leftovers
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["manifest.json", "database.sqlite3", "secret-key"]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["format"] == "hotspot-webhooks-backup"
    assert manifest["schema_revision"] == head_revision() and manifest["created_at"]
    assert set(manifest["files"]) == {"database.sqlite3", "secret-key"}

    target = tmp_path / "new-home" / "hooks.db"
    restored = run_cli("restore", str(archive), db=f"sqlite:///{target}")
    assert restored.returncode == 0, restored.stderr
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    for made in (target, target.with_name("hooks.db.secret-key")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
    original_key = tmp_path / "hooks.db.secret-key"
    assert target.with_name("hooks.db.secret-key").read_text() == original_key.read_text()


def test_a_key_from_the_environment_is_said_to_be_kept_separately(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    key = {"HOTSPOT_WEBHOOKS_SECRET_KEY": "a-secret-key-from-the-environment"}
    assert run_cli("migrate", db=db, env=key).returncode == 0
    archive = tmp_path / "b.tar.gz"
    made = run_cli("backup", str(archive), db=db, env=key)
    assert made.returncode == 0, made.stderr
    assert "NOT in the archive" in made.stderr and "HOTSPOT_WEBHOOKS_SECRET_KEY" in made.stderr
    with tarfile.open(archive) as tar:
        assert "secret-key" not in tar.getnames()
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    restored = run_cli("restore", str(archive), db=elsewhere)  # and no key configured there
    assert restored.returncode == 0
    assert "warning:" in restored.stderr and "HOTSPOT_WEBHOOKS_SECRET_KEY" in restored.stderr


# ---- bad archives: one line naming the path and what is wrong -------------------------------


def _rewrite(archive: Path, into: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of ``archive`` whose manifest ``change`` edits (checksums left as they were)."""
    with tarfile.open(archive) as source, tarfile.open(into, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return into


def _tamper_database(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as source, tarfile.open(into, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "database.sqlite3":
                data = data[:-1] + bytes([data[-1] ^ 1])
            target.addfile(member, io.BytesIO(data))
    return into


def _without_manifest(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as source, tarfile.open(into, "w:gz") as target:
        for member in source.getmembers():
            if member.name != "manifest.json":
                target.addfile(member, source.extractfile(member))
    return into


def _directory(good: Path, into: Path) -> Path:
    into.mkdir()
    return into


def _text_file(good: Path, into: Path) -> Path:
    into.write_text("hello")
    return into


def _truncated(good: Path, into: Path) -> Path:
    into.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return into


BAD_ARCHIVES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (lambda good, into: into, "does not exist"),
    "directory": (_directory, "is a directory"),
    "not an archive": (_text_file, "is not a hotspot-webhooks backup (not a tar.gz archive)"),
    "no manifest": (_without_manifest, "it has no manifest.json"),
    "truncated": (_truncated, "is damaged"),
    "altered database": (_tamper_database, "database.sqlite3 does not match its checksum"),
    "newer schema": (
        lambda good, into: _rewrite(good, into, lambda m: m.update(schema_revision="9999_new")),
        "holds schema revision 9999_new, newer than this hotspot-webhooks",
    ),
    "newer format": (
        lambda good, into: _rewrite(good, into, lambda m: m.update(format_version=99)),
        "written by a newer hotspot-webhooks",
    ),
    "another product's manifest": (
        lambda good, into: _rewrite(good, into, lambda m: m.update(format="something-else")),
        "has no valid manifest",
    ),
}


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real archive of a migrated SQLite database, shared by the bad-archive cases."""
    home = tmp_path_factory.mktemp("good")
    db = f"sqlite:///{home / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    archive = home / "good.tar.gz"
    made = run_cli("backup", str(archive), db=db)
    assert made.returncode == 0, made.stderr
    return archive


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_in_one_line_and_restores_nothing(
    case: str, good_archive: Path, tmp_path: Path
) -> None:
    make, expected = BAD_ARCHIVES[case]
    archive = make(good_archive, tmp_path / "bad.tar.gz")
    target = tmp_path / "restored" / "hooks.db"
    done = run_cli("restore", str(archive), db=f"sqlite:///{target}")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {archive} ") and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not target.parent.exists()  # nothing half-restored


def test_an_archive_of_another_backend_is_refused(good_archive: Path) -> None:
    done = run_cli("restore", str(good_archive), db="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {good_archive} holds a SQLite backup, but the configured database "
        "postgresql://nobody@127.0.0.1:1/none is PostgreSQL"
    )


def test_backup_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    done = run_cli("backup", str(tmp_path / "b.tar.gz"), db=f"sqlite:///{missing}")
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: database {missing} does not exist: nothing to back up"

    nowhere = tmp_path / "no-such-dir" / "b.tar.gz"
    done = run_cli("backup", str(nowhere), db=f"sqlite:///{missing}")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: cannot write {nowhere}: directory {nowhere.parent} does not exist"
    )


@pytest.mark.postgresql_only
async def test_without_pg_dump_the_error_names_the_manual_recipe(
    make_api: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    await (await make_api(dispatch=False)).stop()
    python_only = tmp_path / "bin"
    python_only.mkdir()
    done = await cli(database_url, "backup", str(tmp_path / "b.tar.gz"), PATH=str(python_only))
    assert done.returncode == 1
    assert "pg_dump is not on PATH" in done.stderr and "docs/backup.md" in done.stderr
    assert not (tmp_path / "b.tar.gz").exists()
