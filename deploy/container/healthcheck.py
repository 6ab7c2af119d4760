"""The image's HEALTHCHECK, standard library only (the image has no curl).

``serve`` and ``api`` are healthy when ``GET /healthz`` answers 200 on the address they
listen on. A ``worker`` serves no HTTP: the check passes while its process runs (the
database tracks its real liveness through heartbeats, and hands a silent worker's deliveries
to the others). Reads the role, host and port from PID 1's command line and environment, as
the entrypoint got them.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

HTTP_ROLES = {"serve", "api"}


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main() -> int:
    try:
        args = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    except OSError:
        args = sys.argv[1:]
    if not HTTP_ROLES.intersection(args):
        return 0  # worker, migrate: the container is running, which is all there is to check
    host = option(args, "--host") or os.environ.get("HOTSPOT_WEBHOOKS_HOST", "127.0.0.1")
    port = option(args, "--port") or os.environ.get("HOTSPOT_WEBHOOKS_PORT", "8080")
    # listening on every address: ask on loopback, which is one of them
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
