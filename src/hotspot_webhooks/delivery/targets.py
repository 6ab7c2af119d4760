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
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from ..validation import check_callback_url_shape, invalid


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
    """Validate a callback URL for storing: its shape, then (unless ``allow_private``) the
    address it names; return it unchanged or raise ``InvalidInput`` naming ``field``."""
    parts = check_callback_url_shape(url, field=field)
    if allow_private:
        return url
    host = parts.hostname or ""
    reason = forbidden_reason(host)
    if reason is None and host.rstrip(".").lower() in ("localhost", "localhost.localdomain"):
        reason = f"{host} is a loopback name"
    if reason is None and _is_name(host):
        reason = _resolved_reason(host, parts.port or (443 if parts.scheme == "https" else 80))
    if reason:
        message = (
            f"target not allowed: {reason} "
            "(for local testing set HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true)"
        )
        raise invalid(field, message, headline=f"{field}: {message}")
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
