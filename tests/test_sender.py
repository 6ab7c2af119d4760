"""The sender's promises, each on real sockets (delivery/sender.py): exact header names and
nothing added, keep-alive, the on-wire report, no redirects, a capped read, one total timeout,
the SSRF guard at connect time, verified TLS, no proxy from the environment, Retry-After,
plain error words, and a sender that survives a cancelled request and a new event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hotspot_webhooks.delivery import sender as sender_module
from hotspot_webhooks.delivery.sender import Sender
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers
from tests.receivers import MisbehavingReceiver, RawSocketReceiver, free_port, serving

BODY = b'{"id":"evt-1","value":"x"}'


def signed_headers() -> dict[str, str]:
    request = DeliveryRequest("evt-1", "customer.create", "loc-1", "dlv_1", 1)
    return delivery_headers(request, BODY, [Signer("key")], 1_700_000_000)


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    made = Sender(timeout=2.0, allow_private=True, excerpt_bytes=16)
    yield made
    await made.close()


async def test_headers_arrive_in_their_exact_case_with_only_host_and_length_added() -> None:
    raw = await RawSocketReceiver().start()
    wired: list[str] = []
    sender = Sender(timeout=2.0, allow_private=True, on_wire=wired.append)
    try:
        for n in range(5):
            result = await sender.send(raw.url, BODY, signed_headers(), delivery_id=f"dlv_{n}")
            assert result.status == 200 and result.response_excerpt == "OK"
    finally:
        await sender.close()
        await raw.stop()
    sent = signed_headers()
    first = raw.requests[0]
    assert [(k, v) for k, v in first.headers if k not in ("Host", "Content-Length")] == list(
        sent.items()
    )
    assert first.header("Content-Length") == str(len(BODY)) and first.body == BODY
    assert "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256" in first.header_dict
    assert wired == [f"dlv_{n}" for n in range(5)]  # reported once each, before the answer


async def test_connections_are_kept_alive() -> None:
    seen: set[tuple[str, int]] = set()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        return web.Response(text="ok")

    sender = Sender(timeout=2.0, allow_private=True)
    async with serving(handle) as port:
        for _ in range(20):
            assert (await sender.send(f"http://127.0.0.1:{port}/", BODY, {})).status == 200
        await sender.close()
    assert len(seen) == 1


async def test_a_redirect_is_not_followed_and_its_location_is_said(sender: Sender) -> None:
    paths: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async with serving(handle) as port:
        result = await sender.send(f"http://127.0.0.1:{port}/hook", BODY, {})
    assert result.status == 302 and paths == ["/hook"]
    assert result.error == "redirect to /elsewhere not followed"


async def test_a_long_answer_is_cut_after_the_excerpt_and_the_status_stands(
    sender: Sender,
) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=201, body=b"0123456789abcdef-and-then-some" * 40_000)

    async with serving(handle) as port:
        result = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})
        again = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})  # the handle is reusable
    assert result.status == 201 and result.error is None
    assert result.response_excerpt == "0123456789abcdef"
    assert again.status == 201


async def test_retry_after_is_read_from_the_answer(sender: Sender) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "120"})

    async with serving(handle) as port:
        result = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})
    assert (result.status, result.retry_after) == (429, "120")


async def test_one_total_timeout_holds_against_a_receiver_that_drips() -> None:
    drip = await MisbehavingReceiver("drip", 0.1).start()
    sender = Sender(timeout=0.5, allow_private=True)
    try:
        result = await sender.send(drip.url, BODY, {})
    finally:
        await sender.close()
        await drip.stop()
    assert result.status is None and result.unreachable
    assert result.error == "timed out after 0.5 s"
    assert result.duration_ms < 1500


async def test_a_refused_connection_is_said_in_plain_words(sender: Sender) -> None:
    port = free_port()
    result = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})
    assert result.error == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert result.unreachable and result.status is None


async def test_https_to_a_plain_http_receiver_is_said_plainly(sender: Sender) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    async with serving(handle) as port:
        result = await sender.send(f"https://127.0.0.1:{port}/", BODY, {})
    assert result.status is None and result.unreachable
    assert result.error == (
        f"TLS handshake with 127.0.0.1:{port} failed: it answers plain http, not https"
    )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_the_ssrf_guard_refuses_at_connect_time_and_nothing_arrives(host: str) -> None:
    arrived: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        arrived.append(request.path)
        return web.Response(text="ok")

    guarded = Sender(timeout=2.0, allow_private=False)
    async with serving(handle) as port:
        result = await guarded.send(f"http://{host}:{port}/", BODY, {})
        await guarded.close()
    assert arrived == [] and result.status is None
    assert result.error is not None and result.error.startswith("refused to connect to ")
    assert "is a loopback address" in result.error


async def test_no_proxy_is_taken_from_the_environment(
    sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        proxied.append(str(request.url))
        return web.Response(status=418)

    async def receiver(request: web.Request) -> web.Response:
        return web.Response(text="direct")

    async with serving(proxy) as proxy_port, serving(receiver) as port:
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")
        result = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})
    assert (result.status, result.response_excerpt, proxied) == (200, "direct", [])


async def test_a_cancelled_request_leaves_the_sender_usable(sender: Sender) -> None:
    hang = await MisbehavingReceiver("hang").start()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    try:
        task = asyncio.create_task(sender.send(hang.url, BODY, {}))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with serving(handle) as port:
            result = await sender.send(f"http://127.0.0.1:{port}/", BODY, {})
    finally:
        await hang.stop()
    assert result.status == 200 and result.response_excerpt == "fine"


def test_one_sender_serves_one_event_loop_after_another() -> None:
    sender = Sender(timeout=2.0, allow_private=True)

    async def once() -> int | None:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        async with serving(handle) as port:
            return (await sender.send(f"http://127.0.0.1:{port}/", BODY, {})).status

    assert asyncio.run(once()) == 200
    assert asyncio.run(once()) == 200
    asyncio.run(sender.close())


# --- TLS: verified against the system's CA bundle, SSL_CERT_FILE honoured --------------------


def certificate_authority(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA file, and a server context whose certificate that CA signed for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotspot-webhooks test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    return ca_file, context


async def https_status(context: ssl.SSLContext) -> tuple[int | None, str | None, bool]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="over tls")

    sender = Sender(timeout=2.0, allow_private=True)
    try:
        async with serving(handle, ssl_context=context) as port:
            result = await sender.send(f"https://127.0.0.1:{port}/", BODY, {})
    finally:
        await sender.close()
    return result.status, result.error, result.unreachable


async def test_https_is_verified_against_the_trusted_authorities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, context = certificate_authority(tmp_path)
    sender_module._ca_locations.cache_clear()
    try:
        status, error, _ = await https_status(context)  # this machine's CAs: not trusted
        assert status is None and error is not None and "certificate" in error.lower()

        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
        sender_module._ca_locations.cache_clear()
        assert await https_status(context) == (200, None, False)
    finally:
        sender_module._ca_locations.cache_clear()
