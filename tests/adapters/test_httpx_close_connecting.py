"""A pool closed while one of its connections connects closes what that connect makes.

httpcore 1.0.9 closes a connection only once it has connected: the pool's close let go of a
connection still connecting, whose connect then finished and left a socket that nothing closed
but the garbage collector (the REST soak found it: closing the async httpx client while calls
with 20 ms timeouts were in their TLS handshakes). `kalshi_httpx._async_http2.ConnectOnce`
closes the new stream, and the call fails as a connect failure. The blocking pools' guard holds
the close back until the call's response ends.

Here the connect waits, in a stand-in network backend, until the pool has been closed.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import httpcore
import httpx
import pytest

from kalshi_httpx._async_http2 import mend_pools
from kalshi_httpx._guard import guard_pools

ANSWER = [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]


class _HeldAsyncConnect(httpcore.AsyncMockBackend):
    # Connects once ``release`` is set; keeps every stream it made.
    def __init__(self) -> None:
        super().__init__(list(ANSWER))
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.streams: list[Any] = []

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.entered.set()
        await self.release.wait()
        stream = await super().connect_tcp(*args, **kwargs)
        self.streams.append(stream)
        return stream


class _HeldConnect(httpcore.MockBackend):
    # The blocking twin: connects once ``release`` is set.
    def __init__(self) -> None:
        super().__init__(list(ANSWER))
        self.entered = threading.Event()
        self.release = threading.Event()
        self.streams: list[Any] = []

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        self.entered.set()
        assert self.release.wait(10)
        stream = super().connect_tcp(*args, **kwargs)
        self.streams.append(stream)
        return stream


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_async_pool_closed_as_a_connection_connects_closes_what_it_made(backend: str) -> None:
    async def scenario() -> tuple[object, list[bool]]:
        transport = httpx.AsyncHTTPTransport()
        held = _HeldAsyncConnect()
        transport._pool._network_backend = held
        mend_pools(transport)
        outcome: list[object] = []

        async def call() -> None:
            try:
                await transport.handle_async_request(httpx.Request("GET", "http://api.test/"))
            except httpx.HTTPError as exc:
                outcome.append(exc)
            else:
                outcome.append("answered")

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await held.entered.wait()
            await transport.aclose()
            held.release.set()
        return outcome[0], [stream._closed for stream in held.streams]

    outcome, closed = anyio.run(scenario, backend=backend)
    assert isinstance(outcome, httpx.ConnectError)
    assert "closed as it connected" in str(outcome)
    assert closed == [True]


def test_a_blocking_pool_closed_as_a_connection_connects_closes_it_as_the_call_ends() -> None:
    # The blocking pools' guard holds a close back while a request runs on the connection
    # (`kalshi_httpx._guard.GuardedConnection`): the call gets its answer, and the connection
    # closes as its response ends. (This passes without ConnectOnce's mend too.)
    transport = httpx.HTTPTransport()
    held = _HeldConnect()
    transport._pool._network_backend = held
    guard_pools(transport)
    outcome: list[object] = []

    def call() -> None:
        try:
            response = transport.handle_request(httpx.Request("GET", "http://api.test/"))
            response.read()
            response.close()
            outcome.append(response.status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert held.entered.wait(10)
    transport.close()
    held.release.set()
    caller.join(10)
    assert outcome == [200]  # answered, on the connection it made
    assert [stream._closed for stream in held.streams] == [True]
