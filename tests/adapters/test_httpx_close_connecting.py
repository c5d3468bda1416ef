"""A connection closed while it connects is closed for good if its request then fails.

httpcore 1.0.9 closes a connection only once it has connected: closing a pool let go of a
connection still connecting, whose connect then finished. A request that went on over it was
answered, and `AsyncKalshiClient` closes that connection after (``test_soak.py``); but a request
cancelled before it began on the new connection (at the HTTP/1.1 handler's lock) left it open,
no pool's, for the garbage collector (the REST soak found it: closing the async httpx client
while calls with 20 ms timeouts were in their TLS handshakes). `kalshi_httpx._async_http2.
ConnectOnce` closes such a connection as its request fails, and `TunnelOnce` a proxy's tunnel
closed so (the soak's https:// proxy rounds found that one). The blocking pools' guard holds a
close back until the request on the connection ends, and then closes it.

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
#: A proxy's answer to a CONNECT that opened its tunnel.
TUNNEL_UP = b"HTTP/1.1 200 Connection established\r\n\r\n"
#: The stand-in proxy, and the API reached through its tunnel.
PROXY, API = "http://proxy.test:8080", "https://api.test/"


class _CancellingTLSStream(httpcore.AsyncMockStream):
    # A stand-in connection whose TLS start (the API's, inside a proxy's tunnel) cancels
    # ``scope`` as it returns: the cancellation lands at the request's next checkpoint, the
    # lock of the HTTP/1.1 handler the tunnel has just made.
    def __init__(self, buffer: list[bytes], scope: anyio.CancelScope | None) -> None:
        super().__init__(buffer)
        self.scope = scope

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        if self.scope is not None:
            self.scope.cancel()
        return self


class _HeldAsyncConnect(httpcore.AsyncMockBackend):
    # Connects once ``release`` is set, then cancels ``scope`` (with no checkpoint: the
    # cancellation lands at the request's next one); keeps every stream it made. As a proxy
    # that tunnels (``tunnel``), its connection answers the CONNECT, then the request, and
    # cancels ``scope`` as the API's TLS starts inside the tunnel instead.
    def __init__(self, scope: anyio.CancelScope | None, *, tunnel: bool = False) -> None:
        super().__init__(list(ANSWER))
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.scope = scope
        self.tunnel = tunnel
        self.streams: list[Any] = []

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.entered.set()
        await self.release.wait()
        if self.tunnel:
            stream: httpcore.AsyncNetworkStream = _CancellingTLSStream(
                [TUNNEL_UP, *ANSWER], self.scope
            )
        else:
            stream = await super().connect_tcp(*args, **kwargs)
            if self.scope is not None:
                self.scope.cancel()
        self.streams.append(stream)
        return stream


class _HeldConnect(httpcore.MockBackend):
    # The blocking twin: connects once ``release`` is set.
    def __init__(self, answers: list[bytes]) -> None:
        super().__init__(answers)
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
@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled", "answered"])
@pytest.mark.parametrize("proxy", [None, PROXY], ids=["direct", "tunnel"])
def test_an_async_connection_closed_as_it_connects_is_closed_when_its_request_fails(
    backend: str, cancelled: bool, proxy: str | None
) -> None:
    # Through a proxy's tunnel, closing the pool closed the tunnel while its connection to the
    # proxy was connecting. The CONNECT went through and the API's TLS started; then the request
    # was cancelled, at the new HTTP/1.1 handler's lock. That handler, over the tunnel, was no
    # pool's and never closed (the REST soak's https:// proxy rounds found it).
    async def scenario() -> tuple[str, list[bool]]:
        scope = anyio.CancelScope()
        transport = httpx.AsyncHTTPTransport(proxy=proxy)
        held = _HeldAsyncConnect(scope if cancelled else None, tunnel=proxy is not None)
        transport._pool._network_backend = held
        mend_pools(transport)
        outcome = "cancelled"

        async def call() -> None:
            nonlocal outcome
            with scope:
                response = await transport.handle_async_request(
                    httpx.Request("GET", "http://api.test/" if proxy is None else API)
                )
                await response.aread()
                await response.aclose()
                outcome = "answered"

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await held.entered.wait()
            await transport.aclose()
            held.release.set()
        return outcome, [stream._closed for stream in held.streams]

    outcome, closed = anyio.run(scenario, backend=backend)
    if cancelled:
        assert (outcome, closed) == ("cancelled", [True])
    else:
        # Answered over it, as httpx lets a call in flight through; the client closes such a
        # connection after the call (test_soak.py), the bare transport does not.
        assert (outcome, closed) == ("answered", [False])


@pytest.mark.parametrize("proxy", [None, PROXY], ids=["direct", "tunnel"])
def test_a_blocking_pool_closed_as_a_connection_connects_closes_it_as_the_call_ends(
    proxy: str | None,
) -> None:
    # The blocking pools' guard holds a close back while a request runs on the connection
    # (`kalshi_httpx._guard.GuardedConnection`): the call gets its answer, and the connection
    # closes as its response ends; through a proxy's tunnel too. (This passes without
    # ConnectOnce's and TunnelOnce's mend too.)
    transport = httpx.HTTPTransport(proxy=proxy)
    held = _HeldConnect(list(ANSWER) if proxy is None else [TUNNEL_UP, *ANSWER])
    transport._pool._network_backend = held
    guard_pools(transport)
    outcome: list[object] = []

    def call() -> None:
        try:
            url = "http://api.test/" if proxy is None else API
            response = transport.handle_request(httpx.Request("GET", url))
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
