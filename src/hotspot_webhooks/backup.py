"""Backing up an installation, and restoring it: the database and its secret key, one archive.

The API keys are stored encrypted under the secret key, so a database restored without the key
it was written with has lost every API key. An archive therefore carries both: a consistent copy
of the database (SQLite's online backup API, safe while ``serve`` writes; ``pg_dump``'s custom
format on PostgreSQL), the key file kept beside a SQLite database when there is one, and a
``manifest.json`` saying what is inside, which schema revision, and each file's SHA-256.
A key that comes from ``HOTSPOT_WEBHOOKS_SECRET_KEY`` is not copied: it is kept wherever the
environment is kept, and the result says so.

Archives are written atomically (a private temporary file, then a rename) and are private
(0600): they hold guests' personal data. Restoring never overwrites an existing database
unless asked, and refuses an archive whose schema is newer than this program knows. What it
reads into memory is bounded (``archive_bounds``): only the database is streamed, to a file.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from . import archive_bounds
from ._version import __version__
from .config import Settings
from .errors import HotspotWebhooksError
from .keys import write_private_file
from .service import key_file_for
from .store.database import create_engine, display_url, parse_database_url, sqlite_file
from .store.migrate import alembic_config, current_revision

FORMAT = "hotspot-webhooks-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_DATABASE = "database.sqlite3"
POSTGRES_DATABASE = "database.pgdump"
SECRET_KEY = "secret-key"
RECIPE = "docs/backup.md, 'PostgreSQL by hand'"
# every member but the database is read whole: its size bound (docs/backup.md)
BOUNDS = {MANIFEST: archive_bounds.MiB, SECRET_KEY: 64 << 10}

Backend = Literal["sqlite", "postgresql"]
# where the key that decrypts the API keys is: in the archive, in the environment, or nowhere
KeySource = Literal["archive", "environment", "missing"]


class BackupError(HotspotWebhooksError):
    """An archive, or a database to back up or restore into, that cannot be used as asked;
    the message names the path and what is wrong."""

    status = 400


@dataclass(frozen=True)
class Manifest:
    """What an archive holds; written first in the archive, checked first on restore."""

    backend: Backend
    schema_revision: str
    created_at: str
    version: str
    secret_key: KeySource
    files: dict[str, str]  # member name → SHA-256

    @property
    def database(self) -> str:
        return database_member(self.backend)

    def to_json(self) -> bytes:
        fields = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.__dict__}
        return json.dumps(fields, indent=2).encode()

    @classmethod
    def from_json(cls, text: bytes, archive: Path) -> Manifest:
        try:
            fields = json.loads(text)
            if fields.get("format") != FORMAT:
                raise ValueError("not a hotspot-webhooks manifest")
            if int(fields["format_version"]) > FORMAT_VERSION:
                raise BackupError(
                    f"{archive} was written by a newer hotspot-webhooks (archive format "
                    f"{fields['format_version']}, {fields.get('version')}); upgrade to restore it"
                )
            manifest = cls(
                backend=fields["backend"],
                schema_revision=str(fields["schema_revision"]),
                created_at=str(fields["created_at"]),
                version=str(fields["version"]),
                secret_key=fields["secret_key"],
                files={str(k): str(v) for k, v in dict(fields["files"]).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"{archive} has no valid manifest ({exc})") from None
        if (
            manifest.backend not in ("sqlite", "postgresql")
            or manifest.secret_key not in ("archive", "environment", "missing")
            or manifest.database not in manifest.files
        ):
            raise BackupError(f"{archive} has no valid manifest (unknown backend or contents)")
        return manifest


@dataclass(frozen=True)
class BackedUp:
    archive: Path
    backend: Backend
    schema_revision: str
    size: int
    secret_key: KeySource


@dataclass(frozen=True)
class Restored:
    database: str
    backend: Backend
    schema_revision: str
    created_at: str
    secret_key: KeySource
    warning: str | None  # what to do before starting the service, if anything


# ---- backup ---------------------------------------------------------------------------------


async def backup(settings: Settings, destination: Path) -> BackedUp:
    """Write one archive of the configured database and its secret key to ``destination``
    (a file, or a directory to put a dated archive in)."""
    url = parse_database_url(settings.database_url)
    archive = _archive_path(destination)
    key_file = key_file_for(settings)
    with _work_directory(archive.parent, archive.name) as work:
        path = sqlite_file(url)
        if url.drivername.startswith("sqlite"):
            if path is None:
                raise BackupError("an in-memory SQLite database cannot be backed up")
            backend: Backend = "sqlite"
            copy = work / SQLITE_DATABASE
            revision = await asyncio.to_thread(_copy_sqlite, path, copy, archive)
        else:
            backend = "postgresql"
            revision = await _schema_revision(settings.database_url)
            await asyncio.to_thread(_pg_dump, url, work / POSTGRES_DATABASE, archive)
        members = [database_member(backend)]
        key_source: KeySource = "environment" if settings.secret_key else "missing"
        if not settings.secret_key and key_file is not None and key_file.is_file():
            shutil.copyfile(key_file, work / SECRET_KEY)
            members.append(SECRET_KEY)
            key_source = "archive"
        manifest = Manifest(
            backend=backend,
            schema_revision=revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            version=__version__,
            secret_key=key_source,
            files={name: _sha256(work / name) for name in members},
        )
        _write_archive(archive, work, manifest)
    return BackedUp(archive, backend, revision, archive.stat().st_size, key_source)


def database_member(backend: Backend) -> str:
    return SQLITE_DATABASE if backend == "sqlite" else POSTGRES_DATABASE


def _archive_path(destination: Path) -> Path:
    if destination.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return destination / f"hotspot-webhooks-{stamp}.tar.gz"
    if not destination.parent.is_dir():
        raise BackupError(
            f"cannot write {destination}: directory {destination.parent} does not exist"
        )
    return destination


@contextmanager
def _work_directory(beside: Path, name: str) -> Iterator[Path]:
    """A private (0700) scratch directory on the same file system as ``beside``, so that the
    finished archive or database is renamed into place, never copied; removed afterwards.
    File-system errors become one line naming the path."""
    try:
        with tempfile.TemporaryDirectory(dir=beside, prefix=f".{name}.") as work:
            yield Path(work)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:  # the file system written to, not the one read from
            raise BackupError(_full(beside / name)) from None
        raise BackupError(f"{exc.filename or beside}: {exc.strerror or exc}") from None


def _full(written: Path) -> str:
    return f"cannot write {written}: its file system is full (no space left on device)"


def _copy_sqlite(source: Path, copy: Path, archive: Path) -> str:
    """Copy the database with SQLite's backup API in one step: it reads one snapshot (in WAL
    mode a reader blocks no writer), so the copy is consistent while the service writes.
    Returns the copy's schema revision."""
    if not source.is_file():
        raise BackupError(f"database {source} does not exist: nothing to back up")
    os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        # the source exists (checked): connecting creates nothing; the busy timeout waits out
        # a checkpoint, which is the one moment a WAL reader can be held up
        with (
            closing(sqlite3.connect(source, timeout=15)) as live,
            closing(sqlite3.connect(copy)) as target,
        ):
            live.backup(target)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # the copy's disk
            raise BackupError(_full(archive)) from None
        if shutil.disk_usage(source.parent).free == 0:  # a reader makes its -wal and -shm
            raise BackupError(
                f"cannot back up database {source}: its file system is full, and SQLite needs "
                "a little room even to read it (docs/operations.md, 'Disk full')"
            ) from None
        raise BackupError(f"cannot back up database {source}: {exc}") from None
    revision = _sqlite_revision(copy)
    if revision is None:
        raise BackupError(
            f"database {source} has no schema: nothing to back up (run `hotspot-webhooks migrate`)"
        )
    return revision


def _sqlite_revision(path: Path) -> str | None:
    """The Alembic revision recorded in a SQLite file (None: no schema)."""
    engine = create_sync_engine(URL.create("sqlite", database=str(path)))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        raise BackupError(f"{path} is not a readable SQLite database ({exc.orig})") from None
    finally:
        engine.dispose()


async def _schema_revision(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    if revision is None:
        raise BackupError(
            f"database {display_url(database_url)} has no schema: nothing to back up "
            "(run `hotspot-webhooks migrate`)"
        )
    return revision


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump and pg_restore take it, and their environment: the password goes
    in PGPASSWORD, not on a command line that every user of the machine can read."""
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), environment


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools (the server's major "
            f"version or newer), or follow the manual recipe in {RECIPE}"
        )
    return found


def _run_pg_tool(
    command: list[str], environment: dict[str, str], what: str, written: Path | None = None
) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        if written is not None and "No space left on device" in done.stderr:
            raise BackupError(_full(written))
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        raise BackupError(f"{what} failed: {reason}")


def _pg_dump(url: URL, dump: Path, archive: Path) -> None:
    dsn, environment = _libpq(url)
    os.close(os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    command = [_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", dsn]
    _run_pg_tool(command, environment, f"pg_dump of {_shown(url)}", archive)


def _shown(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(archive: Path, work: Path, manifest: Manifest) -> None:
    """tar.gz of the manifest (first, so a reader meets it first) and the files it lists,
    written to a private file in the work directory, synced, then renamed over ``archive``."""
    temporary = work / ".archive"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            listing = manifest.to_json()
            tar.addfile(_member(MANIFEST, len(listing)), io.BytesIO(listing))
            for name in manifest.files:
                with (work / name).open("rb") as data:
                    tar.addfile(_member(name, (work / name).stat().st_size), data)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temporary, archive)
    directory = os.open(archive.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


# ---- restore --------------------------------------------------------------------------------


async def restore(settings: Settings, archive: Path, *, force: bool = False) -> Restored:
    """Put the archive's database (and secret key) back for the configured database URL."""
    url = parse_database_url(settings.database_url)
    backend: Backend = "sqlite" if url.drivername.startswith("sqlite") else "postgresql"
    with _opened_archive(archive) as tar:
        manifest = _read_manifest(tar, archive)
        if manifest.backend != backend:
            raise BackupError(
                f"{archive} holds a {_NAMES[manifest.backend]} backup, but the configured "
                f"database {display_url(settings.database_url)} is {_NAMES[backend]}"
            )
        _check_revision(manifest, archive)
        if backend == "sqlite":
            path = sqlite_file(url)
            if path is None:
                raise BackupError("cannot restore into an in-memory SQLite database")
            key_source = _restore_sqlite(settings, tar, manifest, archive, path, force)
        else:
            await _refuse_non_empty(settings.database_url, force)
            with _work_directory(_scratch_parent(), archive.name) as work:
                dump = _extract(tar, manifest, POSTGRES_DATABASE, work, archive)
                await asyncio.to_thread(_pg_restore, url, dump, force)
            key_source = "environment" if settings.secret_key else "missing"
    return Restored(
        database=display_url(settings.database_url),
        backend=backend,
        schema_revision=manifest.schema_revision,
        created_at=manifest.created_at,
        secret_key=key_source,
        warning=_key_warning(settings, manifest, key_source),
    )


_NAMES: dict[Backend, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, OSError)


@contextmanager
def _opened_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    if not archive.exists():
        raise BackupError(f"{archive} does not exist")
    if archive.is_dir():
        raise BackupError(f"{archive} is a directory, not a backup archive")
    try:
        tar = archive_bounds.open_gz(str(archive))  # closed below, after the yield
    except archive_bounds.OverBound as exc:
        raise BackupError(f"{archive} is refused: {exc}") from None
    except _DAMAGE:
        raise BackupError(
            f"{archive} is not a hotspot-webhooks backup (not a tar.gz archive)"
        ) from None
    try:
        archive_bounds.list_members(tar)
        yield tar
    except archive_bounds.OverBound as exc:
        raise BackupError(f"{archive} is refused: {exc}") from None
    except _DAMAGE as exc:
        if isinstance(exc, OSError) and exc.filename:  # ours, not the archive's
            raise BackupError(f"{exc.filename}: {exc.strerror or exc}") from None
        raise BackupError(f"{archive} is damaged ({exc or type(exc).__name__})") from None
    finally:
        tar.close()


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> Manifest:
    try:
        member = tar.getmember(MANIFEST)
    except KeyError:
        raise BackupError(
            f"{archive} is not a hotspot-webhooks backup (it has no {MANIFEST})"
        ) from None
    data = tar.extractfile(member) if member.isfile() else None
    if data is None:
        raise BackupError(f"{archive} has no valid manifest ({MANIFEST} is not a file)")
    return Manifest.from_json(archive_bounds.read_whole(data, member, BOUNDS[MANIFEST]), archive)


def _check_revision(manifest: Manifest, archive: Path) -> None:
    """An archive from a newer schema cannot be used: this program would not understand it,
    and there is no downgrade. An older one is upgraded by ``migrate`` (or ``serve``)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in scripts.walk_revisions()}
    if manifest.schema_revision not in known:
        raise BackupError(
            f"{archive} holds schema revision {manifest.schema_revision}, newer than this "
            f"hotspot-webhooks {__version__} knows (newest: {scripts.get_current_head()}); "
            f"restore it with the version that made it ({manifest.version}) or a later one"
        )


def _extract(
    tar: tarfile.TarFile, manifest: Manifest, name: str, work: Path, archive: Path
) -> Path:
    """One member into a private file in ``work``, checked against the manifest's SHA-256.
    Only the names the manifest lists are read, and only as regular files: nothing in an
    archive chooses where anything is written."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise BackupError(f"{archive} is damaged: {name} is missing") from None
    data = tar.extractfile(member) if member.isfile() else None
    if data is None:
        raise BackupError(f"{archive} is damaged: {name} is not a file")
    if name != manifest.database and member.size > BOUNDS[name]:  # the database alone streams
        raise BackupError(
            f"{archive} is refused: {name} is {member.size} bytes "
            f"(at most {archive_bounds.shown(BOUNDS[name])})"
        )
    target = work / name
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != manifest.files.get(name):
        raise BackupError(f"{archive} is damaged: {name} does not match its checksum")
    return target


def _restore_sqlite(
    settings: Settings,
    tar: tarfile.TarFile,
    manifest: Manifest,
    archive: Path,
    path: Path,
    force: bool,
) -> KeySource:
    key_file = key_file_for(settings)
    restores_key = SECRET_KEY in manifest.files and key_file is not None
    for existing in (path, key_file if restores_key else None):
        if existing is not None and existing.exists() and not force:
            raise BackupError(
                f"{existing} already exists; restore does not overwrite it (stop the service "
                "and add --force to replace it)"
            )
    if path.is_dir():
        raise BackupError(f"cannot restore to {path}: it is a directory")
    # as the service creates it: a new directory is private to this user
    created = not path.parent.exists()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create directory {path.parent}: {exc.strerror}") from None
    try:
        _replace_sqlite(tar, manifest, archive, path, key_file if restores_key else None)
    except BaseException:
        if created:  # a refused archive leaves nothing behind
            with suppress(OSError):
                path.parent.rmdir()
        raise
    return "archive" if restores_key else "environment" if settings.secret_key else "missing"


def _replace_sqlite(
    tar: tarfile.TarFile, manifest: Manifest, archive: Path, path: Path, key_file: Path | None
) -> None:
    """Extract and check everything first; then the key file, then the database by rename."""
    with _work_directory(path.parent, path.name) as work:
        database = _extract(tar, manifest, SQLITE_DATABASE, work, archive)
        if _sqlite_revision(database) != manifest.schema_revision:
            raise BackupError(
                f"{archive} is damaged: its database is not at the manifest's schema revision"
            )
        if key_file is not None:
            key = _extract(tar, manifest, SECRET_KEY, work, archive)
            write_private_file(key_file, key.read_text())
        # a -wal left by the old database would be replayed into the new one: remove it
        for stale in (path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            stale.unlink(missing_ok=True)
        os.replace(database, path)


def _scratch_parent() -> Path:
    return Path(tempfile.gettempdir())


async def _refuse_non_empty(database_url: str, force: bool) -> None:
    engine = create_engine(database_url)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    if revision is not None and not force:
        raise BackupError(
            f"database {display_url(database_url)} is not empty (schema revision {revision}); "
            "restore into a new, empty database (createdb), or add --force to replace what "
            "the archive holds"
        )


def _pg_restore(url: URL, dump: Path, force: bool) -> None:
    dsn, environment = _libpq(url)
    command = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction"]
    if force:
        command += ["--clean", "--if-exists"]
    command += [f"--dbname={dsn}", str(dump)]
    _run_pg_tool(command, environment, f"pg_restore into {_shown(url)}")


def _key_warning(settings: Settings, manifest: Manifest, key_source: KeySource) -> str | None:
    """What stands between the restored database and its API keys, if anything."""
    if key_source == "archive" and settings.secret_key:
        return (
            "HOTSPOT_WEBHOOKS_SECRET_KEY is set, so it is used instead of the restored key "
            "file: it must be the key the backup was made with"
        )
    if key_source == "missing":
        return (
            "the archive holds no secret key: set HOTSPOT_WEBHOOKS_SECRET_KEY to the key in use "
            f"when it was made ({manifest.created_at}) before starting the service, or every "
            "API key is lost"
        )
    if manifest.secret_key == "environment":
        return (
            "the secret key was not in the archive: HOTSPOT_WEBHOOKS_SECRET_KEY must be the "
            f"key in use when it was made ({manifest.created_at})"
        )
    return None


def describe(value: BackedUp | Restored) -> dict[str, Any]:
    """The result as the CLI prints it, and as ``--json`` shows it."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in value.__dict__.items()}
