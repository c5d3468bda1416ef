"""The lines a `CallRun` keeps for the adapter's logger (`LogLine`): what they say, when.

Retries are always kept (INFO); attempts and rate-limit waits only when the run traces
(DEBUG). No line may carry a header, so no key or signature reaches a log.
"""

from __future__ import annotations

from typing import Any

import pytest

from kalshi_proto.auth import Credentials
from kalshi_proto.errors import AuthenticationError, ReadTimeout, ServerError
from kalshi_proto.rest.call import Call, HttpResponse
from kalshi_proto.rest.client import DEBUG, INFO, CallRun, Finished, LogLine, Sleep
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.clock import FakeClock
from tests.proto.rest.conftest import KEY_ID
from tests.proto.rest.test_client import (
    STATUS_BODY,
    claim_and_send,
    limiter,
    make_core,
    order_call,
    send,
    status_call,
)

STATUS_TARGET = "/trade-api/v2/exchange/status"


def answer(
    status: int = 200, request_id: str | None = "req-7", body: bytes = STATUS_BODY
) -> HttpResponse:
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    if request_id is not None:
        headers += (("x-request-id", request_id),)
    return HttpResponse(status=status, headers=headers, body=body)


def balance_call() -> Call[m.GetBalanceResponse]:
    return calls.get_balance()


def taken(run: CallRun[Any]) -> list[LogLine]:
    lines = list(run.log)
    run.log.clear()
    return lines


def test_a_traced_attempt_is_one_debug_line_with_its_outcome_and_time(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now, trace=True)
    send(run, clock)
    clock.advance(0.015625)  # 2**-6 s: exact in binary
    run.receive_response(answer(), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    [line] = taken(run)
    assert line.level == DEBUG
    assert line.message == (
        f"GetExchangeStatus: GET {STATUS_TARGET} -> 200 in 15.6 ms, attempt 1 [request id req-7]"
    )
    assert line.fields == {
        "kalshi_operation": "GetExchangeStatus",
        "kalshi_attempt": 1,
        "kalshi_method": "GET",
        "kalshi_target": STATUS_TARGET,
        "kalshi_status": 200,
        "kalshi_elapsed": 0.015625,
        "kalshi_request_id": "req-7",
    }


def test_an_untraced_call_that_succeeds_keeps_no_line(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(answer(), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    assert run.log == []


def test_the_query_is_in_the_target_and_no_request_id_is_left_out(clock: FakeClock) -> None:
    run = make_core().start(calls.get_markets(limit=5, status="open"), clock.now, trace=True)
    send(run, clock)
    run.receive_response(
        answer(request_id=None, body=b'{"markets": [], "cursor": ""}'), clock.now, clock.wall_ms
    )
    [line] = taken(run)
    assert line.message == (
        "GetMarkets: GET /trade-api/v2/markets?limit=5&status=open -> 200 in 0.0 ms, attempt 1"
    )
    assert line.fields["kalshi_request_id"] is None


def test_a_retry_is_logged_at_info_with_its_reason_and_error_even_untraced(
    clock: FakeClock,
) -> None:
    run = make_core(jitter=0.0).start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(answer(503), clock.now, clock.wall_ms)
    step = run.next_step(clock.now, clock.wall_ms)
    assert isinstance(step, Sleep)
    [line] = taken(run)
    assert line.level == INFO
    assert line.message.startswith(
        f"GetExchangeStatus: HTTP 503 on GET, attempt 1 of 4, backing off {step.seconds:.2f}s "
        "(ServerError: "
    )
    assert line.message.endswith("[request id req-7])")
    assert line.fields == {
        "kalshi_operation": "GetExchangeStatus",
        "kalshi_attempt": 1,
        "kalshi_wait": step.seconds,
    }


def test_a_traced_retry_after_a_timeout_logs_the_attempt_then_the_retry(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now, trace=True)
    send(run, clock)
    clock.advance(2.0)
    run.receive_failure(ReadTimeout("the read timed out"), clock.now)
    attempt, retry = taken(run)
    assert (attempt.level, retry.level) == (DEBUG, INFO)
    assert attempt.message == (
        f"GetExchangeStatus: GET {STATUS_TARGET} -> ReadTimeout: the read timed out "
        "in 2000.0 ms, attempt 1"
    )
    assert attempt.fields["kalshi_status"] is None
    assert attempt.fields["kalshi_elapsed"] == 2.0
    assert retry.message.startswith("GetExchangeStatus: connection error on GET, attempt 1 of 4")
    assert retry.message.endswith("(ReadTimeout: the read timed out)")

    wait = retry.fields["kalshi_wait"]
    assert isinstance(wait, float)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(wait)
    clock.advance(wait)
    send(run, clock)
    run.receive_response(answer(), clock.now, clock.wall_ms)
    [second] = taken(run)
    assert second.fields["kalshi_attempt"] == 2
    assert ", attempt 2 [request id req-7]" in second.message


def test_a_final_error_is_an_attempt_line_and_no_retry_line(
    rsa_credentials: Credentials, clock: FakeClock
) -> None:
    run = make_core(rsa_credentials).start(order_call(), clock.now, trace=True)
    send(run, clock)
    run.receive_response(answer(503), clock.now, clock.wall_ms)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(ServerError):
        run.result()
    [line] = taken(run)
    assert line.level == DEBUG
    assert line.message.startswith(
        "CreateOrderV2: POST /trade-api/v2/portfolio/events/orders -> 503"
    )


def test_a_traced_rate_limit_wait_is_a_debug_line(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())  # a GET costs 10 tokens: one in the bucket
    first = core.start(status_call(), clock.now, trace=True)
    claim_and_send(first, clock)
    taken(first)
    run = core.start(status_call(), clock.now, trace=True)
    step = run.next_step(clock.now, clock.wall_ms)
    assert step == Sleep(0.5)
    [line] = taken(run)
    assert line.level == DEBUG
    assert line.message == "GetExchangeStatus: waiting 0.50s for the client-side rate limiter"
    assert line.fields == {
        "kalshi_operation": "GetExchangeStatus",
        "kalshi_attempt": 1,
        "kalshi_wait": 0.5,
    }
    untraced = core.start(status_call(), clock.now)
    assert isinstance(untraced.next_step(clock.now, clock.wall_ms), Sleep)
    assert untraced.log == []


def test_no_line_carries_a_header_key_or_signature(
    rsa_credentials: Credentials, clock: FakeClock
) -> None:
    # A signed GET refused with 401, retried (401 made retryable here), refused again: attempt
    # lines and a retry line, none with the key id, the timestamp or the signature.
    retry = RetryPolicy(max_attempts=2, retry_statuses=frozenset({401}))
    run = make_core(rsa_credentials, retry=retry).start(balance_call(), clock.now, trace=True)
    requests = []
    for _ in range(2):
        requests.append(send(run, clock).request)
        refused = answer(401, body=b'{"error": {"code": "x", "message": "bad signature"}}')
        run.receive_response(refused, clock.now, clock.wall_ms)
        step = run.next_step(clock.now, clock.wall_ms)
        if isinstance(step, Sleep):
            clock.advance(step.seconds)
    with pytest.raises(AuthenticationError):
        run.result()
    lines = taken(run)
    assert [line.level for line in lines] == [DEBUG, INFO, DEBUG]
    secrets = [v for r in requests for name, v in r.headers if name.startswith("KALSHI-ACCESS")]
    assert len(secrets) == 6 and KEY_ID in secrets
    text = repr(lines)
    for secret in secrets:
        assert secret not in text
