"""Which callback URLs we may call: the SSRF guard.

A callback URL must be http(s), carry no credentials, and (unless ``allow_private_targets``)
not point at loopback, private, link-local, multicast or reserved addresses such as the cloud
metadata service 169.254.169.254. The check runs when a webhook is created and again at connect
time, on the addresses actually resolved, so a DNS name that later rebinds to an internal
address is refused too.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import InvalidInput, field_error

MAX_URL_LENGTH = 2048
# Characters a callback URL may not contain anywhere: whitespace and control characters.
_UNSAFE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_HAS_UNSAFE = re.compile(f"[{_UNSAFE}]")
# The shape the API's schema publishes for callback URLs: http(s), a host without
# credentials, an optional port, no unsafe characters. Every URL of this shape passes
# ``check_callback_url`` when private targets are allowed (IPv6 literals pass too, unpublished).
CALLBACK_URL_PATTERN = (
    rf"^[hH][tT][tT][pP][sS]?://[^{_UNSAFE}/?#@:\[\]\\]+(:[0-9]{{1,4}})?([/?#][^{_UNSAFE}]*)?$"
)


class ForbiddenTarget(OSError):
    """The receiver's address is one we refuse to connect to."""

    def __init__(self, message: str) -> None:
        # errno + strerror, so aiohttp's connection error shows our message
        super().__init__(errno.EACCES, message)


def forbidden_reason(address: str) -> str | None:
    """Why ``address`` may not be called, or None if it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or ip.is_unspecified),
        ("non-global", not ip.is_global),
    ):
        if flag:
            return f"{address} is a {kind} address"
    return None


def check_callback_url(url: str, *, allow_private: bool, field: str = "callback_url") -> str:
    """Validate a callback URL for storing; return it unchanged or raise ``InvalidInput``."""

    def bad(message: str) -> InvalidInput:
        return InvalidInput(f"{field}: {message}", details=[field_error(field, message)])

    if not isinstance(url, str) or not url.strip():
        raise bad("must be an http:// or https:// URL")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise bad(f"scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise bad("must not contain credentials (user:password@); the signature authenticates")
    host = parts.hostname
    if not host:
        raise bad("has no host")
    if _HAS_UNSAFE.search(url) or any(c.isspace() for c in url):
        raise bad("must not contain whitespace or control characters")
    if allow_private:
        return url
    reason = forbidden_reason(host)
    if reason is None and host.rstrip(".").lower() in ("localhost", "localhost.localdomain"):
        reason = f"{host} is a loopback name"
    if reason is None and _is_name(host):
        reason = _resolved_reason(host, port or (443 if parts.scheme == "https" else 80))
    if reason:
        raise bad(
            f"target not allowed: {reason} "
            "(for local testing set HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true)"
        )
    return url


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _resolved_reason(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None  # unresolvable today; checked again at connect time
    for info in infos:
        reason = forbidden_reason(str(info[4][0]))
        if reason:
            return f"{host} resolves to a refused address ({reason})"
    return None


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's resolver and drops forbidden addresses; none left is an error."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if forbidden_reason(r["host"]) is None]
        if not allowed:
            reasons = {forbidden_reason(r["host"]) for r in results}
            raise ForbiddenTarget(f"refused to connect to {host}: {', '.join(map(str, reasons))}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def literal_address_reason(host: str | None) -> str | None:
    """aiohttp does not resolve IP literals, so they are checked here before connecting."""
    return forbidden_reason(host) if host else None
