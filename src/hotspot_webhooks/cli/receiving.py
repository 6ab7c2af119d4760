"""The receiving end, for integrators: ``listen`` (a local receiver) and ``verify``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..terminal import line
from .common import (
    fail,
    out,
)


def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 9000,
    api_key: Annotated[
        str,
        typer.Option("--api-key", help="The webhook's API key.", envvar="HOTSPOT_WEBHOOKS_API_KEY"),
    ] = ...,  # type: ignore[assignment]
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    respond: Annotated[
        int, typer.Option("--respond", help="Status to answer valid deliveries with.")
    ] = 200,
) -> None:
    """Receive deliveries locally: verify each signature and pretty-print the event."""
    from ..listen import serve as serve_listener

    try:
        asyncio.run(serve_listener(host, port, api_key, out, respond))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def verify(
    api_key: Annotated[str, typer.Option("--api-key", help="The webhook's API key.")],
    signature: Annotated[
        str, typer.Option("--signature", help="X-Hotspotsystem-Hmac-Sha256 value.")
    ],
    file: Annotated[
        Path, typer.Argument(help="Body file, or - for stdin.", allow_dash=True)
    ] = Path("-"),
) -> None:
    """Check one body's signature; exit 0 if valid, 1 if not."""
    from ..receiver import verify_signature

    try:
        body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    if verify_signature(body, signature, api_key):
        out.print(line(("valid signature", "green")))
    else:
        fail("signature does not match this body and API key")
