"""``restore`` reads into memory only what it bounds: every archive member but the database
(streamed to a file) has a size bound checked before a byte is read, and so have tarfile's own
extended headers and the number of members (issue 25, S9; docs/backup.md)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

import pytest

from tests.conftest import run_cli

MiB = 1 << 20
Change = Callable[[tarfile.TarInfo, bytes], "tuple[tarfile.TarInfo, IO[bytes] | None]"]


class Padded(io.RawIOBase):
    """``head``, then spaces up to ``size`` bytes, made as they are read: a huge member costs
    no memory to write."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.left = head, size - len(head)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self.left + len(self.head) if size is None or size < 0 else size
        chunk, self.head = self.head[:want], self.head[want:]
        spaces = min(want - len(chunk), self.left)
        self.left -= spaces
        return chunk + b" " * spaces


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("good")
    db = f"sqlite:///{home / 'hooks.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    archive = home / "good.tar.gz"
    made = run_cli("backup", str(archive), db=db)
    assert made.returncode == 0, made.stderr
    return archive


def _rebuilt(
    good: Path,
    into: Path,
    change: Change | None = None,
    extra: Callable[[tarfile.TarFile], None] | None = None,
) -> Path:
    """A copy of ``good`` (fast gzip), each member passed through ``change``, then ``extra``."""
    with tarfile.open(good) as source, tarfile.open(into, "w:gz", compresslevel=1) as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            info, stream = change(member, data) if change else (member, None)
            target.addfile(info, stream if stream is not None else io.BytesIO(data))
        if extra is not None:
            extra(target)
    return into


def _padded(name: str, size: int) -> Change:
    """The member ``name`` grown to ``size`` bytes: its content, then spaces."""

    def change(member: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, IO[bytes] | None]:
        if member.name != name:
            return member, None
        member.size = size
        return member, cast(IO[bytes], Padded(data, size))

    return change


def _many_members(target: tarfile.TarFile) -> None:
    for n in range(70):
        target.addfile(tarfile.TarInfo(f"extra-{n}"), io.BytesIO(b""))


def _big_pax_header(target: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("notes")
    info.pax_headers = {"comment": "x" * (2 * MiB)}
    target.addfile(info, io.BytesIO(b""))


REFUSED: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "manifest just over its bound": (
        lambda good, into: _rebuilt(good, into, _padded("manifest.json", MiB + 1)),
        f"is refused: manifest.json is {MiB + 1} bytes (at most 1 MiB)",
    ),
    "secret key over its bound": (
        lambda good, into: _rebuilt(good, into, _padded("secret-key", 64 * 1024 + 1)),
        f"is refused: secret-key is {64 * 1024 + 1} bytes (at most 64 KiB)",
    ),
    "an extended header over its bound": (
        lambda good, into: _rebuilt(good, into, extra=_big_pax_header),
        "is refused: an extended tar header of",
    ),
    "too many members": (
        lambda good, into: _rebuilt(good, into, extra=_many_members),
        "is refused: more than 64 members",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_member_over_its_bound_is_refused_naming_it_and_the_bound(
    case: str, good_archive: Path, tmp_path: Path
) -> None:
    make, expected = REFUSED[case]
    archive = make(good_archive, tmp_path / "big.tar.gz")
    target = tmp_path / "restored" / "hooks.db"
    done = run_cli("restore", str(archive), db=f"sqlite:///{target}")
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith(f"error: {archive} ") and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not target.parent.exists()  # nothing half-restored


def test_a_manifest_within_its_bound_restores(good_archive: Path, tmp_path: Path) -> None:
    archive = _rebuilt(good_archive, tmp_path / "padded.tar.gz", _padded("manifest.json", MiB))
    target = tmp_path / "restored" / "hooks.db"
    done = run_cli("restore", str(archive), db=f"sqlite:///{target}")
    assert done.returncode == 0, done.stderr
    assert target.is_file()


def _restore_peak_rss(archive: Path, target: Path) -> tuple[int, str, int]:
    """Run ``restore`` in a child; its exit status, stderr and peak RSS in bytes."""
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "hotspot_webhooks", "restore", str(archive)],
            env={**os.environ, "HOTSPOT_WEBHOOKS_DATABASE_URL": f"sqlite:///{target}"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=tempfile.mkdtemp(prefix="hw-cli-"),
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        return child.returncode, stderr.read().decode(), usage.ru_maxrss * 1024


def test_a_manifest_declaring_hundreds_of_megabytes_is_refused_without_reading_it(
    good_archive: Path, tmp_path: Path
) -> None:
    # 400 MB of spaces made 945 MB of RSS; 256 MB makes the point (the archive is ~1 MB)
    huge = 256 * MiB
    archive = _rebuilt(good_archive, tmp_path / "huge.tar.gz", _padded("manifest.json", huge))
    assert archive.stat().st_size < 10 * MiB
    baseline = _restore_peak_rss(good_archive, tmp_path / "fine" / "hooks.db")
    assert baseline[0] == 0, baseline[1]

    code, stderr, peak = _restore_peak_rss(archive, tmp_path / "refused" / "hooks.db")

    assert code == 1
    assert f"manifest.json is {huge} bytes (at most 1 MiB)" in stderr, stderr
    # nothing of it was read: the refusal costs what a good restore costs, give or take
    assert peak < baseline[2] + 64 * MiB, (peak, baseline[2])
    print(f"peak RSS: refused {peak / MiB:.0f} MiB, a good restore {baseline[2] / MiB:.0f} MiB")
    assert not (tmp_path / "refused").exists()


def test_the_bounds_are_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "backup.md").read_text()
    for bound in ("`manifest.json`: 1 MiB", "`secret-key`: 64 KiB", "64 members"):
        assert bound in text, bound
