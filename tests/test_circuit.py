"""The circuit breaker's state machine, on a clock the tests move."""

from __future__ import annotations

from hotspot_webhooks.delivery.circuit import Circuit, CircuitState

OPEN, CLOSED, PROBING = CircuitState.OPEN, CircuitState.CLOSED, CircuitState.PROBING


def circuit() -> Circuit:
    return Circuit(threshold=3, first_wait=10, max_wait=35)


def test_it_opens_after_the_threshold_of_unreachable_in_a_row_only() -> None:
    breaker = circuit()
    assert breaker.record(unreachable=True, now=0) is None
    assert breaker.record(unreachable=True, now=1) is None
    assert breaker.record(unreachable=False, now=2) is None  # an answer resets the count
    assert breaker.record(unreachable=True, now=3) is None
    assert breaker.record(unreachable=True, now=4) is None
    assert breaker.record(unreachable=True, now=5) is OPEN
    assert (breaker.state, breaker.retry_at) == (OPEN, 15)


def test_open_it_sends_nothing_until_the_wait_is_over_then_exactly_one_probe() -> None:
    breaker = circuit()
    for now in range(3):
        breaker.record(unreachable=True, now=now)
    assert not breaker.may_send(5)
    assert breaker.may_send(12)  # the probe
    assert breaker.state is PROBING
    assert not breaker.may_send(12) and not breaker.may_send(100)  # while it is out


def test_a_failed_probe_doubles_the_wait_up_to_the_cap_and_an_answer_closes() -> None:
    breaker = circuit()
    for now in range(3):
        breaker.record(unreachable=True, now=now)
    waits = []
    now = 2.0
    for _ in range(4):
        now = breaker.retry_at
        assert breaker.may_send(now)
        assert breaker.record(unreachable=True, now=now) is OPEN
        waits.append(breaker.retry_at - now)
    assert waits == [20, 35, 35, 35]
    assert breaker.may_send(breaker.retry_at)
    assert breaker.record(unreachable=False, now=breaker.retry_at) is CLOSED
    assert breaker.may_send(0) and breaker.failures == 0
    for now in range(3):  # the next opening starts from the first wait again
        breaker.record(unreachable=True, now=1000 + now)
    assert breaker.retry_at == 1012


def test_late_results_of_requests_sent_before_it_opened_change_nothing_or_close_it() -> None:
    breaker = circuit()
    for now in range(3):
        breaker.record(unreachable=True, now=now)
    assert breaker.record(unreachable=True, now=4) is None  # still open, same retry time
    assert breaker.retry_at == 12
    assert breaker.record(unreachable=False, now=5) is CLOSED  # it answered after all
