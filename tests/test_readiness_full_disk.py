"""``/readyz`` says whether writes succeed: a SQLite database on a full disk is not ready.

The disk is real: a small tmpfs mounted for the test (as root; unmounted at the end), filled
by a file until the kernel says ENOSPC. Reads still work there, so a readiness that only
reads would answer 200 while every emit is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_api import LiveAPI
from tests.test_database_restarts import emit_body, until

pytestmark = [pytest.mark.sqlite_only, pytest.mark.timeout(120)]

DISK = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``DISK`` mounted on a directory of the test's; unmounted afterwards."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a small tmpfs (to fill a real disk) needs root and mount(8)")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


@pytest.fixture
def database_url(small_disk: Path) -> str:
    """The database of this module's tests: on the small disk (``make_settings`` uses it)."""
    return f"sqlite:///{small_disk / 'hooks.db'}"


def fill(disk: Path) -> Path:
    """Write a file until the disk has no room left, to the byte; the file."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


async def test_readyz_answers_503_while_a_full_disk_makes_writes_fail_and_200_once_they_succeed(
    make_api: Callable[..., Any], small_disk: Path
) -> None:
    api: LiveAPI = await make_api(dispatch=False)
    created = await api.client.post("/v1/operators", headers=api.admin, json={"name": "acme"})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    location = await api.client.post(
        "/v1/locations", headers=headers, json={"id": "loc-1", "name": "Café Central"}
    )
    assert location.status_code == 201, location.text
    assert (await api.client.get("/readyz")).status_code == 200

    filler = fill(small_disk)
    refused = None
    for number in range(1, 2001):  # whatever room SQLite's files kept runs out
        answer = await api.client.post(
            "/v1/events", headers=headers, json=emit_body(f"evt-{number:04d}")
        )
        if answer.status_code == 503:
            refused = answer
            break
        assert answer.status_code == 202, answer.text
    assert refused is not None, "2000 emits were stored on a full disk"
    assert "full" in refused.json()["error"]["message"], refused.text

    ready = await api.client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "unavailable"
    assert "writes fail" in ready.json()["error"], ready.text
    assert "full" in ready.json()["error"], ready.text

    filler.unlink()  # room again: the next readiness probe commits, and says so

    async def ready_again() -> bool:
        return (await api.client.get("/readyz")).status_code == 200

    assert await until(ready_again, within=15, every=0.25), (await api.client.get("/readyz")).text
    again = await api.client.post("/v1/events", headers=headers, json=emit_body("evt-after"))
    assert again.status_code == 202, again.text
