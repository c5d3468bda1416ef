"""An httpx client keeps working when a call is interrupted inside httpx.

httpcore 1.0.9 closes a response in steps, and an interruption between them leaves the
connection taken for good (see `kalshi_httpx._body`): asyncio's own ``task.cancel()`` (what
``asyncio.timeout``, ``wait_for`` and task groups use) at the close's turn of the event loop, or
a KeyboardInterrupt in a blocking call. With one connection, every later call used to wait for
it until it timed out. A KeyboardInterrupt can also leave one of the pool's locks held, as
httpcore takes them in a Python ``__enter__``: every later call then waited for good. A client
now replaces a pool it built, and logs the loss in a pool passed in. Each test makes the
interruption land there: by hand on asyncio, and by a patched step of httpcore in a blocking
call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import h11
import httpcore
import httpcore._synchronization
import httpx
import pytest

import kalshi_httpx
from kalshi_proto.errors import ReadError
from kalshi_proto.rest.generated.models import ExchangeStatus
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import Driver, Flavour, backend_of, open_sockets_to

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy.disabled()
ONE_CONNECTION = httpx.Limits(max_connections=1)


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


async def cancel_as_it_closes(
    client: kalshi_httpx.AsyncKalshiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make one call whose task asyncio cancels as the call closes its response: the
    cancellation lands at the close's first turn of the event loop, inside httpcore."""
    close = httpx.Response.aclose
    calls: list[asyncio.Task[object]] = []

    async def cancel_then_close(reply: httpx.Response) -> None:
        calls[0].cancel()
        await close(reply)

    monkeypatch.setattr(httpx.Response, "aclose", cancel_then_close)
    calls.append(asyncio.get_running_loop().create_task(client.exchange.status()))
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
    monkeypatch.undo()


def before_taking(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], Awaitable[None]]) -> None:
    """Await ``hook`` each time a connection of httpcore's pool, connected, is about to take a
    request: where a cancellation leaves the connection in the pool for good
    (encode/httpcore#1093)."""
    take = httpcore._async.http11.AsyncHTTP11Connection.handle_async_request

    async def hooked(connection: object, request: httpcore.Request) -> object:
        await hook()
        return await take(connection, request)  # type: ignore[arg-type]

    monkeypatch.setattr(
        httpcore._async.http11.AsyncHTTP11Connection, "handle_async_request", hooked
    )


def counting_new_pools(
    client: kalshi_httpx.KalshiClient | kalshi_httpx.AsyncKalshiClient,
) -> list[object]:
    """A list that gets each pool the client builds from now on."""
    built: list[object] = []
    new_pool = client._new_pool
    assert new_pool is not None

    def count_and_build() -> Any:
        built.append(new_pool())
        return built[-1]

    client._new_pool = count_and_build
    return built


def status_in_thread(
    client: kalshi_httpx.KalshiClient,
) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``client.exchange.status()`` in a daemon thread (a call that hangs cannot hold up
    the test run); the list gets what the call raises."""
    raised: list[BaseException] = []

    def call() -> None:
        try:
            client.exchange.status()
        except BaseException as exc:
            raised.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    return caller, raised


@pytest.mark.flavours("httpx_async-asyncio")
async def test_asyncio_cancelling_a_call_as_it_closes_its_response_loses_no_connection(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with kx.client(retry=NO_RETRY, timeout=2.0, limits=ONE_CONNECTION) as client:
        assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
        await client.exchange.status()
        first_pool = client._transport
        await cancel_as_it_closes(client, monkeypatch)
        with anyio.fail_after(10):
            assert (await client.exchange.status()).trading_active is not None
            assert (await client.exchange.status()).trading_active is not None
        assert client._transport is not first_pool
        # The old pool was closed as its last call ended, the connection it lost included:
        # only the new pool's connection is open.
        assert client._retired == [] and client._busy == {}
        assert open_sockets_to(kx.server.port) == 1
    assert open_sockets_to(kx.server.port) == 0
    assert kx.server.connections() == 2


@pytest.mark.flavours("httpx_async-asyncio")
async def test_a_pool_passed_in_is_kept_and_the_loss_logged(
    kx: Driver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.AsyncHTTPTransport(verify=kx.server.ssl_context())
    async with kx.client(retry=NO_RETRY, transport=transport) as client:
        assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
        with caplog.at_level(logging.WARNING, logger="kalshi_httpx"):
            await cancel_as_it_closes(client, monkeypatch)
        assert client._transport is transport
        assert client._retired == []
        assert (await client.exchange.status()).trading_active is not None  # another connection
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "may have lost a connection" in caplog.records[0].getMessage()
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_an_interrupt_as_a_blocking_call_closes_its_response_loses_no_connection(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(connection: object) -> None:
        raise KeyboardInterrupt

    async with kx.client(retry=NO_RETRY, timeout=2.0, limits=ONE_CONNECTION) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        client.exchange.status()
        first_pool = client._transport
        assert first_pool is not None
        # The step that hands the connection back to the pool, which the interrupt skips.
        monkeypatch.setattr(httpcore._sync.http11.HTTP11Connection, "_response_closed", interrupt)
        with pytest.raises(KeyboardInterrupt):
            client.exchange.status()
        monkeypatch.undo()
        assert client.exchange.status().trading_active is not None
        assert client.exchange.status().trading_active is not None
        assert client._transport is not first_pool
        # The interrupted call was the last on the old pool: it closed it as it ended.
        assert first_pool._pool.connections == []  # type: ignore[attr-defined]
        assert client._retired == [] and client._busy == {}
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_the_last_call_on_a_pool_an_interrupt_replaced_closes_it(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two threads share the client's pool. One call is paused just before its request goes out;
    # another is interrupted there, which replaces the pool. The paused call still ends on the
    # old pool and, the last call on it, closes it. The blocking client used to leave a replaced
    # pool to the garbage collector, with the paused call's connection open in it.
    take = httpcore._sync.http11.HTTP11Connection.handle_request
    holding, released = threading.Event(), threading.Event()

    def pause_then_interrupt(connection: object, request: httpcore.Request) -> object:
        if holding.is_set():
            raise KeyboardInterrupt
        holding.set()
        released.wait(10)
        return take(connection, request)  # type: ignore[arg-type]

    limits = httpx.Limits(max_connections=2)
    async with kx.client(retry=NO_RETRY, timeout=5.0, limits=limits) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        first_pool = client._transport
        monkeypatch.setattr(
            httpcore._sync.http11.HTTP11Connection, "handle_request", pause_then_interrupt
        )
        caller, raised = status_in_thread(client)
        assert holding.wait(10)
        with pytest.raises(KeyboardInterrupt):
            client.exchange.status()
        assert client._transport is not first_pool
        assert len(first_pool._pool.connections) == 1  # type: ignore[union-attr]
        released.set()
        caller.join(10)
        monkeypatch.undo()
        assert not caller.is_alive() and raised == []
        assert first_pool._pool.connections == []  # type: ignore[union-attr]
        assert open_sockets_to(kx.server.port) == 0
        assert client._retired == [] and client._busy == {}
        assert client.exchange.status().trading_active is not None
        assert open_sockets_to(kx.server.port) == 1
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_a_blocking_pool_passed_in_is_kept_and_an_interrupt_in_it_logged(
    kx: Driver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def interrupt(connection: object) -> None:
        raise KeyboardInterrupt

    transport = httpx.HTTPTransport(verify=kx.server.ssl_context())
    async with kx.client(retry=NO_RETRY, timeout=2.0, transport=transport) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        client.exchange.status()
        monkeypatch.setattr(httpcore._sync.http11.HTTP11Connection, "_response_closed", interrupt)
        with caplog.at_level(logging.WARNING, logger="kalshi_httpx"):
            with pytest.raises(KeyboardInterrupt):
                client.exchange.status()
        monkeypatch.undo()
        assert client._transport is transport  # the caller's pool: not replaced
        assert client.exchange.status().trading_active is not None  # on another connection
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "may have lost a connection" in caplog.records[0].getMessage()
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_a_connection_an_interrupt_passed_through_takes_no_other_request(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpcore marks an HTTP/1.1 connection idle as its response closes, then readies h11 for the
    # next request. A Ctrl-C between the two left the connection looking free while h11 could
    # take no request: a call of another thread that had taken the old pool just before, and was
    # given that connection, failed before sending anything (found by interrupt_stress.py
    # --httpx --threads 2). A connection an interrupt passed through now takes no other request,
    # nor does one marked idle while its request's response is still closing.
    ready = h11.Connection.start_next_cycle
    available: list[bool] = []  # whether the pool could hand the connection out, between them

    def interrupted(connection: h11.Connection) -> None:
        monkeypatch.setattr(h11.Connection, "start_next_cycle", ready)  # once
        available.extend(each.is_available() for each in pool._pool.connections)
        raise KeyboardInterrupt

    async with kx.client(retry=NO_RETRY, timeout=2.0, limits=ONE_CONNECTION) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        client.exchange.status()
        transport = client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        pool = transport
        monkeypatch.setattr(h11.Connection, "start_next_cycle", interrupted)
        with pytest.raises(KeyboardInterrupt):
            client.exchange.status()
        assert available == [False]
        assert client._transport is not pool
        # The other thread's request, on the old pool.
        url = kx.server.base_url + "/exchange/status"
        reply = pool.handle_request(httpx.Request("GET", url))
        try:
            reply.read()
        finally:
            reply.close()
        assert reply.status_code == 200
        assert client.exchange.status().trading_active is not None
    pool.close()  # (the interrupted call closed the old pool; the request above opened it again)
    assert open_sockets_to(kx.server.port) == 0
    assert kx.server.connections() == 3  # the first, the old pool's second, the new pool's


@pytest.mark.flavours("httpx_sync")
async def test_calls_go_on_while_a_lost_pool_is_built_anew_and_one_replacement_is_kept(
    kx: Driver,
) -> None:
    # Threads share the client: calls take and give back the count of their pool under one
    # lock. Building a pool (some 10 ms: it loads certificates) is done outside it, or every
    # thread's calls would stop while one thread replaced a pool. Two threads that lose one
    # pool at once may both build one: the first installed is kept, the other dropped.
    async with kx.client(retry=NO_RETRY, timeout=5.0) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        first = client._transport
        build = client._new_pool
        assert first is not None and build is not None
        building, go_on = threading.Event(), threading.Event()
        built: list[object] = []

        def slow_build() -> Any:
            built.append(build())
            if len(built) == 1:
                building.set()
                go_on.wait(10)
            return built[-1]

        client._new_pool = slow_build
        # (a pool is lost during a call on it, whose end then closes it; called here directly)
        losing = threading.Thread(target=client._retire, args=(first,), daemon=True)
        losing.start()
        assert building.wait(10)
        caller, raised = status_in_thread(client)
        caller.join(5)  # a call takes a few ms; with the lock held it would wait for go_on
        assert not caller.is_alive() and raised == []
        assert client._transport is first  # the call ran on the old pool, not replaced yet
        client._retire(first)  # the same loss, in another thread
        assert client._transport is built[1]
        go_on.set()
        losing.join(10)
        assert not losing.is_alive()
        assert client._transport is built[1]  # the slower build, never used, is dropped
        assert client._retired == [first] and client._busy == {}
        assert client.exchange.status().trading_active is not None
    assert open_sockets_to(kx.server.port) == 0


class TakenThenInterrupted:
    """A lock whose first taking a Ctrl-C cuts once it is taken, before the ``with`` block owns
    it, so that it stays held for good: as httpcore's own locks could be, which take theirs in
    a Python ``__enter__``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.interrupted = False

    def __enter__(self) -> TakenThenInterrupted:
        self._lock.acquire()
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


@pytest.mark.flavours("httpx_sync")
async def test_an_interrupt_that_leaves_a_lock_of_httpcore_held_hangs_no_later_call(
    kx: Driver,
) -> None:
    # In a pool the client builds, httpcore's locks are plain ones, whose taking no interrupt can
    # cut (see kalshi_httpx._guard and tests/adapters/test_http2.py). Should an httpcore add a
    # lock of its own, a Ctrl-C could leave it held: here, the connection's request lock, the
    # first a call takes. The client's replacing its pool keeps later calls from waiting on it.
    async with kx.client(retry=NO_RETRY, timeout=2.0) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        client.exchange.status()
        first_pool = client._transport
        assert isinstance(first_pool, httpx.HTTPTransport)
        [connection] = first_pool._pool.connections
        lock = TakenThenInterrupted()
        connection._connection._request_lock = lock  # type: ignore[attr-defined]
        with pytest.raises(KeyboardInterrupt):
            client.exchange.status()
        assert lock.interrupted
        # A call that waits for the held lock never returns: made in a thread of its own.
        answered: list[object] = []
        later = threading.Thread(
            target=lambda: answered.append(client.exchange.status()), daemon=True
        )
        later.start()
        later.join(10)
        assert answered, "the call after the interrupt hung on the lock it left held"
        assert client._transport is not first_pool
    # The old pool's connection holds its lock for good, and is left to the garbage collector,
    # which would warn of it; closed here, without that lock.
    connection.close()
    assert open_sockets_to(kx.server.port) == 0


def before_connecting(
    monkeypatch: pytest.MonkeyPatch, hook: Callable[[], Awaitable[None]]
) -> None:
    """Await ``hook`` each time a request of httpcore's pool has been given its connection, and
    before it goes there: where a cancellation leaves a new connection in the pool for good,
    never connected (encode/httpcore#1093)."""
    wait = httpcore._async.connection_pool.AsyncPoolRequest.wait_for_connection

    async def hooked(waiting: Any, timeout: float | None = None) -> Any:
        connection = await wait(waiting, timeout)
        await hook()
        return connection

    monkeypatch.setattr(
        httpcore._async.connection_pool.AsyncPoolRequest, "wait_for_connection", hooked
    )


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
@pytest.mark.parametrize("connected", [False, True], ids=["before connecting", "connected"])
async def test_a_call_cancelled_as_httpcore_gave_it_a_new_connection_loses_no_connection(
    kx: Driver, monkeypatch: pytest.MonkeyPatch, connected: bool
) -> None:
    # encode/httpcore#1093: cancelled after the pool gave it a new connection and before that
    # connection took the request, httpcore 1.0.9 left the connection in the pool for good,
    # neither usable nor closed: before it connected, or connected (the cancellation landed at
    # the lock the connection takes the request under). With one connection, every later call
    # waited for it until PoolTimeout. The client's pool takes such a connection out and closes
    # it; the pool itself stays.
    scopes: list[anyio.CancelScope] = []

    async def cancel() -> None:
        scopes[0].cancel()
        await anyio.lowlevel.checkpoint()

    async with kx.client(retry=NO_RETRY, timeout=2.0, limits=ONE_CONNECTION) as client:
        assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
        pool = client._transport
        (before_taking if connected else before_connecting)(monkeypatch, cancel)
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await client.exchange.status()
        monkeypatch.undo()
        assert scope.cancelled_caught
        assert open_sockets_to(kx.server.port) == 0  # the lost connection was closed
        with anyio.fail_after(10):
            assert (await client.exchange.status()).trading_active is not None
        assert client._transport is pool
        assert client._retired == [] and client._busy == {}
        assert open_sockets_to(kx.server.port) == 1
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_async-asyncio")
async def test_a_loss_on_a_pool_replaced_already_leaves_the_new_pool_in_place(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two calls on the first pool. One meets a fault inside httpcore, which replaces the pool;
    # then the other is cancelled as it closes its response, which reports the loss of the
    # first pool again: the pool that replaced it has lost nothing and stays.
    close = httpx.Response.aclose
    closing, released = asyncio.Event(), asyncio.Event()
    tasks: dict[str, asyncio.Task[object]] = {}

    async def fault() -> None:
        raise ValueError("a fault inside httpcore")

    async def wait_cancel_then_close(reply: httpx.Response) -> None:
        closing.set()
        await released.wait()
        tasks["closing"].cancel()
        await close(reply)

    async with kx.client(retry=NO_RETRY, timeout=2.0) as client:
        assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
        first_pool = client._transport
        monkeypatch.setattr(httpx.Response, "aclose", wait_cancel_then_close)
        loop = asyncio.get_running_loop()
        tasks["closing"] = loop.create_task(client.exchange.status())
        await closing.wait()  # the first call waits at its close, its connection taken
        monkeypatch.setattr(httpx.Response, "aclose", close)
        before_taking(monkeypatch, fault)
        with pytest.raises(ReadError):
            await client.exchange.status()
        second_pool = client._transport
        assert second_pool is not first_pool and client._retired == [first_pool]
        released.set()
        with pytest.raises(asyncio.CancelledError):
            await tasks["closing"]
        monkeypatch.undo()
        assert client._transport is second_pool
        assert client._retired == [] and client._busy == {}
        assert (await client.exchange.status()).trading_active is not None
        assert open_sockets_to(kx.server.port) == 1
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
async def test_calls_that_end_after_the_close_on_a_replaced_pool_close_that_pool(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One connection. The first call holds it, paused just before its request goes out; two
    # more calls wait for it in the pool. The last of them is cancelled, and a loss replaces
    # the pool (as a call cancelled as it closes its response reports one; see
    # kalshi_httpx._body); then the client is closed, which closes both pools. The two calls
    # left still end on the old pool, as httpcore serves them there. Each, finding the client
    # closed as it ends, closes the pool it ran on. It used to close the current pool instead,
    # then its own connection's socket under the old pool's feet, where the second call had
    # been given that connection already: the second call failed with a ReadError.
    holding, released = anyio.Event(), anyio.Event()
    outcomes: dict[str, object] = {}

    async def pause_the_first() -> None:
        if not holding.is_set():
            holding.set()
            await released.wait()

    async def call(name: str, client: kalshi_httpx.AsyncKalshiClient) -> None:
        try:
            outcomes[name] = await client.exchange.status()
        except Exception as exc:  # recorded, to be shown if the test fails
            outcomes[name] = exc

    async def queued(pool: object, count: int) -> None:
        with anyio.fail_after(5):
            while len(pool._pool._requests) < count:  # type: ignore[attr-defined]
                await anyio.sleep(0.001)

    before_taking(monkeypatch, pause_the_first)
    client = kx.build(retry=NO_RETRY, timeout=5.0, limits=ONE_CONNECTION)
    assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
    first_pool = client._transport
    async with anyio.create_task_group() as group:
        group.start_soon(call, "first", client)
        await holding.wait()
        group.start_soon(call, "second", client)
        await queued(first_pool, 2)
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(call, "cancelled", client)
            await queued(first_pool, 3)
            waiting.cancel_scope.cancel()
        assert first_pool is not None
        client._pool_lost(first_pool)
        assert client._transport is not first_pool and client._retired == [first_pool]
        await client.aclose()
        released.set()
    assert set(outcomes) == {"first", "second"}
    for name, outcome in outcomes.items():
        assert isinstance(outcome, ExchangeStatus), (name, outcome)
    assert first_pool._pool.connections == []  # type: ignore[union-attr]
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
async def test_calls_cancelled_after_the_close_leave_nothing_open_and_build_no_pool(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call holds the only connection, paused just before its request goes out, and a second
    # waits for it in the pool; the client is closed, then both calls are cancelled. A closed
    # client makes no more calls: no pool is built. The pool is closed again as the last call
    # ends, which closes the connection the first left behind, and nothing is left to close.
    holding = anyio.Event()

    async def pause() -> None:
        holding.set()
        await anyio.sleep_forever()

    before_taking(monkeypatch, pause)
    client = kx.build(retry=NO_RETRY, timeout=5.0, limits=ONE_CONNECTION)
    assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
    pool = client._transport
    built = counting_new_pools(client)
    async with anyio.create_task_group() as group:
        group.start_soon(client.exchange.status)
        await holding.wait()
        group.start_soon(client.exchange.status)
        with anyio.fail_after(5):
            while len(pool._pool._requests) < 2:  # type: ignore[union-attr]
                await anyio.sleep(0.001)
        await client.aclose()
        group.cancel_scope.cancel()
    assert built == []
    assert client._transport is pool
    assert client._retired == [] and client._busy == {}
    assert pool._pool.connections == []  # type: ignore[union-attr]
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_an_interrupt_after_the_close_builds_no_new_pool(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call in a thread is paused as its connection is about to take the request; the client
    # is closed, then the call is interrupted there. A closed client makes no more calls: no
    # pool is built to replace the one the interrupt may have broken.
    take = httpcore._sync.http11.HTTP11Connection.handle_request
    holding, closed = threading.Event(), threading.Event()

    def pause_then_interrupt(connection: object, request: httpcore.Request) -> object:
        holding.set()
        closed.wait(10)
        raise KeyboardInterrupt

    client = kx.build(retry=NO_RETRY, timeout=5.0, limits=ONE_CONNECTION)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    pool = client._transport
    built = counting_new_pools(client)
    monkeypatch.setattr(
        httpcore._sync.http11.HTTP11Connection, "handle_request", pause_then_interrupt
    )
    caller, raised = status_in_thread(client)
    assert holding.wait(10)
    client.close()
    closed.set()
    caller.join(10)
    monkeypatch.setattr(httpcore._sync.http11.HTTP11Connection, "handle_request", take)
    assert [type(exc) for exc in raised] == [KeyboardInterrupt]
    assert built == []
    assert client._transport is pool
    assert open_sockets_to(kx.server.port) == 0
