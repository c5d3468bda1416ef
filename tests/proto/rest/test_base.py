"""`AsyncClientBase` and its generated blocking twin `ClientBase`, with an in-memory adapter.

The fake adapters answer from a script, record every request and sleep, and read a `FakeClock`.
Their ``_send`` and ``_sleep`` never suspend, so the async client's coroutines run to the end
with one ``send(None)``: no event loop is needed.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import pickle
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

import pytest

from kalshi_proto.auth import Credentials, Signer
from kalshi_proto.environments import DEMO_SERVERS, PRODUCTION_SERVERS
from kalshi_proto.errors import (
    AuthRequiredError,
    ConfigurationError,
    CredentialsError,
    LocalProtocolError,
    NotFoundError,
    ReadError,
    RemoteProtocolError,
    ServerError,
    TransportError,
)
from kalshi_proto.rest import _async_base, _sync_base
from kalshi_proto.rest._async_base import AsyncClientBase
from kalshi_proto.rest._sync_base import ClientBase
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.client import CallOptions, RestCore
from kalshi_proto.rest.executor import AsyncExecutor, SyncExecutor
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.hold import Hold
from kalshi_proto.rest.ratelimit import TIERS, Bucket, BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.clock import FakeClock
from tests.helpers.stepping import step

T = TypeVar("T")

KEY_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
ENV_NAMES = (
    "KALSHI_KEY_ID",
    "KALSHI_PRIVATE_KEY",
    "KALSHI_PRIVATE_KEY_PATH",
    "KALSHI_PRIVATE_KEY_PASSPHRASE",
)
Script = Iterable[HttpResponse | TransportError]


def json_response(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers=(), body=json.dumps(body).encode())


STATUS = json_response({"exchange_active": True, "trading_active": False})
LIMITS = json_response(
    {
        "usage_tier": "advanced",
        "read": {"refill_rate": 300, "bucket_capacity": 300},
        "write": {"refill_rate": 300, "bucket_capacity": 600},
        "grants": None,
    }
)


COSTS = json_response(
    {
        "default_cost": 10,
        "endpoint_costs": [
            {"method": "GET", "path": "/trade-api/v2/portfolio/orders/{order_id}", "cost": 3},
            {"method": "DELETE", "path": "/portfolio/events/orders/batched", "cost": 1},
            {"method": "GET", "path": "/trade-api/v2/something/new", "cost": 7},
        ],
    }
)


def program(n: int) -> dict[str, Any]:
    return {
        "id": f"ip-{n}",
        "market_id": "m-1",
        "market_ticker": "KXM-1",
        "incentive_type": "volume",
        "incentive_description": "d",
        "start_date": "2026-01-01T00:00:00Z",
        "end_date": "2026-02-01T00:00:00Z",
        "period_reward": n,
        "paid_out": False,
    }


def programs(ids: list[int], cursor: str | None) -> HttpResponse:
    return json_response({"incentive_programs": [program(n) for n in ids], "next_cursor": cursor})


class _Fake:
    """The state both fake adapters share: the script, the records, the clock."""

    def _setup(self, script: Script, clock: FakeClock | None) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.script: deque[HttpResponse | TransportError] = deque(script)
        self.sent: list[tuple[HttpRequest, float]] = []
        self.deadlines: list[float] = []
        self.slept: list[float] = []
        self.locks: list[CountingLock] = []
        self.closed = False
        # What happened to connection slots, in order: ("claim", deadline), ("send", slot held
        # or None), ("release", slot number); and the answers to the next claims.
        self.slot_events: list[tuple[str, object]] = []
        self.claims: deque[TransportError | None] = deque()
        self.claim_wait = 0.0  # how long each claim waits for a free connection

    def _take_slot(self, deadline: float, hold: Hold) -> None:
        self.slot_events.append(("claim", deadline))
        self.clock.advance(self.claim_wait)
        answer = self.claims.popleft() if self.claims else None
        if answer is not None:
            raise answer
        assert hold.owner is None, "a slot claimed into a hold that has one"
        hold.owner = FakeSlot(self, len(self.slot_events))
        hold.held = True

    def _answer(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        slot = hold.owner
        self.slot_events.append(("send", slot.number if isinstance(slot, FakeSlot) else None))
        hold.release()
        self.sent.append((request, timeout))
        self.deadlines.append(deadline)
        self.clock.advance(0.0625)  # each exchange takes a sixteenth of a second
        answer = self.script.popleft()
        if isinstance(answer, TransportError):
            raise answer
        return answer

    def _rest(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)

    def _read_clocks(self) -> tuple[float, int]:
        return self.clock.read()

    def _jitter(self) -> Callable[[], float]:
        # Full jitter off: the back-off is exactly half the exponential delay.
        return lambda: 0.0

    def _make_lock(self) -> CountingLock:
        lock = CountingLock()
        self.locks.append(lock)
        return lock

    def _default_logger(self) -> logging.Logger:
        return logging.getLogger("tests.fake_client")


class FakeSlot:
    """The owner of one connection slot of the fakes; fails if it is given back twice."""

    def __init__(self, owner: _Fake, number: int) -> None:
        self.owner = owner
        self.number = number
        self.released = False

    def release(self, hold: Hold | None = None) -> None:
        assert not self.released, "the slot was given back twice"
        assert hold is not None and hold.owner is self and hold.held
        hold.owner = None
        hold.held = False
        self.released = True
        self.owner.slot_events.append(("release", self.number))


class CountingLock:
    """The fakes' lock: counts how often it is taken and fails if it is taken twice."""

    def __init__(self) -> None:
        self.held = False
        self.taken = 0

    def __enter__(self) -> None:
        assert not self.held, "the lock was taken twice"
        self.held = True
        self.taken += 1

    def __exit__(self, *exc_info: object) -> None:
        self.held = False


class FakeAsyncClient(_Fake, AsyncClientBase):
    def __init__(
        self, *, script: Script = (), clock: FakeClock | None = None, **kwargs: Any
    ) -> None:
        self._setup(script, clock)
        super().__init__(**kwargs)

    async def aclose(self) -> None:
        self.closed = True

    async def _send(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        return self._answer(request, timeout, deadline, hold)

    async def _claim(self, deadline: float, hold: Hold) -> None:
        self._take_slot(deadline, hold)

    async def _sleep(self, seconds: float) -> None:
        self._rest(seconds)

    def _clocks(self) -> tuple[float, int]:
        return self._read_clocks()

    def _default_rng(self) -> Callable[[], float]:
        return self._jitter()

    def _new_lock(self) -> CountingLock:
        return self._make_lock()


class FakeClient(_Fake, ClientBase):
    def __init__(
        self, *, script: Script = (), clock: FakeClock | None = None, **kwargs: Any
    ) -> None:
        self._setup(script, clock)
        super().__init__(**kwargs)

    def close(self) -> None:
        self.closed = True

    def _send(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        return self._answer(request, timeout, deadline, hold)

    def _claim(self, deadline: float, hold: Hold) -> None:
        self._take_slot(deadline, hold)

    def _sleep(self, seconds: float) -> None:
        self._rest(seconds)

    def _clocks(self) -> tuple[float, int]:
        return self._read_clocks()

    def _default_rng(self) -> Callable[[], float]:
        return self._jitter()

    def _new_lock(self) -> CountingLock:
        return self._make_lock()


Client = FakeAsyncClient | FakeClient


def resolve(value: Awaitable[T] | T) -> T:
    """The result of a sync call, or of an async one run with `step`."""
    if inspect.isawaitable(value):
        return cast(T, step(value))
    return value


def items(iterator: Iterator[T] | AsyncIterator[T]) -> Iterator[T]:
    """Iterate a sync or async iterator lazily."""
    if isinstance(iterator, Iterator):
        yield from iterator
        return
    while True:
        try:
            yield step(iterator.__anext__())
        except StopAsyncIteration:
            return


@pytest.fixture(params=[FakeAsyncClient, FakeClient], ids=["async", "sync"])
def flavour(request: pytest.FixtureRequest) -> type[Client]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def credentials(rsa_pem: bytes) -> Credentials:
    return Credentials.from_pem(KEY_ID, rsa_pem)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---- construction and properties ----------------------------------------------------------


def test_the_executor_protocols_are_met() -> None:
    sync: SyncExecutor = FakeClient()
    asynchronous: AsyncExecutor = FakeAsyncClient()
    assert isinstance(sync, ClientBase)
    assert isinstance(asynchronous, AsyncClientBase)


def test_defaults(flavour: type[Client]) -> None:
    client = flavour()
    assert client.config.base_url.url == PRODUCTION_SERVERS[0]
    assert client.config.credentials is None
    assert client.config.retry == RetryPolicy()
    assert not client.is_authenticated
    assert client.rate_limiter is None


def test_constructor_arguments_reach_the_config(flavour: type[Client], rsa_pem: bytes) -> None:
    retry = RetryPolicy(max_attempts=2)
    client = flavour(
        key_id=KEY_ID,
        private_key=rsa_pem,
        demo=True,
        retry=retry,
        timeout=5.0,
        user_agent="bot/1",
    )
    assert client.is_authenticated
    assert client.config.base_url.url == DEMO_SERVERS[0]
    assert client.config.retry is retry
    assert (client.config.timeout, client.config.user_agent) == (5.0, "bot/1")


def test_a_base_url_outside_kalshi_needs_allow_any_host(flavour: type[Client]) -> None:
    with pytest.raises(ConfigurationError, match="is not a Kalshi host"):
        flavour(base_url="https://proxy.example/k")
    client = flavour(base_url="https://proxy.example/k", allow_any_host=True)
    assert client.config.base_url.url == "https://proxy.example/k"


def test_credentials_and_key_arguments_together_are_refused(
    flavour: type[Client], credentials: Credentials, rsa_pem: bytes
) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        flavour(credentials=credentials, key_id=KEY_ID, private_key=rsa_pem)


def test_rate_limit_setting(flavour: type[Client]) -> None:
    limiter = RateLimiter.for_tier("premier")
    assert flavour(rate_limit=limiter).rate_limiter is limiter
    basic = flavour(rate_limit="basic").rate_limiter
    assert basic is not None
    assert basic.bucket(Bucket.WRITE).limit == BucketLimit(refill_rate=100, capacity=100)
    with pytest.raises(ConfigurationError, match="no published rate limits for tier 'gold'"):
        flavour(rate_limit="gold")


def test_repr_shows_the_url_and_key_id_only(
    flavour: type[Client], credentials: Credentials, rsa_pem: bytes
) -> None:
    name = flavour.__name__
    assert repr(flavour()) == f"{name}('{PRODUCTION_SERVERS[0]}', unauthenticated)"
    client = flavour(key_id=KEY_ID, private_key=rsa_pem.decode())
    text = repr(client)
    assert text == f"{name}('{PRODUCTION_SERVERS[0]}', key_id='{KEY_ID}')"
    assert "PRIVATE" not in text and "BEGIN" not in text


def test_from_env_reads_the_key(
    flavour: type[Client], no_env: pytest.MonkeyPatch, rsa_pem: bytes
) -> None:
    no_env.setenv("KALSHI_KEY_ID", KEY_ID)
    no_env.setenv("KALSHI_PRIVATE_KEY", rsa_pem.decode().replace("\n", "\\n"))
    client = flavour.from_env(demo=True, script=[STATUS])
    assert isinstance(client, flavour)
    assert client.is_authenticated
    assert client.config.credentials is not None
    assert client.config.credentials.key_id == KEY_ID
    assert client.config.base_url.url == DEMO_SERVERS[0]
    assert len(client.script) == 1


def test_from_env_without_variables_is_unauthenticated(
    flavour: type[Client], no_env: pytest.MonkeyPatch
) -> None:
    assert not flavour.from_env().is_authenticated


def test_from_env_with_a_bad_variable_names_it(
    flavour: type[Client], no_env: pytest.MonkeyPatch
) -> None:
    no_env.setenv("KALSHI_KEY_ID", KEY_ID)
    with pytest.raises(CredentialsError, match="KALSHI_KEY_ID is set but neither"):
        flavour.from_env()


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"key_id": "k"}, "key_id"),
        ({"credentials": None, "passphrase": "p"}, "credentials, passphrase"),
    ],
)
def test_from_env_refuses_key_arguments_and_says_where_they_go(
    flavour: type[Client], no_env: pytest.MonkeyPatch, kwargs: dict[str, object], names: str
) -> None:
    # from_env(key_id=...) said "key_id was given without private_key" although the variable
    # was set, and from_env(credentials=...) raised a bare duplicate-argument TypeError.
    with pytest.raises(
        ConfigurationError,
        match=rf"^from_env\(\) takes the key from the environment, so it takes no {names}; "
        rf"pass key arguments to {flavour.__name__}\(\.\.\.\) instead$",
    ):
        flavour.from_env(**kwargs)


# ---- execute ------------------------------------------------------------------------------


def test_execute_sends_and_parses(flavour: type[Client]) -> None:
    client = flavour(script=[STATUS])
    status = resolve(client.execute(calls.get_exchange_status()))
    assert isinstance(status, m.ExchangeStatus)
    assert status.exchange_active and not status.trading_active
    [(request, timeout)] = client.sent
    assert request.target == "/trade-api/v2/exchange/status"
    assert timeout == 30.0
    assert client.slept == []


def test_the_facade_goes_through_execute(flavour: type[Client]) -> None:
    client = flavour(script=[STATUS])
    status = resolve(client.exchange.status())
    assert isinstance(status, m.ExchangeStatus)
    assert client.sent[0][0].method == "GET"


def test_execute_signs_private_calls(flavour: type[Client], credentials: Credentials) -> None:
    balance = json_response(
        {"balance": 5600, "balance_dollars": "56.0000", "portfolio_value": 0, "updated_ts": 1}
    )
    clock = FakeClock()
    client = flavour(credentials=credentials, script=[balance], clock=clock)
    result = resolve(client.execute(calls.get_balance()))
    assert str(result.balance_dollars) == "56.0000"
    headers = dict(client.sent[0][0].headers)
    assert headers["KALSHI-ACCESS-KEY"] == KEY_ID
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1767225600000"


def test_execute_refuses_a_private_call_without_credentials(flavour: type[Client]) -> None:
    client = flavour(script=[STATUS])
    with pytest.raises(AuthRequiredError, match="GetBalance"):
        resolve(client.execute(calls.get_balance()))
    assert client.sent == []


def test_execute_retries_a_get_and_raises_the_last_error(flavour: type[Client]) -> None:
    script = [json_response({"message": f"down {n}"}, 503) for n in range(1, 5)]
    client = flavour(script=script)
    with pytest.raises(ServerError, match="down 4"):
        resolve(client.execute(calls.get_exchange_status()))
    assert len(client.sent) == 4
    assert client.slept == [0.125, 0.25, 0.5]
    # Each attempt's timeout is what is left of the 60 s total.
    assert [timeout for _, timeout in client.sent] == [30.0, 30.0, 30.0, 30.0]
    assert client.clock.now == 1000.0 + 4 * 0.0625 + 0.875


# ---- logging -------------------------------------------------------------------------------


def test_execute_logs_retries_at_info_to_the_adapters_logger(
    flavour: type[Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tests.fake_client")
    client = flavour(script=[ReadError("reset"), json_response({"message": "down"}, 503), STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    assert [(r.name, r.levelno) for r in caplog.records] == [
        ("tests.fake_client", logging.INFO)
    ] * 2
    assert [r.getMessage() for r in caplog.records] == [
        "GetExchangeStatus: connection error on GET, attempt 1 of 4, backing off 0.12s "
        "(ReadError: reset)",
        "GetExchangeStatus: HTTP 503 on GET, attempt 2 of 4, backing off 0.25s "
        "(ServerError: HTTP 503 from GetExchangeStatus: down)",
    ]
    assert [r.__dict__["kalshi_wait"] for r in caplog.records] == client.slept == [0.125, 0.25]


def test_execute_logs_each_attempt_at_debug_when_the_logger_wants_it(
    flavour: type[Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tests.fake_client")
    client = flavour(script=[json_response({}, 503), STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    assert [(r.levelno, r.__dict__["kalshi_attempt"]) for r in caplog.records] == [
        (logging.DEBUG, 1),
        (logging.INFO, 1),
        (logging.DEBUG, 2),
    ]
    first, _, last = caplog.records
    # Each exchange takes a sixteenth of a second on the fake clock.
    assert first.getMessage() == (
        "GetExchangeStatus: GET /trade-api/v2/exchange/status -> 503 in 62.5 ms, attempt 1"
    )
    assert (last.__dict__["kalshi_status"], last.__dict__["kalshi_elapsed"]) == (200, 0.0625)


def test_execute_takes_the_logger_it_is_given(
    flavour: type[Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tests.fake_client")
    caplog.set_level(logging.DEBUG, logger="tests.given")
    client = flavour(script=[STATUS], logger=logging.getLogger("tests.given"))
    resolve(client.execute(calls.get_exchange_status()))
    [record] = caplog.records
    assert (record.name, record.__dict__["kalshi_operation"]) == (
        "tests.given",
        "GetExchangeStatus",
    )


def test_execute_builds_no_debug_line_when_the_logger_would_drop_it(
    flavour: type[Client], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tests.fake_client")
    traced: list[bool] = []
    start = RestCore.start

    def spy(self: RestCore, call: Any, now: float, *, trace: bool = False, **kw: Any) -> Any:
        traced.append(trace)
        return start(self, call, now, trace=trace, **kw)

    monkeypatch.setattr(RestCore, "start", spy)
    client = flavour(script=[STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    caplog.set_level(logging.DEBUG, logger="tests.fake_client")
    client.script.append(STATUS)
    resolve(client.execute(calls.get_exchange_status()))
    assert traced == [False, True]
    assert len(caplog.records) == 1


def test_execute_gives_send_the_deadline_of_each_attempt(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({}, 503), STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    # Sent at 1000.0, and at 1000.1875 after a 0.0625 s exchange and a 0.125 s back-off.
    assert client.deadlines == [1030.0, 1030.1875]


@pytest.mark.parametrize("transport", [False, True], ids=["response", "transport"])
def test_execute_decides_on_a_retry_with_the_clock_read_after_the_attempt(
    flavour: type[Client], transport: bool
) -> None:
    # The attempt ends at 1000.0625; its 0.125 s back-off would end past the 0.15625 s total.
    failure = ReadError("reset") if transport else json_response({}, 503)
    client = flavour(script=[failure], retry=RetryPolicy(total_timeout=0.15625))
    with pytest.raises(ReadError if transport else ServerError) as caught:
        resolve(client.execute(calls.get_exchange_status()))
    assert "would reach the total timeout" in caught.value.__notes__[0]
    assert client.slept == []


def test_execute_retries_transport_failures_on_get(flavour: type[Client]) -> None:
    client = flavour(script=[ReadError(f"reset {n}") for n in range(1, 5)])
    with pytest.raises(ReadError, match="reset 4"):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.slept == [0.125, 0.25, 0.5]


def test_execute_returns_the_value_after_a_retry(flavour: type[Client]) -> None:
    client = flavour(script=[ReadError("reset"), STATUS])
    status = resolve(client.execute(calls.get_exchange_status()))
    assert isinstance(status, m.ExchangeStatus)


def test_execute_does_not_retry_a_post(flavour: type[Client], credentials: Credentials) -> None:
    client = flavour(credentials=credentials, script=[ReadError("reset"), STATUS])
    with pytest.raises(ReadError, match="reset"):
        resolve(client.execute(calls.delete_rfq("rfq-1")))
    assert len(client.sent) == 1
    assert client.slept == []


def test_execute_raises_an_api_error_that_is_not_retried(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({"code": "missing"}, 404)])
    with pytest.raises(NotFoundError, match=r"\[missing\] not found"):
        resolve(client.execute(calls.get_market("KX-1")))
    assert len(client.sent) == 1


def test_execute_raises_remote_protocol_error_for_a_bad_body(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({"exchange_active": "yes?"})])
    with pytest.raises(RemoteProtocolError, match="does not match ExchangeStatus"):
        resolve(client.execute(calls.get_exchange_status()))


def test_execute_sleeps_for_the_rate_limiter(flavour: type[Client]) -> None:
    client = flavour(rate_limit=RateLimiter.from_limits(20, 10, 20, 10), script=[STATUS, STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    resolve(client.execute(calls.get_exchange_status()))
    # 10 tokens spent at 1000.0; 1.25 of them back by 1000.0625; 8.75 more take 0.4375 s.
    assert client.slept == [0.4375]
    assert len(client.sent) == 2


def test_an_explicit_rng_replaces_the_default(flavour: type[Client]) -> None:
    script = [json_response({}, 503)] * 2
    client = flavour(script=script, rng=lambda: 1.0, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(ServerError):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.slept == [0.25]


# ---- per-call options: execute(call, options) and with_options views ------------------------


def test_a_view_sends_with_its_options_and_the_client_with_its_own(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({}, 503)], timeout=30.0)
    view = client.with_options(timeout=2, retry=RetryPolicy.disabled())
    with pytest.raises(ServerError):
        resolve(view.exchange.status())
    assert [timeout for _, timeout in client.sent] == [2.0]  # one attempt, its own timeout
    client.script.extend([json_response({}, 503), STATUS])
    assert resolve(client.exchange.status()).exchange_active
    assert [timeout for _, timeout in client.sent] == [2.0, 30.0, 30.0]


def test_execute_takes_options_for_one_call(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({}, 503)])
    options = CallOptions(retry=RetryPolicy.disabled())
    with pytest.raises(ServerError):
        resolve(client.execute(calls.get_exchange_status(), options))
    assert len(client.sent) == 1
    with pytest.raises(TypeError, match="options must be a CallOptions or None, got float"):
        resolve(client.execute(calls.get_exchange_status(), 2.0))  # type: ignore[arg-type]


def test_a_view_walks_every_page_with_its_options(flavour: type[Client]) -> None:
    client = flavour(script=[programs([1, 2], "n2"), json_response({}, 503)])
    view = client.with_options(timeout=3, retry=RetryPolicy.disabled())
    walk = items(view.incentive_programs.list_all(limit=2))
    assert [next(walk).id, next(walk).id] == ["ip-1", "ip-2"]
    with pytest.raises(ServerError):
        next(walk)
    assert len(client.sent) == 2  # the second page was not retried
    assert [timeout for _, timeout in client.sent] == [3.0, 3.0]


def test_iterate_takes_options_and_checks_them(flavour: type[Client]) -> None:
    client = flavour(script=[json_response({}, 503)])
    options = CallOptions(retry=RetryPolicy.disabled())
    walk = client.iterate(calls.get_incentive_programs(), None, options)
    with pytest.raises(ServerError):
        list(items(walk))
    assert len(client.sent) == 1
    with pytest.raises(TypeError, match="options must be a CallOptions or None, got int"):
        client.iterate(calls.get_incentive_programs(), None, 3)  # type: ignore[arg-type]


def test_views_stack_and_say_what_they_set(flavour: type[Client]) -> None:
    client = flavour()
    disabled = RetryPolicy.disabled()
    view = client.with_options(retry=disabled)
    deeper = view.with_options(timeout=5)
    assert deeper.options == CallOptions(retry=disabled, timeout=5.0)
    assert deeper.client is client and view.client is client
    assert repr(deeper) == f"<view of {client!r} with timeout=5.0, retry={disabled!r}>"
    assert repr(client.with_options()) == f"<view of {client!r} with no options>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"timeout": 0}, "timeout must be positive"), ({"retry": 3}, "retry must be a RetryPolicy")],
)
def test_with_options_refuses_what_the_constructor_would(
    flavour: type[Client], kwargs: dict[str, Any], message: str
) -> None:
    client = flavour()
    with pytest.raises(ConfigurationError, match=message):
        client.with_options(**kwargs)
    with pytest.raises(ConfigurationError, match=message):
        client.with_options().with_options(**kwargs)


def test_a_view_of_a_closed_client_is_closed_too(flavour: type[Client]) -> None:
    client = flavour(script=[STATUS])
    view = client.with_options(timeout=1)
    client._closed = True  # what the adapters' close sets
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        resolve(view.exchange.status())
    assert client.sent == []


# ---- iterate ------------------------------------------------------------------------------


def test_iterate_walks_pages_lazily(flavour: type[Client]) -> None:
    client = flavour(script=[programs([1, 2], "n2"), programs([3], None)])
    walk = items(client.iterate(calls.get_incentive_programs(limit=2)))
    assert client.sent == []
    assert [next(walk).id, next(walk).id] == ["ip-1", "ip-2"]
    assert len(client.sent) == 1
    assert next(walk).id == "ip-3"
    assert [r.target for r, _ in client.sent] == [
        "/trade-api/v2/incentive_programs?limit=2",
        "/trade-api/v2/incentive_programs?limit=2&cursor=n2",
    ]
    assert list(walk) == []


def test_iterate_through_the_facade_with_max_pages(flavour: type[Client]) -> None:
    client = flavour(script=[programs([1, 2], "n2"), programs([3], None)])
    walked = [p.id for p in items(client.incentive_programs.list_all(max_pages=1))]
    assert walked == ["ip-1", "ip-2"]
    assert len(client.sent) == 1


def test_iterate_refuses_max_pages_below_one(flavour: type[Client]) -> None:
    client = flavour()
    with pytest.raises(ValueError, match="max_pages must be at least 1"):
        client.iterate(calls.get_incentive_programs(), 0)


def test_the_client_guards_a_limiter_that_has_no_guard(flavour: type[Client]) -> None:
    limiter = RateLimiter.for_tier("premier")
    client = flavour(rate_limit=limiter)
    assert client.locks and limiter.guard is client.locks[0]
    basic = flavour(rate_limit="basic")
    assert basic.rate_limiter is not None and basic.rate_limiter.guard is basic.locks[0]
    assert flavour().locks == []


def test_a_limiter_shared_by_two_clients_keeps_its_first_guard(flavour: type[Client]) -> None:
    limiter = RateLimiter.for_tier("premier")
    first = flavour(rate_limit=limiter)
    second = flavour(rate_limit=limiter)
    assert limiter.guard is first.locks[0]
    assert second.locks == []


def test_a_limiter_with_a_guard_keeps_it(flavour: type[Client]) -> None:
    own = CountingLock()
    limiter = RateLimiter(*TIERS["basic"], guard=own)
    client = flavour(rate_limit=limiter)
    assert client.rate_limiter is limiter
    assert limiter.guard is own
    assert client.locks == []


def test_the_client_replaces_its_guard_in_a_forked_process(
    flavour: type[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter.for_tier("premier")
    client = flavour(rate_limit=limiter)
    parents = client.locks[0]
    # The adapters call _guarded again when they see a fork; the process id tells it apart.
    module = _async_base if isinstance(client, AsyncClientBase) else _sync_base
    monkeypatch.setattr(module, "getpid", lambda: os.getpid() + 1)
    assert client._guarded(limiter) is limiter
    assert len(client.locks) == 2 and limiter.guard is client.locks[1] is not parents
    assert client._guarded(limiter) is limiter
    assert len(client.locks) == 2  # once per process


def test_every_reservation_holds_the_guard(flavour: type[Client]) -> None:
    script = [json_response({}, 503), STATUS, STATUS]
    client = flavour(rate_limit="premier", script=script, retry=RetryPolicy(max_attempts=2))
    resolve(client.execute(calls.get_exchange_status()))
    resolve(client.execute(calls.get_exchange_status()))
    # Twice per attempt (its turn, then its pace on the wire), the retry included.
    assert client.locks[0].taken == 6
    assert not client.locks[0].held


# ---- configure_rate_limit -----------------------------------------------------------------


def test_configure_rate_limit_sizes_the_buckets_from_the_account(
    flavour: type[Client], credentials: Credentials
) -> None:
    client = flavour(credentials=credentials, script=[LIMITS, COSTS])
    limiter = resolve(client.configure_rate_limit())
    assert client.rate_limiter is limiter
    assert limiter.guard is client.locks[0]
    assert limiter.bucket(Bucket.READ).limit == BucketLimit(refill_rate=300, capacity=300)
    assert limiter.bucket(Bucket.WRITE).limit == BucketLimit(refill_rate=300, capacity=600)
    assert [request.target for request, _ in client.sent] == [
        "/trade-api/v2/account/limits",
        "/trade-api/v2/account/endpoint_costs",
    ]
    # The account's costs, not the spec's: GetOrder 3 (2 in the spec), a batch cancel 1 per
    # order (2), CancelOrderV2 unlisted so the default (2 in the spec).
    assert limiter.cost_of("GetOrder") == 3
    assert limiter.cost_of("BatchCancelOrdersV2", items=4) == 4
    assert limiter.cost_of("CancelOrderV2") == 10
    assert limiter.costs.unmatched == (("GET", "/trade-api/v2/something/new", 7),)


@pytest.mark.parametrize(
    ("limits", "costs", "why"),
    [
        (
            {"read": {"refill_rate": 0, "bucket_capacity": 300}},
            {},
            "refill_rate must be a finite number of tokens per second > 0, got 0.0",
        ),
        ({}, {"default_cost": -1}, "the cost of default must be a whole number of tokens >= 0"),
    ],
)
def test_configure_rate_limit_reports_figures_it_cannot_use_as_the_servers(
    flavour: type[Client], credentials: Credentials, limits: Any, costs: Any, why: str
) -> None:
    # They were ConfigurationErrors, which say the caller's own settings are wrong.
    limit_body = {
        "usage_tier": "advanced",
        "read": {"refill_rate": 300, "bucket_capacity": 300},
        "write": {"refill_rate": 300, "bucket_capacity": 600},
        "grants": None,
        **limits,
    }
    cost_body = {"default_cost": 10, "endpoint_costs": [], **costs}
    script = [json_response(limit_body), json_response(cost_body)]
    client = flavour(credentials=credentials, script=script, rate_limit="basic")
    before = client.rate_limiter
    with pytest.raises(RemoteProtocolError) as info:
        resolve(client.configure_rate_limit())
    assert str(info.value).startswith(
        "GET /account/limits and GET /account/endpoint_costs gave figures no rate limiter can "
        f"use: {why}"
    )
    assert isinstance(info.value.__cause__, ConfigurationError)
    assert client.rate_limiter is before


def test_configure_rate_limit_needs_credentials(flavour: type[Client]) -> None:
    client = flavour(script=[LIMITS])
    with pytest.raises(AuthRequiredError):
        resolve(client.configure_rate_limit())
    assert client.rate_limiter is None


# ---- context managers ---------------------------------------------------------------------


def test_sync_context_manager_closes() -> None:
    with FakeClient() as client:
        assert isinstance(client, FakeClient)
        assert not client.closed
    assert client.closed


def test_sync_context_manager_closes_on_error() -> None:
    client = FakeClient()
    with pytest.raises(RuntimeError, match="boom"), client:
        raise RuntimeError("boom")
    assert client.closed


def test_async_context_manager_closes() -> None:
    client = FakeAsyncClient()
    assert step(client.__aenter__()) is client
    assert not client.closed
    assert step(client.__aexit__(None, None, None)) is None
    assert client.closed


def test_async_context_manager_closes_on_error() -> None:
    client = FakeAsyncClient()
    error = RuntimeError("boom")
    step(client.__aexit__(RuntimeError, error, None))
    assert client.closed


def test_with_on_an_async_client_says_to_use_async_with() -> None:
    client = FakeAsyncClient()
    with pytest.raises(TypeError, match=r"^FakeAsyncClient is an async client: use 'async with'"):
        with client:
            pass
    assert not client.closed


def test_async_iterate_needs_no_event_loop() -> None:
    client = FakeAsyncClient(script=[programs([1], None)])
    iterator = client.iterate(calls.get_incentive_programs())
    assert isinstance(iterator, AsyncIterator)
    assert [p.period_reward for p in items(iterator)] == [1]


def test_signer_in_credentials_is_not_in_repr(flavour: type[Client], rsa_pem: bytes) -> None:
    signer = Signer.from_pem(rsa_pem)
    client = flavour(key_id=KEY_ID, private_key=signer)
    assert "Signer" not in repr(client)
    assert client.is_authenticated


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps])
@pytest.mark.parametrize("keyed", [False, True])
def test_a_client_cannot_be_copied_or_pickled(
    flavour: type[Client], credentials: Credentials, how: Callable[[object], object], keyed: bool
) -> None:
    # copy.copy made a twin that drove the original's facade and pool; deepcopy and pickle
    # failed on the jitter source with "System entropy source does not have state".
    client = flavour(credentials=credentials) if keyed else flavour()
    with pytest.raises(TypeError, match=r"objects cannot be copied or pickled: they hold"):
        how(client)


def test_a_failed_calls_traceback_with_locals_shows_no_signature(
    flavour: type[Client], credentials: Credentials
) -> None:
    # Error reporters (Sentry, rich, pytest --showlocals) print the locals of every frame, and
    # the adapter's frames hold the signed request and the step that carried it.
    client = flavour(credentials=credentials, script=[ReadError("reset")])
    with pytest.raises(ReadError) as info:
        resolve(client.execute(calls.delete_rfq("rfq-1")))
    report = "".join(  # made before the signature is a local of this frame too
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    signature = dict(client.sent[0][0].headers)["KALSHI-ACCESS-SIGNATURE"]
    assert "HttpRequest(" in report  # the request is among the locals shown
    assert signature not in report
    assert "KALSHI-ACCESS-SIGNATURE', '<hidden>'" in report
