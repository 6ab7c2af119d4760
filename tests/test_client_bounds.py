"""The remote CLI reads a server's answer up to a bound (issue 25, S12).

``HOTSPOT_WEBHOOKS_URL`` may name something that is not our server, or a hostile one: an
answer of 60 MB took 1.1 GB of memory to read. The client reads at most ``MAX_ANSWER_BYTES``
(32 MiB), refusing a larger declared ``Content-Length`` at once and a body that grows past it
(chunked, without end) as it arrives, with one clear error line and a non-zero exit. The
server is a real socket on 127.0.0.1; the CLI is the real command in a subprocess, whose peak
memory its parent (a fresh Python) measures.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

MIB = 1024 * 1024
# a fresh Python that runs the command and says the peak memory (KiB) of its children
MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'peak-rss-kib {peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


class HugeAnswers:
    """An HTTP server that answers every request with JSON padded to a huge size: declared
    (``Content-Length``, 60 MB) or chunked (1 MiB chunks, up to ``chunked_limit``). It counts
    what it managed to send before the client hung up."""

    def __init__(self, *, chunked: bool, size: int = 60 * 1000 * 1000) -> None:
        self.chunked = chunked
        self.size = size
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> HugeAnswers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(30)
                with contextlib.suppress(OSError):  # the client hung up: as it should
                    self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            got = connection.recv(65536)
            if not got:
                return
            request += got
        head = b'{"data": []'
        if not self.chunked:
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size
            )
            body = head + b" " * (self.size - len(head) - 1) + b"}"
            for start in range(0, len(body), MIB):
                connection.sendall(body[start : start + MIB])
                self.sent += len(body[start : start + MIB])
            return
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        padding = b" " * MIB
        while self.sent < self.size and not self._stopping.is_set():
            connection.sendall(b"%x\r\n%s\r\n" % (len(padding), padding))
            self.sent += len(padding)
        connection.sendall(b"1\r\n}\r\n0\r\n\r\n")


def run_measured(*args: str, url: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """The real CLI in remote mode against ``url``: its outcome, and its peak RSS in MiB."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, sys.executable, "-m", "hotspot_webhooks", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **os.environ,
            "COLUMNS": "200",
            "HOTSPOT_WEBHOOKS_URL": url,
            "HOTSPOT_WEBHOOKS_TOKEN": "any",
        },
    )
    *said, peak = done.stderr.strip().splitlines()
    assert peak.startswith("peak-rss-kib "), done.stderr
    kib = int(peak.split()[1])
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(said)), (
        kib // 1024
    )


def assert_refused_as_too_large(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the answer of http://127.0.0.1:")
    assert "is larger than 32 MiB" in lines[0]
    assert "is HOTSPOT_WEBHOOKS_URL the address of a hotspot-webhooks server?" in lines[0]


@pytest.fixture
def declared() -> Iterator[HugeAnswers]:
    with HugeAnswers(chunked=False) as server:
        yield server


@pytest.fixture
def endless() -> Iterator[HugeAnswers]:
    with HugeAnswers(chunked=True, size=100 * MIB) as server:
        yield server


def test_the_bound_is_32_mib() -> None:
    from hotspot_webhooks.client import MAX_ANSWER_BYTES

    assert MAX_ANSWER_BYTES == 32 * MIB


def test_an_answer_declared_larger_than_the_bound_is_refused_unread(
    declared: HugeAnswers,
) -> None:
    done, peak_mib = run_measured("locations", "list", url=declared.url)
    assert_refused_as_too_large(done)
    assert peak_mib < 300, f"the CLI took {peak_mib} MiB"


def test_an_endless_answer_is_read_up_to_the_bound_and_refused(endless: HugeAnswers) -> None:
    done, peak_mib = run_measured("webhooks", "list", url=endless.url)
    assert_refused_as_too_large(done)
    assert peak_mib < 300, f"the CLI took {peak_mib} MiB"
    # the client hung up soon after the bound (what the kernel's buffers held aside)
    assert endless.sent < 80 * MIB, f"the server sent {endless.sent // MIB} MiB"
