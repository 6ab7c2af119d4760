"""How the app is served: uvicorn, configured once for ``serve``, ``api`` and the tests.

Two things uvicorn does itself, before or after the app, are made ours:

- A request it cannot parse (a control character or a NUL in a header, a malformed request
  line) never reaches the app: uvicorn answers a plain-text 400 and closes. Its protocol
  classes (httptools, and h11 where httptools is missing) both make that answer in one method,
  ``send_400_response``; the classes here override it to answer in the API's one error shape,
  and uvicorn is handed them through its ``http`` setting, which takes a protocol class.
- Its access log writes each request line as received; ``redaction.RedactRequestLines`` cuts
  tokens and keys out of it first.

And one thing it would decide from its own environment is decided by our settings: whose
``X-Forwarded-For`` / ``X-Forwarded-Proto`` to believe. uvicorn believes them from 127.0.0.1
unless its variable ``FORWARDED_ALLOW_IPS`` says otherwise; here only the proxies
``HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS`` names are believed (none by default), so a client
cannot pick the address the failed-authentication limit counts it under (``lockout.py``).

Logging itself is configured once per process by ``logs.configure`` (text or JSON lines, ours
and uvicorn's alike), so uvicorn is told to leave it alone (``log_config=None``). The app is
served wrapped in ``request_ids.RequestIds``: every request gets an id, in its log lines and in
its answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from ..config import trusted_proxies
from .redaction import RedactRequestLines
from .request_ids import RequestIds

BAD_REQUEST = (
    "the request is not valid HTTP/1.1: its request line or a header is malformed "
    "(a control character or a NUL byte in a header, say); nothing was done"
)
_redact_request_lines = RedactRequestLines()
log = logging.getLogger(__name__)


def bad_request_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400 response, in the error shape, as bytes for the wire."""
    body = json.dumps(
        {"success": False, "error": {"code": 400, "message": BAD_REQUEST, "details": []}}
    ).encode()
    lines = [b"HTTP/1.1 400 Bad Request"]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _JsonBadRequest:
    """``send_400_response`` as uvicorn's protocols have it, answering in the error shape."""

    transport: asyncio.Transport
    server_state: ServerState

    def send_400_response(self, msg: str) -> None:
        self.transport.write(bad_request_response(self.server_state.default_headers))
        self.transport.close()


class H11JsonProtocol(_JsonBadRequest, H11Protocol):
    pass


# httptools when installed, else h11: the choice of uvicorn's own ``http="auto"``
HTTP_PROTOCOL: type[asyncio.Protocol] = H11JsonProtocol
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    pass
else:

    class HttpToolsJsonProtocol(_JsonBadRequest, HttpToolsProtocol):
        pass

    HTTP_PROTOCOL = HttpToolsJsonProtocol


def server_config(
    app: Any, *, host: str, port: int, forwarded_allow_ips: str, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn's settings for serving ``app``: our protocol class, the lifespan on, request
    ids, and the access log (at ``info``) redacted, in the format ``logs.configure`` set.

    ``forwarded_allow_ips`` is the ``FORWARDED_ALLOW_IPS`` setting: the proxies whose
    forwarding headers are believed ("" for none; uvicorn's own variable is ignored)."""
    trusted = trusted_proxies(forwarded_allow_ips)
    if os.environ.get("FORWARDED_ALLOW_IPS") is not None:
        log.warning(
            "FORWARDED_ALLOW_IPS is uvicorn's variable and is ignored here; to trust a reverse "
            "proxy's X-Forwarded-For, set HOTSPOT_WEBHOOKS_FORWARDED_ALLOW_IPS (%s now)",
            ", ".join(trusted) or "none",
        )
    config = uvicorn.Config(
        RequestIds(app),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        lifespan="on",
        http=HTTP_PROTOCOL,
        # both given, so uvicorn never falls back on its environment or its default
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )
    # after uvicorn.Config, which configures its loggers (a logger keeps its filters anyway)
    logging.getLogger("uvicorn.access").addFilter(_redact_request_lines)
    return config
