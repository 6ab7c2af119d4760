"""Which callback URLs we may call: the SSRF guard.

A callback URL must be http(s), carry no credentials, and (unless ``allow_private_targets``)
not point at loopback, private, link-local, multicast or reserved addresses such as the cloud
metadata service 169.254.169.254, nor at an IPv6 address that carries such an IPv4 one (mapped,
6to4, NAT64). The check (``forbidden_reason``) runs when a webhook is created and again at
connect time, on the addresses actually resolved, so a DNS name that later rebinds to an
internal address is refused too.

A host is judged as curl will look it up (``judged_host``): percent-encoding decoded and one
trailing dot dropped, so ``169.254.169.254.`` and ``localhost.`` are refused as their dotless
forms are (glibc cannot resolve them with the dot; curl can). A name is resolved in a thread
of the guard's own, for at most ``RESOLVE_TIMEOUT`` seconds: a slow resolver holds neither the
event loop nor its default threads, and the caller gets an answer in bounded time.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit

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
        ip = ipaddress.ip_address(_without_root(address).split("%", 1)[0])
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


RESOLVE_TIMEOUT = 5.0
"""Seconds a host name's resolution may take when a callback URL is checked; past that the URL
is refused (the caller may try again), rather than the request held as long as the resolver."""

RESOLVER_THREADS = 4
"""Lookups at once; more wait their turn, within the same ``RESOLVE_TIMEOUT``."""

Lookup = Callable[[str, int], Sequence[str]]
"""A blocking resolver: (host, port) → the addresses it resolves to; raises ``OSError`` if none.
Run in the guard's threads, never on the event loop."""

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
# the numbers inet_aton reads as an IPv4 address: 127.1, 0x7f.1, 2130706433, 0177.0.0.1
_LEGACY_IPV4 = re.compile(r"[0-9A-Fa-fXx.]+")


def judged_host(host: str) -> str:
    """The host as it is looked up and so as it is judged: percent-encoding decoded (curl
    decodes it) and one trailing dot, the DNS root, dropped (``169.254.169.254.`` is
    169.254.169.254 to curl). More dots than one end no valid name (the shape check refuses it).
    In an IPv6 literal ``%`` begins the zone (``fe80::1%25eth0``): left to ``forbidden_reason``."""
    if "%" in host and ":" not in host:
        host = unquote(host)
    return _without_root(host)


def _without_root(host: str) -> str:
    return host[:-1] if host.endswith(".") and not host.endswith("..") else host


def system_lookup(host: str, port: int) -> list[str]:
    """The addresses this system's resolver (``getaddrinfo``) gives ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def host_reason(
    host: str,
    port: int,
    *,
    lookup: Lookup = system_lookup,
    resolve_within: float = RESOLVE_TIMEOUT,
) -> str | None:
    """Why ``host`` (an address or a name, as a URL writes it) may not be called, or None.

    A name is resolved (off the event loop, within ``resolve_within`` seconds) and refused if
    any address it resolves to is; one that does not resolve today is let through (it is
    judged again at connect time). Raises ``TimeoutError`` if the resolver does not answer in
    time.
    """
    name = judged_host(host).lower()
    literal = _literal_address(name)
    if literal is not None:
        reason = forbidden_reason(literal)
        if reason is not None and literal != host:  # name it as written too
            return f"{host} is {literal}, {reason.removeprefix(f'{literal} is ')}"
        return reason
    if name in _LOOPBACK_NAMES:
        return f"{host} is a loopback name"
    try:
        addresses = await _resolved(name, port, lookup, resolve_within)
    except TimeoutError:  # an OSError too: not to be taken for "unresolvable"
        raise
    except (OSError, UnicodeError, ValueError):  # ValueError: a NUL, percent-encoded
        return None  # unresolvable today; checked again at connect time
    for address in addresses:
        reason = forbidden_reason(address)
        if reason:
            return f"{host} resolves to a refused address ({reason})"
    return None


def _literal_address(host: str) -> str | None:
    """The address ``host`` writes, or None for a name. The IPv4 forms inet_aton reads
    (``127.1``, ``0x7f000001``, ``2130706433``) count as the address they stand for: curl
    and getaddrinfo connect to it without asking any resolver."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return host
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def _resolved(host: str, port: int, lookup: Lookup, within: float) -> Sequence[str]:
    loop = asyncio.get_running_loop()
    # a lookup still waiting for a thread is cancelled with the wait
    looked_up = loop.run_in_executor(_resolver_threads(), lookup, host, port)
    return await asyncio.wait_for(looked_up, within)


@functools.cache
def _resolver_threads() -> ThreadPoolExecutor:
    """The guard's own threads: lookups that hang hold these, not the loop's default ones."""
    return ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")


async def check_callback_url(
    url: str,
    *,
    allow_private: bool,
    field: str = "callback_url",
    lookup: Lookup = system_lookup,
    resolve_within: float = RESOLVE_TIMEOUT,
) -> str:
    """Validate a callback URL for storing: its shape, then (unless ``allow_private``) the
    address it names. Returns the URL to store (an internationalized host in its ASCII form,
    which is what is judged) or raises ``InvalidInput`` naming ``field``.

    A host name is resolved with ``lookup`` (``host_reason``); one that takes longer than
    ``resolve_within`` seconds is refused: better said than the request held as long as the
    resolver holds it."""
    url = check_callback_url_shape(url, field=field)
    if allow_private:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        reason = await host_reason(host, port, lookup=lookup, resolve_within=resolve_within)
    except TimeoutError:
        message = (
            f"could not check the target: looking up {host} took longer than {resolve_within:g} s "
            "(try again; if it keeps failing, its DNS is too slow to deliver to)"
        )
        raise invalid(field, message, headline=f"{field}: {message}") from None
    if reason:
        message = (
            f"target not allowed: {reason} "
            "(for local testing set HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true)"
        )
        raise invalid(field, message, headline=f"{field}: {message}")
    return url
