"""The blocking httpx client's pool closes no connection that another thread's request is using.

httpcore's blocking pool checks its connections, as each request enters or leaves it, outside
the requests' own work on them; a check could take the answer to a request in flight for the
bytes of a closed connection and close it under that request (see `kalshi_httpx._guard`). The
first tests drive `GuardedConnection` over a scripted connection; the last ones check that every
kind of pool a blocking client builds hands out guarded connections.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpcore
import httpcore._sync.connection_pool
import httpx
import pytest
from httpcore._backends.sync import SyncStream

import kalshi_httpx
from fuzz import pool_race
from kalshi_httpx._guard import GuardedConnection, _Helpers, _SafeHTTP2Connection
from kalshi_proto.errors import ConnectTimeout
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import Driver
from tests.adapters.test_httpx_pool_loss import status_in_thread
from tests.helpers.proxy import tunnel_proxy
from tests.helpers.socks import socks_proxy

REQUEST = httpcore.Request("GET", "https://api.example/trade-api/v2/exchange/status")


class Scripted(httpcore.ConnectionInterface):
    """A connection that always looks idle and expired, as an idle one whose socket has bytes
    to read does to httpcore, and records what is done to it."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.closed = 0
        self.fail: BaseException | None = None
        self.looking = threading.Event()  # has_expired has started
        self.look_may_end = threading.Event()
        self.look_may_end.set()

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        self.log.append("request")
        if self.fail is not None:
            raise self.fail
        return httpcore.Response(200, content=Chunks(self))

    def close(self) -> None:
        self.closed += 1

    def has_expired(self) -> bool:
        self.log.append("look")
        self.looking.set()
        assert self.look_may_end.wait(5)
        self.log.append("looked")
        return True

    def is_idle(self) -> bool:
        return True

    def is_available(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self.closed > 0

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return True

    def info(self) -> str:
        return "scripted"


class Chunks:
    """A response body of one chunk, whose close the connection records."""

    def __init__(self, connection: Scripted) -> None:
        self.connection = connection

    def __iter__(self) -> Iterator[bytes]:
        yield b"{}"

    def close(self) -> None:
        self.connection.log.append("body closed")


def test_a_connection_in_use_is_neither_idle_nor_expired() -> None:
    inner = Scripted()
    guarded = GuardedConnection(inner)
    assert guarded.is_idle() and guarded.has_expired()
    response = guarded.handle_request(REQUEST)
    assert not guarded.is_idle() and not guarded.has_expired()
    assert b"".join(response.iter_stream()) == b"{}"
    response.close()
    assert inner.log[-1] == "body closed"
    assert guarded.is_idle() and guarded.has_expired()


def test_a_connection_a_request_of_the_pool_holds_is_not_idle() -> None:
    # A request whose response was just read holds its connection until the pool lets it go.
    # Seen idle meanwhile, by a pass of the pool that had found it busy a moment before as it
    # looked for a free one, the connection was closed "to make room" and another opened.
    inner = Scripted()
    held = [False]
    guarded = GuardedConnection(inner, lambda connection: held[0])
    held[0] = True  # the pool gives it a request
    response = guarded.handle_request(REQUEST)
    assert not guarded.is_idle()
    response.close()
    assert not guarded.is_idle()  # read, not yet let go by the pool
    held[0] = False
    assert guarded.is_idle()
    assert guarded.has_expired()  # (the inner connection's answer, once it was used)


def test_an_unused_connection_expires_unless_a_request_of_the_pool_holds_it() -> None:
    guarded = GuardedConnection(Scripted(), lambda connection: False)
    assert guarded.has_expired() and guarded.is_idle()
    looked = Scripted()
    looked.look_may_end.clear()
    waiting = GuardedConnection(looked, lambda connection: True)
    done = threading.Thread(target=waiting.has_expired)
    done.start()
    assert looked.looking.wait(5)  # held: the inner connection is asked
    looked.look_may_end.set()
    done.join(5)


def test_closing_a_connection_in_use_waits_for_the_end_of_its_response() -> None:
    inner = Scripted()
    guarded = GuardedConnection(inner)
    response = guarded.handle_request(REQUEST)
    guarded.close()
    assert inner.closed == 0
    assert not guarded.is_available()
    response.close()
    assert inner.closed == 1
    response.close()  # a second close of the response ends nothing more
    assert inner.closed == 1


def test_a_closed_connection_takes_no_request() -> None:
    inner = Scripted()
    guarded = GuardedConnection(inner)
    guarded.close()
    assert inner.closed == 1
    with pytest.raises(httpcore.ConnectionNotAvailable):
        guarded.handle_request(REQUEST)
    assert "request" not in inner.log


def test_a_response_closed_twice_ends_its_request_once() -> None:
    # Counted twice, the connection would look idle while the next request runs on it.
    inner = Scripted()
    guarded = GuardedConnection(inner)
    guarded.handle_request(REQUEST).close()
    first = guarded.handle_request(REQUEST)
    first.close()
    first.close()
    running = guarded.handle_request(REQUEST)
    assert not guarded.is_idle()
    guarded.close()
    assert inner.closed == 0
    running.close()
    assert inner.closed == 1


@pytest.mark.parametrize("failure", [httpcore.ReadError("reset"), KeyboardInterrupt()])
def test_a_request_that_fails_frees_the_connection(failure: BaseException) -> None:
    inner = Scripted()
    guarded = GuardedConnection(inner)
    inner.fail = failure
    with pytest.raises(type(failure)):
        guarded.handle_request(REQUEST)
    assert guarded.is_idle()
    guarded.close()
    assert inner.closed == 1  # (once: after a Ctrl-C, the connection closed itself)


class InterruptedChunks(Chunks):
    """A response body whose reading a Ctrl-C cuts."""

    def __iter__(self) -> Iterator[bytes]:
        raise KeyboardInterrupt
        yield b""


def interrupt() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["request", "body", "body's close"])
def test_a_connection_an_interrupt_passed_through_takes_no_other_request(where: str) -> None:
    # The interrupt may have left it half-way through a change of state: it closes as its last
    # request ends, once.
    inner = Scripted()
    guarded = GuardedConnection(inner)
    if where == "request":
        inner.fail = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            guarded.handle_request(REQUEST)
    else:
        response = guarded.handle_request(REQUEST)
        if where == "body":
            response.stream._chunks = InterruptedChunks(inner)  # type: ignore[union-attr]
            with pytest.raises(KeyboardInterrupt):
                response.read()
            response.close()
        else:
            response.stream._chunks.close = interrupt  # type: ignore[union-attr]
            with pytest.raises(KeyboardInterrupt):
                response.close()
    assert inner.closed == 1
    assert not guarded.is_available()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        guarded.handle_request(REQUEST)
    guarded.close()
    assert inner.closed == 1


def test_a_body_read_part_of_the_way_is_no_interrupt() -> None:
    # A generator closed early gets GeneratorExit, which is not a Ctrl-C.
    inner = Scripted()
    guarded = GuardedConnection(inner)
    response = guarded.handle_request(REQUEST)
    chunks = response.iter_stream()
    assert isinstance(chunks, Generator)
    next(chunks)
    chunks.close()
    response.close()
    assert inner.closed == 0
    assert guarded.is_available()


def test_a_request_waits_for_a_look_at_the_idle_connection_to_end() -> None:
    # The race itself: the pool's look at an idle connection (state, then the socket) in one
    # thread, a request starting on the connection in another. The request goes out only once
    # the look is over, so the look never sees the request's answer.
    inner = Scripted()
    guarded = GuardedConnection(inner)
    inner.look_may_end.clear()
    looks: list[bool] = []
    look = threading.Thread(target=lambda: looks.append(guarded.has_expired()))
    look.start()
    assert inner.looking.wait(5)
    request = threading.Thread(target=lambda: guarded.handle_request(REQUEST).close())
    request.start()
    request.join(0.2)
    log_while_looking = list(inner.log)
    inner.look_may_end.set()
    look.join(5)
    request.join(5)
    assert log_while_looking == ["look"]  # the request waited
    assert inner.log == ["look", "looked", "request", "body closed"]
    assert looks == [True]


# ---- the pools a blocking client builds ------------------------------------------------------


PLAIN_LOCK = type(threading.Lock())


def pools(client: kalshi_httpx.KalshiClient) -> list[httpcore.ConnectionPool]:
    """Every httpcore pool behind the client."""
    holders: list[object] = [client._transport] if client._transport is not None else []
    if client._http is not None:
        holders += [client._http._transport, *client._http._mounts.values()]
    found = [getattr(holder, "_pool", None) for holder in holders]
    return [pool for pool in found if isinstance(pool, httpcore.ConnectionPool)]


def assert_guarded(client: object) -> None:
    assert isinstance(client, kalshi_httpx.KalshiClient)
    client.exchange.status()
    made = [each for pool in pools(client) for each in pool.connections]
    assert made and all(isinstance(each, GuardedConnection) for each in made), made
    for pool in pools(client):
        lock: object = pool._optional_thread_lock
        assert type(lock) is PLAIN_LOCK


@contextlib.contextmanager
def ctrl_c_after(seconds: float) -> Iterator[None]:
    """A KeyboardInterrupt in the main thread ``seconds`` from now, as Ctrl-C's would be."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_until(done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)
    return done()


def test_a_ctrl_c_ends_the_wait_for_a_helper_not_its_work() -> None:
    # The HTTP/2 steps of a main-thread request run in helper threads (_Helpers): a Ctrl-C ends
    # the request's wait, and the step runs to its end; what it returns goes to ``abandon``.
    helpers = _Helpers()
    release = threading.Event()
    abandoned: list[object] = []

    def step(value: int) -> int:
        release.wait(5)
        return value * 2

    with ctrl_c_after(0.05), pytest.raises(KeyboardInterrupt):
        helpers.run(step, 21, abandon=abandoned.append)
    assert abandoned == []  # still running
    release.set()
    assert wait_until(lambda: abandoned == [42])
    assert helpers.run(step, 1) == 2  # the helper, idle again, takes the next step
    with pytest.raises(ZeroDivisionError):
        helpers.run(lambda: 1 // 0)


def test_a_step_whose_wait_ended_before_it_began_is_not_run() -> None:
    # A Ctrl-C before a helper took the step (a request not yet sent): the step is dropped.
    helpers = _Helpers()
    steps: queue.SimpleQueue[Any] = queue.SimpleQueue()
    helpers._idle.append(steps)  # a helper that has not started yet
    ran: list[int] = []
    with ctrl_c_after(0.05), pytest.raises(KeyboardInterrupt):
        helpers.run(ran.append, 1)
    threading.Thread(target=helpers._serve, args=(steps,), daemon=True).start()
    assert wait_until(lambda: steps in helpers._idle)  # it took the step, and is idle again
    assert ran == []
    helpers.run(ran.append, 2)
    assert ran == [2]


def adopted(sock: socket.socket) -> _SafeHTTP2Connection:
    """An HTTP/2 handler over ``sock`` (plain), as a guarded connection makes it."""
    origin = httpcore.Origin(b"https", b"example.com", 443)
    handler = httpcore.HTTP2Connection(origin=origin, stream=SyncStream(sock))
    _SafeHTTP2Connection.adopt(handler)
    assert isinstance(handler, _SafeHTTP2Connection)
    return handler


def test_a_close_during_a_helpers_step_shuts_the_socket_down_and_closes_it_after() -> None:
    # A step may outlive its request (a Ctrl-C ended the wait for it), in a read: the close
    # shuts the socket down, which ends that read and tells the server, and closes it once the
    # step has ended (closing it under the read could give its number to another socket).
    ours, server = socket.socketpair()
    handler = adopted(ours)
    began, release = threading.Event(), threading.Event()

    def step() -> None:
        began.set()
        release.wait(5)

    worker = threading.Thread(target=handler._counted, args=(step, ()), daemon=True)
    worker.start()
    assert began.wait(5)
    handler.close()
    assert handler.is_closed() and not handler.is_available()
    assert ours.fileno() != -1  # not closed under the step
    server.settimeout(5)
    assert server.recv(1) == b""  # shut down
    release.set()
    worker.join(5)
    assert ours.fileno() == -1  # closed as the step ended
    server.close()


def test_a_helpers_read_for_a_stream_its_request_closed_ends_at_once() -> None:
    # A step that goes on after its request stopped waiting (a Ctrl-C) and closed its stream
    # would read for good, holding the read lock the connection's other requests need.
    ours, server = socket.socketpair()
    handler = adopted(ours)
    request = httpcore.Request("GET", "https://example.com/")
    server.sendall(b"unread")
    with pytest.raises(httpcore.ReadError, match="stream 1 was closed by its request"):
        handler._receive_events(request, 1)
    ours.settimeout(5)
    assert ours.recv(16) == b"unread"  # nothing was read
    handler.close()
    server.close()


def test_httpcore_still_names_the_pool_lock_that_the_guard_replaces() -> None:
    # Renamed, the guard would set a lock the pool never takes; this is where that shows.
    with httpcore.ConnectionPool() as pool:
        assert isinstance(pool._optional_thread_lock, httpcore._synchronization.ThreadLock)


def test_httpcore_still_names_the_pool_requests_and_their_connection() -> None:
    # The guard asks whether a request of the pool holds a connection (GuardedConnection
    # .has_expired): renamed, every connection not yet given its request would look expired.
    request = httpcore._sync.connection_pool.PoolRequest(httpcore.Request("GET", "https://x/"))
    assert request.connection is None
    with httpcore.ConnectionPool() as pool:
        assert pool._requests == []


@pytest.mark.flavours("httpx_sync")
async def test_a_connection_made_for_a_request_that_gave_up_before_using_it_is_dropped(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request's wait for a connection times out just as the pool makes it one: httpcore 1.0.9
    # keeps that connection, never connected, neither idle nor closed, and with one connection
    # every later call waited for it in vain (a ConnectTimeout; the REST soak found it).
    pool_request = httpcore._sync.connection_pool.PoolRequest
    wait = pool_request.wait_for_connection
    gave_up: list[object] = []

    def wait_then_give_up(self: Any, timeout: float | None = None) -> Any:
        connection = wait(self, timeout)
        if not gave_up:
            gave_up.append(connection)
            raise httpcore.PoolTimeout("timed out as the connection came")
        return connection

    monkeypatch.setattr(pool_request, "wait_for_connection", wait_then_give_up)
    one = {"limits": httpx.Limits(max_connections=1, max_keepalive_connections=1)}
    async with kx.client(timeout=1.0, retry=RetryPolicy.disabled(), **one) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        with pytest.raises(ConnectTimeout):
            client.exchange.status()
        assert client.exchange.status().trading_active is not None
        [pool] = pools(client)
        assert gave_up[0] not in pool.connections
    assert len(kx.server.requests()) == 1


@pytest.mark.flavours("httpx_sync")
async def test_a_direct_pool_is_guarded(kx: Driver) -> None:
    async with kx.client() as client:
        assert_guarded(client)


@pytest.mark.flavours("httpx_sync")
async def test_a_pool_through_an_http_proxy_is_guarded(kx: Driver) -> None:
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            assert_guarded(client)


@pytest.mark.flavours("httpx_sync")
async def test_a_pool_through_a_socks_proxy_is_guarded(kx: Driver) -> None:
    with socks_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            assert_guarded(client)


@pytest.mark.flavours("httpx_sync")
async def test_the_pools_of_a_proxy_named_in_the_environment_are_guarded(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tunnel_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url())
        async with kx.client() as client:
            assert isinstance(client, kalshi_httpx.KalshiClient)
            assert client._http is not None  # routed by an internal httpx client
            assert_guarded(client)
        assert len(proxy.heads) == 1


@pytest.mark.flavours("httpx_sync")
async def test_a_replaced_pool_is_guarded(kx: Driver) -> None:
    async with kx.client() as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        first = client._transport
        client._retire(first)  # as when httpcore may have broken it
        assert client._transport is not first
        assert_guarded(client)


@pytest.mark.flavours("httpx_sync")
async def test_a_transport_passed_in_is_left_as_it_is(kx: Driver) -> None:
    transport = httpx.HTTPTransport(verify=kx.server.ssl_context())
    async with kx.client(transport=transport) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        client.exchange.status()
        assert transport._pool.connections
        assert not any(isinstance(c, GuardedConnection) for c in transport._pool.connections)


def test_a_short_pool_race_run_answers_every_call() -> None:
    # fuzz/pool_race.py, for a second: the script works, and the guarded client fails no call.
    ok, line = pool_race.run(1.0, threads=4, connections=2, tls=False, guarded=True)
    assert ok, line
    made = re.search(r" calls answered, 0 failed, (\d+) connections made;", line)
    assert made is not None, line
    assert int(made.group(1)) >= 1
    assert not line.startswith("0 ")


@pytest.mark.flavours("httpx_sync")
async def test_an_interrupt_as_httpcore_takes_a_lock_does_not_hang_the_call(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpcore's lock wrapper takes the lock in a Python __enter__, so a Ctrl-C can come once
    # the lock is taken and before the with block owns it. When the pool's lock was such a
    # wrapper, an interrupt as the pool's request path took it a second time (to assign the
    # request a connection) left it held, and the path's except clause, which takes it again,
    # waited for itself for good. Here the second wrapper taken in a call is interrupted so;
    # the pool's lock is a plain one now, and the call either ends with the interrupt (if it
    # took another wrapper of httpcore's) or answers.
    enter = httpcore._synchronization.ThreadLock.__enter__
    taken = [0]

    def take_then_interrupt(
        lock: httpcore._synchronization.ThreadLock,
    ) -> httpcore._synchronization.ThreadLock:
        held = enter(lock)
        taken[0] += 1
        if taken[0] == 2:
            raise KeyboardInterrupt
        return held

    async with kx.client(limits=httpx.Limits(max_connections=1)) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient)
        monkeypatch.setattr(httpcore._synchronization.ThreadLock, "__enter__", take_then_interrupt)
        caller, raised = status_in_thread(client)
        caller.join(10)
        monkeypatch.undo()
        assert not caller.is_alive(), "the interrupted call waits for a lock it holds itself"
        assert [type(exc) for exc in raised] in ([], [KeyboardInterrupt])
        assert client.exchange.status().trading_active is not None
