"""`CallRun` driven as a fuzzer would drive it: random outcomes, delays, connection slots that
do not come, and a driver that gives up at a random step. Whatever happens, the run ends, keeps
to its attempts and its total timeout, never resends an order, reports the right result or
error, and gives back the rate-limit tokens of requests it never sent."""

from __future__ import annotations

import json
import math
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import (
    ApiError,
    CallTimeout,
    ConnectError,
    ConnectTimeout,
    KalshiError,
    ReadError,
    ReadTimeout,
    TransportError,
)
from kalshi_proto.rest.call import HttpResponse
from kalshi_proto.rest.client import (
    CallRun,
    Claim,
    Finished,
    RestConfig,
    RestCore,
    SendRequest,
    Sleep,
)
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.ratelimit import Bucket, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.spec import example
from tests.proto.rest.test_client import order_call

PREFIX = resolve_base_url().prefix
CREDENTIALS = Credentials("key-1", Signer.from_private_key(ed25519.Ed25519PrivateKey.generate()))
STATUS_BODY = b'{"exchange_active": true, "trading_active": true}'
ORDER_BODY = json.dumps(example("CreateOrderV2Response")).encode()
CAPACITY = 100.0

#: What the server (or the network) does with one request.
OUTCOMES = ["ok", "429", "429 with Retry-After", "503", "404", "read", "connect", "read timeout"]


def _answer(outcome: str, body: bytes) -> HttpResponse | TransportError:
    typed = (("content-type", "application/json"),)
    answers: dict[str, HttpResponse | TransportError] = {
        "ok": HttpResponse(200, typed, body),
        "429": HttpResponse(429, typed, b'{"error": "too many requests"}'),
        "429 with Retry-After": HttpResponse(429, (("retry-after", "2"),), b""),
        "503": HttpResponse(503, (), b""),
        "404": HttpResponse(404, typed, b'{"code": "not_found", "message": "no such thing"}'),
        "read": ReadError("the connection was reset"),
        "connect": ConnectError("cannot connect"),
        "read timeout": ReadTimeout("reading the response timed out"),
    }
    return answers[outcome]


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 5),
    base_delay=st.floats(0.0, 1.0),
    retry_max_delay=st.floats(1.0, 8.0),
    total_timeout=st.one_of(st.none(), st.floats(0.5, 60.0)),
)


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    policy=policies,
    timeout=st.floats(0.1, 30.0),
    post=st.booleans(),
    limited=st.booleans(),
    jitter=st.floats(0.0, 0.999),
)
def test_a_run_driven_at_random_keeps_its_promises(
    data: st.DataObject,
    policy: RetryPolicy,
    timeout: float,
    post: bool,
    limited: bool,
    jitter: float,
) -> None:
    # A refill so slow that the buckets only empty: what a run takes, it takes for good, unless
    # it gives it back.
    limiter = RateLimiter.from_limits(0.01, CAPACITY, 0.01, CAPACITY) if limited else None
    config = RestConfig(
        base_url=resolve_base_url(), credentials=CREDENTIALS, retry=policy, timeout=timeout
    )
    core = RestCore(config, rng=lambda: jitter, rate_limiter=limiter)
    call = order_call() if post else calls.get_exchange_status()
    body = ORDER_BODY if post else STATUS_BODY
    now, wall_ms = 1000.0, 1_767_225_600_000
    run: CallRun[Any] = core.start(call, now)
    give_up_at = data.draw(st.one_of(st.none(), st.integers(0, 12)), label="give up at step")
    abandoned = False
    sent = claims_failed = 0
    last: str | None = None
    for number in range(200):
        if number == give_up_at:
            run.abandon()
            abandoned = True
            break
        step = run.next_step(now, wall_ms)
        if isinstance(step, Finished):
            break
        if isinstance(step, Sleep):
            assert 0 < step.seconds < math.inf
            now += step.seconds
            wall_ms += math.ceil(step.seconds * 1000)
        elif isinstance(step, Claim):
            assert limiter is not None  # only a rate-limited run claims a connection
            if data.draw(st.booleans(), label="no slot comes"):
                now += step.timeout
                run.receive_failure(ConnectTimeout("no connection became free"), now)
                claims_failed += 1
                last = "no slot"
        else:
            assert isinstance(step, SendRequest)
            assert 0 < step.timeout <= timeout
            if policy.total_timeout is not None:
                assert now < run.started_at + policy.total_timeout
            assert (step.request.method, step.request.target) == (call.method, call.target(PREFIX))
            sent += 1
            last = data.draw(st.sampled_from(OUTCOMES), label="outcome")
            now += data.draw(st.floats(0.0, step.timeout), label="attempt took")
            answer = _answer(last, body)
            if isinstance(answer, HttpResponse):
                run.receive_response(answer, now, wall_ms)
            else:
                run.receive_failure(answer, now)
    else:
        raise AssertionError("the run did not finish in 200 steps")

    attempts = sent + claims_failed
    assert run.attempts == attempts
    assert attempts <= (1 if post else policy.max_attempts)
    if not abandoned:
        if last == "ok":
            assert run.result() is not None
        else:
            try:
                run.result()
            except KalshiError as exc:
                expected: type[KalshiError] = {
                    "429": ApiError,
                    "429 with Retry-After": ApiError,
                    "503": ApiError,
                    "404": ApiError,
                    "read": ReadError,
                    "connect": ConnectError,
                    "read timeout": ReadTimeout,
                    "no slot": ConnectTimeout,
                    None: CallTimeout,
                }[last]
                assert isinstance(exc, expected | CallTimeout), (last, exc)
            else:
                raise AssertionError(f"the run ended in {last!r} and returned a result")
    if limiter is not None and sent == 0:
        # Nothing went out: every token taken came back.
        for which in (Bucket.READ, Bucket.WRITE):
            assert limiter.bucket(which).available(now) == CAPACITY


