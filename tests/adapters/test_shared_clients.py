"""One client shared by many callers: threads on a blocking client, tasks on an async one.

The state callers share is the client-side rate limiter's balance and the pool of idle
connections. A reservation reads and writes the balance in several steps, so two threads
interleaving them lose a debit and the limiter lets through more than the account's budget;
the pool is a list that threads take from, give back to and close. These tests make the
interpreter switch threads as often as it can, and check that nothing is lost or leaked. The
last tests close a client while others use it, or from a cancelled scope, and check that no
connection is left open.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import KalshiError, LocalProtocolError
from kalshi_proto.rest.generated.models import GetBalanceResponse
from kalshi_proto.rest.ratelimit import DEFAULT_COST, Bucket, RateLimiter, TokenBucket
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import (
    Driver,
    Flavour,
    backend_of,
    maybe,
    open_sockets_to,
    run_in_threads,
    run_without_loop,
)
from tests.adapters.server import Fault

pytestmark = pytest.mark.anyio

THREADS = 8
CALLS = 40


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


@contextmanager
def switching_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so that races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class _YieldingBucket(TokenBucket):
    """A bucket that lets other threads run between reading its balance and writing it back,
    where an unguarded reservation loses a debit to a thread that comes in between."""

    __slots__ = ()

    def _balance_at(self, now: float, last: float) -> float:
        balance = super()._balance_at(now, last)
        time.sleep(0.0001)
        return balance


def exact_budget(calls: int) -> RateLimiter:
    """A limiter whose Read bucket holds exactly ``calls`` default-cost calls and (for the
    length of a test) does not refill."""
    limiter = RateLimiter.from_limits(1e-9, calls * DEFAULT_COST, 1e-9, 1)
    read = limiter.bucket(Bucket.READ)
    limiter._buckets[Bucket.READ] = _YieldingBucket(read.limit)
    return limiter


@pytest.mark.flavours("sync")
async def test_threads_sharing_a_client_lose_no_reservation(kx: Driver) -> None:
    limiter = exact_budget(THREADS * CALLS)
    async with kx.client(key=None, rate_limit=limiter, retry=RetryPolicy.disabled()) as client:

        def work() -> None:
            for _ in range(CALLS):
                client.exchange.status()

        with switching_often():
            errors = run_in_threads(work, THREADS)
    assert errors == []
    assert len(kx.server.requests("/exchange/status")) == THREADS * CALLS
    # A lost debit would leave 10 tokens or more.
    left = limiter.bucket(Bucket.READ).available(kx.now())
    assert 0 <= left < 0.001
    assert isinstance(limiter.guard, type(threading.Lock()))


@pytest.mark.flavours("async")
async def test_tasks_sharing_a_client_lose_no_reservation(kx: Driver) -> None:
    tasks, calls = 20, 10
    limiter = exact_budget(tasks * calls)
    async with kx.client(key=None, rate_limit=limiter, retry=RetryPolicy.disabled()) as client:

        async def work() -> None:
            for _ in range(calls):
                await maybe(client.exchange.status())

        async with anyio.create_task_group() as group:
            for _ in range(tasks):
                group.start_soon(work)
    assert len(kx.server.requests("/exchange/status")) == tasks * calls
    left = limiter.bucket(Bucket.READ).available(kx.now())
    assert 0 <= left < 0.001


@pytest.mark.flavours("sync")
async def test_two_clients_in_two_threads_share_one_limiter(kx: Driver) -> None:
    limiter = exact_budget(2 * CALLS)
    options: dict[str, Any] = {"key": None, "rate_limit": limiter, "retry": RetryPolicy.disabled()}
    async with kx.client(**options) as first, kx.client(**options) as second:
        clients = iter([first, second])
        lock = threading.Lock()

        def work() -> None:
            with lock:
                client = next(clients)
            for _ in range(CALLS):
                client.exchange.status()

        with switching_often():
            errors = run_in_threads(work, 2)
    assert errors == []
    left = limiter.bucket(Bucket.READ).available(kx.now())
    assert 0 <= left < 0.001


@pytest.mark.flavours("async")
async def test_a_call_cancelled_while_it_waits_for_tokens_gives_them_back(kx: Driver) -> None:
    # The Read bucket holds one call and refills it in 10 s.
    limiter = RateLimiter.from_limits(1, DEFAULT_COST, 1, DEFAULT_COST)
    async with kx.client(key=None, rate_limit=limiter) as client:
        await maybe(client.exchange.status())
        with anyio.move_on_after(0.1) as scope:
            await maybe(client.exchange.status())  # reserves 10 tokens, then waits 10 s
        assert scope.cancelled_caught
        # The cancelled call sent nothing, so it owes nothing: the limiter is not 10 in debt.
        assert limiter.bucket(Bucket.READ).available(kx.now()) > -1
    assert len(kx.server.requests("/exchange/status")) == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("adapter", ["kalshi_anyio", "kalshi_httpx"])
def test_blocking_and_async_clients_share_a_limiter_on_one_clock(
    adapter: str, backend: str
) -> None:
    # trio's clock starts at a random offset, 10,000 to 200,000 s, in every trio.run: a
    # limiter fed it and then another clock refilled by that much, or asked for that long a
    # wait (each blocking call then failed at once with CallTimeout).
    limiter = RateLimiter.from_limits(100, DEFAULT_COST, 100, DEFAULT_COST)
    with serve_exchange_in_thread() as local:
        blocking = kalshi_sync.KalshiClient(rate_limit=limiter, **local.client_options())

        async def two_async_calls() -> None:
            if adapter == "kalshi_anyio":
                client: Any = kalshi_anyio.AsyncKalshiClient(
                    rate_limit=limiter, **local.client_options()
                )
            else:
                client = kalshi_httpx.AsyncKalshiClient(
                    rate_limit=limiter, **local.client_options(httpx=True)
                )
            async with client:
                for _ in range(2):
                    await client.exchange.status()

        with blocking:
            started = time.monotonic()
            for _ in range(2):
                blocking.exchange.status()
            anyio.run(two_async_calls, backend=backend)
            anyio.run(two_async_calls, backend=backend)
            for _ in range(2):
                blocking.exchange.status()
            elapsed = time.monotonic() - started
    # 8 calls of 10 tokens from a bucket of 10 refilled at 100 a second: at least 0.7 s, and
    # not much more on a machine that is not overloaded.
    assert 0.69 <= elapsed < 10
    assert limiter.bucket(Bucket.READ).available(time.monotonic()) <= DEFAULT_COST


@pytest.mark.flavours("kalshi_sync")
async def test_threads_share_a_small_pool_and_leak_no_connection(kx: Driver) -> None:
    # Three connections for eight threads, expiring after 2 ms idle: connections are taken,
    # given back, found expired and closed all the time, from every thread.
    async with kx.client(max_connections=3, keepalive_expiry=0.002) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)

        def work() -> None:
            for _ in range(CALLS):
                assert client.portfolio.balance().balance is not None

        with switching_often():
            errors = run_in_threads(work, THREADS)
        assert errors == []
        assert len(client._idle) <= 3
    assert len(kx.server.requests("/portfolio/balance")) == THREADS * CALLS
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("kalshi_sync")
async def test_a_connection_coming_back_after_close_is_closed(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another thread closes the client just as a finished request gives its connection back:
    # the connection must be closed, not put in the pool of a closed client.
    client = kx.build()
    assert isinstance(client, kalshi_sync.KalshiClient)
    real_monotonic = kalshi_sync._io.monotonic
    closed_meanwhile = []

    def close_from_another_thread() -> float:
        closer = threading.Thread(target=client.close)
        closer.start()
        closer.join(5)
        closed_meanwhile.append(not closer.is_alive())
        return real_monotonic()

    monkeypatch.setattr(kalshi_sync._io, "monotonic", close_from_another_thread)
    try:
        assert client.portfolio.balance().balance is not None
        pooled = len(client._idle)
        left_open = open_sockets_to(kx.server.port)
    finally:
        monkeypatch.undo()
        client.close()
    assert closed_meanwhile == [True]
    assert pooled == 0
    assert left_open == 0


async def close_during_calls(kx: Driver, client: Any, calls: int) -> list[object]:
    """Start ``calls`` balance calls 50 ms apart (threads on a blocking client, tasks on an
    async one) and close the client 50 ms after the last. What each call gave, its answer or
    its KalshiError, in the order the calls started (not the order they ended: a call that
    hands its connection on may return after the call it hands it to)."""
    outcome: list[object] = [None] * calls

    async def call(index: int) -> None:
        try:
            outcome[index] = await maybe(client.portfolio.balance())
        except KalshiError as exc:
            outcome[index] = exc

    if kx.is_async:
        async with anyio.create_task_group() as group:
            for index in range(calls):
                group.start_soon(call, index)
                await anyio.sleep(0.05)
            await kx.close(client)
    else:
        threads = [
            threading.Thread(target=run_without_loop, args=(call(index),))
            for index in range(calls)
        ]
        for thread in threads:
            thread.start()
            await kx.sleep(0.05)
        await kx.close(client)
        for thread in threads:
            thread.join(5)
    return outcome


async def test_closing_while_a_request_is_in_flight_leaves_no_socket(kx: Driver) -> None:
    # The raw adapters and the blocking httpx client close idle connections only, so the call
    # in flight finishes; the async httpx client's pool closes its connections in use too, so
    # the call fails with a KalshiError. Either way no socket is left open.
    kx.server.script("/portfolio/balance", Fault(delay=0.3))
    client = kx.build()
    [only] = await close_during_calls(kx, client, 1)
    if kx.flavour.family == "httpx" and kx.is_async:
        assert isinstance(only, GetBalanceResponse | KalshiError)
    else:
        assert isinstance(only, GetBalanceResponse)
    assert open_sockets_to(kx.server.port) == 0


async def idle_connections(client: Any, count: int) -> None:
    """Make ``count`` calls at once, so that ``count`` connections go back to the pool."""
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(maybe, client.exchange.status())


@pytest.mark.flavours("async")
async def test_closing_in_a_cancelled_scope_closes_every_connection(kx: Driver) -> None:
    # ``async with client:`` left because of a cancellation (a timeout around the block, a
    # task group shutting down) closes the client in a cancelled scope.
    client = kx.build()
    await idle_connections(client, 3)
    assert kx.server.connections() == 3
    with anyio.CancelScope() as scope:
        scope.cancel()
        await kx.close(client)
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("kalshi_anyio")
async def test_a_cancelled_call_still_closes_the_expired_connections(kx: Driver) -> None:
    async with kx.client(keepalive_expiry=0.01) as client:
        await idle_connections(client, 3)
        await anyio.sleep(0.05)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await maybe(client.exchange.status())
        assert scope.cancelled_caught
        assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
@pytest.mark.parametrize("rate_limited", [False, True], ids=["unlimited", "rate_limited"])
async def test_a_call_waiting_for_a_connection_when_the_client_closes_sends_nothing(
    kx: Driver, rate_limited: bool
) -> None:
    # One connection: the first call holds it for 0.3 s, the second waits for it, and the
    # client is closed meanwhile. The first finishes; the second must not go out. A
    # rate-limited second call gives back the tokens of its turn, as it sent nothing.
    kx.server.script("/portfolio/balance", Fault(delay=0.3))
    limiter = RateLimiter.from_limits(1, 1000, 1, 1000) if rate_limited else None
    client = kx.build(max_connections=1, rate_limit=limiter)
    first, second = await close_during_calls(kx, client, 2)
    assert isinstance(first, GetBalanceResponse)
    assert isinstance(second, LocalProtocolError)
    assert str(second) == "the client is closed"
    assert len(kx.server.requests("/portfolio/balance")) == 1
    assert open_sockets_to(kx.server.port) == 0
    if limiter is not None:
        # The first call's 10 tokens out of 1000, refilled at 1 a second for about 0.4 s. Had
        # the second call reserved before its wait, it would have kept 10 more.
        assert 990 <= limiter.bucket(Bucket.READ).available(kx.now()) < 995


@pytest.mark.flavours("httpx")
async def test_httpx_a_call_let_through_after_close_leaves_no_socket(kx: Driver) -> None:
    # The async client's httpx pool closes the connection in use (the first call fails); the
    # blocking client's lets that call finish first (see kalshi_httpx._guard). Either way, httpx
    # lets the call waiting for the pool's one connection through on a new connection, which the
    # close never saw.
    kx.server.script("/portfolio/balance", Fault(delay=0.3))
    client = kx.build(limits=httpx.Limits(max_connections=1))
    outcome = await close_during_calls(kx, client, 2)
    answered = [each for each in outcome if isinstance(each, GetBalanceResponse)]
    failed = [each for each in outcome if isinstance(each, KalshiError)]
    assert (len(answered), len(failed)) == ((1, 1) if kx.is_async else (2, 0)), outcome
    assert open_sockets_to(kx.server.port) == 0


def small_pool(kx: Driver, connections: int) -> dict[str, Any]:
    """The constructor argument that limits this flavour's pool to ``connections``."""
    if kx.flavour.family == "httpx":
        return {"limits": httpx.Limits(max_connections=connections)}
    return {"max_connections": connections}


async def test_calls_that_queued_for_a_connection_go_out_at_the_rate_limiters_pace(
    kx: Driver,
) -> None:
    # Four callers, two connections, and a Read bucket of one call refilled in 0.4 s. The
    # first two requests take 1.6 s; the other two callers wait for a connection meanwhile.
    # Their turns (0.8 and 1.2 s) pass meanwhile; had they gone as soon as the connections came
    # back at 1.6 s, both would go out together, twice what the bucket allows. Each request is
    # paced once it holds its connection instead, so the server sees one every 0.4 s.
    kx.server.script("/exchange/status", Fault(delay=1.6), times=2)
    limiter = RateLimiter.from_limits(25, DEFAULT_COST, 25, DEFAULT_COST)
    callers = 4
    async with kx.client(key=None, rate_limit=limiter, **small_pool(kx, 2)) as client:
        if kx.is_async:
            async with anyio.create_task_group() as group:
                for _ in range(callers):
                    group.start_soon(maybe, client.exchange.status())
        else:
            assert run_in_threads(client.exchange.status, callers) == []
    arrivals = sorted(received.arrived for received in kx.server.requests("/exchange/status"))
    assert len(arrivals) == callers
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # 0.4 s apart, less the scheduling noise of a busy machine; two sent together are ~0 apart.
    assert min(gaps) > 0.2, gaps


async def test_calls_on_one_connection_wait_their_turns_without_holding_it(kx: Driver) -> None:
    # One connection and a bucket of one call refilled in 0.5 s. After a first call empties
    # the bucket, two callers wait for their turns, 0.5 and 1 s away: longer than the 0.3 s
    # attempt timeout. They wait holding no connection, so neither is left waiting for the
    # connection past its timeout (as one would be if the other held it through its wait).
    limiter = RateLimiter.from_limits(20, DEFAULT_COST, 20, DEFAULT_COST)
    policy = RetryPolicy(max_attempts=1, total_timeout=None)
    async with kx.client(
        key=None, rate_limit=limiter, retry=policy, timeout=0.3, **small_pool(kx, 1)
    ) as client:
        await maybe(client.exchange.status())
        if kx.is_async:
            async with anyio.create_task_group() as group:
                for _ in range(2):
                    group.start_soon(maybe, client.exchange.status())
        else:
            assert run_in_threads(client.exchange.status, 2) == []
    arrivals = [received.arrived for received in kx.server.requests("/exchange/status")]
    assert len(arrivals) == 3
    assert arrivals[2] - arrivals[0] > 0.9  # two refills of 0.5 s, less the first send


async def test_an_order_is_not_held_up_behind_calls_waiting_for_read_tokens(kx: Driver) -> None:
    # Two connections; four readers share a Read bucket of one call a second, so three of them
    # are always waiting for their turn. They wait holding no connection: an order, paid from
    # the Write bucket, finds one free at once. (Readers holding connections through their
    # waits would keep it about a second.)
    limiter = RateLimiter.from_limits(10, DEFAULT_COST, 1000, 1000)
    async with kx.client(rate_limit=limiter, **small_pool(kx, 2)) as client:
        latencies: list[float] = []

        async def one_order() -> None:
            await kx.sleep(0.3)
            started = time.monotonic()
            await maybe(client.orders.cancel_v2("order-1"))  # CancelOrderV2: the Write bucket
            latencies.append(time.monotonic() - started)

        if kx.is_async:
            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(maybe, client.exchange.status())
                group.start_soon(one_order)
        else:
            readers = [threading.Thread(target=client.exchange.status) for _ in range(4)]
            for reader in readers:
                reader.start()
            await one_order()
            for reader in readers:
                reader.join(10)
    [latency] = latencies
    assert latency < 0.5
    assert len(kx.server.requests("/exchange/status")) == 4
