"""Gaps a mutation audit of the adapters found (`kalshi_anyio`, `kalshi_sync`, `kalshi_httpx`).

Each test pins down one behaviour the rest of the adapter suite left open.
"""

from __future__ import annotations

import math
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_proto.errors import LocalProtocolError, ReadError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import Driver, Flavour, backend_of, maybe
from tests.adapters.server import Fault, RawServer

pytestmark = pytest.mark.anyio

STATUS = "/exchange/status"


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


# ---- closing -----------------------------------------------------------------------------------


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_client_closed_during_a_back_off_fails_the_retry_at_once(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first attempt gets a 503; during its back-off the client is closed, and another call
    # takes the one connection slot for good. The retry must say the client is closed at once,
    # not wait for the slot until its timeout (and then retry that).
    kx.server.script(STATUS, Fault(status=503))
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, retry_max_delay=0.05, total_timeout=20)
    client = kx.build(retry=retry, max_connections=1, timeout=3.0)
    assert isinstance(client, kalshi_sync.KalshiClient | kalshi_anyio.AsyncKalshiClient)
    closed_in_back_off: list[float] = []

    if isinstance(client, kalshi_anyio.AsyncKalshiClient):
        async_client = client
        async_sleep = async_client._sleep

        async def close_then_sleep(seconds: float) -> None:
            if not closed_in_back_off:
                await async_client.aclose()
                assert await async_client._limiter.acquire(math.inf) is False
            closed_in_back_off.append(seconds)
            await async_sleep(seconds)

        monkeypatch.setattr(async_client, "_sleep", close_then_sleep)
    else:
        blocking = client
        blocking_sleep = blocking._sleep

        def close_then_sleep_blocking(seconds: float) -> None:
            if not closed_in_back_off:
                blocking.close()
                assert blocking._limiter.acquire(math.inf) is False
            closed_in_back_off.append(seconds)
            blocking_sleep(seconds)

        monkeypatch.setattr(blocking, "_sleep", close_then_sleep_blocking)
    started = kx.now()
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        await maybe(client.exchange.status())
    assert kx.now() - started < 1.5  # well short of the 3 s a wait for the slot would take
    assert len(closed_in_back_off) == 1
    assert len(kx.server.requests(STATUS)) == 1


# ---- error translation -------------------------------------------------------------------------


class ResettingServer(RawServer):
    """Reads each request, then resets the connection (SO_LINGER 0) instead of answering."""

    def _answer(self, conn: ssl.SSLSocket) -> bool:
        answered = super()._answer(conn)  # with answer=b"": reads the request, sends nothing
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return answered


@pytest.mark.flavours("kalshi_anyio")
async def test_a_connection_reset_before_the_answer_is_a_failed_read(
    kx: Driver, _server_files: Path
) -> None:
    # A reset is a read that failed, not the server closing the connection in good order: the
    # error says so and keeps the stream's error as its cause. (kalshi_sync's blocking TLS
    # socket reads this reset as an end of file.)
    server = ResettingServer(kx.server.ca, _server_files / "server.pem", answer=b"")
    try:
        async with kx.client(
            key=None, base_url=server.base_url, retry=RetryPolicy.disabled()
        ) as client:
            with pytest.raises(ReadError) as info:
                await maybe(client.exchange.status())
    finally:
        server.stop()
    assert str(info.value).startswith("reading the response failed: ")
    assert info.value.__cause__ is not None
    assert server.accepted == 1


# ---- kalshi_httpx options ----------------------------------------------------------------------


def _open_exchange(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"exchange_active": True, "trading_active": True})


def test_without_h2_a_client_that_does_not_ask_for_http2_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # h2 is needed only for http2=True, and not even then with an http_client, whose own
    # settings apply (the other httpx options are ignored).
    monkeypatch.setitem(sys.modules, "h2", None)  # ``import h2`` now raises ImportError
    transport = httpx.MockTransport(_open_exchange)
    with kalshi_httpx.KalshiClient(transport=transport) as client:
        assert client.exchange.status().exchange_active is True
    with (
        httpx.Client(transport=transport) as given,
        kalshi_httpx.KalshiClient(http2=True, http_client=given) as client,
    ):
        assert client.exchange.status().exchange_active is True
    anyio.run(_async_clients_without_h2)


async def _async_clients_without_h2() -> None:
    transport = httpx.MockTransport(_open_exchange)
    async with kalshi_httpx.AsyncKalshiClient(transport=transport) as client:
        assert (await client.exchange.status()).exchange_active is True
    async with (
        httpx.AsyncClient(transport=transport) as given,
        kalshi_httpx.AsyncKalshiClient(http2=True, http_client=given) as async_client,
    ):
        assert (await async_client.exchange.status()).exchange_active is True


def test_a_given_http_client_stays_open_when_the_client_is_closed_during_a_call() -> None:
    # aclose/close leave a given http_client alone (it is the caller's), also when the close
    # comes while a call is out; only a pool the client built itself is closed again then.
    holder: list[kalshi_httpx.KalshiClient] = []

    def close_then_answer(request: httpx.Request) -> httpx.Response:
        holder[0].close()
        return _open_exchange(request)

    given = httpx.Client(transport=httpx.MockTransport(close_then_answer))
    holder.append(kalshi_httpx.KalshiClient(http_client=given))
    assert holder[0].exchange.status().exchange_active is True
    assert not given.is_closed
    given.close()
    anyio.run(_async_given_client_closed_during_a_call)


async def _async_given_client_closed_during_a_call() -> None:
    holder: list[kalshi_httpx.AsyncKalshiClient] = []

    async def close_then_answer(request: httpx.Request) -> httpx.Response:
        await holder[0].aclose()
        return _open_exchange(request)

    given = httpx.AsyncClient(transport=httpx.MockTransport(close_then_answer))
    holder.append(kalshi_httpx.AsyncKalshiClient(http_client=given))
    assert (await holder[0].exchange.status()).exchange_active is True
    assert not given.is_closed
    await given.aclose()


def test_a_given_transport_is_used_even_when_the_environment_names_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy variables choose how a client builds its own pool; a transport passed in is
    # the pool, and every request goes to it. (Port 9 on loopback: nothing listens there.)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    transport = httpx.MockTransport(_open_exchange)
    with kalshi_httpx.KalshiClient(transport=transport) as client:
        assert client.exchange.status().exchange_active is True

    async def main() -> None:
        async with kalshi_httpx.AsyncKalshiClient(transport=transport) as async_client:
            assert (await async_client.exchange.status()).exchange_active is True

    anyio.run(main)


_STATUS_PARTS = (b'{"exchange_active": true, ', b'"trading_active": false}')


class ReadingTransport(httpx.BaseTransport):
    """Hands back responses it has already read, as a recording or caching transport does;
    the body came from a generator, which cannot be read twice."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield from _STATUS_PARTS

        response = httpx.Response(200, content=body())
        response.read()
        return response


class AsyncReadingTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for part in _STATUS_PARTS:
                yield part

        response = httpx.Response(200, content=body())
        await response.aread()
        return response


def test_a_response_the_transport_has_already_read_is_answered_from_its_body() -> None:
    with kalshi_httpx.KalshiClient(transport=ReadingTransport()) as client:
        status = client.exchange.status()
    assert (status.exchange_active, status.trading_active) == (True, False)

    async def main() -> None:
        async with kalshi_httpx.AsyncKalshiClient(transport=AsyncReadingTransport()) as client:
            status = await client.exchange.status()
        assert (status.exchange_active, status.trading_active) == (True, False)

    anyio.run(main)
