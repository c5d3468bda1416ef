"""Tests for kalshi_proto.rest.retry: the retry decision and Retry-After parsing."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from http import HTTPStatus
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.rest.retry import RetryDecision, RetryPolicy, parse_retry_after

ALMOST_ONE = math.nextafter(1.0, 0.0)


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


ZERO = fixed(0.0)


def no_rng() -> float:
    raise AssertionError("rng must not be called for this decision")


def decide(
    policy: RetryPolicy,
    *,
    method: str = "GET",
    attempt: int = 1,
    status: int | None = 503,
    retry_after: float | None = None,
    started_at: float = 100.0,
    now: float = 100.0,
    rng: Callable[[], float] = ZERO,
) -> RetryDecision:
    return policy.decide(
        method=method,
        attempt=attempt,
        status=status,
        retry_after=retry_after,
        started_at=started_at,
        now=now,
        rng=rng,
    )


def wall_ms_of(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


# --- configuration ------------------------------------------------------------------------------


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.base_delay == 0.25
    assert policy.retry_max_delay == 8.0
    assert policy.retry_after_cap == 30.0
    assert policy.total_timeout == 60.0
    assert policy.retry_statuses == frozenset({408, 425, 429, 500, 502, 503, 504})
    assert policy.retry_methods == frozenset({"GET", "HEAD", "OPTIONS"})


def test_policy_is_frozen_and_hashable() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 2  # type: ignore[misc]
    assert hash(policy) == hash(RetryPolicy())


def test_disabled() -> None:
    policy = RetryPolicy.disabled()
    assert policy.max_attempts == 1
    assert policy.total_timeout == 60.0
    decision = decide(policy, attempt=1, rng=no_rng)
    assert decision == RetryDecision(
        False, 0.0, "HTTP 503 on GET, attempt 1 of 1, no attempts left"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": -3}, "max_attempts must be at least 1"),
        ({"base_delay": -0.1}, "base_delay must be a finite number >= 0"),
        ({"base_delay": math.nan}, "base_delay must be a finite number >= 0"),
        ({"base_delay": math.inf}, "base_delay must be a finite number >= 0"),
        ({"retry_max_delay": -1.0}, "retry_max_delay must be a finite number >= 0"),
        ({"retry_max_delay": math.inf}, "retry_max_delay must be a finite number >= 0"),
        ({"retry_after_cap": -1.0}, "retry_after_cap must be a finite number >= 0"),
        ({"retry_after_cap": math.nan}, "retry_after_cap must be a finite number >= 0"),
        (
            {"retry_max_delay": 1e10},
            r"retry_max_delay .* at most 1000000 seconds, got 10000000000.0",
        ),
        ({"retry_after_cap": 1e7}, r"retry_after_cap .* at most 1000000 seconds"),
        ({"max_attempts": 2.0}, r"^max_attempts must be an int, got float$"),
        ({"max_attempts": True}, r"^max_attempts must be an int, got bool$"),
        ({"base_delay": "1"}, r"^base_delay must be a number of seconds, got str$"),
        ({"total_timeout": "60"}, r"^total_timeout must be a number of seconds, got str$"),
        ({"total_timeout": 0.0}, "total_timeout must be None or > 0"),
        ({"total_timeout": -5.0}, "total_timeout must be None or > 0"),
        ({"total_timeout": math.nan}, "total_timeout must be None or > 0"),
        ({"retry_statuses": frozenset({503, 99})}, r"retry_statuses .* got \[99\]"),
        ({"retry_statuses": frozenset({600})}, r"retry_statuses .* got \[600\]"),
        ({"retry_methods": frozenset({"GET", "get"})}, r"upper-case .* got \['get'\]"),
        ({"retry_methods": frozenset({""})}, r"non-empty .* got \[''\]"),
        ({"retry_statuses": 429}, r"^retry_statuses must be a set of HTTP statuses, got int 429$"),
        ({"retry_statuses": {"429"}}, r"^retry_statuses must be .* \(ints\), got \['429'\]$"),
        ({"retry_statuses": {429.0}}, r"^retry_statuses must be .* \(ints\), got \[429.0\]$"),
        ({"retry_statuses": [True]}, r"^retry_statuses must be .* \(ints\), got \[True\]$"),
        ({"retry_statuses": [[429]]}, r"^retry_statuses must hold HTTP statuses, got \[\[429\]\]$"),
        # A lone str would otherwise be read letter by letter.
        ({"retry_methods": "GET"}, r"^retry_methods must be a set of method names, got str 'GET'$"),
        ({"retry_methods": {1}}, r"^retry_methods must be method names \(str\), got \[1\]$"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_statuses_and_methods_may_be_any_collection_and_are_kept_as_frozensets() -> None:
    # A list or a tuple is as good as a set, and the policy stays hashable (it is frozen).
    policy = RetryPolicy(
        retry_statuses=[503, HTTPStatus.TOO_MANY_REQUESTS, 503],  # type: ignore[arg-type]
        retry_methods=("GET",),  # type: ignore[arg-type]
    )
    assert policy.retry_statuses == frozenset({429, 503})
    assert type(policy.retry_statuses) is frozenset
    assert all(type(status) is int for status in policy.retry_statuses)
    assert policy.retry_methods == frozenset({"GET"})
    assert type(policy.retry_methods) is frozenset
    same = RetryPolicy(retry_statuses=frozenset({429, 503}), retry_methods=frozenset({"GET"}))
    assert policy == same
    assert hash(policy) == hash(same)
    assert decide(policy, status=429).retry
    assert not decide(policy, status=500).retry
    every_5xx = RetryPolicy(retry_statuses=range(500, 600))  # type: ignore[arg-type]
    assert every_5xx.retry_statuses == frozenset(range(500, 600))
    assert decide(every_5xx, status=599).retry
    with pytest.raises(ConfigurationError, match=r"^retry_statuses must be a set of HTTP sta"):
        RetryPolicy(retry_statuses={429: True})  # type: ignore[arg-type]


def test_retry_statuses_may_be_any_status_from_100_to_599() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({100, 599}))
    assert decide(policy, status=100).retry
    assert decide(policy, status=599).retry


def test_zero_delays_and_no_total_timeout_are_valid() -> None:
    policy = RetryPolicy(
        base_delay=0.0, retry_max_delay=0.0, retry_after_cap=0.0, total_timeout=None
    )
    assert policy.deadline(5.0) is None
    decision = decide(policy, retry_after=10.0)
    assert decision.retry
    assert decision.delay == 0.0


def test_decision_is_frozen() -> None:
    decision = decide(RetryPolicy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.retry = False  # type: ignore[misc]
    assert decision.retry


def test_deadline() -> None:
    assert RetryPolicy().deadline(100.0) == 160.0
    assert RetryPolicy(total_timeout=2.5).deadline(-1.0) == 1.5
    assert RetryPolicy(total_timeout=None).deadline(100.0) is None


# --- which failures are retried ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "post", "Delete"])
@pytest.mark.parametrize("status", [None, 429, 500, 503])
def test_non_idempotent_methods_are_never_retried(method: str, status: int | None) -> None:
    decision = decide(RetryPolicy(), method=method, status=status, rng=no_rng)
    assert decision == RetryDecision(False, 0.0, f"{method.upper()} is never retried")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get", "Head"])
def test_idempotent_methods_are_retried(method: str) -> None:
    decision = decide(RetryPolicy(), method=method)
    assert decision.retry
    assert decision.reason.startswith(f"HTTP 503 on {method.upper()}, attempt 1 of 4")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_every_retry_status_is_retried(status: int) -> None:
    decision = decide(RetryPolicy(), status=status, attempt=2, rng=fixed(0.0))
    assert decision == RetryDecision(
        True, 0.25, f"HTTP {status} on GET, attempt 2 of 4, backing off 0.25s"
    )


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 409, 422, 501, 505])
def test_other_statuses_are_final(status: int) -> None:
    decision = decide(RetryPolicy(), status=status, rng=no_rng)
    assert decision == RetryDecision(False, 0.0, f"HTTP {status} on GET is not retried")


def test_custom_statuses_and_methods() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({404}), retry_methods=frozenset({"HEAD"}))
    assert decide(policy, method="HEAD", status=404).retry
    assert not decide(policy, method="HEAD", status=503, rng=no_rng).retry
    assert decide(policy, method="GET", status=404, rng=no_rng).reason == "GET is never retried"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_a_policy_cannot_be_told_to_resend_a_method_that_changes_something(method: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(retry_methods=frozenset({"GET", method}))
    assert str(caught.value) == (
        f"retry_methods may hold only GET, HEAD and OPTIONS, got ['{method}']: a request that "
        "changes something (an order, an amend, a cancel) is never resent, since the first one "
        "may have reached the exchange"
    )
    assert RetryPolicy(retry_methods=frozenset({"GET"})).retry_methods == {
        "GET"
    }  # narrowing is fine


def test_connection_error_is_retried_for_idempotent_methods() -> None:
    decision = decide(RetryPolicy(), status=None, attempt=1, rng=fixed(0.0))
    assert decision == RetryDecision(
        True, 0.125, "connection error on GET, attempt 1 of 4, backing off 0.12s"
    )


def test_connection_error_is_retried_even_when_no_status_is_retryable() -> None:
    policy = RetryPolicy(retry_statuses=frozenset())
    assert decide(policy, status=None).retry
    assert not decide(policy, status=503, rng=no_rng).retry


def test_attempt_limit() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(policy, attempt=1).retry
    assert decide(policy, attempt=2).retry
    last = decide(policy, attempt=3, status=None, rng=no_rng)
    assert last == RetryDecision(
        False, 0.0, "connection error on GET, attempt 3 of 3, no attempts left"
    )
    beyond = decide(policy, attempt=7, rng=no_rng)
    assert beyond == RetryDecision(False, 0.0, "HTTP 503 on GET, attempt 7 of 3, no attempts left")


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(LocalProtocolError, match=f"attempt numbers start at 1, got {attempt}"):
        decide(RetryPolicy(), attempt=attempt, rng=no_rng)


# --- back-off -------------------------------------------------------------------------------------

UNBOUNDED = RetryPolicy(max_attempts=100, total_timeout=None)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 0.125, 0.25),
        (2, 0.25, 0.5),
        (3, 0.5, 1.0),
        (4, 1.0, 2.0),
        (5, 2.0, 4.0),
        (6, 4.0, 8.0),
        (7, 4.0, 8.0),  # 0.25 * 2**6 = 16, capped at retry_max_delay = 8
        (50, 4.0, 8.0),
    ],
)
def test_backoff_grows_and_is_capped(attempt: int, low: float, high: float) -> None:
    assert decide(UNBOUNDED, attempt=attempt, rng=fixed(0.0)).delay == low
    assert decide(UNBOUNDED, attempt=attempt, rng=fixed(ALMOST_ONE)).delay == pytest.approx(high)
    assert decide(UNBOUNDED, attempt=attempt, rng=fixed(1.0)).delay == high


def test_backoff_does_not_overflow_for_huge_attempt_numbers() -> None:
    policy = RetryPolicy(max_attempts=10**9, base_delay=1000.0, total_timeout=None)
    assert decide(policy, attempt=10**8, rng=fixed(0.5)).delay == 6.0


def test_backoff_keeps_growing_from_a_tiny_base_past_the_largest_power_of_two() -> None:
    # 2.0 ** 1029 overflows a float, yet 1e-310 * 2 ** 1029 is about 0.575 s: the doubling must
    # go on until the cap, not stop at the largest power of two.
    policy = RetryPolicy(max_attempts=10**6, base_delay=1e-310, total_timeout=None)
    delays = [decide(policy, attempt=n, rng=fixed(1.0)).delay for n in (1030, 1031, 1060)]
    assert delays == [math.ldexp(1e-310, 1029), math.ldexp(1e-310, 1030), 8.0]
    assert 0.5 < delays[0] < delays[1] < 8.0


def test_jitter_and_reason_formatting() -> None:
    decision = decide(RetryPolicy(), attempt=2, rng=fixed(0.64))
    assert decision.delay == pytest.approx(0.41)
    assert decision.reason == "HTTP 503 on GET, attempt 2 of 4, backing off 0.41s"


def test_zero_base_delay_retries_at_once() -> None:
    assert decide(RetryPolicy(base_delay=0.0), attempt=3, rng=fixed(0.7)).delay == 0.0


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, "0.5", None, True])
def test_rng_out_of_range_is_rejected(value: Any) -> None:
    # A str or None raised a bare TypeError from the comparison; True passed as 1.
    with pytest.raises(LocalProtocolError) as info:
        decide(RetryPolicy(), rng=fixed(value))
    assert str(info.value) == f"rng must return a float in [0, 1), got {value!r}"


def test_rng_is_called_once_per_backoff() -> None:
    calls: list[float] = []

    def rng() -> float:
        calls.append(0.5)
        return 0.5

    decide(RetryPolicy(), rng=rng)
    assert len(calls) == 1
    decide(RetryPolicy(), started_at=0.0, now=59.99, rng=rng)  # refused for the total timeout
    assert len(calls) == 2


def test_seeded_rng_is_repeatable() -> None:
    def run(seed: int) -> list[float]:
        rng = random.Random(seed).random
        return [decide(UNBOUNDED, attempt=n, rng=rng).delay for n in range(1, 10)]

    assert run(7) == run(7)
    assert run(7) != run(8)


# --- Retry-After ------------------------------------------------------------------------------------


def test_retry_after_is_honoured() -> None:
    decision = decide(RetryPolicy(), attempt=1, status=429, retry_after=5.0, rng=fixed(0.0))
    assert decision == RetryDecision(
        True, 5.0, "HTTP 429 on GET, attempt 1 of 4, backing off 5.00s (Retry-After 5s)"
    )


def test_retry_after_is_capped() -> None:
    decision = decide(RetryPolicy(), status=503, retry_after=120.0, rng=fixed(0.0))
    assert decision == RetryDecision(
        True,
        30.0,
        "HTTP 503 on GET, attempt 1 of 4, backing off 30.00s (Retry-After 120s, capped at 30s)",
    )


def test_retry_after_exactly_at_cap_is_not_called_capped() -> None:
    decision = decide(RetryPolicy(), retry_after=30.0)
    assert decision.delay == 30.0
    assert decision.reason.endswith("(Retry-After 30s)")


def test_retry_after_shorter_than_backoff_keeps_backoff() -> None:
    decision = decide(RetryPolicy(), attempt=3, retry_after=0.1, rng=fixed(1.0))
    assert decision.delay == 1.0
    assert decision.reason.endswith("backing off 1.00s (Retry-After 0.1s)")


@pytest.mark.parametrize("value", [0.0, -4.0, math.nan])
def test_retry_after_not_positive_is_ignored(value: float) -> None:
    decision = decide(RetryPolicy(), attempt=2, retry_after=value, rng=fixed(0.0))
    assert decision == RetryDecision(
        True, 0.25, "HTTP 503 on GET, attempt 2 of 4, backing off 0.25s"
    )


def test_infinite_retry_after_is_capped() -> None:
    decision = decide(RetryPolicy(), retry_after=math.inf)
    assert decision.delay == 30.0
    assert decision.reason.endswith("(Retry-After infs, capped at 30s)")


# --- total timeout ------------------------------------------------------------------------------------


def test_total_timeout_refuses_a_wait_that_ends_at_the_deadline() -> None:
    # attempt 2 with rng 1.0 backs off exactly 0.5s; 159.5 + 0.5 == 160.0 == deadline, which
    # would leave the next attempt no time at all.
    decision = decide(RetryPolicy(), attempt=2, started_at=100.0, now=159.5, rng=fixed(1.0))
    assert decision == RetryDecision(
        False,
        0.0,
        "HTTP 503 on GET, attempt 2 of 4, a 0.50s back-off would reach the total timeout of 60s",
    )


def test_total_timeout_allows_a_wait_that_ends_just_before_the_deadline() -> None:
    decision = decide(RetryPolicy(), attempt=2, started_at=100.0, now=159.25, rng=fixed(1.0))
    assert decision == RetryDecision(
        True, 0.5, "HTTP 503 on GET, attempt 2 of 4, backing off 0.50s"
    )


def test_total_timeout_refuses_a_wait_that_passes_the_deadline() -> None:
    decision = decide(RetryPolicy(), attempt=2, started_at=100.0, now=159.75, rng=fixed(1.0))
    assert decision == RetryDecision(
        False,
        0.0,
        "HTTP 503 on GET, attempt 2 of 4, a 0.50s back-off would reach the total timeout of 60s",
    )


def test_total_timeout_already_passed() -> None:
    decision = decide(RetryPolicy(total_timeout=1.5), started_at=0.0, now=2.0, status=None)
    assert not decision.retry
    assert decision.reason.endswith("would reach the total timeout of 1.5s")


def test_total_timeout_counts_retry_after() -> None:
    decision = decide(RetryPolicy(), started_at=0.0, now=40.0, retry_after=25.0)
    assert decision == RetryDecision(
        False,
        0.0,
        "HTTP 503 on GET, attempt 1 of 4, a 25.00s back-off (Retry-After 25s) would reach the "
        "total timeout of 60s",
    )


def test_no_total_timeout() -> None:
    policy = RetryPolicy(total_timeout=None)
    assert decide(policy, started_at=0.0, now=1e9).retry


# --- properties -----------------------------------------------------------------------------------


@given(
    max_attempts=st.integers(min_value=1, max_value=10),
    base_delay=st.floats(min_value=0.0, max_value=100.0),
    retry_max_delay=st.floats(min_value=0.0, max_value=100.0),
    retry_after_cap=st.floats(min_value=0.0, max_value=100.0),
    total_timeout=st.none() | st.floats(min_value=0.001, max_value=1000.0),
    method=st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"]),
    attempt=st.integers(min_value=1, max_value=2000),
    status=st.none() | st.integers(min_value=100, max_value=599),
    retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    elapsed=st.floats(min_value=0.0, max_value=2000.0),
    seed=st.integers(),
)
def test_delay_is_bounded(
    max_attempts: int,
    base_delay: float,
    retry_max_delay: float,
    retry_after_cap: float,
    total_timeout: float | None,
    method: str,
    attempt: int,
    status: int | None,
    retry_after: float | None,
    elapsed: float,
    seed: int,
) -> None:
    policy = RetryPolicy(
        max_attempts=max_attempts,
        base_delay=base_delay,
        retry_max_delay=retry_max_delay,
        retry_after_cap=retry_after_cap,
        total_timeout=total_timeout,
    )
    decision = decide(
        policy,
        method=method,
        attempt=attempt,
        status=status,
        retry_after=retry_after,
        started_at=10.0,
        now=10.0 + elapsed,
        rng=random.Random(seed).random,
    )
    assert 0.0 <= decision.delay <= max(retry_max_delay, retry_after_cap)
    if not decision.retry:
        assert decision.delay == 0.0
    else:
        assert method in policy.retry_methods
        assert attempt < max_attempts
        assert status is None or status in policy.retry_statuses
        deadline = policy.deadline(10.0)
        assert deadline is None or 10.0 + elapsed + decision.delay <= deadline


# --- parse_retry_after -----------------------------------------------------------------------------

WALL_MS = wall_ms_of("2015-10-21T07:27:55.250")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("007", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
    ],
)
def test_parse_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, wall_ms=WALL_MS) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 4.75),
        ("Wed, 21 Oct 2015 08:28:00 +0100", 4.75),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 4.75),  # no zone: read as UTC
        ("Wed Oct 21 07:28:00 2015", 4.75),  # asctime form, no zone
        ("Wednesday, 21-Oct-15 07:30:00 GMT", 124.75),  # RFC 850 form
        ("Wed, 21 Oct 2015 07:27:55 GMT", 0.0),  # 250 ms in the past
        ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_http_date(value: str, expected: float) -> None:
    assert parse_retry_after(value, wall_ms=WALL_MS) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "-5",
        "+5",
        "1e3",
        "1.",
        ".5",
        "5 seconds",
        "abc",
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        "9" * 400,  # parses as an infinite float
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 99999 07:28:00 GMT",
    ],
)
def test_parse_garbage(value: str) -> None:
    assert parse_retry_after(value, wall_ms=WALL_MS) is None


def test_parse_absent() -> None:
    assert parse_retry_after(None, wall_ms=WALL_MS) is None


@given(value=st.text(), wall_ms=st.integers(min_value=0, max_value=2**45))
def test_parse_never_raises(value: str, wall_ms: int) -> None:
    result = parse_retry_after(value, wall_ms=wall_ms)
    assert result is None or 0.0 <= result < math.inf


@given(
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    ),
    wall_ms=st.integers(min_value=wall_ms_of("1990-01-01T00:00:00"), max_value=2**42),
)
def test_parse_formatted_dates(moment: datetime, wall_ms: int) -> None:
    header = moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    target_ms = round(moment.timestamp()) * 1000
    assert parse_retry_after(header, wall_ms=wall_ms) == max(0, target_ms - wall_ms) / 1000


def test_numbers_of_other_numeric_types_are_taken_and_stored_as_int_and_float() -> None:
    # numpy's scalars and Fractions are numbers too; a config read with numpy must not fail.
    numbers: dict[str, Any] = {
        "max_attempts": np.int64(3),
        "base_delay": Fraction(1, 4),
        "retry_max_delay": np.float32(2.0),
        "total_timeout": np.float64(5),
    }
    policy = RetryPolicy(**numbers)
    assert policy == RetryPolicy(
        max_attempts=3, base_delay=0.25, retry_max_delay=2.0, total_timeout=5.0
    )
    assert type(policy.max_attempts) is int and type(policy.total_timeout) is float
    with pytest.raises(
        ConfigurationError, match=r"^base_delay must be a number of seconds, got Decimal$"
    ):
        RetryPolicy(base_delay=Decimal("0.25"))  # type: ignore[arg-type]
