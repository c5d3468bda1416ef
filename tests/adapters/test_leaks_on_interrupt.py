"""Connections of the raw adapters are closed whatever interrupts the code that closes or opens
them.

Two interruptions get through where a cancellation of anyio's or trio's does not: asyncio's own
``task.cancel()`` (what ``asyncio.timeout``, ``wait_for`` and task groups use), which an anyio
shield does not hold off, and a KeyboardInterrupt (or any other BaseException) in a blocking
client. Each test makes one land at a known point, by hand or by a patched method, and counts
the sockets left open while the exception is still alive: a socket it holds would otherwise be
closed only by the garbage collector, or, on asyncio, never, as the loop holds its transport.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import anyio
import pytest

import kalshi_anyio
import kalshi_sync
import kalshi_sync._io
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

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy.disabled()
STATUS = "/exchange/status"
AN_HOUR = 3600.0

RawClient = kalshi_sync.KalshiClient | kalshi_anyio.AsyncKalshiClient


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


async def pooled(kx: Driver, client: Client, count: int) -> RawClient:
    """Leave ``count`` connections in the pool of ``client``, by making ``count`` calls that
    the server holds long enough to overlap; the client, as a raw adapter's."""
    assert isinstance(client, kalshi_sync.KalshiClient | kalshi_anyio.AsyncKalshiClient)
    kx.server.script(STATUS, Fault(delay=0.3), times=count)
    if isinstance(client, kalshi_anyio.AsyncKalshiClient):
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(client.exchange.status)
    else:
        blocking = client
        assert run_in_threads(lambda: blocking.exchange.status(), count) == []
    assert len(client._idle) == count
    assert open_sockets_to(kx.server.port) == count
    return client


def open_while_raised(port: int, interrupted: pytest.ExceptionInfo[BaseException]) -> int:
    """Sockets connected to ``port``, counted while ``interrupted`` holds the frames it left:
    a socket left in one of them is still open, where it would be freed along with them."""
    assert interrupted.tb is not None
    return open_sockets_to(port)


def interrupt_the_first_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next close of a blocking stream raise KeyboardInterrupt once it has closed."""
    close = kalshi_sync._io.Stream.close
    interrupts = [KeyboardInterrupt()]

    def close_then_interrupt(stream: kalshi_sync._io.Stream) -> None:
        close(stream)
        if interrupts:
            raise interrupts.pop()

    monkeypatch.setattr(kalshi_sync._io.Stream, "close", close_then_interrupt)


# ---- asyncio's own cancellation --------------------------------------------------------------


@pytest.mark.flavours("kalshi_anyio-asyncio")
async def test_asyncio_cancelling_aclose_still_closes_every_connection(kx: Driver) -> None:
    client = await pooled(kx, kx.build(), 3)
    assert isinstance(client, kalshi_anyio.AsyncKalshiClient)
    closing = asyncio.get_running_loop().create_task(client.aclose())
    await asyncio.sleep(0)  # aclose runs to its first checkpoint: the close of one connection
    assert closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert client._idle == []
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("kalshi_anyio-asyncio")
async def test_asyncio_cancelling_a_call_as_it_closes_expired_connections_loses_none(
    kx: Driver,
) -> None:
    async with kx.client(retry=NO_RETRY) as built:
        client = await pooled(kx, built, 2)
        assert isinstance(client, kalshi_anyio.AsyncKalshiClient)
        older, newer = client._idle
        older.idle_since -= AN_HOUR  # expired (the default keepalive_expiry is 5 s)
        call = asyncio.get_running_loop().create_task(client.exchange.status())
        await asyncio.sleep(0)  # the call runs to its first checkpoint: closing the expired one
        assert call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The expired connection is closed, the other still pooled, and it carries the next call.
        assert client._idle == [newer]
        assert open_sockets_to(kx.server.port) == 1
        await client.exchange.status()
        assert kx.server.connections() == 2
    assert open_sockets_to(kx.server.port) == 0


# ---- KeyboardInterrupt in a blocking client --------------------------------------------------


@pytest.mark.flavours("kalshi_sync")
async def test_an_interrupted_close_still_closes_every_connection(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await pooled(kx, kx.build(), 3)
    assert isinstance(client, kalshi_sync.KalshiClient)
    interrupt_the_first_close(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        client.close()
    assert client._idle == []
    assert open_while_raised(kx.server.port, interrupted) == 0


@pytest.mark.flavours("kalshi_sync")
async def test_an_interrupt_as_a_call_closes_expired_connections_loses_none(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with kx.client(retry=NO_RETRY) as built:
        client = await pooled(kx, built, 2)
        assert isinstance(client, kalshi_sync.KalshiClient)
        older, newer = client._idle
        older.idle_since -= AN_HOUR
        interrupt_the_first_close(monkeypatch)
        with pytest.raises(KeyboardInterrupt) as interrupted:
            client.exchange.status()
        assert client._idle == [newer]
        assert open_while_raised(kx.server.port, interrupted) == 1
        client.exchange.status()
        assert kx.server.connections() == 2
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("kalshi_sync")
async def test_an_interrupted_tls_handshake_leaves_no_socket(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The silent listener takes the TCP connection and never answers the handshake, which is
    # interrupted at once here.
    def interrupt(tls: ssl.SSLSocket, *args: Any) -> None:
        raise KeyboardInterrupt

    async with kx.silent_listener() as port:
        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        async with kx.client(base_url=base_url, retry=NO_RETRY) as client:
            monkeypatch.setattr(ssl.SSLSocket, "do_handshake", interrupt)
            with pytest.raises(KeyboardInterrupt) as interrupted:
                await maybe(client.exchange.status())
            monkeypatch.undo()
            assert open_while_raised(port, interrupted) == 0


@pytest.mark.flavours("kalshi_sync")
async def test_an_interrupted_tcp_connect_leaves_no_socket(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interrupt comes just as the connection is made.
    async with kx.silent_listener() as port:
        connect = socket.socket.connect

        def connect_then_interrupt(sock: socket.socket, address: Any) -> None:
            connect(sock, address)
            if address[1] == port:
                raise KeyboardInterrupt

        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        async with kx.client(base_url=base_url, retry=NO_RETRY) as client:
            monkeypatch.setattr(socket.socket, "connect", connect_then_interrupt)
            with pytest.raises(KeyboardInterrupt) as interrupted:
                await maybe(client.exchange.status())
            monkeypatch.undo()
            assert open_while_raised(port, interrupted) == 0
