"""Soak the REST clients: one shared client, many callers, a faulty local exchange.

For each client flavour in turn, rounds run until the flavour's share of ``--seconds`` is spent.
Each round draws a `Plan` from the seed: the faults of a fresh local exchange
(`kalshi_proto.sim.rest.Faults`: latency, responses cut off half-way, 5xx bursts, 429s with and
without ``Retry-After``), TLS or not, the server's idle timeout, and the client's options
(attempt timeout, retry policy and total timeout, connection limit, keep-alive expiry,
client-side rate limiting). Threads (blocking clients) or tasks (async clients) then share one
client for a random mix of GETs
(``exchange.status``, ``markets.list``, ``markets.list_all`` with small pages,
``portfolio.balance``, ``orders.list``) and ``orders.create_v2`` calls, each order with a
``client_order_id`` of its own. On an async client some calls are cancelled from outside after a
random short delay, and some async clients first serve a few calls in an event loop of their
own that ends before the round's (a second ``asyncio.run``). Then the faults stop until a call
succeeds, start again, and the client is
closed while calls are in flight (on an async client, half the time from a cancelled scope); the
callers go on a moment longer, then stop. Some calls go through a ``client.with_options(...)``
view with tighter timeouts, over the same connections; in some rounds every connection is a
tunnel through a ``CONNECT`` proxy (``http://`` or ``https://``) or a SOCKS5 one on loopback
(``proxy=``).

What each round checks (a failure is a violation, and any violation makes the exit status 1):

a. every call returned its model, raised a `KalshiError`, or was cancelled by the soak; anything
   else that escapes the SDK is a violation, printed with its traceback. Stricter than that: the
   answer fits the request (the page size asked for, the order's own client_order_id), so an
   answer meant for another request shows; and the only errors are those the exchange can
   cause (its injected 429s and 5xx, an order it refuses with 400) or the client's own
   (`TransportError`, `LocalProtocolError` once closed);
b. no ``client_order_id`` reached the exchange twice (a POST is never resent, and the ids are
   unique, so a `ConflictError` is one too); an order whose call returned is on the exchange,
   one refused with an `ApiError` is not, and one whose call raised `LocalProtocolError` (the
   client was closed) never went out;
c. once the client is closed and garbage collected, no socket of this process is connected to
   the exchange; nor did the collector, or a socket freed unclosed, have to close one (a leak
   with a ResourceWarning, which the check after the collection no longer sees). The one
   exception is documented behaviour: the idle connections an earlier asyncio loop left in an
   async client are shut down, and freed by the collector, when the client is used on the
   round's loop;
d. no call took longer than its total timeout, plus what the blocking httpx client may add
   (docs/rest.md: httpx bounds each connect, write and read, not the attempt), plus a generous
   slack; a cancelled call no longer than its cancel delay plus the slack; no caller is still
   running long after the stop; and once the faults stop, a call succeeds within a few total
   timeouts (a client the chaos left unusable, with a pool that lost track of its connections
   say, fails this), when each attempt may take 0.3 s (`Plan.live`);
e. a call started after ``close()`` returned raises `LocalProtocolError`.

Known bugs (`KNOWN_BUGS`, none now) are counted, not reported as violations, so the rest still
checks.

Run ``python fuzz/soak_rest.py --seconds 60 [--seed N] [--flavour NAME]``. The exchange
listens on 127.0.0.1 and proxies named in the environment are ignored, so nothing leaves the
machine. The same runs are repeatable from the seed as far as thread scheduling allows: the
plans, each caller's calls and the exchange's fault decisions come from it. The short version is
``tests/adapters/test_soak.py``. ``--plan PLAN_SEED --rounds N --flavour NAME`` runs one round's
plan (``--verbose`` prints each round's seed) N times, to reproduce what a long run found.
``--proxy KIND`` runs only rounds through that kind of proxy (`Plan.proxy_kind`).
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import json
import logging
import os
import random
import ssl
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import anyio.from_thread
import httpx
import trustme

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_anyio.serve import serve_rest
from kalshi_anyio.sim import TRADER_KEY_ID, LocalExchange, build_app
from kalshi_httpx._goaway import pools_of
from kalshi_proto import errors
from kalshi_proto.errors import (
    ApiError,
    CallTimeout,
    ConflictError,
    KalshiError,
    LocalProtocolError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from kalshi_proto.rest.call import HttpRequest, Page
from kalshi_proto.rest.generated.models import (
    CreateOrderV2Request,
    CreateOrderV2Response,
    ExchangeStatus,
    GetBalanceResponse,
    Market,
    Order,
)
from kalshi_proto.rest.ratelimit import RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.app import Reply
from kalshi_proto.sim.rest import ExchangeApp, Faults
from tests.helpers.proxy import TunnelProxy, tunnel_proxy
from tests.helpers.sockets import sockets_to
from tests.helpers.socks import socks_proxy

__all__ = [
    "FLAVOURS",
    "Flavour",
    "Plan",
    "Report",
    "main",
    "soak_flavour",
    "soak_round",
    "sockets_to",
]

T = TypeVar("T")

#: Seconds a call may run past its bound before it counts as hung: generous, for a busy machine.
SLACK = 10.0
#: The order endpoint, after the base URL's path.
_ORDERS_PATH = "/portfolio/events/orders"
#: Known bugs the soak tolerates, so that it goes on checking everything else: none now. (The
#: last, sockets the async httpx client left to the garbage collector, were the idle connections
#: of a round's earlier event loop, which the client leaves as documented; they are counted as
#: such now, with kalshi_anyio's.)
KNOWN_BUGS: tuple[str, ...] = ()
#: What the calls are, and how often each is made (orders: see `Plan.order_share`).
_GETS = ("status", "markets", "markets_all", "balance", "orders")


@dataclass(frozen=True)
class Flavour:
    """One client flavour: which class, and the anyio backend it runs on (None: blocking)."""

    name: str
    httpx: bool
    backend: str | None

    @property
    def is_async(self) -> bool:
        return self.backend is not None


#: The six flavours, named as in tests/adapters/conftest.py.
FLAVOURS = (
    Flavour("kalshi_sync", httpx=False, backend=None),
    Flavour("httpx_sync", httpx=True, backend=None),
    Flavour("kalshi_anyio-asyncio", httpx=False, backend="asyncio"),
    Flavour("kalshi_anyio-trio", httpx=False, backend="trio"),
    Flavour("httpx_async-asyncio", httpx=True, backend="asyncio"),
    Flavour("httpx_async-trio", httpx=True, backend="trio"),
)
FLAVOURS_BY_NAME = {flavour.name: flavour for flavour in FLAVOURS}


@dataclass(frozen=True)
class Plan:
    """Everything a round does, drawn from one seed (`draw`)."""

    seed: int
    seconds: float  #: how long the callers run with faults (then see `Round.liveness`)
    before_close: float  #: how long they run with faults again before the client is closed
    after_close: float  #: how long they go on after that
    faults: Faults
    tls: bool
    idle_timeout: float | None  #: the server's, for idle keep-alive connections
    timeout: float  #: the client's attempt timeout
    retry: RetryPolicy
    max_connections: int  #: 0 for no limit
    keepalive_expiry: float | None
    #: Client-side rate limiting, both buckets alike: (tokens a second, capacity), or None.
    rate_limit: tuple[float, float] | None
    callers: int  #: threads or tasks sharing the client
    order_share: float  #: the share of calls that create an order
    cancel_share: float  #: async: the share of calls cancelled from outside
    close_cancelled: bool  #: async: close the client from a cancelled scope
    #: async: the client first makes a few calls in an event loop of its own, ended before
    #: the round's, as in a program that calls ``asyncio.run`` for each task
    earlier_loop: bool = False
    #: the share of calls made through a ``client.with_options(...)`` view with half the
    #: attempt timeout and half the total timeout (so every bound still holds)
    view_share: float = 0.0
    #: every connection goes through a CONNECT tunnel of a proxy on loopback
    #: (`tests.helpers.proxy.TunnelProxy`), with ``proxy=``
    proxy: bool = False
    #: with ``proxy``, the proxy is a SOCKS5 one (`tests.helpers.socks.SocksProxy`)
    socks: bool = False
    #: with ``proxy`` and not ``socks``, the proxy is spoken to over TLS (``https://``): the
    #: exchange's TLS session, if it has one, runs inside the proxy's
    proxy_tls: bool = False

    @classmethod
    def draw(cls, seed: int, seconds: float, *, is_async: bool) -> Plan:
        rng = random.Random(seed)
        faults = Faults(
            latency=rng.choice([0.0, 0.002, 0.01, 0.03, 0.05]),
            drop_share=rng.choice([0.0, 0.0, 0.02, 0.1, 0.3]),
            error_share=rng.choice([0.0, 0.02, 0.1]),
            error_burst=rng.randint(1, 4),
            error_status=rng.choice([500, 502, 503, 504]),
            rate_limit_share=rng.choice([0.0, 0.05, 0.2]),
            retry_after=rng.choice([None, None, 0.0, 0.01, 0.05, 1.0]),
        )
        retry = RetryPolicy(
            max_attempts=rng.randint(1, 5),
            base_delay=rng.choice([0.001, 0.01, 0.05]),
            retry_max_delay=0.2,
            retry_after_cap=rng.choice([0.05, 0.5, 2.0]),
            total_timeout=rng.choice([0.1, 0.3, 1.0, 3.0, 3.0]),
        )
        return cls(
            seed=seed,
            seconds=seconds,
            before_close=rng.uniform(0.0, 0.3),
            after_close=rng.uniform(0.0, 0.1),
            faults=faults,
            tls=rng.random() < 0.5,
            idle_timeout=rng.choice([None, 0.05, 0.3, 60.0]),
            timeout=rng.choice([0.02, 0.1, 0.3, 1.0, 3.0, 3.0]),
            retry=retry,
            max_connections=rng.choice([0, 1, 2, 4, 8]),
            keepalive_expiry=rng.choice([None, 0.01, 0.1, 5.0]),
            rate_limit=rng.choice([None, None, None, None, (500.0, 50.0), (2000.0, 100.0)]),
            callers=rng.randint(2, 32) if is_async else rng.randint(2, 8),
            order_share=rng.choice([0.1, 0.3, 0.5]),
            cancel_share=rng.choice([0.0, 0.1, 0.3]) if is_async else 0.0,
            close_cancelled=is_async and rng.random() < 0.5,
            earlier_loop=is_async and rng.random() < 0.3,
            view_share=rng.choice([0.0, 0.2, 0.5]),
            proxy=rng.random() < 0.3,
            socks=rng.random() < 0.5,
            proxy_tls=rng.random() < 0.5,
        )

    def view_options(self) -> dict[str, Any]:
        """The ``with_options`` arguments of a view: each setting no looser than the client's."""
        total = self.retry.total_timeout
        assert total is not None
        return {
            "timeout": self.timeout / 2,
            "retry": RetryPolicy(
                max_attempts=max(1, self.retry.max_attempts - 1),
                base_delay=self.retry.base_delay,
                retry_max_delay=self.retry.retry_max_delay,
                retry_after_cap=self.retry.retry_after_cap,
                total_timeout=total / 2,
            ),
        }

    def call_bound(self) -> float:
        """The longest one call (one page of a walk) may take before the slack."""
        # Every flavour holds each attempt to its deadline (the blocking httpx client, each
        # connect, read and write of its pools: kalshi_httpx._deadline).
        total = self.retry.total_timeout
        assert total is not None
        return total

    def proxy_kind(self, flavour: Flavour) -> str | None:
        """The proxy a round of this plan on ``flavour`` goes through: ``"socks5"``,
        ``"https"``, ``"http"`` or None. httpx sends a plain-http request to an HTTP proxy as it
        is, to be forwarded, rather than through a tunnel, and the test proxy tunnels only: no
        HTTP proxy for httpx against a plain exchange. Every client tunnels through SOCKS5."""
        if not self.proxy:
            return None
        if self.socks:
            return "socks5"
        if flavour.httpx and not self.tls:
            return None
        return "https" if self.proxy_tls else "http"

    @property
    def live(self) -> bool:
        """Whether a call must succeed once the faults stop (invariant d): each attempt, bound by
        ``timeout`` and the whole call's ``total_timeout``, has at least 0.3 s. A shorter one
        can fail every time without a fault of the client's: a new connection through an
        https:// proxy costs this process about 8 ms of CPU (the exchange and the proxy run
        here too), so 20 or more callers connecting at once need more than 0.1 s each, and
        each connect cut short starts again (plan 1745488173, httpx_async-trio: no call
        succeeded with ``total_timeout`` 0.1 s; with 0.3 s, 130 to 160 did)."""
        return min(self.timeout, self.call_bound()) >= 0.3


@dataclass
class Report:
    """What the rounds of one flavour did, and what went wrong."""

    flavour: str
    rounds: int = 0
    tunnelled: int = 0  #: rounds whose connections went through a proxy
    socks: int = 0  #: of those, the rounds whose proxy was a SOCKS5 one
    tls_proxies: int = 0  #: and those whose proxy was an https:// one
    calls: Counter[str] = field(default_factory=Counter)  #: by operation
    outcomes: Counter[str] = field(default_factory=Counter)  #: by result or exception type
    requests: int = 0  #: requests the exchange answered
    orders_sent: int = 0  #: client_order_ids that reached the exchange
    orders_placed: int = 0  #: orders on the exchange
    left_to_gc: int = 0  #: client sockets the garbage collector or a finalizer closed
    #: Of those, connections kalshi_anyio left behind on an earlier asyncio loop: shut down and
    #: left to the collector, as documented (docs/rest.md), not a leak.
    earlier_loop_to_gc: int = 0
    server_errors: Counter[str] = field(default_factory=Counter)  #: the exchange's logged failures
    known_bugs: Counter[str] = field(default_factory=Counter)  #: tolerated, see KNOWN_BUGS
    violations: Counter[str] = field(default_factory=Counter)  #: by one-line summary
    examples: dict[str, str] = field(default_factory=dict)  #: summary -> first detail

    def violate(self, summary: str, detail: str = "") -> None:
        self.violations[summary] += 1
        self.examples.setdefault(summary, detail)

    def text(self) -> str:
        """The figures, and each kind of violation with its first example."""
        lines = [
            f"{self.flavour}: {self.rounds} rounds ({self.tunnelled} through a proxy, "
            f"{self.socks} of them SOCKS5, {self.tls_proxies} HTTPS), "
            f"{self.calls.total()} calls, "
            f"{self.requests} requests reached the exchange, {self.orders_sent} orders did, "
            f"{self.orders_placed} placed",
            "  calls:    " + _figures(self.calls),
            "  outcomes: " + _figures(self.outcomes),
            f"  sockets left to the garbage collector: {self.left_to_gc}"
            + (
                f" ({self.earlier_loop_to_gc} of an earlier event loop, as documented)"
                if self.earlier_loop_to_gc
                else ""
            ),
            "  failures the exchange's server logged: " + _figures(self.server_errors),
        ]
        for bug, count in self.known_bugs.most_common():
            lines.append(f"  known bug x{count}: {bug}")
        if not self.violations:
            lines.append("  violations: none")
        for summary, count in self.violations.most_common():
            lines.append(f"  VIOLATION x{count}: {summary}")
            detail = self.examples[summary]
            if detail:
                lines.extend("    " + line for line in detail.rstrip().splitlines())
        return "\n".join(lines)


def _figures(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.most_common()) or "none"


# ---- the exchange --------------------------------------------------------------------------


class RecordingApp:
    """The local exchange's app, counting the order requests that reach it by client_order_id.

    It runs on the server's thread; read ``order_posts`` once the server has stopped.
    """

    def __init__(self, app: ExchangeApp) -> None:
        self.app = app
        self.order_posts: Counter[str] = Counter()
        self._orders_target = app.prefix + _ORDERS_PATH

    def handle(self, request: HttpRequest, *, now: float, wall_ms: int) -> Reply:
        if request.method == "POST" and request.target == self._orders_target:
            try:
                client_order_id = str(json.loads(request.body)["client_order_id"])
            except (ValueError, KeyError, TypeError):
                client_order_id = "<unreadable body>"
            self.order_posts[client_order_id] += 1
        return self.app.handle(request, now=now, wall_ms=wall_ms)


@contextmanager
def local_exchange(plan: Plan) -> Iterator[tuple[LocalExchange, RecordingApp]]:
    """The local exchange with the plan's faults, served on 127.0.0.1 from a thread."""
    app, private_key = build_app(
        faults=plan.faults, seed=plan.seed, balance=Decimal(1_000_000), key_type="ed25519"
    )
    recorder = RecordingApp(app)
    with (
        anyio.from_thread.start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(
            serve_rest(recorder, host="127.0.0.1", tls=plan.tls, idle_timeout=plan.idle_timeout)
        ) as server,
    ):
        yield LocalExchange(server, app, TRADER_KEY_ID, private_key), recorder




# ---- one round -----------------------------------------------------------------------------


class _NeverRaised(BaseException):
    pass


class Round:
    """The state the callers of one round share."""

    def __init__(
        self,
        flavour: Flavour,
        plan: Plan,
        recorder: RecordingApp,
        tickers: list[str],
        slack: float,
    ) -> None:
        self.flavour = flavour
        self.plan = plan
        self.recorder = recorder
        self.client: Any = None  #: built on the thread or in the event loop that uses it
        self.proxy: str | None = None  #: the URL of the round's proxy, if it has one
        self.tickers = tickers
        self.slack = slack
        self.report = Report(flavour.name)
        self.stopping = False
        self.closed_at = float("inf")  #: when close() returned (monotonic)
        self.orders: dict[str, str] = {}  #: client_order_id -> the call's outcome
        self.bound = plan.call_bound()
        #: How long the faults stay off while the soak waits for a call to succeed (d); only
        #: an attempt long enough for a busy machine is held to it (`Plan.live`).
        self.liveness = 3 * self.bound + slack if plan.live else 0.2
        self.calm_since = float("inf")  #: when the faults were turned off
        self.calm_ok = threading.Event()  #: set when a call started since then succeeded
        self.scope: anyio.CancelScope | None = None  #: async: the round's, cancelled on a hang
        #: The event loop's cancellation exception (async), or one nothing raises (blocking).
        self.cancelled: type[BaseException] = _NeverRaised
        #: kalshi_anyio: the idle connections an earlier event loop left in the pool, which the
        #: client shuts down and leaves to the garbage collector in the round's loop.
        self.abandoned = 0
        self._lock = threading.Lock()

    def calm_down(self) -> None:
        """Turn the exchange's faults off, to see calls succeed again."""
        self.recorder.app.faults = Faults()
        self.calm_since = time.monotonic()

    def stir_up(self) -> None:
        """Turn the faults back on, after checking that a call succeeded meanwhile."""
        self.recorder.app.faults = self.plan.faults
        if not self.calm_ok.is_set() and self.plan.live:
            self.violate(f"no call succeeded in {self.liveness:.0f}s once the faults stopped")

    def record(self, operation: str, outcome: str, client_order_id: str | None) -> None:
        with self._lock:
            self.report.calls[operation] += 1
            self.report.outcomes[outcome] += 1
            if client_order_id is not None:
                self.orders[client_order_id] = outcome

    def violate(self, summary: str, detail: str = "") -> None:
        with self._lock:
            self.report.violate(summary, detail)

    async def pause(self, seconds: float) -> None:
        if self.flavour.is_async:
            await anyio.sleep(seconds)
        else:
            time.sleep(seconds)


async def maybe(value: Awaitable[T] | T) -> T:
    """Await ``value`` on an async client; a blocking client's value is returned as it is."""
    if isinstance(value, Awaitable):
        return cast(T, await value)
    return value


async def _walk(items: Iterator[Market] | AsyncIterator[Market]) -> list[Market]:
    # Every item of a list_all walk; the walk is closed however this ends.
    if isinstance(items, AsyncIterator):
        try:
            return [item async for item in items]
        finally:
            await cast(Any, items).aclose()
    try:
        return list(items)
    finally:
        cast(Any, items).close()


def _order(rng: random.Random, ticker: str, client_order_id: str) -> CreateOrderV2Request:
    # A cent price fits every market's tick (0.01 or 0.001); most rest, some trade.
    return CreateOrderV2Request(
        ticker=ticker,
        client_order_id=client_order_id,
        side=rng.choice(["bid", "ask"]),
        count=Decimal(rng.randint(1, 3)),
        price=Decimal(rng.randint(1, 99)) / 100,
        time_in_force=rng.choice(["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]),
        self_trade_prevention_type=rng.choice(["maker", "taker_at_cross"]),
    )


class WrongAnswer(Exception):
    """A call returned, but not what was asked for (an answer to another request, say)."""


def _expect(condition: bool, what: object) -> None:
    if not condition:
        raise WrongAnswer(repr(what)[:300])


async def _send(state: Round, operation: str, rng: random.Random, order: Any) -> None:
    # Make one call and check its answer: the model asked for, and content that fits the
    # request (an answer to another request would not), or WrongAnswer.
    client = state.client
    if rng.random() < state.plan.view_share:
        client = client.with_options(**state.plan.view_options())
    if operation == "status":
        status = await maybe(client.exchange.status())
        _expect(isinstance(status, ExchangeStatus), status)
    elif operation == "markets":
        limit = rng.randint(1, 5)
        page = await maybe(client.markets.list(limit=limit))
        _expect(isinstance(page, Page) and len(page) == limit, page)
        _expect(all(isinstance(market, Market) for market in page), page)
    elif operation == "markets_all":
        limit, pages = rng.randint(2, 5), rng.randint(1, 3)
        markets = await _walk(client.markets.list_all(limit=limit, max_pages=pages))
        tickers = [market.ticker for market in markets if isinstance(market, Market)]
        expected = min(len(state.tickers), limit * pages)
        _expect(len(tickers) == len(set(tickers)) == len(markets) == expected, tickers)
    elif operation == "balance":
        balance = await maybe(client.portfolio.balance())
        _expect(isinstance(balance, GetBalanceResponse), balance)
    elif operation == "orders":
        limit = rng.randint(1, 10)
        page = await maybe(client.orders.list(limit=limit))
        _expect(isinstance(page, Page) and len(page) <= limit, page)
        _expect(all(isinstance(placed, Order) for placed in page), page)
    else:
        placed = await maybe(client.orders.create_v2(order))
        _expect(isinstance(placed, CreateOrderV2Response), placed)
        _expect(placed.client_order_id == order.client_order_id, placed)


def _unexpected(operation: str, exc: KalshiError) -> str | None:
    # Why a correct client should not get ``exc`` from the local exchange, or None when it may:
    # the injected 429s and 5xx, an order the exchange refuses (a market not open), a closed
    # client, a transport failure.
    if isinstance(exc, ConflictError):
        return "ConflictError (a client_order_id sent twice)"
    if isinstance(exc, RateLimitError | ServerError):
        return None if exc.code in (None, "service_unavailable") else f"{exc!r}"
    if isinstance(exc, ValidationError) and operation == "create":
        return None
    if isinstance(exc, TransportError | LocalProtocolError):
        return None
    return f"{type(exc).__name__}"


async def _call(state: Round, rng: random.Random, caller: int, number: int) -> None:
    # One call, its outcome recorded and checked against invariants a, d and e.
    plan = state.plan
    order = None
    if rng.random() < plan.order_share:
        operation = "create"
        order = _order(rng, rng.choice(state.tickers), f"soak-{plan.seed}-{caller}-{number}")
    else:
        operation = rng.choice(_GETS)
    pages = 3 if operation == "markets_all" else 1
    bound = state.bound * pages
    cancel_after = None
    if rng.random() < plan.cancel_share:
        cancel_after = rng.choice([0.0, 0.001, rng.uniform(0.0, 0.1)])
        bound = min(bound, cancel_after)
    started = time.monotonic()
    outcome = "ok"
    scope = None
    try:
        if cancel_after is None:
            await _send(state, operation, rng, order)
        else:
            with anyio.move_on_after(cancel_after) as scope:
                await _send(state, operation, rng, order)
            if scope.cancelled_caught:
                outcome = "cancelled"
    except KalshiError as exc:
        outcome = type(exc).__name__
        if isinstance(exc, CallTimeout) and exc.__cause__ is None and order is not None:
            outcome = "CallTimeout (nothing sent)"
        if scope is not None and scope.cancel_called:
            outcome += " (after the soak cancelled)"
        why = _unexpected(operation, exc)
        if why is not None:
            state.violate(f"{operation}: an error a correct client cannot get: {why}", _format(exc))
    except state.cancelled:
        if state.scope is None or not state.scope.cancel_called:
            state.violate(f"{operation}: a cancellation nobody asked for escaped the SDK")
        raise
    except WrongAnswer as exc:
        outcome = "wrong answer"
        state.violate(f"{operation}: the answer does not fit the request", str(exc))
    except Exception as exc:
        outcome = "violation"
        state.violate(f"{operation}: {type(exc).__name__} escaped the SDK", _format(exc))
    elapsed = time.monotonic() - started
    if elapsed > bound + state.slack:
        state.violate(
            f"{operation}: a call took longer than its bound plus the slack",
            f"{elapsed:.2f}s, bound {bound:.2f}s ({outcome})",
        )
    if outcome == "ok" and started >= state.calm_since:
        state.calm_ok.set()
    if started > state.closed_at and not outcome.startswith("LocalProtocolError"):
        state.violate(f"{operation}: a call started after close() gave {outcome}")
    state.record(operation, outcome, order.client_order_id if order is not None else None)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def caller(state: Round, index: int) -> None:
    """One thread's or task's calls until the round stops."""
    rng = random.Random(f"{state.plan.seed}/{index}")
    number = 0
    while not state.stopping:
        number += 1
        await _call(state, rng, index, number)
        # Calls after the close fail at once: slower, so they do not crowd out the figures.
        closed = time.monotonic() > state.closed_at
        await state.pause(rng.uniform(0.005, 0.02) if closed else rng.uniform(0.0, 0.005))


def run_blocking(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a caller of a blocking client: a coroutine that never suspends, with no event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise AssertionError("a blocking client's caller suspended")


def build_client(
    flavour: Flavour, local: LocalExchange, plan: Plan, proxy: str | None = None
) -> Any:
    """A client of ``flavour`` for ``local``, with the plan's options (through ``proxy``, if
    given)."""
    options: dict[str, Any] = {
        "retry": plan.retry,
        "timeout": plan.timeout,
        "rng": random.Random(plan.seed).random,
        "proxy": proxy,
    }
    if proxy is not None and proxy.startswith("https://"):
        options["proxy_ssl_context"] = _proxy_ca().client_context()
    if plan.rate_limit is not None:
        options["rate_limit"] = RateLimiter.from_limits(*plan.rate_limit, *plan.rate_limit)
    if flavour.httpx:
        options["limits"] = httpx.Limits(
            max_connections=plan.max_connections or None,
            max_keepalive_connections=plan.max_connections or None,
            keepalive_expiry=plan.keepalive_expiry,
        )
        cls: Any = kalshi_httpx.AsyncKalshiClient if flavour.is_async else kalshi_httpx.KalshiClient
        return cls(**local.client_options(httpx=True), **options)
    options["max_connections"] = plan.max_connections
    options["keepalive_expiry"] = plan.keepalive_expiry
    cls = kalshi_anyio.AsyncKalshiClient if flavour.is_async else kalshi_sync.KalshiClient
    return cls(**local.client_options(), **options)


def _drive_threads(state: Round, watchdog: float) -> None:
    plan = state.plan
    threads = [
        threading.Thread(target=run_blocking, args=(caller(state, index),), daemon=True)
        for index in range(plan.callers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(plan.seconds)
    state.calm_down()
    state.calm_ok.wait(state.liveness)
    state.stir_up()
    time.sleep(plan.before_close)
    state.client.close()
    state.closed_at = time.monotonic()
    time.sleep(plan.after_close)
    state.stopping = True
    give_up = time.monotonic() + watchdog
    for thread in threads:
        thread.join(max(0.0, give_up - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        state.violate(f"{stuck} thread(s) still in a call {watchdog:.0f}s after the stop")


async def _earlier_loop(state: Round) -> None:
    # A few calls, one after another, in an event loop that ends before the round's.
    state.cancelled = anyio.get_cancelled_exc_class()
    rng = random.Random(f"{state.plan.seed}/earlier")
    for number in range(1, 6):
        await _call(state, rng, -1, number)


async def _drive_tasks(local: LocalExchange, state: Round, watchdog: float) -> None:
    plan = state.plan
    if state.client is None:
        state.client = build_client(state.flavour, local, plan, state.proxy)
    state.cancelled = anyio.get_cancelled_exc_class()
    length = plan.seconds + state.liveness + plan.before_close + plan.after_close + watchdog
    with anyio.move_on_after(length) as round_scope:
        state.scope = round_scope
        async with anyio.create_task_group() as group:
            for index in range(plan.callers):
                group.start_soon(caller, state, index)
            await anyio.sleep(plan.seconds)
            state.calm_down()
            with anyio.move_on_after(state.liveness):
                while not state.calm_ok.is_set():
                    await anyio.sleep(0.005)
            state.stir_up()
            await anyio.sleep(plan.before_close)
            if plan.close_cancelled:
                with anyio.CancelScope() as cancelled:
                    cancelled.cancel()
                    await state.client.aclose()
            else:
                await state.client.aclose()
            state.closed_at = time.monotonic()
            await anyio.sleep(plan.after_close)
            state.stopping = True
    if round_scope.cancelled_caught:
        state.violate(f"task(s) still in a call {watchdog:.0f}s after the stop")
        with anyio.CancelScope(shield=True):
            await state.client.aclose()


def soak_round(flavour: Flavour, plan: Plan, *, slack: float = SLACK) -> Report:
    """Run one round of ``plan`` on a client of ``flavour``; its figures and violations."""
    with (
        warnings.catch_warnings(record=True) as caught,
        _ServerErrors() as server_errors,
        local_exchange(plan) as (local, recorder),
        _proxy_for(plan, flavour) as tunnels,
    ):
        # Every thread's warnings land in ``caught``: a socket freed unclosed says so here.
        warnings.simplefilter("always", ResourceWarning)
        # The client's sockets go to the proxy, when there is one.
        port = local.server.port if tunnels is None else tunnels.port
        tickers = sorted(local.exchange.markets)  # read before any request: no race
        state = Round(flavour, plan, recorder, tickers, slack)
        state.proxy = None if tunnels is None else tunnels.url()
        watchdog = plan.call_bound() * 3 + slack
        if flavour.backend is not None:
            if plan.earlier_loop:
                state.client = build_client(flavour, local, plan, state.proxy)
                anyio.run(_earlier_loop, state, backend=flavour.backend)
                if flavour.backend == "asyncio":
                    state.abandoned = _idle_connections(state.client)
            anyio.run(_drive_tasks, local, state, watchdog, backend=flavour.backend)
        else:
            state.client = build_client(flavour, local, plan, state.proxy)
            _drive_threads(state, watchdog)
        state.client = None
        freed_unclosed = sum(_unclosed_socket_to(port, warning) for warning in caught)
        before_gc = sockets_to(port)
        gc.collect()
        left_open = sockets_to(port)
    _check_sockets(state, before_gc - left_open + freed_unclosed, left_open)
    _check_orders(state, local.exchange.orders.values(), recorder.order_posts)
    report = state.report
    report.rounds = 1
    report.tunnelled = int(state.proxy is not None)
    report.socks = int(state.proxy is not None and state.proxy.startswith("socks5"))
    report.tls_proxies = int(state.proxy is not None and state.proxy.startswith("https://"))
    report.requests = local.app.requests
    report.server_errors = server_errors.counts
    return report


def _idle_connections(client: object) -> int:
    # The idle connections of an async client, which it leaves when it goes on to another
    # asyncio event loop (docs/rest.md, "Sharing a client").
    if isinstance(client, kalshi_anyio.AsyncKalshiClient):
        return len(client._idle)
    assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
    pool = client._current()
    assert pool is not None
    return sum(each.is_idle() for held in pools_of(pool) for each in held.connections)


@contextmanager
def _proxy_for(plan: Plan, flavour: Flavour) -> Iterator[TunnelProxy | None]:
    # The plan's proxy on loopback, stopped (its sockets closed) after the round; or none.
    kind = plan.proxy_kind(flavour)
    if kind is None:
        yield None
        return
    if kind == "socks5":
        with socks_proxy() as socks:
            yield socks
        return
    with tunnel_proxy(tls=_proxy_ca().server_context() if kind == "https" else None) as tunnels:
        yield tunnels


class _ProxyCA:
    # The test CA of the https:// proxies: their certificate, and a client context trusting it.

    def __init__(self) -> None:
        self._ca = trustme.CA()
        self._leaf = self._ca.issue_cert("127.0.0.1")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


@functools.cache
def _proxy_ca() -> _ProxyCA:
    return _ProxyCA()


def _unclosed_socket_to(port: int, warning: warnings.WarningMessage) -> bool:
    # A client socket to the exchange that was freed without being closed.
    text = str(warning.message)
    return warning.category is ResourceWarning and f"raddr=('127.0.0.1', {port})" in text


def _check_sockets(state: Round, left_to_gc: int, left_open: int) -> None:
    # Invariant c. A socket the client dropped without closing it is closed by the garbage
    # collector (an asyncio transport, a socket in a reference cycle) or as it is freed, with a
    # ResourceWarning: a leak too, though the check after the collection no longer sees it.
    state.report.left_to_gc = left_to_gc
    expected = min(left_to_gc, state.abandoned)
    state.report.earlier_loop_to_gc = expected
    left_to_gc -= expected
    if left_open:
        state.violate(f"{left_open} socket(s) to the exchange still open after close and gc")
    if left_to_gc:
        state.violate(f"{left_to_gc} socket(s) to the exchange left to the garbage collector")


class _ServerErrors(logging.Handler):
    """Counts the failures the local exchange's server logs (by exception type), while in use."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.counts: Counter[str] = Counter()
        self._logger = logging.getLogger("kalshi_anyio.serve")

    def emit(self, record: logging.LogRecord) -> None:
        failure = record.exc_info[1] if record.exc_info else None
        self.counts[type(failure).__name__ if failure else record.getMessage()[:60]] += 1

    def __enter__(self) -> _ServerErrors:
        self._logger.addHandler(self)
        self._propagate, self._logger.propagate = self._logger.propagate, False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate


def _check_orders(state: Round, placed_orders: Any, order_posts: Counter[str]) -> None:
    # Invariant b, once the server has stopped and its state can be read.
    placed = Counter(order.client_order_id for order in placed_orders)
    for client_order_id, count in order_posts.items():
        if count > 1:
            state.violate("an order reached the exchange more than once", client_order_id)
        if client_order_id not in state.orders:
            state.violate("an order the soak never made reached the exchange", client_order_id)
    for client_order_id, outcome in state.orders.items():
        on_exchange = placed[client_order_id]
        if outcome == "ok" and on_exchange != 1:
            state.violate("a placed order is not on the exchange", client_order_id)
        error = getattr(errors, outcome.split(" ")[0], None)
        if isinstance(error, type) and issubclass(error, ApiError) and on_exchange:
            state.violate(f"an order refused with {outcome} is on the exchange", client_order_id)
        nothing_sent = outcome.startswith(("LocalProtocolError", "CallTimeout (nothing sent)"))
        if nothing_sent and order_posts[client_order_id]:
            state.violate(f"an order that failed with {outcome} went out", client_order_id)
    state.report.orders_sent = len(order_posts)
    state.report.orders_placed = sum(placed[client_order_id] for client_order_id in state.orders)


# ---- many rounds ---------------------------------------------------------------------------


def soak_flavour(
    flavour: Flavour,
    seconds: float,
    seed: int,
    *,
    slack: float = SLACK,
    round_seconds: tuple[float, float] = (0.3, 3.0),
    log: Callable[[str], None] | None = None,
    proxy: str | None = None,
) -> Report:
    """Rounds on ``flavour`` until ``seconds`` are spent (one at least); the figures of all.

    Each round's plan is drawn from ``seed``, the flavour and the round's number, and its
    callers run for a random time within ``round_seconds`` (less if the budget runs out).
    ``log``, when given, gets each round's plan and figures. With ``proxy`` (a
    `Plan.proxy_kind`, or ``"none"``), only plans whose rounds go through that kind of proxy
    are run: the others are drawn again.
    """
    total = Report(flavour.name)
    spent = 0.0
    number = 0
    while number == 0 or spent < seconds:
        plan = _draw_plan(flavour, seed, number, proxy)
        length = random.Random(plan.seed).uniform(*round_seconds)
        length = max(round_seconds[0], min(length, seconds - spent))
        plan = replace(plan, seconds=length)
        started = time.monotonic()
        part = soak_round(flavour, plan, slack=slack)
        if log is not None:
            log(f"round {number}: {plan}\n{part.text()}")
        _merge(total, part)
        spent += time.monotonic() - started
        number += 1
    return total


def _draw_plan(flavour: Flavour, seed: int, number: int, proxy: str | None) -> Plan:
    # Round ``number``'s plan; with ``proxy``, the first of its draws that goes through that
    # kind of proxy (the first draw is the one a run without ``proxy`` makes).
    for attempt in itertools.count():
        name = f"{seed}/{flavour.name}/{number}" + (f"/{attempt}" if attempt else "")
        plan_seed = random.Random(name).randrange(2**32)
        plan = Plan.draw(plan_seed, 0.0, is_async=flavour.is_async)
        if proxy is None or (plan.proxy_kind(flavour) or "none") == proxy:
            return plan
    raise AssertionError("unreachable")


def _merge(total: Report, part: Report) -> None:
    total.rounds += part.rounds
    total.tunnelled += part.tunnelled
    total.socks += part.socks
    total.tls_proxies += part.tls_proxies
    total.calls += part.calls
    total.outcomes += part.outcomes
    total.requests += part.requests
    total.orders_sent += part.orders_sent
    total.orders_placed += part.orders_placed
    total.left_to_gc += part.left_to_gc
    total.earlier_loop_to_gc += part.earlier_loop_to_gc
    total.server_errors += part.server_errors
    total.known_bugs += part.known_bugs
    total.violations += part.violations
    for summary, detail in part.examples.items():
        total.examples.setdefault(summary, detail)


@contextmanager
def without_proxies() -> Iterator[None]:
    """Proxies named in the environment put aside, so the httpx clients go straight to
    loopback (and test the pool they build themselves)."""
    saved = {name: value for name, value in os.environ.items() if name.lower().endswith("_proxy")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (1 on any violation)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="the whole run, all flavours")
    parser.add_argument("--seed", type=int, default=None, help="random otherwise (printed)")
    parser.add_argument("--flavour", choices=sorted(FLAVOURS_BY_NAME), help="only this flavour")
    parser.add_argument("--slack", type=float, default=SLACK, help="seconds past a call's bound")
    parser.add_argument("--verbose", action="store_true", help="print each round's plan and figures")
    parser.add_argument(
        "--proxy",
        choices=["none", "http", "https", "socks5"],
        help="only rounds through this kind of proxy (or none)",
    )
    parser.add_argument(
        "--plan",
        type=int,
        metavar="PLAN_SEED",
        help="run only the round of this plan seed (--verbose prints each round's), --rounds times",
    )
    parser.add_argument("--rounds", type=int, default=10, help="with --plan: how many rounds")
    parser.add_argument(
        "--round-seconds", type=float, default=1.5, help="with --plan: each round's length"
    )
    args = parser.parse_args(argv)
    if args.plan is not None:
        return _replay(args)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    flavours = _flavours(args)
    print(f"soak_rest: seed {seed}, {args.seconds:g}s over {len(flavours)} flavour(s)", flush=True)
    failed = False
    with without_proxies():
        for flavour in flavours:
            report = soak_flavour(
                flavour,
                args.seconds / len(flavours),
                seed,
                slack=args.slack,
                log=print if args.verbose else None,
                proxy=args.proxy,
            )
            print(report.text(), flush=True)
            failed = failed or bool(report.violations)
    print(f"soak_rest: {'FAILED' if failed else 'passed'} (seed {seed})")
    return 1 if failed else 0


def _flavours(args: argparse.Namespace) -> list[Flavour]:
    # The flavour --flavour names, or all six.
    return [FLAVOURS_BY_NAME[args.flavour]] if args.flavour else list(FLAVOURS)


def _replay(args: argparse.Namespace) -> int:
    # One plan's round, again and again: a failure a long run found, reproduced.
    flavours = _flavours(args)
    failed = 0
    with without_proxies():
        for flavour in flavours:
            for number in range(args.rounds):
                plan = Plan.draw(args.plan, args.round_seconds, is_async=flavour.is_async)
                report = soak_round(flavour, plan, slack=args.slack)
                if report.violations:
                    failed += 1
                    print(f"{flavour.name} round {number}: {dict(report.violations)}", flush=True)
            print(f"{flavour.name}: plan {args.plan}, {args.rounds} rounds", flush=True)
    print(f"soak_rest: {failed} round(s) with violations (plan {args.plan})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
