"""The connection pool of the raw adapters (`kalshi_sync`, `kalshi_anyio`), case by case.

Each test pins down one decision of the pool that the rest of the suite leaves open: which idle
connections expire and which one is reused, the defaults and ``max_connections=0``, the slots
of the connection limit, the pool lock that ``close`` takes, the checks a call makes before it
sends anything, the locks and slots renewed after a fork, and a few properties of the streams
(no Nagle delay, deadlines of the blocking stream, plain HTTP). Ages are set by moving a pooled
connection's ``idle_since`` back, and a slot held by another call is taken by hand, so that no
test depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from typing import Any

import anyio
import pytest

import kalshi_anyio
import kalshi_anyio._io
import kalshi_anyio.rest
import kalshi_sync
import kalshi_sync._io
import kalshi_sync.rest
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import ConnectTimeout, LocalProtocolError, ReadTimeout, WriteError
from kalshi_proto.rest.hold import Hold
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import (
    Client,
    Driver,
    Flavour,
    backend_of,
    maybe,
    open_sockets_to,
    run_in_threads,
)
from tests.adapters.server import PREFIX, Fault
from tests.helpers.streams import EndedInMidWrite

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy.disabled()
STATUS = "/exchange/status"
AN_HOUR = 3600.0

RawClient = kalshi_sync.KalshiClient | kalshi_anyio.AsyncKalshiClient
Connection = kalshi_sync.rest._Connection | kalshi_anyio.rest._Connection


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


def raw(client: Client) -> RawClient:
    """The client, as one of the raw adapters' (whose pool the tests look into)."""
    assert isinstance(client, kalshi_sync.KalshiClient | kalshi_anyio.AsyncKalshiClient)
    return client


def local_port(connection: Connection) -> int:
    """The client-side port of a pooled connection: the ``client_port`` the server records."""
    stream = connection.stream
    # A socket, or on asyncio the loop's TransportSocket wrapping one.
    sock: Any = stream._sock if isinstance(stream, kalshi_sync._io.Stream) else stream._raw
    return int(sock.getsockname()[1])


async def calls_at_once(kx: Driver, client: RawClient, count: int) -> None:
    """Make ``count`` calls at once: tasks on an async client, threads on a blocking one. The
    server holds every answer for half a second, so that the calls overlap."""
    kx.server.script(STATUS, Fault(delay=0.5), times=count)
    if isinstance(client, kalshi_anyio.AsyncKalshiClient):
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(client.exchange.status)
        return
    blocking = client
    assert run_in_threads(lambda: blocking.exchange.status(), count) == []


async def queued_for_a_slot(client: kalshi_anyio.AsyncKalshiClient) -> None:
    """Return once a call of ``client`` waits for a free slot."""
    with anyio.fail_after(5):
        while not client._limiter._waiters:
            await anyio.sleep(0.005)


# ---- expiry and reuse ------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
@pytest.mark.parametrize("expired", [1, 2, 3])
async def test_a_call_closes_exactly_the_expired_connections_and_reuses_the_newest(
    kx: Driver, expired: int
) -> None:
    async with kx.client(retry=NO_RETRY) as client:
        pool = raw(client)
        await calls_at_once(kx, pool, 3)
        assert kx.server.connections() == 3
        pooled: list[Connection] = list(pool._idle)  # oldest first
        assert len(pooled) == 3
        ports = [local_port(connection) for connection in pooled]
        for connection in pooled[:expired]:
            connection.idle_since -= AN_HOUR  # the default keepalive_expiry is 5 s
        await maybe(client.exchange.status())
        used = kx.server.requests(STATUS)[-1].client_port
        left: list[Connection] = list(pool._idle)
        left_open = open_sockets_to(kx.server.port)
    if expired < 3:
        # The expired went, the others stayed in their order; the newest carried the call and
        # came back last.
        assert used == ports[-1]
        assert left == pooled[expired:]
        assert kx.server.connections() == 3
    else:
        assert used not in ports
        assert len(left) == 1 and left[0] not in pooled
        assert kx.server.connections() == 4
    assert left_open == len(left)


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_pooled_connection_whose_descriptor_is_gone_is_replaced(kx: Driver) -> None:
    # A pooled connection whose descriptor is no longer valid (closed under the pool here)
    # cannot be checked for a drop: it is closed and replaced, never reused.
    async with kx.client(retry=NO_RETRY) as client:
        pool = raw(client)
        await maybe(client.exchange.status())
        stream = pool._idle[0].stream
        if isinstance(stream, kalshi_sync._io.Stream):
            stream._sock.close()
        else:  # the loop owns the socket: only the descriptor the pool looks at goes
            gone = socket.socket()
            gone.close()
            stream._raw = gone
        reply = await maybe(client.exchange.status())
        assert reply.trading_active is not None
        assert pool._idle[0].stream is not stream
        assert open_sockets_to(kx.server.port) == 1
    assert kx.server.connections() == 2


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_by_default_an_idle_connection_is_reused_for_five_seconds(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY) as client:
        pool = raw(client)
        await maybe(client.exchange.status())
        pool._idle[0].idle_since -= 4.5
        await maybe(client.exchange.status())
        assert kx.server.connections() == 1
        pool._idle[0].idle_since -= 5.5
        await maybe(client.exchange.status())
        assert kx.server.connections() == 2
        assert open_sockets_to(kx.server.port) == 1


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_by_default_ten_calls_run_at_once(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY, timeout=10.0) as client:
        pool = raw(client)
        await calls_at_once(kx, pool, 11)
        assert len(kx.server.requests(STATUS)) == 11
        # Ten went out together; the eleventh waited, then reused one of theirs.
        assert kx.server.connections() == 10
        assert len(pool._idle) == 10


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_max_connections_zero_sets_no_limit(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY, max_connections=0, timeout=3.0) as client:
        pool = raw(client)
        await calls_at_once(kx, pool, 12)  # more than the default limit of ten
        assert len(kx.server.requests(STATUS)) == 12
        assert kx.server.connections() == 12
        assert len(pool._idle) == 12
        # However many calls came and went, a slot is taken without waiting (a deadline long
        # past is met) and no taker counts as having waited.
        for _ in range(30):
            assert await maybe(pool._limiter.acquire(0.0)) is False


@pytest.mark.flavours("kalshi_anyio-asyncio")
async def test_a_call_cancelled_by_asyncio_as_it_is_handed_a_slot_passes_the_slot_on(
    kx: Driver,
) -> None:
    # asyncio's own cancellation (``asyncio.timeout``, ``wait_for``, a TaskGroup) can reach a
    # task after the slot was handed to it and before it ran again: the task must leave the
    # slot behind, not take it along.
    async with kx.client(retry=NO_RETRY, max_connections=1) as client:
        assert isinstance(client, kalshi_anyio.AsyncKalshiClient)
        limiter = client._limiter
        assert await limiter.acquire(math.inf) is False  # another call holds the slot
        waiting = asyncio.get_running_loop().create_task(client.exchange.status())
        await queued_for_a_slot(client)
        limiter.release()  # handed to the waiting call...
        waiting.cancel()  # ...which is cancelled before it runs
        await asyncio.wait([waiting])
        assert waiting.cancelled()
        # The slot is free again, and the client goes on working.
        assert await limiter.acquire(time.monotonic() + 1) is False
        limiter.release()
        reply = await client.exchange.status()
    assert reply.trading_active is not None
    assert len(kx.server.requests(STATUS)) == 1


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_the_limit_still_holds_after_calls_came_and_went(kx: Driver) -> None:
    # Every slot given back with no one waiting is one slot, no more: after a few calls on
    # their own, two at once is still the most.
    async with kx.client(retry=NO_RETRY, max_connections=2, timeout=10.0) as client:
        pool = raw(client)
        for _ in range(3):
            await maybe(client.exchange.status())
        await calls_at_once(kx, pool, 4)
        assert len(kx.server.requests(STATUS)) == 7
        assert kx.server.connections() == 2
        assert len(pool._idle) == 2


# ---- closing ---------------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync")
async def test_close_waits_for_a_thread_giving_a_connection_back(kx: Driver) -> None:
    # A call on another thread is putting its connection back: it holds the pool lock, has seen
    # the client open, and appends. ``close`` must wait for the lock, then close that
    # connection too, rather than empty the pool under the other thread's feet.
    client = kx.build(retry=NO_RETRY)
    assert isinstance(client, kalshi_sync.KalshiClient)
    try:
        client.exchange.status()
        connection = client._idle.pop()  # the connection of the call in flight
        client._pool_lock.acquire()
        closer = threading.Thread(target=client.close)
        closer.start()
        closer.join(0.2)
        close_waited = closer.is_alive()
        client._idle.append(connection)  # given back under the lock
        client._pool_lock.release()
        closer.join(5)
        left = list(client._idle)
        left_open = open_sockets_to(kx.server.port)
    finally:
        client.close()
    assert close_waited
    assert left == []
    assert left_open == 0


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_closed_client_fails_at_once_even_with_every_slot_taken(kx: Driver) -> None:
    # The one slot is held by a call that will not give it back in time; a call made after
    # close must not wait for it (and time out) before saying the client is closed.
    client = kx.build(retry=NO_RETRY, max_connections=1, timeout=0.5)
    pool = raw(client)
    assert await maybe(pool._limiter.acquire(math.inf)) is False
    await kx.close(client)
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        await maybe(client.exchange.status())
    assert kx.server.requests() == []


# ---- waiting for a slot ----------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_slot_that_comes_free_only_after_the_deadline_sends_nothing(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another call holds the one slot; it gives it back, but the waiting call's clock then
    # reads past its deadline (a late wake-up, simulated by moving the adapter's clock an hour
    # on). The call must give up with ConnectTimeout rather than go out anyway.
    async with kx.client(retry=NO_RETRY, max_connections=1) as client:
        pool = raw(client)
        module: Any = (
            kalshi_sync._io if isinstance(pool, kalshi_sync.KalshiClient) else kalshi_anyio._io
        )
        real_clock = module.monotonic
        assert await maybe(pool._limiter.acquire(math.inf)) is False
        monkeypatch.setattr(module, "monotonic", lambda: real_clock() + AN_HOUR)
        outcome: list[object] = []

        async def call() -> None:
            try:
                outcome.append(await maybe(client.exchange.status()))
            except ConnectTimeout as exc:
                outcome.append(exc)

        if isinstance(pool, kalshi_anyio.AsyncKalshiClient):
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                await queued_for_a_slot(pool)
                pool._limiter.release()
        else:
            limiter = pool._limiter
            releasers: list[threading.Timer] = []

            def acquire(deadline: float, hold: Hold | None = None) -> bool:
                # The slot comes free while the call waits for it.
                releasers.append(threading.Timer(0.05, limiter.release))
                releasers[-1].start()
                return type(limiter).acquire(limiter, deadline, hold)

            monkeypatch.setattr(limiter, "acquire", acquire)
            await call()
            for releaser in releasers:
                releaser.join(5)
            assert len(releasers) == 1
        monkeypatch.undo()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectTimeout)
    assert str(outcome[0]) == "no connection became free before the timeout"
    assert kx.server.requests() == []


# ---- the streams -----------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_pooled_connections_send_without_delay(kx: Driver) -> None:
    # Nagle's algorithm holds back a small write until the previous one is acknowledged.
    async with kx.client(retry=NO_RETRY) as client:
        pool = raw(client)
        await maybe(client.exchange.status())
        stream = pool._idle[0].stream
        sock: Any = stream._sock if isinstance(stream, kalshi_sync._io.Stream) else stream._raw
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.flavours("kalshi_sync")
async def test_a_blocking_read_or_write_past_its_deadline_is_a_read_timeout(kx: Driver) -> None:
    # Each socket call of the blocking stream gets the time left as its timeout; none left is a
    # ReadTimeout before anything is read or written, not a negative socket timeout.
    async with kx.client(retry=NO_RETRY) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        client.exchange.status()
        stream = client._idle[0].stream
        past = kx.now() - 0.01
        with pytest.raises(ReadTimeout, match="reading the response timed out"):
            stream.receive(past)
        with pytest.raises(ReadTimeout, match="the request timed out"):
            stream.send(b"GET / HTTP/1.1\r\n", past)
        assert len(kx.server.requests()) == 1  # nothing more went out


@pytest.mark.flavours("kalshi_sync")
async def test_a_blocking_write_on_a_broken_connection_is_a_write_error(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        client.exchange.status()
        stream = client._idle[0].stream
        stream._sock.shutdown(socket.SHUT_WR)  # nothing can be written on it any more
        with pytest.raises(WriteError, match="writing the request failed"):
            stream.send(b"GET / HTTP/1.1\r\n\r\n", kx.now() + 5)


@pytest.mark.flavours("kalshi_sync")
async def test_a_blocking_write_the_server_does_not_read_is_a_read_timeout(kx: Driver) -> None:
    # The listener's kernel takes the connection and buffers what it can, but nothing reads:
    # once the buffers are full the write blocks, until the deadline.
    async with kx.silent_listener() as port:
        stream = kalshi_sync._io.connect("127.0.0.1", port, None, kx.now() + 5)
        try:
            with pytest.raises(
                ReadTimeout, match="the request timed out while it was being written"
            ):
                stream.send(bytes(64 * 1024 * 1024), kx.now() + 0.2)
        finally:
            stream.close()


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_tcp_connect_that_gets_no_answer_is_a_connect_timeout(kx: Driver) -> None:
    # A listener whose accept queue is full drops new SYNs (Linux), so the TCP handshake itself
    # never completes (the silent listener of the other tests completes it and stalls TLS).
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = int(listener.getsockname()[1])
    queued = socket.create_connection(("127.0.0.1", port))  # fills the queue
    try:
        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        async with kx.client(base_url=base_url, timeout=0.3, retry=NO_RETRY) as client:
            with pytest.raises(ConnectTimeout):
                await maybe(client.exchange.status())
        left_open = open_sockets_to(port)
    finally:
        queued.close()
        listener.close()
    assert left_open == 1  # the one in the queue: the client left nothing behind


# ---- plain HTTP ------------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_plain_http_to_the_local_exchange_reuses_its_connection(flavour: Flavour) -> None:
    # The local exchange serves plain HTTP unless asked for TLS: no handshake is attempted.
    with serve_exchange_in_thread() as local:
        assert local.base_url.startswith("http://")
        client = raw(flavour.cls(**local.client_options(), retry=NO_RETRY))
        try:
            await maybe(client.exchange.status())
            first = client._idle[0]
            reply = await maybe(client.exchange.status())
            assert reply.trading_active is not None
            assert client._idle == [first]
        finally:
            if isinstance(client, kalshi_anyio.AsyncKalshiClient):
                await client.aclose()
            else:
                client.close()


# ---- forks -----------------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_after_a_fork_the_pool_lock_and_slots_held_in_the_parent_are_renewed(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At the fork, a thread of the parent held the pool lock and another the only slot; they
    # do not exist in the child, so the child's client must not wait for them. A watchdog
    # frees the lock after 3 s, so that a client stuck on it fails instead of hanging.
    module: Any = kalshi_sync._io if kx.flavour.family == "kalshi_sync" else kalshi_anyio._io
    inherited: list[Any] = getattr(module, "_INHERITED", [])
    left_before = len(inherited)
    async with kx.client(retry=NO_RETRY, max_connections=1, timeout=1.0) as client:
        pool = raw(client)
        await maybe(client.exchange.status())
        held_lock = pool._pool_lock
        assert await maybe(pool._limiter.acquire(math.inf)) is False
        held_lock.acquire()
        rescued: list[bool] = []

        def rescue() -> None:
            rescued.append(True)
            held_lock.release()

        watchdog = threading.Timer(3.0, rescue)
        watchdog.start()
        monkeypatch.setattr(module, "FORKS", module.FORKS + 1)
        try:
            reply = await maybe(client.exchange.status())
        finally:
            watchdog.cancel()
            watchdog.join(5)
            if not rescued:
                held_lock.release()
        assert reply.trading_active is not None
        assert pool._pool_lock is not held_lock
    abandoned = inherited[left_before:]
    del inherited[left_before:]
    for stream in abandoned:  # an async client keeps them unclosed; here the test closes them
        await stream.aclose()
    assert rescued == []
    assert kx.server.connections() == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_stream_ended_in_mid_write_is_a_write_error(backend: str) -> None:
    # anyio.EndOfStream used to escape the SDK from a send, not a TransportError.
    async def send() -> None:
        stream = kalshi_anyio._io.Stream(EndedInMidWrite(), raw=None)
        with pytest.raises(WriteError, match="the server closed the connection"):
            await stream.send(b"GET / HTTP/1.1\r\n\r\n", time.monotonic() + 5)

    anyio.run(send, backend=backend)
