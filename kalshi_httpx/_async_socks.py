"""SOCKS5 for the httpx clients, through the core's `Socks5Tunnel` rather than httpcore's.

httpcore (1.0.9), which speaks SOCKS5 for httpx, reads the proxy's answers with no timeout,
leaves the socket of a failed handshake for the garbage collector and logs the proxy's user name
and password at DEBUG. So a ``socks5://`` or ``socks5h://`` ``proxy=`` goes to
`AsyncSocksTransport` instead: an httpcore connection pool whose network backend connects to the
proxy and runs `kalshi_proto.proxy.Socks5Tunnel` over the new connection within the connect
timeout, closing it on any failure; httpcore then starts the API's TLS session inside the tunnel
as over any connection. Its failures are those of the SDK's own socket adapters, in their
words: `ProxyError` (with the proxy's ``reply``), `ConnectError`, `ConnectTimeout`.

Only httpx and httpcore's public interfaces are used: `httpx.AsyncBaseTransport`,
`httpcore.AsyncConnectionPool` and its ``network_backend``. httpcore's exceptions become httpx's,
as `httpx.AsyncHTTPTransport` makes them, for `kalshi_httpx._errors` to translate.
``scripts/unasync.py`` writes the blocking twin, ``_sync_socks.py``, from this file.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import httpcore
import httpx

# unasync: async only
from kalshi_httpx._async_http2 import connect_closing

# unasync: end
from kalshi_proto.errors import ConnectError, ConnectTimeout
from kalshi_proto.proxy import TUNNEL_READ_SIZE, ProxyUrl, Tunnel, tunnel_for

__all__ = ["AsyncSocksTransport"]

# httpcore's exceptions and the httpx ones they become, most specific first: the first row the
# exception is an instance of gives its class.
_HTTPX: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)
_HTTPCORE = tuple(source for source, _ in _HTTPX)


class AsyncSocksTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every connection is a SOCKS5 tunnel through ``proxy``.

    Args:
        proxy: the proxy, a ``socks5://`` or ``socks5h://`` one; either way the proxy resolves
            the API's host name.
        verify: TLS verification, as `httpx.AsyncHTTPTransport` takes it: True, False or an
            `ssl.SSLContext`.
        limits: the pool's connection limits.
        http2: offer HTTP/2 as well as HTTP/1.1 (needs ``h2``).
    """

    def __init__(
        self,
        proxy: ProxyUrl,
        *,
        verify: bool | ssl.SSLContext = True,
        limits: httpx.Limits,
        http2: bool = False,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http2=http2,
            network_backend=_AsyncSocksBackend(proxy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            answer = await self._pool.handle_async_request(sent)
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AsyncBody(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _AsyncBody(httpx.AsyncByteStream):
    # A response body from the pool, its failures httpx's.

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._chunks:
                yield chunk

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


class _AsyncSocksBackend(httpcore.AsyncNetworkBackend):
    # Connections to the API, each a tunnel through the proxy, over httpcore's own backend.

    def __init__(self, proxy: ProxyUrl) -> None:
        self._proxy = proxy
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        proxy = self._proxy
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # unasync: async only
            connect = partial(connect_closing, self._network)
            # unasync: end
            # unasync: blocking only: connect = self._network.connect_tcp
            stream = await connect(
                proxy.host,
                proxy.port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        except httpcore.ConnectTimeout:
            raise ConnectTimeout(f"connecting to the proxy {proxy.address} timed out") from None
        except httpcore.ConnectError as exc:
            raise ConnectError(f"cannot connect to the proxy {proxy.address}: {exc}") from exc
        try:
            await _open_tunnel(stream, tunnel_for(proxy, host, port), deadline)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


async def _open_tunnel(
    stream: httpcore.AsyncNetworkStream, tunnel: Tunnel, deadline: float | None
) -> None:
    # The SOCKS5 handshake's steps on a fresh connection to the proxy, all before ``deadline``.
    what = f"opening a tunnel through {tunnel.proxy}"
    try:
        step = tunnel.data_to_send()
        while True:
            if step:
                await stream.write(step, timeout=_remaining(deadline, what))
            if tunnel.receive_data(await stream.read(TUNNEL_READ_SIZE, _remaining(deadline, what))):
                return
            step = tunnel.data_to_send()
    except httpcore.TimeoutException:
        raise ConnectTimeout(f"{what} timed out") from None
    except httpcore.NetworkError as exc:
        raise ConnectError(f"{what} failed: {exc}") from exc


def _remaining(deadline: float | None, what: str) -> float | None:
    # Seconds left before ``deadline``, None for no deadline. None of them left is a timeout
    # here: a blocking socket given a timeout of 0 would not wait at all, and fail otherwise.
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeout(f"{what} timed out")
    return left


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except _HTTPCORE as exc:
        target = next(target for source, target in _HTTPX if isinstance(exc, source))
        raise target(str(exc)) from exc
