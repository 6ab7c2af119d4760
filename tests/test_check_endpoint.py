"""`check-endpoint` as an integrator runs it: the real command against real receivers on
127.0.0.1 — the documented PHP receiver passes; receivers that take forgeries, fail or answer
too slowly fail with advice that says what to change; the SSRF guard and an absent receiver
are plain errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hotspot_webhooks import catalog
from hotspot_webhooks.delivery.failures import plainly
from hotspot_webhooks.receiver import (
    ORIGINAL_HEADER_LITERAL,
    InvalidSignature,
    parse,
    verify_standard_signature,
)
from hotspot_webhooks.signing import USER_AGENT
from tests.conftest import run_cli
from tests.receivers import PhpReceiver, PythonReceiver, free_port, serving

API_KEY = "hwk_conformance_test_key"
PRIVATE = "--allow-private-targets"  # every receiver here is on 127.0.0.1
SINGLE_CHECKS = len(catalog.EVENT_TYPES) + 5  # six samples, forged, unsigned, 2 copies, stale


async def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, from a thread: the receivers answer on this test's event loop."""
    return await asyncio.to_thread(run_cli, "check-endpoint", *args, env=env)


def checks_of(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


async def test_the_documented_php_receiver_conforms(tmp_path: Path) -> None:
    php = PhpReceiver(API_KEY, tmp_path / "php.log")
    try:
        done = await check(php.url, "--api-key", API_KEY, PRIVATE, "--burst", "20", "--json")
        wrong_key = await check(php.url, "--api-key", "another key", PRIVATE, "--burst", "0")
    finally:
        php.stop()

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True
    musts = [c for c in report["checks"] if c["level"] == "must"]
    assert all(c["passed"] for c in musts), musts
    checks = checks_of(done)
    for name in catalog.EVENT_TYPES:  # a correctly signed sample of each type, answered 200
        assert checks[f"deliver {name}"]["status"] == 200
    assert checks["forged signature refused"]["status"] == 401
    assert checks["unsigned request refused"]["status"] == 401
    assert report["burst"]["requests"] == report["burst"]["succeeded"] == 20
    assert report["burst"]["within_timeout"] is True
    # under another key the same receiver refuses our deliveries, and we say why
    assert wrong_key.returncode == 1
    assert "refused a correctly signed delivery (401)" in wrong_key.stdout
    assert "base64(HMAC-SHA256(api_key, raw body))" in wrong_key.stdout


async def test_a_receiver_that_accepts_anything_is_told_it_accepts_forgeries() -> None:
    receiver = await PythonReceiver().start()  # answers 200 to every request
    try:
        done = await check(receiver.url, "--api-key", API_KEY, PRIVATE, "--burst", "4")
    finally:
        await receiver.stop()

    assert done.returncode == 1, done.stdout + done.stderr
    assert "ACCEPTS FORGED DELIVERIES" in done.stdout
    assert "constant-time comparison" in done.stdout
    assert "This receiver accepts forged deliveries" in done.stdout
    assert "accepted a request without any signature header" in done.stdout
    assert "does not conform" in done.stdout

    # what went on the wire: real deliveries, altered only where each check says
    sent = receiver.requests
    assert len(sent) == SINGLE_CHECKS + 4
    samples, forged, unsigned = sent[:6], sent[6], sent[7]
    first_copy, second_copy, stale = sent[8], sent[9], sent[10]
    for request, name in zip(samples, catalog.EVENT_TYPES, strict=True):
        event = parse(request.header_dict, request.body, API_KEY)
        assert event.type == name and event.attempt == 1
        assert request.body == catalog.serialize(catalog.EVENT_TYPES[name].sample)
        assert ORIGINAL_HEADER_LITERAL in request.header_dict  # in exactly that case
        assert request.header("User-Agent") == USER_AGENT
        assert verify_standard_signature(request.header_dict, request.body, API_KEY)
    for request in (forged, unsigned):
        try:
            parse(request.header_dict, request.body, API_KEY)
        except InvalidSignature:
            pass
        else:
            raise AssertionError("a forged or unsigned request verified")
    assert forged.header(ORIGINAL_HEADER_LITERAL) is not None
    assert unsigned.header("X-Hotspotsystem-Hmac-Sha256") is None
    assert unsigned.header(ORIGINAL_HEADER_LITERAL) is None
    assert unsigned.header("webhook-signature") is None
    assert first_copy.header("webhook-id") == second_copy.header("webhook-id")
    assert first_copy.header("X-Hotspotsystem-Delivery") == second_copy.header(
        "X-Hotspotsystem-Delivery"
    )
    assert (
        first_copy.header("X-Hotspotsystem-Attempt"),
        second_copy.header("X-Hotspotsystem-Attempt"),
    ) == ("1", "2")
    stamp = int(stale.header("webhook-timestamp") or 0)
    assert 590 <= time.time() - stamp <= 660
    assert verify_standard_signature(stale.header_dict, stale.body, API_KEY, now=stamp)
    assert not verify_standard_signature(stale.header_dict, stale.body, API_KEY)
    burst_ids = {r.header("webhook-id") for r in sent[SINGLE_CHECKS:]}
    assert len(burst_ids) == 4  # each burst request is an event of its own


async def test_a_receiver_that_answers_500_fails_with_its_answer_and_advice() -> None:
    receiver = await PythonReceiver(respond=lambda n: 500).start()
    try:
        done = await check(receiver.url, "--api-key", API_KEY, PRIVATE, "--burst", "3", "--json")
    finally:
        await receiver.stop()

    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["passed"] is False
    delivered = report["checks"][0]
    assert delivered["name"] == "deliver customer.create"
    assert (delivered["passed"], delivered["status"]) == (False, 500)
    assert "answered 500" in delivered["detail"] and "answer 500" in delivered["detail"]
    assert "your receiver failed on a valid delivery" in delivered["advice"]
    burst = checks_of(done)["burst of 3"]
    assert burst["passed"] is False and "3 answered 500" in burst["detail"]
    # refusing everything refuses forgeries too: those checks pass
    assert checks_of(done)["forged signature refused"]["passed"] is True
    assert report["summary"]["must_failed"] == 6 + 2  # the samples, the redelivery, the burst


async def test_a_receiver_slower_than_the_timeout_is_told_to_answer_first() -> None:
    receiver = await PythonReceiver(delay=1.5).start()
    try:
        started = time.monotonic()
        done = await check(receiver.url, "--api-key", API_KEY, PRIVATE, "--timeout", "0.5")
        took = time.monotonic() - started
    finally:
        await receiver.stop()

    assert done.returncode == 1
    assert "no answer within 0.5 s" in done.stdout
    assert "answer 200 first, do the work later" in done.stdout
    assert "did not answer the first request: no answer within 0.5 s" in done.stderr
    assert "skipped" in done.stdout  # the other checks are not run against a dead end
    assert took < 20  # one timeout, not one per check


async def test_a_receiver_too_slow_under_a_burst_fails_the_burst_alone() -> None:
    """Verifies each request with the receiver SDK and answers at once, until the burst."""
    seen = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        body = await request.read()
        try:
            parse(request.headers, body, API_KEY)
        except InvalidSignature:
            return web.Response(status=401)
        if seen > SINGLE_CHECKS:
            await asyncio.sleep(2)
        return web.Response(text="ok")

    async with serving(handle) as port:
        done = await check(
            f"http://127.0.0.1:{port}/hook",
            "--api-key",
            API_KEY,
            PRIVATE,
            "--timeout",
            "1",
            "--burst",
            "4",
            "--json",
        )

    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    failed = [c["name"] for c in report["checks"] if c["passed"] is False]
    # the SDK checks the Standard Webhooks signature, timestamp included: the stale one passes
    assert failed == ["burst of 4"]
    burst = checks_of(done)["burst of 4"]
    assert "4 got no answer within 1 s" in burst["detail"]
    assert "answer 200 first, do the work later" in burst["advice"]
    assert report["burst"]["within_timeout"] is False
    assert report["burst"]["p50_ms"] >= 900


async def test_a_receiver_that_refuses_a_second_copy_is_told_delivery_is_at_least_once() -> None:
    seen: set[str] = set()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = parse(request.headers, body, API_KEY)
        except InvalidSignature:
            return web.Response(status=401)
        if event.id in seen:
            return web.Response(status=409, text="duplicate")
        seen.add(str(event.id))
        return web.Response(text="ok")

    async with serving(handle) as port:
        done = await check(
            f"http://127.0.0.1:{port}/hook",
            "--api-key",
            API_KEY,
            PRIVATE,
            "--event",
            "customer.create",
            "--burst",
            "0",
        )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "the same event twice: 200, then answered 409" in done.stdout
    assert "refused a second copy of an event (409): delivery is at-least-once" in done.stdout
    assert "1 must failed" in done.stdout


async def test_json_gives_every_check_with_the_same_fields_and_a_summary(tmp_path: Path) -> None:
    receiver = await PythonReceiver(respond=lambda n: 401).start()
    try:
        done = await check(
            receiver.url,
            "--api-key",
            API_KEY,
            PRIVATE,
            "--event",
            "transaction.paid.create",
            "--burst",
            "0",
            "--json",
        )
    finally:
        await receiver.stop()

    report = json.loads(done.stdout)
    assert set(report) == {
        "url",
        "timeout_s",
        "passed",
        "unreachable",
        "checks",
        "burst",
        "summary",
    }
    assert report["url"] == receiver.url and report["timeout_s"] == 15
    assert [c["name"] for c in report["checks"]] == [
        "deliver transaction.paid.create",
        "forged signature refused",
        "unsigned request refused",
        "redelivery accepted",
        "stale timestamp refused",
    ]
    for item in report["checks"]:
        assert set(item) == {"name", "level", "passed", "status", "latency_ms", "detail", "advice"}
        assert item["level"] in ("must", "should")
        assert isinstance(item["latency_ms"], int)
    assert report["burst"] is None
    assert report["summary"] == {
        "checks": 5,
        "passed": 3,
        "must_failed": 2,
        "should_failed": 0,
        "skipped": 0,
        "forgery_accepted": False,
    }
    assert {r.header("X-Hotspotsystem-Event") for r in receiver.requests} == {
        "transaction.paid.create"
    }


async def test_a_private_url_is_refused_before_anything_is_sent() -> None:
    receiver = await PythonReceiver().start()
    try:
        refused, by_name, allowed = await asyncio.gather(
            check(receiver.url, "--api-key", API_KEY),
            check(f"http://localhost:{receiver.port}/hook", "--api-key", API_KEY, "--json"),
            check(
                receiver.url,
                "--api-key",
                API_KEY,
                "--burst",
                "0",
                env={"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"},
            ),
        )
    finally:
        await receiver.stop()

    assert refused.returncode == 2
    assert "url: target not allowed: 127.0.0.1 is a loopback address" in refused.stderr
    assert "--allow-private-targets" in refused.stderr
    assert by_name.returncode == 2 and by_name.stdout == ""
    assert "localhost is a loopback name" in by_name.stderr
    assert "Traceback" not in refused.stderr + by_name.stderr
    # only the run the setting allowed reached the receiver
    assert allowed.returncode == 1  # it accepts forgeries
    assert len(receiver.requests) == SINGLE_CHECKS


async def test_bad_options_name_their_field() -> None:
    unknown, empty_key, not_http = await asyncio.gather(
        check("http://127.0.0.1:9/hook", "--api-key", "k", PRIVATE, "--event", "x"),
        check("http://127.0.0.1:9/hook", "--api-key", "", PRIVATE),
        check("ftp://example.com/hook", "--api-key", "k"),
    )

    assert unknown.returncode == 2 and "event: unknown event type 'x'" in unknown.stderr
    assert empty_key.returncode == 2 and "api_key must be a non-empty string" in empty_key.stderr
    assert not_http.returncode == 2 and "url: scheme must be http or https" in not_http.stderr


async def test_a_refused_connection_is_said_plainly() -> None:
    port = free_port()  # nothing listens there
    done = await check(f"http://127.0.0.1:{port}/hook", "--api-key", API_KEY, PRIVATE)

    assert done.returncode == 1
    expected = f"cannot connect to 127.0.0.1:{port}: connection refused: nothing listens there"
    assert f"did not answer the first request: {expected}" in done.stderr
    assert "ssl:default" not in done.stdout + done.stderr
    assert "check the URL, and that the receiver runs" in done.stdout


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            "cannot connect to 127.0.0.1:9: Connection refused",
            "cannot connect to 127.0.0.1:9: connection refused: nothing listens there",
        ),
        (
            "cannot connect to hooks.invalid:80: Name or service not known",
            "cannot connect to hooks.invalid:80: the host name does not resolve",
        ),
        ("timed out after 1.5 s", "no answer within 1.5 s (the delivery timeout)"),
        ("Server disconnected", "Server disconnected"),
    ],
)
def test_a_failed_request_is_told_without_aiohttp_wording(error: str, said: str) -> None:
    assert plainly(error, 1.5).startswith(said)
