"""Receiver conformance: does an endpoint take our deliveries the way the contract needs?

What ``check-endpoint`` runs before a receiver gets real deliveries. Each check sends one real
delivery request (``signing.delivery_headers`` over a catalog sample, through the delivery
``Sender`` and its SSRF guard), altered only where the check says, and judges the answer:

- must: a correctly signed sample of each event type is answered with success (200);
- must: a body signed with another key is refused (a receiver that takes it takes forgeries);
- must: a request without signature headers is refused;
- must: the same event sent again (a retry after a lost answer) is accepted again;
- should: a delivery whose ``webhook-timestamp`` is 10 minutes old is refused (a receiver
  that checks only the original header has no timestamp to look at, hence only a warning);
- must: a burst of deliveries, several at once, is answered with success within the delivery
  timeout; its latency is reported.

Pure of printing: the CLI shows the ``Report``; ``Report.as_json`` is the ``--json`` shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import catalog
from .config import Settings
from .delivery.failures import plainly
from .delivery.outcome import AttemptResult
from .delivery.sender import Sender
from .delivery.targets import check_callback_url
from .ids import new_id
from .receiver import ORIGINAL_HEADER, ORIGINAL_HEADER_LITERAL
from .signing import DeliveryRequest, Signer, delivery_headers
from .validation import invalid

STALE_SECONDS = 600  # twice the Standard Webhooks tolerance (5 minutes) of receiver.py
MAX_BURST = 1000
BURST_CONCURRENCY = 10  # requests in flight at once during the burst
SAMPLE_LOCATION = "1"  # the samples' own location_id
EXCERPT_BYTES = 512  # of a response, shown in a failure's detail
FORGED = "forged signature refused"
SIGNATURE_HEADERS = (ORIGINAL_HEADER, ORIGINAL_HEADER_LITERAL, "webhook-signature")
_CONSTANT_TIME = (
    "compare base64(HMAC-SHA256(api_key, raw body)) with X-Hotspotsystem-Hmac-Sha256 using a "
    "constant-time comparison (PHP hash_equals, Python hmac.compare_digest), before parsing "
    "the body, and answer 401 when they differ"
)
_ANSWER_FIRST = (
    "answer 200 first, do the work later (a queue or a background job): we count a request "
    "unanswered within the timeout as a failed attempt and send it again"
)


class Level(StrEnum):
    MUST = "must"  # a failure exits 1: real deliveries would fail or forgeries pass
    SHOULD = "should"  # a failure is a warning


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict. ``passed`` is None when it was not run."""

    name: str
    level: Level
    passed: bool | None
    status: int | None
    latency_ms: int | None
    detail: str
    advice: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": str(self.level),
            "passed": self.passed,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
            "advice": self.advice,
        }


@dataclass(frozen=True, slots=True)
class BurstFigures:
    """How the receiver answered the burst: latency percentiles (nearest rank) in ms."""

    requests: int
    concurrency: int
    succeeded: int
    p50_ms: int
    p99_ms: int
    slowest_ms: int
    within_timeout: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "succeeded": self.succeeded,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "slowest_ms": self.slowest_ms,
            "within_timeout": self.within_timeout,
        }


@dataclass(slots=True)
class Report:
    url: str
    timeout: float
    checks: list[Check] = field(default_factory=list)
    burst: BurstFigures | None = None
    unreachable: str | None = None  # why the first request never got an answer

    def failed(self, level: Level) -> list[Check]:
        return [c for c in self.checks if c.level is level and c.passed is False]

    @property
    def forgery_accepted(self) -> bool:
        """A body signed with another key got a 2xx: the loudest finding there is."""
        return any(
            c.name == FORGED and c.status is not None and 200 <= c.status < 300 for c in self.checks
        )

    @property
    def passed(self) -> bool:
        """True when no must failed: what exit code 0 means."""
        return not self.failed(Level.MUST)

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "timeout_s": self.timeout,
            "passed": self.passed,
            "unreachable": self.unreachable,
            "checks": [c.as_json() for c in self.checks],
            "burst": None if self.burst is None else self.burst.as_json(),
            "summary": {
                "checks": len(self.checks),
                "passed": sum(c.passed is True for c in self.checks),
                "must_failed": len(self.failed(Level.MUST)),
                "should_failed": len(self.failed(Level.SHOULD)),
                "skipped": sum(c.passed is None for c in self.checks),
                "forgery_accepted": self.forgery_accepted,
            },
        }


@dataclass(frozen=True, slots=True)
class _Sample:
    """One event as a delivery carries it: its identity on the wire and its body bytes."""

    request: DeliveryRequest
    body: bytes

    @classmethod
    def of(cls, event_type: catalog.EventType) -> _Sample:
        request = DeliveryRequest(new_id("evt"), event_type.name, SAMPLE_LOCATION, new_id("dlv"), 1)
        return cls(request, catalog.serialize(event_type.sample))

    def again(self) -> _Sample:
        """The same delivery's next attempt: same event, same delivery id."""
        return _Sample(
            dataclasses.replace(self.request, attempt=self.request.attempt + 1), self.body
        )


def event_types_to_check(name: str | None) -> list[catalog.EventType]:
    """The given built-in type, or all six."""
    if name is None:
        return list(catalog.EVENT_TYPES.values())
    if name not in catalog.EVENT_TYPES:
        known = ", ".join(catalog.EVENT_TYPES)
        raise invalid(
            "event",
            f"unknown event type {name!r}",
            headline=f"event: unknown event type {name!r}; expected one of: {known}",
        )
    return [catalog.EVENT_TYPES[name]]


class _Probe:
    """Sends the checks' requests to one URL under one API key and words their failures."""

    def __init__(self, url: str, api_key: str, settings: Settings, sender: Sender) -> None:
        self.url = url
        self.signer = Signer(api_key)
        self.forger = Signer(api_key + secrets.token_urlsafe(8))  # another key: a forgery
        self.timeout = settings.timeout
        self.is_success = settings.is_success
        self.sender = sender

    def headers(self, sample: _Sample, *, forged: bool = False, age: int = 0) -> dict[str, str]:
        signer = self.forger if forged else self.signer
        return delivery_headers(sample.request, sample.body, [signer], int(time.time()) - age)

    async def send(self, sample: _Sample, headers: dict[str, str]) -> AttemptResult:
        return await self.sender.send(self.url, sample.body, headers)

    def answer(self, result: AttemptResult) -> str:
        """What came back, in a few words: a status (and the body's start) or the failure."""
        if result.status is None:
            return plainly(result.error or "no answer", self.timeout)
        text = f"answered {result.status}"
        excerpt = " ".join((result.response_excerpt or "").split())[:120]
        return f"{text}: {excerpt!r}" if excerpt else text

    def delivery_advice(self, result: AttemptResult) -> str:
        """What to change when a correctly signed delivery was not a success."""
        status = result.status
        if status is None:
            if result.error and result.error.startswith("timed out"):
                return f"no answer within {self.timeout:g} s: {_ANSWER_FIRST}"
            return (
                "check the URL, and that the receiver runs and is reachable from where the "
                "dispatcher runs"
            )
        if status in (401, 403):
            return (
                f"your receiver refused a correctly signed delivery ({status}): compute "
                "base64(HMAC-SHA256(api_key, raw body)) over the raw request body bytes, as "
                "received, and compare it with X-Hotspotsystem-Hmac-Sha256 (PHP: "
                "$_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'], or getallheaders()"
                "['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']); check that it uses this webhook's API key"
            )
        if 300 <= status < 400:
            return (
                f"answered {status} (a redirect): redirects are not followed; "
                "make the final URL the callback URL"
            )
        if 200 <= status < 300:
            return (
                f"answered {status}: success is 200 (the setting SUCCESS_STATUSES=2xx accepts "
                "any 2xx); answer 200"
            )
        if status >= 500:
            return (
                f"answered {status}: your receiver failed on a valid delivery (see its log; "
                f"the response began {self.answer(result).partition(': ')[2] or '(empty)'}); "
                "each such answer is retried, up to 20 times, then the delivery fails"
            )
        return (
            f"answered {status} to a valid delivery: it would be retried, up to 20 times, then "
            "fail; answer 200 to every correctly signed delivery"
            + (" (404: check the URL's path)" if status == 404 else "")
        )

    def delivered(self, name: str, result: AttemptResult, detail: str = "") -> Check:
        """A must-succeed check of one correctly signed request."""
        if result.status is not None and self.is_success(result.status):
            return Check(
                name,
                Level.MUST,
                True,
                result.status,
                result.duration_ms,
                detail or f"answered {result.status}",
            )
        return Check(
            name,
            Level.MUST,
            False,
            result.status,
            result.duration_ms,
            self.answer(result),
            self.delivery_advice(result),
        )

    def refused(
        self, name: str, level: Level, result: AttemptResult, advice: str, accepted: str = "it"
    ) -> Check:
        """A must-refuse check: any answer but a 2xx passes; no answer cannot tell."""
        if result.status is None:
            return Check(
                name,
                level,
                False,
                None,
                result.duration_ms,
                f"could not tell: {self.answer(result)}",
                "answer every request promptly, refusing the ones you do not accept with 401",
            )
        if 200 <= result.status < 300:
            return Check(
                name,
                level,
                False,
                result.status,
                result.duration_ms,
                f"accepted {accepted} ({result.status})",
                advice,
            )
        return Check(
            name, level, True, result.status, result.duration_ms, f"refused with {result.status}"
        )


async def check_endpoint(
    url: str,
    api_key: str,
    settings: Settings,
    *,
    event_type: str | None = None,
    burst: int = 50,
) -> Report:
    """Run every check against ``url``; raises ``InvalidInput`` (naming the field) before
    sending anything if the URL is refused, the key is empty or the type unknown."""
    url = await check_callback_url(url, allow_private=settings.allow_private_targets, field="url")
    if not api_key:
        raise invalid("api_key", "required", headline="api_key must be a non-empty string")
    if not 0 <= burst <= MAX_BURST:
        raise invalid("burst", f"must be between 0 and {MAX_BURST}")
    types = event_types_to_check(event_type)
    sender = Sender(
        timeout=settings.timeout,
        allow_private=settings.allow_private_targets,
        excerpt_bytes=EXCERPT_BYTES,
    )
    report = Report(url=url, timeout=settings.timeout)
    try:
        await _run(_Probe(url, api_key, settings, sender), types, burst, report)
    finally:
        await sender.close()
    return report


async def _run(
    probe: _Probe, types: Sequence[catalog.EventType], burst: int, report: Report
) -> None:
    planned: list[tuple[str, Level]] = [(f"deliver {t.name}", Level.MUST) for t in types]
    planned += [
        (FORGED, Level.MUST),
        ("unsigned request refused", Level.MUST),
        ("redelivery accepted", Level.MUST),
        ("stale timestamp refused", Level.SHOULD),
    ]
    if burst:
        planned.append((f"burst of {burst}", Level.MUST))
    steps: list[Callable[[], Awaitable[Check]]] = [
        *(_deliver_one(probe, t) for t in types),
        lambda: _forged(probe, types[0]),
        lambda: _unsigned(probe, types[0]),
        lambda: _redelivery(probe, types[0]),
        lambda: _stale(probe, types[0]),
    ]
    if burst:
        steps.append(lambda: _burst(probe, types, burst, report))
    for index, step in enumerate(steps):
        check = await step()
        report.checks.append(check)
        if index == 0 and check.passed is False and check.status is None:
            # nothing answered the first request: the other checks would only say so again
            report.unreachable = check.detail
            report.checks += [
                Check(name, level, None, None, None, "not run: the first request got no answer")
                for name, level in planned[1:]
            ]
            return


def _deliver_one(probe: _Probe, event_type: catalog.EventType) -> Callable[[], Awaitable[Check]]:
    async def check() -> Check:
        sample = _Sample.of(event_type)
        result = await probe.send(sample, probe.headers(sample))
        return probe.delivered(f"deliver {event_type.name}", result)

    return check


async def _forged(probe: _Probe, event_type: catalog.EventType) -> Check:
    sample = _Sample.of(event_type)
    result = await probe.send(sample, probe.headers(sample, forged=True))
    return probe.refused(
        FORGED,
        Level.MUST,
        result,
        "YOUR RECEIVER ACCEPTS FORGED DELIVERIES: it accepted a body signed with another key, "
        f"so anyone who knows its URL can feed it events; {_CONSTANT_TIME}",
        accepted="A FORGED SIGNATURE",
    )


async def _unsigned(probe: _Probe, event_type: catalog.EventType) -> Check:
    sample = _Sample.of(event_type)
    headers = {k: v for k, v in probe.headers(sample).items() if k not in SIGNATURE_HEADERS}
    result = await probe.send(sample, headers)
    return probe.refused(
        "unsigned request refused",
        Level.MUST,
        result,
        "your receiver accepted a request without any signature header: treat a missing "
        f"X-Hotspotsystem-Hmac-Sha256 as invalid (PHP: isset() before hash_equals()); "
        f"{_CONSTANT_TIME}",
    )


async def _redelivery(probe: _Probe, event_type: catalog.EventType) -> Check:
    name = "redelivery accepted"
    first = _Sample.of(event_type)
    answered = await probe.send(first, probe.headers(first))
    if answered.status is None or not probe.is_success(answered.status):
        return probe.delivered(name, answered)
    again = first.again()
    result = await probe.send(again, probe.headers(again))
    if result.status is not None and probe.is_success(result.status):
        return Check(
            name,
            Level.MUST,
            True,
            result.status,
            result.duration_ms,
            f"the same event twice: {answered.status}, then {result.status}",
        )
    if result.status is None or result.status >= 500:
        return probe.delivered(name, result)
    return Check(
        name,
        Level.MUST,
        False,
        result.status,
        result.duration_ms,
        f"the same event twice: {answered.status}, then {probe.answer(result)}",
        f"your receiver refused a second copy of an event ({result.status}): delivery is "
        "at-least-once, so an event can come again (same webhook-id, same "
        "X-Hotspotsystem-Delivery) when an answer was lost; answer 200 to a copy you already "
        "have, and skip its work",
    )


async def _stale(probe: _Probe, event_type: catalog.EventType) -> Check:
    sample = _Sample.of(event_type)
    result = await probe.send(sample, probe.headers(sample, age=STALE_SECONDS))
    check = probe.refused(
        "stale timestamp refused",
        Level.SHOULD,
        result,
        f"your receiver accepted a delivery whose webhook-timestamp is {STALE_SECONDS // 60} "
        "minutes old, so a captured request can be replayed: if you verify the Standard "
        "Webhooks signature, refuse timestamps more than 5 minutes from now; the original "
        "X-Hotspotsystem-Hmac-Sha256 signs no timestamp, so there deduplicate by webhook-id",
    )
    if check.passed is False and check.status is not None:
        minutes = STALE_SECONDS // 60
        detail = f"accepted ({check.status}) a delivery signed {minutes} minutes ago"
        return Check(
            check.name, check.level, False, check.status, check.latency_ms, detail, check.advice
        )
    return check


async def _burst(
    probe: _Probe, types: Sequence[catalog.EventType], count: int, report: Report
) -> Check:
    name = f"burst of {count}"
    concurrency = min(BURST_CONCURRENCY, count)
    samples = [_Sample.of(types[n % len(types)]) for n in range(count)]
    results: list[AttemptResult] = []
    queue = iter(samples)

    async def lane() -> None:
        for sample in queue:  # the lanes share one iterator: each sample is sent once
            results.append(await probe.send(sample, probe.headers(sample)))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    durations = sorted(r.duration_ms for r in results)
    unanswered = [r for r in results if r.status is None]
    timed_out = [r for r in unanswered if (r.error or "").startswith("timed out")]
    refused = [r for r in results if r.status is not None and not probe.is_success(r.status)]
    figures = BurstFigures(
        requests=count,
        concurrency=concurrency,
        succeeded=count - len(unanswered) - len(refused),
        p50_ms=_percentile(durations, 50),
        p99_ms=_percentile(durations, 99),
        slowest_ms=durations[-1],
        within_timeout=not timed_out,
    )
    report.burst = figures
    latency = f"p50 {figures.p50_ms} ms, p99 {figures.p99_ms} ms, {concurrency} at once"
    if not unanswered and not refused:
        statuses = {r.status for r in results}
        return Check(
            name,
            Level.MUST,
            True,
            statuses.pop() if len(statuses) == 1 else None,
            figures.p99_ms,
            f"all {count} answered {_statuses(results)}; {latency}",
        )
    problems: list[str] = []
    advice: list[str] = []
    if timed_out:
        problems.append(f"{len(timed_out)} got no answer within {probe.timeout:g} s")
        advice.append(f"{len(timed_out)} of {count} were too slow under load: {_ANSWER_FIRST}")
    other = [r for r in unanswered if not (r.error or "").startswith("timed out")]
    if other:
        problems.append(f"{len(other)} failed: {probe.answer(other[0])}")
        advice.append(
            f"{len(other)} of {count} could not be sent ({probe.answer(other[0])}): does the "
            "receiver limit connections?"
        )
    if refused:
        problems.append(f"{len(refused)} answered {_statuses(refused)}")
        advice.append(
            f"{len(refused)} of {count} correctly signed deliveries answered "
            f"{_statuses(refused)}: each would be retried; answer 200 to every one (if only "
            "under load: queue the work, answer first)"
        )
    return Check(
        name,
        Level.MUST,
        False,
        None,
        figures.p99_ms,
        f"{'; '.join(problems)}; {latency}",
        "; ".join(advice),
    )


def _percentile(sorted_values: Sequence[int], percent: int) -> int:
    """Nearest rank: the smallest value with ``percent`` % of the values at or below it."""
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _statuses(results: Sequence[AttemptResult]) -> str:
    seen = sorted({r.status for r in results if r.status is not None})
    return "/".join(map(str, seen))
