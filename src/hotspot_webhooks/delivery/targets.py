"""Which callback URLs we may call: the SSRF guard.

A callback URL must be http(s), carry no credentials, and (unless ``allow_private_targets``)
not point at loopback, private, link-local, multicast or reserved addresses such as the cloud
metadata service 169.254.169.254, nor at an IPv6 address that carries such an IPv4 one (mapped,
6to4, NAT64). The check (``forbidden_reason``) runs when a webhook is created and again at
connect time, on the addresses actually resolved, so a DNS name that later rebinds to an
internal address is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..validation import check_callback_url_shape, invalid

# Ranges refused whatever this Python's ``ipaddress`` tables say (they differ by version):
# IANA's special-purpose registries, and relics that reach or spoof internal hosts.
_REFUSED_NETWORKS = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/8", "reserved"),
        ("100.64.0.0/10", "non-global"),  # carrier-grade NAT
        ("192.0.0.0/24", "non-global"),  # IETF protocol assignments (DS-Lite, PCP, NAT64...)
        ("192.0.2.0/24", "reserved"),  # documentation
        ("192.88.99.0/24", "non-global"),  # the deprecated 6to4 relay anycast
        ("198.18.0.0/15", "non-global"),  # benchmarking
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("240.0.0.0/4", "reserved"),
        ("64:ff9b:1::/48", "non-global"),  # local-use NAT64: the network's own translator
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "non-global"),  # IETF protocol assignments, Teredo (2001::/32) included
        ("2001:db8::/32", "reserved"),
        ("3fff::/20", "reserved"),
        ("5f00::/16", "reserved"),  # SRv6 segment ids
        ("fec0::/10", "site-local"),
    )
)
# IPv6 prefixes that carry an IPv4 address the packet ends up at: judged by that address
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def forbidden_reason(address: str) -> str | None:
    """Why ``address`` may not be called, or None if it is a public unicast address.

    The one judgement of an address, made when a webhook is stored and again on every address
    resolved or named when connecting.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded, how = _embedded_ipv4(ip)
        if embedded is not None:
            reason = forbidden_reason(str(embedded))
            if reason is None:
                return None
            what = reason.removeprefix(f"{embedded} is ")  # "a loopback address"
            if how == "mapped":  # the same address in IPv6 clothing: named as such
                return f"{address} is {what}"
            return f"{address} is {how} {embedded}, {what}"
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or ip.is_unspecified),
    ):
        if flag:
            return f"{address} is a {kind} address"
    for network, kind in _REFUSED_NETWORKS:
        if ip.version == network.version and ip in network:
            return f"{address} is a {kind} address"
    if not ip.is_global:
        return f"{address} is a non-global address"
    return None


def _embedded_ipv4(
    ip: ipaddress.IPv6Address,
) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), and how it embeds it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "mapped"
    if ip in _SIXTOFOUR:
        return ip.sixtofour, "the 6to4 address of"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "the NAT64 address of"
    return None, ""


def check_callback_url(url: str, *, allow_private: bool, field: str = "callback_url") -> str:
    """Validate a callback URL for storing: its shape, then (unless ``allow_private``) the
    address it names. Returns the URL to store (an internationalized host in its ASCII form,
    which is what is judged) or raises ``InvalidInput`` naming ``field``."""
    url = check_callback_url_shape(url, field=field)
    if allow_private:
        return url
    parts = urlsplit(url)
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
