"""A rate-limited call waits for its turn, then claims a connection (`Claim`), then is paced.

A call reserves its turn in the bucket and waits for it holding no connection, so calls of the
other bucket (orders behind market data, say) find connections free. Then it claims a
connection slot; a call that waited for one comes late to its turn, and several late calls
would go out together, over the budget on the wire, so the request is paced as well
(`RateLimiter.pace`: the same budget, spent at the moment of sending) and goes out when that
allows. The core tests drive `CallRun` by hand; the loop tests run the shared client loop over
the fakes of ``test_base.py``. In both, GetExchangeStatus costs 10 Read tokens; the bucket holds
10 and refills 20 a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from kalshi_proto.auth import Credentials
from kalshi_proto.errors import (
    CallTimeout,
    ConnectTimeout,
    LocalProtocolError,
    ReadError,
    ServerError,
    TransportError,
)
from kalshi_proto.rest.client import DEBUG, Claim, Finished, SendRequest, Sleep
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.ratelimit import Bucket, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.clock import FakeClock
from tests.helpers.stepping import step
from tests.proto.rest.test_base import (
    STATUS,
    FakeAsyncClient,
    FakeClient,
    json_response,
    resolve,
)
from tests.proto.rest.test_client import (
    MAY_HAVE_ARRIVED,
    NEVER_LEFT,
    claim,
    claim_and_send,
    failed,
    limiter,
    make_core,
    ok,
    order_call,
    read_balance,
    send,
    status_call,
)

# ---- the core ------------------------------------------------------------------------------


def test_without_a_rate_limiter_no_claim_is_asked_for(clock: FakeClock) -> None:
    run = make_core().start(status_call(), clock.now)
    send(run, clock)


def test_a_call_waits_for_its_turn_holding_no_connection_then_claims_one(
    clock: FakeClock,
) -> None:
    core = make_core(limiter=limiter())
    claim_and_send(core.start(status_call(), clock.now), clock)  # empties the bucket
    run = core.start(status_call(), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.5)  # no Claim yet
    assert read_balance(core, clock) == -10
    clock.advance(0.5)
    assert run.next_step(clock.now, clock.wall_ms) == Claim(30.0)  # one attempt's timeout
    assert run.next_step(clock.now, clock.wall_ms) == SendRequest(
        core.build_request(status_call(), clock.wall_ms), 30.0
    )
    assert run.attempts == 1


def test_calls_that_came_late_to_their_turns_are_paced_to_the_budget(clock: FakeClock) -> None:
    # Three calls, turns at 0, 0.5 and 1.0 s; the second and third wait for a connection until
    # 2.0 s. The bucket has refilled by then, but a burst of two would be 20 tokens at once
    # where the budget allows 10: the later one is paced 0.5 s.
    core = make_core(limiter=limiter())
    runs = [core.start(status_call(), clock.now) for _ in range(3)]
    claim_and_send(runs[0], clock)
    assert [run.next_step(clock.now, clock.wall_ms) for run in runs[1:]] == [Sleep(0.5), Sleep(1.0)]
    clock.advance(2.0)
    claim(runs[1], clock)
    claim(runs[2], clock)
    send(runs[1], clock)
    assert runs[2].next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    clock.advance(0.5)
    send(runs[2], clock)


def test_a_call_given_up_while_it_is_paced_gives_back_both_reservations(
    clock: FakeClock,
) -> None:
    core = make_core(limiter=limiter())
    first, second = core.start(status_call(), clock.now), core.start(status_call(), clock.now)
    claim_and_send(first, clock)
    assert second.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    assert core.rate_limiter is not None
    wire = core.rate_limiter._wire[Bucket.READ]
    # Its turn came, but the wire's budget is spent (another request went out just now).
    clock.advance(0.5)
    assert core.rate_limiter.pace("GetExchangeStatus", clock.now) == 0.0
    claim(second, clock)
    assert second.next_step(clock.now, clock.wall_ms) == Sleep(0.5)
    assert wire.available(clock.now) == -10
    second.abandon()
    assert wire.available(clock.now) == 0
    assert read_balance(core, clock) == 10  # its turn's 10 tokens are back too


def test_a_claim_waits_no_longer_than_an_attempt_may(clock: FakeClock) -> None:
    # The same bound as a request that takes its own connection: one attempt's timeout, cut to
    # what is left of the total.
    core = make_core(retry=RetryPolicy(total_timeout=5.0), timeout=1.0, limiter=limiter())
    run = core.start(status_call(), clock.now)
    clock.advance(1.0)
    assert claim(run, clock) == Claim(1.0)
    clock.advance(3.5)
    assert send(run, clock).timeout == 0.5  # what is left of the total
    unbounded = make_core(retry=RetryPolicy(total_timeout=None), timeout=1.0, limiter=limiter())
    assert claim(unbounded.start(status_call(), clock.now), clock) == Claim(1.0)


def test_a_claim_that_outlasts_the_total_timeout_ends_the_call_and_gives_its_tokens_back(
    clock: FakeClock,
) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=1.0), limiter=limiter())
    run = core.start(status_call(), clock.now)
    claim(run, clock)
    clock.advance(1.0)  # the slot came at the deadline
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(CallTimeout, match=r"total_timeout of 1s reached after 0 attempt\(s\)"):
        run.result()
    assert read_balance(core, clock) == 10


def test_no_response_is_accepted_while_claiming(clock: FakeClock) -> None:
    run = make_core(limiter=limiter()).start(status_call(), clock.now)
    claim(run, clock)
    with pytest.raises(LocalProtocolError, match="no request is in flight"):
        run.receive_response(ok(), clock.now, clock.wall_ms)


def test_a_failed_claim_is_a_failed_attempt_and_a_get_tries_again(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    run = core.start(status_call(), clock.now, trace=True)
    claim(run, clock)
    run.receive_failure(ConnectTimeout("no connection became free before the timeout"), clock.now)
    assert run.attempts == 1
    assert read_balance(core, clock) == 10  # the attempt's reservation is given back
    (retry_line,) = [line for line in run.log if line.level != DEBUG]
    assert retry_line.message.startswith(
        "GetExchangeStatus: connection error on GET, attempt 1 of 4, backing off 0.19s "
        "(ConnectTimeout: no connection became free before the timeout)"
    )
    (no_connection,) = [line for line in run.log if line.level == DEBUG]
    assert no_connection.message == (
        "GetExchangeStatus: no connection for attempt 1: ConnectTimeout: no connection became "
        "free before the timeout"
    )
    assert no_connection.fields == {"kalshi_attempt": 1, "kalshi_operation": "GetExchangeStatus"}
    assert run.next_step(clock.now, clock.wall_ms) == Sleep(0.1875)
    clock.advance(0.1875)
    claim_and_send(run, clock)
    assert run.attempts == 2
    run.receive_response(ok(), clock.now, clock.wall_ms)
    assert run.result().trading_active is True


def test_failed_claims_use_up_the_attempts(clock: FakeClock) -> None:
    core = make_core(retry=RetryPolicy(max_attempts=2, total_timeout=None), limiter=limiter())
    run = core.start(status_call(), clock.now)
    for _ in range(2):
        claim(run, clock)
        run.receive_failure(ConnectTimeout("none free"), clock.now)
        clock.advance(1.0)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(ConnectTimeout) as info:
        run.result()
    assert info.value.__notes__ == [
        "not retried: connection error on GET, attempt 2 of 2, no attempts left"
    ]


@pytest.mark.parametrize(
    ("failure", "sent", "note", "left"),
    [
        (ConnectTimeout("none free"), False, NEVER_LEFT, 10),  # never sent: tokens back
        (ReadError("reset"), True, MAY_HAVE_ARRIVED, 0),  # sent: its tokens are spent
    ],
    ids=["no-connection", "read-error"],
)
def test_a_rate_limited_order_that_fails_says_whether_it_left(
    failure: TransportError,
    sent: bool,
    note: str,
    left: float,
    clock: FakeClock,
    rsa_credentials: Credentials,
) -> None:
    core = make_core(rsa_credentials, limiter=limiter())
    run = core.start(order_call(), clock.now)
    if sent:
        claim_and_send(run, clock)
    else:
        claim(run, clock)
    run.receive_failure(failure, clock.now)
    with pytest.raises(TransportError) as info:
        run.result()
    assert info.value.__notes__ == [note]
    assert core.rate_limiter is not None
    assert core.rate_limiter.bucket(Bucket.WRITE).available(clock.now) == left


def test_abandoning_a_run_while_it_claims_gives_its_tokens_back(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    run = core.start(status_call(), clock.now)
    claim(run, clock)
    run.abandon()
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    assert read_balance(core, clock) == 10


def test_a_request_that_cannot_be_signed_keeps_nothing_of_the_limiters(
    clock: FakeClock, rsa_credentials: Credentials
) -> None:
    core = make_core(rsa_credentials, limiter=limiter())
    # A hand-built call whose path cannot be signed (not ASCII).
    unsignable = dataclasses.replace(calls.get_balance(), path="/portfolio/balance/\u00e9")
    run = core.start(unsignable, clock.now)
    claim(run, clock)
    with pytest.raises(ValueError, match="ASCII"):
        run.next_step(clock.now, clock.wall_ms)
    assert run.attempts == 0  # nothing went out
    run.abandon()
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    assert read_balance(core, clock) == 10


def test_a_call_given_up_in_the_middle_of_the_line_leaves_its_turn_empty(
    clock: FakeClock,
) -> None:
    # 10 tokens, 20 a second, 10 a call: turns at 0, 0.5, 1.0 and 1.5 s. The second call is
    # cancelled; a newcomer goes after the last one, not with it (the server's bucket banks
    # no more than 10 tokens, so two calls at 1.5 s would be one too many).
    core = make_core(limiter=limiter())
    runs = [core.start(status_call(), clock.now) for _ in range(4)]
    claim_and_send(runs[0], clock)
    waits = [runs[i].next_step(clock.now, clock.wall_ms) for i in (1, 2, 3)]
    assert waits == [Sleep(0.5), Sleep(1.0), Sleep(1.5)]
    runs[1].abandon()
    newcomer = core.start(status_call(), clock.now)
    assert newcomer.next_step(clock.now, clock.wall_ms) == Sleep(2.0)


def test_a_limiter_turned_off_during_the_claim_still_paces_the_request(clock: FakeClock) -> None:
    core = make_core(limiter=limiter())
    run = core.start(status_call(), clock.now)
    claim(run, clock)
    core.rate_limiter = None
    send(run, clock)
    assert run.attempts == 1


def test_a_limiter_turned_on_during_a_back_off_claims_for_the_retry(clock: FakeClock) -> None:
    core = make_core()
    run = core.start(status_call(), clock.now)
    send(run, clock)
    run.receive_response(failed(503), clock.now, clock.wall_ms)
    core.rate_limiter = limiter()  # as configure_rate_limit() does
    clock.advance(1.0)
    claim_and_send(run, clock)
    assert read_balance(core, clock) == 0


# ---- the shared client loop ----------------------------------------------------------------


Client = FakeAsyncClient | FakeClient


@pytest.fixture(params=[FakeAsyncClient, FakeClient], ids=["async", "sync"])
def flavour(request: pytest.FixtureRequest) -> type[Client]:
    kind: type[Client] = request.param
    return kind


def test_the_loop_sends_on_the_slot_it_claimed_and_gives_it_back_once(
    flavour: type[Client],
) -> None:
    client = flavour(rate_limit=limiter(), script=[STATUS, STATUS])
    client.claim_wait = 0.25
    resolve(client.execute(calls.get_exchange_status()))
    resolve(client.execute(calls.get_exchange_status()))
    # The first call's turn is at once (1000.0); its slot comes at 1000.25, where the wire's
    # budget is full, and its exchange ends at 1000.3125. The second's turn is 0.1875 s later
    # (6.25 of its 10 tokens have refilled), which it sleeps holding no slot; its slot comes at
    # 1000.75, where the wire's budget has refilled: no pacing wait.
    assert client.slept == [0.1875]
    assert client.slot_events == [
        ("claim", 1030.0),
        ("send", 1),
        ("release", 1),
        ("claim", 1030.5),
        ("send", 4),
        ("release", 4),
    ]


def test_the_loop_claims_nothing_without_a_rate_limiter(flavour: type[Client]) -> None:
    client = flavour(script=[STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    assert client.slot_events == [("send", None)]


def test_a_failed_claim_is_retried_by_the_loop(flavour: type[Client]) -> None:
    client = flavour(rate_limit=limiter(), script=[STATUS])
    client.claims.append(ConnectTimeout("no connection became free before the timeout"))
    assert resolve(client.execute(calls.get_exchange_status())).exchange_active is True
    assert [kind for kind, _ in client.slot_events] == ["claim", "claim", "send", "release"]
    assert client.slept == [0.125]  # the fakes' back-off


def test_a_call_that_gets_no_slot_at_all_raises_connect_timeout(flavour: type[Client]) -> None:
    client = flavour(rate_limit=limiter(), retry=RetryPolicy.disabled())
    client.claims.append(ConnectTimeout("no connection became free before the timeout"))
    with pytest.raises(ConnectTimeout):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.sent == []


class Interrupted(BaseException):
    """What a cancelled sleep raises in these fakes."""


def interrupt(client: Client) -> Callable[[float], None]:
    def rest(seconds: float) -> None:
        client.slept.append(seconds)
        raise Interrupted

    return rest


def test_a_call_interrupted_in_its_wait_gives_back_its_slot_and_tokens(
    flavour: type[Client],
) -> None:
    client = flavour(rate_limit=limiter(), script=[STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    client._rest = interrupt(client)  # type: ignore[method-assign,assignment]
    with pytest.raises(Interrupted):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.slot_events[3:] == []  # it waited for its turn without a connection
    assert client.rate_limiter is not None
    assert client.rate_limiter.bucket(Bucket.READ).available(client.clock.now) == 1.25


def test_a_client_closed_during_a_rate_limit_wait_sends_nothing_and_refunds(
    flavour: type[Client],
) -> None:
    client = flavour(rate_limit=limiter(), script=[STATUS, STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    rest = client._rest

    def close_while_waiting(seconds: float) -> None:
        rest(seconds)
        client._closed = True  # as the adapter's close does, from another thread or task

    client._rest = close_while_waiting  # type: ignore[method-assign]
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        resolve(client.execute(calls.get_exchange_status()))
    assert len(client.sent) == 1
    assert client.slot_events[-1] == ("release", 1)  # the first call's: the second took none
    assert client.rate_limiter is not None
    # 10 tokens reserved at 1000.0625 for a request never sent: back, on top of the refill.
    assert client.rate_limiter.bucket(Bucket.READ).available(client.clock.now) == 10


def test_a_server_error_releases_the_slot_and_the_retry_claims_another(
    flavour: type[Client],
) -> None:
    client = flavour(rate_limit=limiter(), script=[json_response({}, 503), STATUS])
    status = resolve(client.execute(calls.get_exchange_status()))
    assert isinstance(status, m.ExchangeStatus)
    kinds = [kind for kind, _ in client.slot_events]
    assert kinds == ["claim", "send", "release", "claim", "send", "release"]


def test_the_async_loop_claims_with_the_attempt_deadline() -> None:
    client = FakeAsyncClient(
        rate_limit=limiter(), script=[STATUS], retry=RetryPolicy(total_timeout=2.0)
    )
    step(client.execute(calls.get_exchange_status()))
    assert client.slot_events[0] == ("claim", 1002.0)


def test_a_server_error_after_retries_is_raised_with_every_slot_back(
    flavour: type[Client],
) -> None:
    client = flavour(
        rate_limit=RateLimiter.from_limits(1000, 1000, 1000, 1000),
        script=[json_response({}, 503)] * 2,
        retry=RetryPolicy(max_attempts=2),
    )
    with pytest.raises(ServerError):
        resolve(client.execute(calls.get_exchange_status()))
    claimed = [number for kind, number in client.slot_events if kind == "send"]
    released = [number for kind, number in client.slot_events if kind == "release"]
    assert claimed == released and len(claimed) == 2


def test_a_client_closed_while_a_call_waits_for_a_connection_sends_nothing(
    flavour: type[Client],
) -> None:
    client = flavour(rate_limit=limiter(), script=[STATUS])
    take = client._take_slot

    def close_meanwhile(deadline: float, hold: Any) -> None:
        take(deadline, hold)
        client._closed = True  # as the adapter's close does, from another thread or task

    client._take_slot = close_meanwhile  # type: ignore[method-assign]
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.sent == []
    assert client.slot_events == [("claim", 1030.0), ("release", 1)]
    assert client.rate_limiter is not None
    assert client.rate_limiter.bucket(Bucket.READ).available(client.clock.now) == 10


# ---- a 429 from the server empties the local bucket -----------------------------------------


def test_a_429_empties_the_bucket_so_that_every_caller_waits(clock: FakeClock) -> None:
    # A bucket of 30 Read tokens (three calls) refilled at 20 a second. The first call's 429
    # says the account's bucket at Kalshi is empty: the 20 tokens left here go too, and the
    # next call waits for its 10.
    core = make_core(limiter=RateLimiter.from_limits(20, 30, 20, 30))
    run = core.start(status_call(), clock.now, trace=True)
    claim_and_send(run, clock)
    run.receive_response(failed(429), clock.now, clock.wall_ms)
    assert read_balance(core, clock) == 0
    assert core.rate_limiter is not None
    assert core.rate_limiter.bucket(Bucket.WRITE).available(clock.now) == 30  # untouched
    assert [line.message for line in run.log if line.level == DEBUG] == [
        "GetExchangeStatus: GET /trade-api/v2/exchange/status -> 429 in 0.0 ms, attempt 1",
        "GetExchangeStatus: HTTP 429: the client-side read bucket is emptied too",
    ]
    other = core.start(status_call(), clock.now)
    assert other.next_step(clock.now, clock.wall_ms) == Sleep(0.5)


@pytest.mark.parametrize("status", [500, 503, 400])
def test_other_errors_leave_the_bucket_alone(status: int, clock: FakeClock) -> None:
    core = make_core(limiter=RateLimiter.from_limits(20, 30, 20, 30))
    run = core.start(status_call(), clock.now)
    claim_and_send(run, clock)
    run.receive_response(failed(status), clock.now, clock.wall_ms)
    assert read_balance(core, clock) == 20


def test_a_429_without_a_rate_limiter_is_only_retried(clock: FakeClock) -> None:
    core = make_core()
    run = core.start(status_call(), clock.now, trace=True)
    send(run, clock)
    run.receive_response(failed(429), clock.now, clock.wall_ms)
    assert not any("bucket" in line.message for line in run.log)
    assert isinstance(run.next_step(clock.now, clock.wall_ms), Sleep)


def test_a_pacing_wait_past_the_total_timeout_ends_the_call_and_gives_back_both(
    clock: FakeClock,
) -> None:
    core = make_core(retry=RetryPolicy(total_timeout=0.25), limiter=limiter())
    assert core.rate_limiter is not None
    first, second = core.start(status_call(), clock.now), core.start(status_call(), clock.now)
    claim_and_send(first, clock)
    clock.advance(0.1)
    core.rate_limiter.drain("GetExchangeStatus", clock.now)  # a 429 elsewhere: empty again
    core.rate_limiter.refund("GetExchangeStatus")  # but the turn is free (a call gave up)
    claim(second, clock)
    assert second.next_step(clock.now, clock.wall_ms) == Finished()  # a 0.5 s pace: too late
    with pytest.raises(CallTimeout, match=r"the rate limiter asks for a 0\.50s wait"):
        second.result()
    assert core.rate_limiter._wire[Bucket.READ].available(clock.now) == 0
    assert read_balance(core, clock) == 10


# ---- a call the exchange would refuse whatever the wait ------------------------------------


def batch_call(orders: int) -> Any:
    batch = [
        m.CreateOrderV2Request(
            ticker="KXBTC-25",
            client_order_id=f"c-{n}",
            side="bid",
            count=Decimal("1"),
            price=Decimal("0.5"),
            time_in_force="good_till_canceled",
            self_trade_prevention_type="maker",
        )
        for n in range(orders)
    ]
    return calls.batch_create_orders_v2(m.BatchCreateOrdersV2Request(orders=batch))


def test_a_batch_costing_more_than_its_bucket_holds_is_refused_before_anything_is_sent(
    clock: FakeClock, rsa_credentials: Credentials
) -> None:
    # Basic: a Write bucket of 100 tokens, 10 an order. The exchange allows a request only if
    # the bucket covers its cost (the spec's BucketLimit), so 11 orders get a 429 every time.
    core = make_core(rsa_credentials, limiter=RateLimiter.for_tier("basic"))
    run = core.start(batch_call(11), clock.now)
    assert run.next_step(clock.now, clock.wall_ms) == Finished()
    with pytest.raises(LocalProtocolError) as info:
        run.result()
    assert str(info.value) == (
        "BatchCreateOrdersV2: 11 orders cost 110 write tokens, more than the write bucket holds "
        "(100); the exchange refuses such a request however long the client waits; send the "
        "orders in smaller batches"
    )
    assert run.attempts == 0
    assert core.rate_limiter is not None
    assert core.rate_limiter.bucket(Bucket.WRITE).available(clock.now) == 100
    fits = core.start(batch_call(10), clock.now)
    assert isinstance(fits.next_step(clock.now, clock.wall_ms), Claim)


def test_a_single_call_costing_more_than_its_bucket_holds_says_so() -> None:
    tiny = RateLimiter.from_limits(5, 5, 5, 5)
    assert tiny.beyond_capacity("GetMarkets") == (
        "one call cost 10 read tokens, more than the read bucket holds (5); the exchange "
        "refuses such a request however long the client waits"
    )
    assert tiny.beyond_capacity("GetOrder") is None  # 2 tokens
