"""The HTTP side of delivery: one signed POST per attempt, bounded in every direction.

aiohttp sends the headers in the case we give them, which the literal
``HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256`` name needs. The connector itself is unbounded: the
dispatcher's lanes bound concurrency, so a request's timeout only runs once it is really sent.
Redirects are not followed, the response is read up to a small excerpt, and connections go
through the SSRF guard. Once a request's connection is open its bytes go out at once, so that
moment is reported (``on_wire``): the dispatcher needs it to tell, after a crash, a delivery
that may have reached its receiver from one that was merely claimed.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .outcome import AttemptResult
from .retry import RETRY_AFTER_STATUSES
from .targets import ForbiddenTarget, GuardedResolver, literal_address_reason

DRAIN_LIMIT = 64 * 1024  # read this much more to keep the connection reusable
# the delivery whose request the current task is sending, for the connector to report
_sending: ContextVar[str | None] = ContextVar("sending", default=None)


class _ReportingConnector(aiohttp.TCPConnector):
    """Reports each delivery whose request got a connection: its bytes go out next."""

    def __init__(self, on_wire: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_wire = on_wire

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super().connect(*args, **kwargs)
        delivery_id = _sending.get()
        if delivery_id is not None:
            self._on_wire(delivery_id)
        return connection


@functools.lru_cache(maxsize=10_000)
def _parsed(url: str) -> URL:
    """A callback URL parsed once per process, not once per attempt."""
    return URL(url, encoded=True)


class Sender:
    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        excerpt_bytes: int = 4096,
        on_wire: Callable[[str], None] | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._allow_private = allow_private
        self._excerpt_bytes = excerpt_bytes
        self._session: aiohttp.ClientSession | None = None
        self._on_wire = on_wire

    def _open(self) -> aiohttp.ClientSession:
        resolver = DefaultResolver() if self._allow_private else GuardedResolver(DefaultResolver())
        options: dict[str, Any] = {
            "limit": 0,
            "limit_per_host": 0,
            "resolver": resolver,
            "ttl_dns_cache": 60,
        }
        connector = (
            aiohttp.TCPConnector(**options)
            if self._on_wire is None
            else _ReportingConnector(self._on_wire, **options)
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, url: str, body: bytes, headers: dict[str, str], delivery_id: str | None = None
    ) -> AttemptResult:
        """POST once; every outcome, including exceptions, becomes an ``AttemptResult``."""
        if self._session is None:
            self._session = self._open()
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        retry_after: str | None = None
        error: str | None = None
        unreachable = False
        token = _sending.set(delivery_id)
        try:
            target = _parsed(url)
            reason = None if self._allow_private else literal_address_reason(target.host)
            if reason:
                raise aiohttp.ClientConnectionError(f"refused to connect: {reason}")
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if status in RETRY_AFTER_STATUSES:
                    retry_after = response.headers.get("Retry-After")
                length = response.content_length
                if length is not None and length <= self._excerpt_bytes:
                    excerpt = (await response.read()).decode("utf-8", errors="replace")
                else:
                    excerpt = await self._read_excerpt(response)
                if 300 <= status < 400:
                    location = response.headers.get("Location", "?")
                    error = f"redirect to {location} not followed"
        except TimeoutError:
            error = f"timed out after {self._timeout_seconds:g} s"
            unreachable = True
        except aiohttp.ClientError as exc:
            error = describe_failure(exc)
            unreachable = isinstance(exc, aiohttp.ClientConnectionError)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _sending.reset(token)
        return AttemptResult(
            started_at=started_at,
            duration_ms=round((time.perf_counter() - clock) * 1000),
            status=status,
            response_excerpt=excerpt,
            error=error,
            retry_after=retry_after,
            unreachable=unreachable,
        )

    async def _read_excerpt(self, response: aiohttp.ClientResponse) -> str:
        """The first bytes of a long or unsized body; a little more is drained so the
        connection can be reused, the rest is dropped with it."""
        chunks: list[bytes] = []
        size = 0
        while size < self._excerpt_bytes:
            chunk = await response.content.read(self._excerpt_bytes - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        drained = 0
        while drained < DRAIN_LIMIT and not response.content.at_eof():
            more = await response.content.read(DRAIN_LIMIT - drained)
            if not more:
                break
            drained += len(more)
        return b"".join(chunks).decode("utf-8", errors="replace")


def describe_failure(exc: aiohttp.ClientError) -> str:
    """An attempt's error in words an operator can act on. aiohttp's own text for a failed
    connection names its TLS setting (``ssl:default``) even for an http:// URL."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause: Exception = (
            exc.certificate_error
            if isinstance(exc, aiohttp.ClientConnectorCertificateError)
            else exc.os_error
        )
        number = getattr(cause, "errno", None)
        if isinstance(cause, ForbiddenTarget):
            text = cause.strerror or str(cause)  # the SSRF guard's own words say it all
        else:
            reason = (
                os.strerror(number)  # asyncio's own text for these is "Connect call failed (...)"
                if isinstance(number, int) and number > 0
                else getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
            )
            text = f"cannot connect to {exc.host}:{exc.port}: {reason}"
    else:
        text = str(exc) or type(exc).__name__
    return text if len(text) < 500 else text[:497] + "..."
