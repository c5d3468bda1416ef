"""The REST soak (``fuzz/soak_rest.py``), short: one round of chaos per flavour, proof that its
checks catch what they are for, and the SDK bugs it found, each shown on its own.

The soak shares one client between threads or tasks against a local exchange with injected
faults, closes it while calls are in flight, and checks that every call gave its model or a
`KalshiError`, that no order went out twice, that no socket is left open, and that no call hung.
The long run is ``python fuzz/soak_rest.py --seconds 120``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Iterator
from typing import Any

import anyio
import pytest

import kalshi_anyio._io
import kalshi_sync
from fuzz.soak_rest import (
    FLAVOURS_BY_NAME,
    Plan,
    Report,
    _draw_plan,
    soak_flavour,
    soak_round,
    sockets_to,
    without_proxies,
)
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import CallTimeout, ConnectTimeout, KalshiError, LocalProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.generated.models import ExchangeStatus
from kalshi_proto.rest.ratelimit import DEFAULT_COST, Bucket, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.rest import Faults
from tests.adapters.conftest import Flavour, maybe, run_without_loop

SEED = 20260601


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    with without_proxies():
        yield


def test_the_soak_finds_no_violation(flavour: Flavour) -> None:
    # One round of about 0.3 s; its plan is drawn from SEED and the flavour's name.
    report = soak_flavour(
        FLAVOURS_BY_NAME[flavour.id], seconds=0.3, seed=SEED, round_seconds=(0.3, 0.3)
    )
    assert report.violations == Counter(), report.text()
    assert report.calls.total() >= 5 and report.requests > 0, report.text()


@pytest.mark.flavours("async")
def test_a_client_from_an_earlier_event_loop_finds_no_violation(flavour: Flavour) -> None:
    plan = dataclasses.replace(
        Plan.draw(SEED, 0.3, is_async=True), earlier_loop=True, faults=Faults(), timeout=3.0
    )
    report = soak_round(FLAVOURS_BY_NAME[flavour.id], plan)
    assert report.violations == Counter(), report.text()
    assert report.outcomes["ok"] >= 5, report.text()


# ---- the checks can fail -------------------------------------------------------------------

BLOCKING = FLAVOURS_BY_NAME["kalshi_sync"]


def calm_plan(**changes: Any) -> Plan:
    """A short round of a blocking client against an exchange without faults."""
    plan = Plan.draw(SEED, 0.3, is_async=False)
    calm = {
        "faults": Faults(),
        "tls": False,
        "idle_timeout": None,
        "timeout": 3.0,
        "retry": RetryPolicy(max_attempts=2, base_delay=0.001, total_timeout=3.0),
        "max_connections": 4,
        "keepalive_expiry": 5.0,
        "rate_limit": None,
        "callers": 4,
        "order_share": 0.5,
        "before_close": 0.0,
        "after_close": 0.05,
    }
    return dataclasses.replace(plan, **{**calm, **changes})


def summaries(report: Report) -> list[str]:
    return sorted(report.violations)


def test_a_calm_round_finds_no_violation() -> None:
    report = soak_round(BLOCKING, calm_plan())
    assert report.violations == Counter(), report.text()
    assert report.outcomes["ok"] > 10


def test_a_stray_exception_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = kalshi_sync.KalshiClient._send
    count = Counter[str]()

    def send(self: kalshi_sync.KalshiClient, request: HttpRequest, *args: Any) -> HttpResponse:
        count["calls"] += 1
        if count["calls"] % 7 == 0:
            raise RuntimeError("a bug in the adapter")
        return real_send(self, request, *args)

    monkeypatch.setattr(kalshi_sync.KalshiClient, "_send", send)
    report = soak_round(BLOCKING, calm_plan())
    assert any("RuntimeError escaped the SDK" in each for each in summaries(report))
    assert any("a bug in the adapter" in each for each in report.examples.values())


def test_a_resent_order_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = kalshi_sync.KalshiClient._send

    def send_posts_twice(
        self: kalshi_sync.KalshiClient, request: HttpRequest, *args: Any
    ) -> HttpResponse:
        if request.method == "POST":
            real_send(self, request, *args)
        return real_send(self, request, *args)

    monkeypatch.setattr(kalshi_sync.KalshiClient, "_send", send_posts_twice)
    report = soak_round(BLOCKING, calm_plan())
    assert "an order reached the exchange more than once" in summaries(report)
    assert any("ConflictError (a client_order_id sent twice)" in each for each in summaries(report))


def test_a_client_that_does_not_close_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    leaked: list[kalshi_sync.KalshiClient] = []

    def keep_open(self: kalshi_sync.KalshiClient) -> None:
        leaked.append(self)

    monkeypatch.setattr(kalshi_sync.KalshiClient, "close", keep_open)
    try:
        report = soak_round(BLOCKING, calm_plan())
    finally:
        monkeypatch.undo()
        for client in leaked:
            client.close()
    assert any("still open after close and gc" in each for each in summaries(report))
    assert any("started after close() gave ok" in each for each in summaries(report))


def test_a_hung_call_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = kalshi_sync.KalshiClient._send
    count = Counter[str]()

    def slow_once(self: kalshi_sync.KalshiClient, request: HttpRequest, *args: Any) -> HttpResponse:
        count["calls"] += 1
        if count["calls"] == 3:
            time.sleep(1.5)  # past three pages of 0.3 s (a list_all walk) plus the slack
        return real_send(self, request, *args)

    monkeypatch.setattr(kalshi_sync.KalshiClient, "_send", slow_once)
    plan = calm_plan(seconds=1.2, retry=RetryPolicy(max_attempts=1, total_timeout=0.3))
    report = soak_round(BLOCKING, plan, slack=0.2)
    assert any("took longer than its bound" in each for each in summaries(report))


def test_a_client_stuck_on_an_earlier_event_loop_is_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the clients were before they noticed a new asyncio loop: the old loop's connection is
    # reused, and its call fails with RuntimeError("Event loop is closed").
    monkeypatch.setattr(kalshi_anyio._io, "current_loop", lambda: None)
    plan = calm_plan(earlier_loop=True, callers=2, order_share=0.0)
    report = soak_round(FLAVOURS_BY_NAME["kalshi_anyio-asyncio"], plan)
    assert any("RuntimeError escaped the SDK" in each for each in summaries(report))


def test_a_client_that_stops_working_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    # As a pool that lost track of its connections would: every call fails from some point on.
    real_send = kalshi_sync.KalshiClient._send
    count = Counter[str]()

    def stuck_after_ten(
        self: kalshi_sync.KalshiClient, request: HttpRequest, *args: Any
    ) -> HttpResponse:
        count["calls"] += 1
        if count["calls"] > 10:
            raise ConnectTimeout("no connection became free before the timeout")
        return real_send(self, request, *args)

    monkeypatch.setattr(kalshi_sync.KalshiClient, "_send", stuck_after_ten)
    plan = calm_plan(retry=RetryPolicy(max_attempts=1, total_timeout=0.3))
    report = soak_round(BLOCKING, plan, slack=0.2)
    assert any("no call succeeded" in each for each in summaries(report))


@pytest.mark.parametrize("kind", ["none", "http", "https", "socks5"])
def test_a_run_can_keep_to_one_kind_of_proxy(kind: str) -> None:
    # --proxy KIND: each round's plan is the first of its draws through that kind of proxy.
    for name in ("kalshi_sync", "httpx_async-trio"):
        flavour = FLAVOURS_BY_NAME[name]
        plans = [_draw_plan(flavour, SEED, number, kind) for number in range(6)]
        assert {plan.proxy_kind(flavour) or "none" for plan in plans} == {kind}
        assert len({plan.seed for plan in plans}) == 6
    # Without it, the plans are those a run has always drawn.
    first = random.Random(f"{SEED}/kalshi_sync/0").randrange(2**32)
    unfiltered = _draw_plan(FLAVOURS_BY_NAME["kalshi_sync"], SEED, 0, None)
    assert unfiltered == Plan.draw(first, 0.0, is_async=False)


def test_a_run_through_https_proxies_only() -> None:
    report = soak_flavour(
        FLAVOURS_BY_NAME["httpx_async-asyncio"],
        seconds=0.3,
        seed=SEED,
        round_seconds=(0.3, 0.3),
        proxy="https",
    )
    assert report.violations == Counter(), report.text()
    assert report.rounds == report.tls_proxies >= 1


def test_only_attempts_of_0_3_s_or_more_are_held_to_liveness() -> None:
    # A call must succeed once the faults stop only when each attempt may take 0.3 s: the
    # per-attempt timeout and the whole call's total_timeout both bound it.
    assert calm_plan().live
    assert calm_plan(retry=RetryPolicy(max_attempts=1, total_timeout=0.3)).live
    assert not calm_plan(timeout=0.1).live
    assert not calm_plan(retry=RetryPolicy(max_attempts=1, total_timeout=0.1)).live


# ---- bugs the soak found ---------------------------------------------------------------------


def test_a_closed_client_with_a_rate_limiter_says_it_is_closed(flavour: Flavour) -> None:
    # One default-cost call empties the Read bucket, which then refills 1 token a second: the
    # next call would wait 10 s, more than its total timeout of 2 s.
    limiter = RateLimiter.from_limits(1, DEFAULT_COST, 1, DEFAULT_COST)
    with serve_exchange_in_thread(key_type="ed25519") as local:
        options = local.client_options(httpx=flavour.family == "httpx")
        client: Any = flavour.cls(
            **options, rate_limit=limiter, retry=RetryPolicy(total_timeout=2.0)
        )

        async def call_close_call() -> object:
            await maybe(client.exchange.status())
            await maybe(client.aclose() if flavour.is_async else client.close())
            try:
                return await maybe(client.exchange.status())
            except KalshiError as exc:
                return exc

        if flavour.backend is None:
            outcome = run_without_loop(call_close_call())
        else:
            outcome = anyio.run(call_close_call, backend=flavour.backend)
    balance = limiter.bucket(Bucket.READ).available(time.monotonic())
    # The call used to reserve its tokens first, and then raise CallTimeout("... the rate
    # limiter asks for a 10.00s wait"), or sleep through a shorter wait, before it said the
    # client was closed; the 10 tokens were gone from a limiter other clients may share.
    assert isinstance(outcome, LocalProtocolError), repr(outcome)
    assert balance > -DEFAULT_COST / 2


@pytest.mark.flavours("httpx")
def test_httpx_a_connection_opening_during_close_is_closed(
    flavour: Flavour, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A network where connecting takes 0.2 s; the client is closed 0.05 s into its one call.
    real_async_connect, real_connect = anyio.connect_tcp, socket.create_connection

    async def slow_async_connect(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(0.2)
        return await real_async_connect(*args, **kwargs)

    def slow_connect(*args: Any, **kwargs: Any) -> socket.socket:
        time.sleep(0.2)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(anyio, "connect_tcp", slow_async_connect)
    monkeypatch.setattr(socket, "create_connection", slow_connect)
    outcome: list[object] = []
    with (
        serve_exchange_in_thread(key_type="ed25519") as local,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", ResourceWarning)
        client: Any = flavour.cls(**local.client_options(httpx=True))
        if flavour.backend is None:
            caller = threading.Thread(target=lambda: outcome.append(client.exchange.status()))
            caller.start()
            time.sleep(0.05)
            client.close()
            caller.join(10)
        else:

            async def call_and_close() -> None:
                async with anyio.create_task_group() as group:
                    group.start_soon(lambda: _append(outcome, client.exchange.status()))
                    await anyio.sleep(0.05)
                    await client.aclose()

            anyio.run(call_and_close, backend=flavour.backend)
        client = None  # the blocking client keeps nothing else alive
        open_after_the_call = sockets_to(local.server.port)
        gc.collect()
    freed_unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    # httpx lets the call through (docs/rest.md), on the new connection.
    assert [type(each).__name__ for each in outcome] == ["ExchangeStatus"]
    # httpcore's close skips a connection still connecting, and drops it from the pool; the
    # call then goes on over it. That connection used to stay open (asyncio) until the garbage
    # collector found it, or be freed unclosed (blocking); the client now closes it.
    assert (open_after_the_call, freed_unclosed) == (0, [])


async def _append(outcome: list[object], call: Awaitable[object]) -> None:
    outcome.append(await call)


def test_calls_that_give_up_on_the_rate_limiter_spend_nothing() -> None:
    # A bucket of one call, refilled in 1 s; calls may wait 0.5 s at most.
    limiter = RateLimiter.from_limits(10, DEFAULT_COST, 10, DEFAULT_COST)
    quick = RetryPolicy(max_attempts=1, total_timeout=0.5)
    with (
        serve_exchange_in_thread(key_type="ed25519") as local,
        kalshi_sync.KalshiClient(**local.client_options(), rate_limit=limiter, retry=quick) as client,
    ):
        client.exchange.status()  # empties the bucket
        for _ in range(50):
            with contextlib.suppress(CallTimeout):  # the limiter asks for a longer wait
                client.exchange.status()
        time.sleep(1.2)  # one request went out: the bucket is full again
        sent = local.app.requests
        try:
            outcome: object = client.exchange.status()
        except CallTimeout as exc:
            outcome = exc
    assert sent == 1
    # Each call that gave up used to keep its 10 tokens, 500 tokens of debt for requests never
    # sent: this call then failed too, with CallTimeout("... asks for a 49.8s wait").
    assert isinstance(outcome, ExchangeStatus), repr(outcome)
