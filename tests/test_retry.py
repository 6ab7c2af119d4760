"""Retry policies and the delivery state machine (SPEC §2: success, retries, failure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.delivery.outcome import AttemptResult, Decision, decide
from hotspot_webhooks.delivery.retry import RetryPolicy, parse_retry_after
from hotspot_webhooks.store.records import AttemptRecord

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FOUR_HOURS = 4 * 3600.0
DAY = 86400.0

BACKOFF = RetryPolicy(kind="backoff", interval=60, max_retries=20)
NEXT_PASS = RetryPolicy(kind="next-pass", interval=60, max_retries=20)


def expected_base(n: int) -> float:
    return min(60.0 * 2 ** (n - 1), 14400.0)


# --- backoff -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 21))
def test_backoff_retry_n_waits_interval_doubling_capped_at_four_hours(n: int) -> None:
    assert BACKOFF.delay(n, spread=0.5) == pytest.approx(expected_base(n))


def test_backoff_first_retries_are_one_two_four_minutes_and_cap_is_reached() -> None:
    assert [BACKOFF.delay(n, 0.5) for n in (1, 2, 3)] == pytest.approx([60, 120, 240])
    assert BACKOFF.delay(9, 0.5) == pytest.approx(FOUR_HOURS)
    assert BACKOFF.delay(20, 0.5) == pytest.approx(FOUR_HOURS)


@pytest.mark.parametrize("n", [1, 5, 8, 9, 20])
def test_backoff_jitter_is_minus_ten_percent_at_spread_0_and_plus_ten_at_spread_1(n: int) -> None:
    assert BACKOFF.delay(n, spread=0.0) == pytest.approx(expected_base(n) * 0.9)
    assert BACKOFF.delay(n, spread=1.0) == pytest.approx(expected_base(n) * 1.1)


def test_backoff_random_jitter_stays_within_ten_percent_and_varies() -> None:
    delays = [BACKOFF.delay(3) for _ in range(200)]
    assert all(d is not None and 216.0 <= d <= 264.0 for d in delays)
    assert len(set(delays)) > 1


def test_twenty_retries_then_none() -> None:
    assert all(BACKOFF.delay(n, 0.5) is not None for n in range(1, 21))
    assert BACKOFF.delay(21, 0.5) is None
    assert BACKOFF.delay(21) is None
    assert BACKOFF.delay(100) is None


def test_retry_number_zero_or_negative_has_no_delay() -> None:
    assert BACKOFF.delay(0) is None
    assert BACKOFF.delay(-1) is None


def test_default_policy_is_backoff_every_60s_with_twenty_retries_and_four_hour_cap() -> None:
    policy = RetryPolicy()
    assert (policy.kind, policy.interval, policy.max_retries, policy.max_delay) == (
        "backoff", 60.0, 20, FOUR_HOURS,
    )  # fmt: skip


def test_schedule_has_twenty_jitter_free_delays_spanning_about_two_days() -> None:
    schedule = BACKOFF.schedule()
    assert len(schedule) == 20
    assert schedule == pytest.approx([expected_base(n) for n in range(1, 21)])
    assert 1.5 * DAY <= sum(schedule) <= 2.5 * DAY


def test_backoff_interval_scales_the_schedule() -> None:
    policy = RetryPolicy(kind="backoff", interval=1, max_retries=20)
    assert policy.delay(1, 0.5) == pytest.approx(1.0)
    assert policy.delay(4, 0.5) == pytest.approx(8.0)


# --- next-pass -----------------------------------------------------------------------------


def test_next_pass_retries_every_time_at_once_then_none() -> None:
    assert [NEXT_PASS.delay(n) for n in range(1, 21)] == [0.0] * 20
    assert NEXT_PASS.delay(21) is None


# --- max_retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["backoff", "next-pass"])
def test_max_retries_is_configurable(kind: str) -> None:
    policy = RetryPolicy(kind=kind, max_retries=3)  # type: ignore[arg-type]
    assert policy.delay(3, 0.5) is not None
    assert policy.delay(4, 0.5) is None
    assert len(policy.schedule()) == 3


def test_zero_max_retries_means_no_retry_at_all() -> None:
    policy = RetryPolicy(max_retries=0)
    assert policy.delay(1, 0.5) is None
    assert policy.schedule() == []


def test_max_delay_is_configurable() -> None:
    policy = RetryPolicy(interval=60, max_delay=300)
    assert policy.delay(3, 0.5) == pytest.approx(240.0)
    assert policy.delay(4, 0.5) == pytest.approx(300.0)


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("3600", 3600.0), ("0", 0.0), (" 120 ", 120.0)])
def test_parse_retry_after_reads_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_reads_http_date_relative_to_now() -> None:
    when = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    assert parse_retry_after(when, now=NOW) == pytest.approx(7200.0)


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "1.5", "Mon, 32 Jan 2020 00:00:00 GMT", "tomorrow 10am"]
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("value", ["²", "①"])
def test_parse_retry_after_unicode_digit_characters_are_garbage_not_a_crash(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_bounded_retry_after_caps_at_max_delay() -> None:
    assert BACKOFF.bounded_retry_after(10 * DAY) == FOUR_HOURS
    assert BACKOFF.bounded_retry_after(float("inf")) == FOUR_HOURS
    assert RetryPolicy(max_delay=600).bounded_retry_after(3600) == 600


def test_bounded_retry_after_keeps_smaller_values_and_none() -> None:
    assert BACKOFF.bounded_retry_after(3600) == 3600
    assert BACKOFF.bounded_retry_after(0) == 0
    assert BACKOFF.bounded_retry_after(None) is None


def test_bounded_retry_after_never_negative() -> None:
    assert BACKOFF.bounded_retry_after(-30) == 0.0


# --- decide --------------------------------------------------------------------------------


def result(
    status: int | None = 200,
    error: str | None = None,
    retry_after: str | None = None,
    excerpt: str | None = "ok",
) -> AttemptResult:
    return AttemptResult(
        started_at=NOW - timedelta(milliseconds=120),
        duration_ms=120,
        status=status,
        response_excerpt=excerpt,
        error=error,
        retry_after=retry_after,
    )


DEFAULT_SETTINGS = Settings(_env_file=None)
TWO_XX_SETTINGS = Settings(_env_file=None, success_statuses="2xx")
HEADERS = {"X-Hotspotsystem-Attempt": "1"}


def run(
    attempt: AttemptResult,
    *,
    attempt_number: int = 1,
    policy: RetryPolicy = BACKOFF,
    settings: Settings = DEFAULT_SETTINGS,
) -> Decision:
    return decide(
        delivery_id="dlv_1",
        attempt_number=attempt_number,
        result=attempt,
        request_headers=HEADERS,
        policy=policy,
        is_success=settings.is_success,
        now=NOW,
    )


def test_200_succeeds_and_records_the_attempt() -> None:
    decision = run(result(200), attempt_number=4)
    outcome = decision.outcome
    assert outcome.status == "succeeded"
    assert outcome.delivery_id == "dlv_1"
    assert outcome.attempt_count == 4
    assert outcome.next_attempt_at is None
    assert outcome.delivered_at == NOW
    assert outcome.last_status == 200
    assert outcome.last_error is None
    assert decision.disable_reason is None
    assert outcome.attempt == AttemptRecord(
        delivery_id="dlv_1",
        number=4,
        started_at=NOW - timedelta(milliseconds=120),
        duration_ms=120,
        request_headers=HEADERS,
        status=200,
        response_excerpt="ok",
        error=None,
    )


@pytest.mark.parametrize("status", [201, 202, 204])
def test_other_2xx_is_a_failure_under_the_default_success_statuses(status: int) -> None:
    outcome = run(result(status)).outcome
    assert outcome.status == "pending"
    assert outcome.delivered_at is None
    assert outcome.last_status == status
    assert str(status) in (outcome.last_error or "")


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_succeeds_with_success_statuses_2xx(status: int) -> None:
    assert run(result(status), settings=TWO_XX_SETTINGS).outcome.status == "succeeded"


def test_failure_schedules_a_retry_after_the_policy_delay_with_jitter() -> None:
    outcome = run(result(500, excerpt="boom"), attempt_number=1).outcome
    assert outcome.status == "pending"
    assert outcome.attempt_count == 1
    assert outcome.last_status == 500
    assert outcome.last_error == "receiver answered HTTP 500"
    assert outcome.delivered_at is None
    assert outcome.next_attempt_at is not None
    assert NOW + timedelta(seconds=54) <= outcome.next_attempt_at <= NOW + timedelta(seconds=66)
    assert outcome.attempt is not None
    assert outcome.attempt.response_excerpt == "boom"


def test_failed_attempt_n_is_followed_by_retry_n_of_the_backoff() -> None:
    outcome = run(result(500), attempt_number=5).outcome
    assert outcome.next_attempt_at is not None
    waited = (outcome.next_attempt_at - NOW).total_seconds()
    assert 960 * 0.9 <= waited <= 960 * 1.1


def test_failure_under_next_pass_is_due_immediately() -> None:
    outcome = run(result(500), attempt_number=7, policy=NEXT_PASS).outcome
    assert outcome.status == "pending"
    assert outcome.next_attempt_at == NOW


def test_twentieth_retry_is_still_scheduled() -> None:
    assert run(result(500), attempt_number=20).outcome.status == "pending"


@pytest.mark.parametrize("policy", [BACKOFF, NEXT_PASS])
def test_the_twenty_first_failed_attempt_makes_the_delivery_failed(policy: RetryPolicy) -> None:
    outcome = run(result(500), attempt_number=21, policy=policy).outcome
    assert outcome.status == "failed"
    assert outcome.attempt_count == 21
    assert outcome.next_attempt_at is None
    assert outcome.delivered_at is None
    assert outcome.last_error == "receiver answered HTTP 500"


def test_with_max_retries_zero_the_first_failure_is_final() -> None:
    outcome = run(result(500), attempt_number=1, policy=RetryPolicy(max_retries=0)).outcome
    assert outcome.status == "failed"


def test_410_gone_fails_at_once_and_asks_to_disable_the_webhook() -> None:
    decision = run(result(410), attempt_number=1)
    assert decision.outcome.status == "failed"
    assert decision.outcome.next_attempt_at is None
    assert decision.outcome.last_status == 410
    assert decision.disable_reason is not None
    assert "410" in decision.disable_reason


def test_ordinary_failure_does_not_disable_the_webhook() -> None:
    assert run(result(500), attempt_number=21).disable_reason is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pushes_the_retry_later_than_the_policy_delay(status: int) -> None:
    outcome = run(result(status, retry_after="3600"), attempt_number=1).outcome
    assert outcome.status == "pending"
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at >= NOW + timedelta(seconds=3600)


def test_retry_after_never_brings_a_retry_earlier_than_the_policy_delay() -> None:
    outcome = run(result(429, retry_after="1"), attempt_number=9).outcome
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at >= NOW + timedelta(seconds=FOUR_HOURS * 0.9)


def test_retry_after_as_http_date_is_honoured() -> None:
    when = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    outcome = run(result(503, retry_after=when), attempt_number=1).outcome
    assert outcome.next_attempt_at == NOW + timedelta(hours=2)


def test_retry_after_beyond_max_delay_is_capped() -> None:
    outcome = run(result(429, retry_after=str(int(30 * DAY))), attempt_number=1).outcome
    assert outcome.next_attempt_at == NOW + timedelta(seconds=FOUR_HOURS)


def test_retry_after_does_not_revive_a_delivery_out_of_retries() -> None:
    outcome = run(result(429, retry_after="60"), attempt_number=21).outcome
    assert outcome.status == "failed"


def test_retry_after_on_other_statuses_is_ignored() -> None:
    outcome = run(result(500, retry_after="3600"), attempt_number=1).outcome
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at <= NOW + timedelta(seconds=66)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_a_failure_even_when_any_2xx_succeeds(status: int) -> None:
    error = "redirect to https://elsewhere.example/ not followed"
    outcome = run(result(status, error=error), settings=TWO_XX_SETTINGS).outcome
    assert outcome.status == "pending"
    assert outcome.last_status == status
    assert outcome.last_error == error


def test_3xx_without_error_text_is_still_a_failure() -> None:
    outcome = run(result(304)).outcome
    assert outcome.status == "pending"
    assert outcome.last_error == "receiver answered HTTP 304"


def test_timeout_without_status_is_a_failure_keeping_the_error_text() -> None:
    outcome = run(result(None, error="timed out after 15 s", excerpt=None)).outcome
    assert outcome.status == "pending"
    assert outcome.last_status is None
    assert outcome.last_error == "timed out after 15 s"
    assert outcome.attempt is not None
    assert outcome.attempt.status is None
    assert outcome.attempt.error == "timed out after 15 s"


def test_connection_error_on_last_attempt_fails_with_error_text() -> None:
    error = "Cannot connect to host 93.184.216.34:443"
    outcome = run(result(None, error=error, excerpt=None), attempt_number=21).outcome
    assert outcome.status == "failed"
    assert outcome.last_error == error


def test_unusable_retry_after_falls_back_to_the_policy_delay() -> None:
    outcome = run(result(429, retry_after="²"), attempt_number=1).outcome
    assert outcome.status == "pending"
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at <= NOW + timedelta(seconds=66)


def test_garbage_retry_after_falls_back_to_the_policy_delay() -> None:
    outcome = run(result(429, retry_after="whenever"), attempt_number=1).outcome
    assert outcome.status == "pending"
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at <= NOW + timedelta(seconds=66)
