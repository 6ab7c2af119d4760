"""The SSRF guard (SPEC §6): which callback URLs may be stored and which addresses connected to."""

from __future__ import annotations

import socket
from typing import Any

import pycurl
import pytest

from hotspot_webhooks.delivery.sender import Sender, _Exchange
from hotspot_webhooks.delivery.targets import check_callback_url, forbidden_reason
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.validation import MAX_URL_LENGTH

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


async def rejected(url: str, *, allow_private: bool = False) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        await check_callback_url(url, allow_private=allow_private)
    error = info.value
    assert "callback_url" in error.message
    assert [d["field"] for d in error.details] == ["callback_url"]
    assert error.status == 422
    return error


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC_V4}/hook",
        f"https://{PUBLIC_V4}:8443/hooks/customer?x=1",
        f"http://[{PUBLIC_V6}]/hook",
        "https://8.8.8.8/",
    ],
)
async def test_public_ip_literal_url_is_accepted_unchanged(url: str) -> None:
    assert await check_callback_url(url, allow_private=False) == url


async def test_custom_field_name_is_used_in_the_error() -> None:
    with pytest.raises(InvalidInput) as info:
        await check_callback_url("ftp://x/", allow_private=False, field="url")
    assert [d["field"] for d in info.value.details] == ["url"]


# --- malformed URLs, refused whatever allow_private says ------------------------------------


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        f"ftp://{PUBLIC_V4}/hook",
        "file:///etc/passwd",
        f"gopher://{PUBLIC_V4}/",
        f"//{PUBLIC_V4}/hook",
        f"{PUBLIC_V4}/hook",
        "",
        "   ",
    ],
)
async def test_non_http_scheme_or_missing_scheme_is_rejected(url: str, allow_private: bool) -> None:
    await rejected(url, allow_private=allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url",
    [f"http://user:pass@{PUBLIC_V4}/hook", f"https://user@{PUBLIC_V4}/", "http://a:b@127.0.0.1/"],
)
async def test_credentials_in_url_are_rejected(url: str, allow_private: bool) -> None:
    error = await rejected(url, allow_private=allow_private)
    assert "credentials" in error.message


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", ["http:///hook", "https://:443/hook", "http://?x=1"])
async def test_url_without_host_is_rejected(url: str, allow_private: bool) -> None:
    await rejected(url, allow_private=allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC_V4}/ho ok",
        f" http://{PUBLIC_V4}/hook",
        f"http://{PUBLIC_V4}/hook\n",
        f"http://{PUBLIC_V4}/ho\tok",
    ],
)
async def test_url_with_whitespace_is_rejected(url: str, allow_private: bool) -> None:
    await rejected(url, allow_private=allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
async def test_over_long_url_is_rejected(allow_private: bool) -> None:
    base = f"http://{PUBLIC_V4}/"
    assert await check_callback_url(base + "a" * (MAX_URL_LENGTH - len(base)), allow_private=True)
    error = await rejected(
        base + "a" * (MAX_URL_LENGTH + 1 - len(base)), allow_private=allow_private
    )
    assert str(MAX_URL_LENGTH) in error.message


@pytest.mark.parametrize("allow_private", [False, True])
async def test_invalid_port_is_rejected(allow_private: bool) -> None:
    await rejected(f"http://{PUBLIC_V4}:99999/hook", allow_private=allow_private)


async def test_non_string_url_is_rejected() -> None:
    await rejected(None)  # type: ignore[arg-type]


# --- internal targets ----------------------------------------------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://100.64.0.1/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://[fc00::1]/hook",
    # numeric host forms that the resolver turns into 127.0.0.1
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://0x7f000001/hook",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
async def test_internal_target_is_rejected_naming_callback_url(url: str) -> None:
    error = await rejected(url)
    assert "not allowed" in error.message
    assert "ALLOW_PRIVATE_TARGETS" in error.message


@pytest.mark.parametrize("url", INTERNAL_URLS)
async def test_internal_target_is_accepted_with_allow_private(url: str) -> None:
    assert await check_callback_url(url, allow_private=True) == url


# --- forbidden_reason ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "non-global"),
        ("::7f00:1", "reserved"),
    ],
)
def test_forbidden_reason_names_the_address_class(address: str, kind: str) -> None:
    reason = forbidden_reason(address)
    assert reason == f"{address} is a {kind} address"


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "240.0.0.1", "255.255.255.255"])
def test_unspecified_broadcast_and_reserved_addresses_are_forbidden(address: str) -> None:
    assert forbidden_reason(address) is not None


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "172.32.0.1", "1.1.1.1"])
def test_public_unicast_address_has_no_forbidden_reason(address: str) -> None:
    assert forbidden_reason(address) is None


def test_names_are_not_judged_by_forbidden_reason() -> None:
    assert forbidden_reason("example.com") is None


# --- at connect time: the guard on the very address curl opens a socket to ----------------


def opened(address: str, port: int = 443, *, allow_private: bool = False) -> tuple[Any, list[str]]:
    exchange = _Exchange(Sender(timeout=1, allow_private=allow_private))
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    got = exchange._open_socket(0, (family, socket.SOCK_STREAM, 6, (address, port)))
    if isinstance(got, socket.socket):
        got.close()
    exchange.curl.close()
    return got, exchange.refused


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6])
def test_a_socket_to_a_public_address_is_opened(address: str) -> None:
    got, refused = opened(address)
    assert isinstance(got, socket.socket) and refused == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("::1", "::1 is a loopback address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"),
    ],
)
def test_a_socket_to_a_forbidden_address_is_refused_with_its_reason(
    address: str, reason: str
) -> None:
    got, refused = opened(address)
    assert got == pycurl.SOCKET_BAD and refused == [reason]


def test_port_0_is_refused_at_connect_time_too() -> None:
    got, refused = opened(PUBLIC_V4, 0)
    assert got == pycurl.SOCKET_BAD and refused == ["port 0"]


def test_private_addresses_are_connected_when_allowed() -> None:
    got, refused = opened("127.0.0.1", 8080, allow_private=True)
    assert isinstance(got, socket.socket) and refused == []


# --- IPv6 addresses that carry an IPv4 one, and ranges Python's tables may miss ---------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::", "2002:7f00:1:: is the 6to4 address of 127.0.0.1, a loopback address"),
        ("2002:a9fe:a9fe::1", "the 6to4 address of 169.254.169.254, a link-local address"),
        (
            "64:ff9b::7f00:1",
            "64:ff9b::7f00:1 is the NAT64 address of 127.0.0.1, a loopback address",
        ),
        ("64:ff9b::a00:1", "the NAT64 address of 10.0.0.1, a private address"),
        ("64:ff9b:1::a00:1", "64:ff9b:1::a00:1 is a"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "is a"),  # Teredo
        ("192.0.0.8", "192.0.0.8 is a non-global address"),
        ("192.0.0.170", "192.0.0.170 is a"),
        ("198.18.0.1", "198.18.0.1 is a"),  # benchmarking
        ("fec0::1", "fec0::1 is a site-local address"),
    ],
)
def test_an_address_that_reaches_or_wraps_an_internal_one_is_forbidden(
    address: str, reason: str
) -> None:
    found = forbidden_reason(address)
    assert found is not None and reason in found, found


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808"])
def test_6to4_and_nat64_addresses_of_a_public_ipv4_are_judged_by_it_and_allowed(
    address: str,
) -> None:
    # a DNS64 network hands out 64:ff9b::/96 addresses for IPv4-only receivers
    assert forbidden_reason(address) is None


async def test_port_0_is_refused_whatever_allow_private_says() -> None:
    await rejected("http://1.1.1.1:0/", allow_private=True)
    await rejected("http://1.1.1.1:0/", allow_private=False)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("http://bücher.example/hook", "http://xn--bcher-kva.example/hook"),
        ("https://BÜCHER.example:8443/a?b=c", "https://xn--bcher-kva.example:8443/a?b=c"),
        (f"http://{PUBLIC_V4}/pfad/ä?q=ö", f"http://{PUBLIC_V4}/pfad/%C3%A4?q=%C3%B6"),
    ],
)
async def test_an_internationalized_url_is_stored_in_ascii(url: str, stored: str) -> None:
    assert await check_callback_url(url, allow_private=True) == stored
