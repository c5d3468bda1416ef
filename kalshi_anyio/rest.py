"""`AsyncKalshiClient`: the REST client over raw TCP/TLS streams, driving the core's HTTP/1.1.

Connections are kept alive and reused. One idle for longer than ``keepalive_expiry`` seconds is
closed rather than reused, so a request never races a server closing its idle connections (the
cause of an order whose fate is unknown); one the server has already dropped is noticed before
reuse and replaced. At most ``max_connections`` requests are in flight at once; more wait
for a free slot (a rate-limited call takes its slot before its request is paced: see `_claim`).
The pool of idle connections changes under a lock, never held across an await,
so threads may share the blocking twin. A process forked after calls were made does not reuse
the idle connections it inherited, which are the parent's too (see `_io.forget`); nor does a
client called from a new asyncio event loop reuse those of the old one (see `_io.abandon`).
Every decision (signing, retries, pages, errors) is made by the core; this file only moves
bytes.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from kalshi_anyio import _io
from kalshi_proto.auth import Credentials, Passphrase, drop_secret_frames
from kalshi_proto.errors import (
    ConfigurationError,
    ConnectTimeout,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
)
from kalshi_proto.proxy import ProxyUrl, check_proxy, check_route
from kalshi_proto.rest._async_base import AsyncClientBase, Logger
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.events import ConnectionClosed, ResponseReceived
from kalshi_proto.rest.hold import Hold
from kalshi_proto.rest.http11 import Http11Connection, read_error
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.rest.settings import KeyInput, RateLimitSetting, check_pool_options

__all__ = ["AsyncKalshiClient"]

#: Where clients log retries and, at DEBUG, each attempt (see `kalshi_proto.rest.client.LogLine`).
_log = logging.getLogger("kalshi_anyio")


class _Connection:
    __slots__ = ("http", "idle_since", "loop", "stream")

    def __init__(self, stream: _io.Stream, host: str, loop: object | None) -> None:
        self.stream = stream
        self.http = Http11Connection(host)
        self.idle_since = 0.0
        self.loop = loop  # the asyncio event loop it works on: None on trio, and when blocking


class AsyncKalshiClient(AsyncClientBase):
    """The Kalshi REST API over keep-alive HTTP/1.1 connections.

    The arguments up to ``logger`` are every client's, described in
    `kalshi_proto.rest._async_base.AsyncClientBase` and docs/rest.md; then:

    Args:
        ssl_context: the TLS context (a verifying default otherwise).
        max_connections: the most connections open at once (0 for no limit).
        keepalive_expiry: seconds an idle connection may wait for reuse before it is closed
            instead (5, as httpx does); None reuses idle connections however old.
        proxy: a proxy to reach the API through, as a URL (``"http://proxy.example.com:3128"``,
            ``"https://proxy.example.com"``, ``"socks5h://user:password@proxy.example.com:1080"``)
            or a `kalshi_proto.proxy.ProxyUrl`; each connection is a tunnel (HTTP ``CONNECT``,
            inside a TLS session with an ``https://`` proxy, or the SOCKS5 handshake) with the
            API's TLS session inside. None (the default) connects directly, whatever the
            environment says.
        proxy_ssl_context: the TLS context for the session with an ``https://`` proxy itself (a
            verifying default otherwise, which trusts the system's certificate store).

    Raises:
        ConfigurationError: an argument is of the wrong type or out of range
            (``max_connections`` not an int of 0 or more, ``keepalive_expiry`` not a positive
            number or None, ``proxy`` not an ``http://``, ``https://``, ``socks5://`` or
            ``socks5h://`` proxy URL, and those of every client).
        CredentialsError: the key arguments are incomplete, contradictory or unusable.
    """

    @drop_secret_frames
    def __init__(
        self,
        *,
        key_id: str | None = None,
        private_key: KeyInput | None = None,
        private_key_path: str | os.PathLike[str] | None = None,
        passphrase: Passphrase | None = None,
        credentials: Credentials | None = None,
        demo: bool = False,
        base_url: str | None = None,
        allow_any_host: bool = False,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        rate_limit: RateLimitSetting = None,
        user_agent: str | None = None,
        rng: Callable[[], float] | None = None,
        logger: Logger | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
        keepalive_expiry: float | None = 5.0,
        proxy: str | ProxyUrl | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        max_connections, keepalive_expiry = check_pool_options(max_connections, keepalive_expiry)
        self._proxy = check_proxy(proxy)
        contexts = (("ssl_context", ssl_context), ("proxy_ssl_context", proxy_ssl_context))
        for name, context in contexts:
            if context is not None and not isinstance(context, ssl.SSLContext):
                raise ConfigurationError(
                    f"{name} must be an ssl.SSLContext or None, got {type(context).__name__}"
                )
        super().__init__(
            key_id=key_id,
            private_key=private_key,
            private_key_path=private_key_path,
            passphrase=passphrase,
            credentials=credentials,
            demo=demo,
            base_url=base_url,
            allow_any_host=allow_any_host,
            retry=retry,
            timeout=timeout,
            rate_limit=rate_limit,
            user_agent=user_agent,
            rng=rng,
            logger=logger,
        )
        self._expiry = math.inf if keepalive_expiry is None else keepalive_expiry
        base = self.config.base_url
        if self._proxy is not None:
            check_route(self._proxy.host, base)
        self._ssl = _io.default_ssl_context(ssl_context) if base.scheme == "https" else None
        self._proxy_ssl = (
            _io.default_ssl_context(proxy_ssl_context)
            if self._proxy is not None and self._proxy.is_tls
            else None
        )
        self._host = base.host
        self._port = base.port
        self._host_header = base.host_header
        self._max_connections = max_connections
        self._limiter = _io.Limiter(max_connections)
        # The idle connections, oldest first, and whether the client is closed (`_closed`);
        # both change only under the lock, which is never held across an await.
        self._idle: list[_Connection] = []
        self._pool_lock = threading.Lock()
        # The process and the event loop the pool's connections belong to (None in the
        # blocking twin); see _renew.
        self._forks = _io.FORKS
        self._loop = _io.current_loop()

    async def aclose(self) -> None:
        """Close every idle connection; the client cannot be used afterwards.

        Calls in flight finish, then close their connections.
        """
        self._check_home()
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        await _io.close_all(connection.stream for connection in idle)

    async def _claim(self, deadline: float, hold: Hold) -> None:
        # A slot held while the rate limiter paces the request, then used by _send: the
        # request goes out as soon as the pace allows, not after a wait for a connection too.
        if self._closed:
            raise LocalProtocolError("the client is closed")
        await self._limiter.acquire(deadline, hold)

    async def _send(
        self, request: HttpRequest, timeout: float, deadline: float, hold: Hold
    ) -> HttpResponse:
        # The slot is recorded in ``hold`` as it is taken, and goes back to the limiter it came
        # from (even if _renew replaces it meanwhile), whatever interrupts this: see `Hold`.
        try:
            if self._closed:
                raise LocalProtocolError("the client is closed")
            waited = False
            if hold.owner is None:
                # A call waiting for a free connection waits no longer than its own deadline.
                waited = await self._limiter.acquire(deadline, hold)
            now = deadline - timeout  # when the attempt started
            if waited:
                now = _io.monotonic()
                if now >= deadline:
                    raise ConnectTimeout("no connection became free before the timeout")
            connection = await self._checkout(now, deadline)
            try:
                response = await _io.within(
                    deadline, self._exchange(connection, request, deadline, deadline - timeout)
                )
            except BaseException:
                await connection.stream.aclose()
                raise
            if not (connection.http.reusable and self._keep(connection)):
                await connection.stream.aclose()
            return response
        finally:
            try:
                hold.release()
            except BaseException:
                hold.release()  # interrupted as it began (a Ctrl-C): this does what is left
                raise

    def _check_home(self) -> None:
        if self._forks != _io.FORKS or self._loop is not _io.current_loop():
            self._renew()

    def _renew(self) -> None:
        # The idle connections cannot serve this process or this event loop. After os.fork()
        # they are the parent's too, and are left to it; the locks are renewed as well, in case
        # a thread of the parent held one. A new asyncio loop (a second asyncio.run, say) cannot
        # use the old loop's connections, which are shut down. The connection limiter starts
        # afresh: a call of the old loop gives its slot back to the old one.
        forked = self._forks != _io.FORKS
        if forked:
            self._pool_lock = threading.Lock()
        with self._pool_lock:
            unusable, self._idle = self._idle, []
        streams = [connection.stream for connection in unusable]
        if forked:
            _io.forget(streams)
        else:
            _io.abandon(streams)
        self._limiter = _io.Limiter(self._max_connections)
        if forked:
            self._guarded(self.rate_limiter)
        self._forks = _io.FORKS
        self._loop = _io.current_loop()

    def _keep(self, connection: _Connection) -> bool:
        # Put a connection back in the pool, unless the client was closed meanwhile or has gone
        # on to another event loop. The lock is taken with ``with``, which no interrupt can
        # part from its release (a Ctrl-C just after a bare ``acquire()`` would leave it held
        # for good); ``with`` costs 0.1 µs more.
        connection.idle_since = _io.monotonic()
        with self._pool_lock:
            if self._closed or connection.loop is not self._loop:
                return False
            self._idle.append(connection)
            return True

    async def _checkout(self, now: float, deadline: float) -> _Connection:
        # The newest idle connection is reused; the expired and the dropped are closed. The
        # pool changes under the lock, and nothing is awaited while it is held. Nothing is
        # taken for reuse until the expired are closed: a connection held meanwhile would be
        # lost, neither pooled nor closed, if the close were interrupted (by a native asyncio
        # cancellation, a KeyboardInterrupt).
        while True:
            with self._pool_lock:
                if self._closed:  # while this call waited for a free connection
                    raise LocalProtocolError("the client is closed")
                idle = self._idle
                stale: Sequence[_Connection] = ()
                connection = None
                if idle and now - idle[0].idle_since > self._expiry:
                    expired = 1
                    while expired < len(idle) and now - idle[expired].idle_since > self._expiry:
                        expired += 1
                    stale = idle[:expired]
                    del idle[:expired]
                elif idle:
                    # Not idle.pop(): an interrupt as a call returns would drop the connection
                    # unclosed. Nothing can interrupt between these two lines.
                    connection = idle[-1]
                    del idle[-1]
            if stale:  # (a shielded scope costs several µs: none when there is nothing to close)
                await _io.close_all(old.stream for old in stale)
                continue
            if connection is None:
                break
            try:
                dropped = connection.stream.is_readable()
            except BaseException:  # a Ctrl-C: the connection is this call's, to close
                await connection.stream.aclose()
                raise
            if not dropped:
                return connection
            await connection.stream.aclose()
        stream = await _io.connect(
            self._host,
            self._port,
            self._ssl,
            deadline,
            self._proxy,
            self.config.user_agent,
            self._proxy_ssl,
        )
        try:
            return _Connection(stream, self._host_header, self._loop)
        except BaseException:  # interrupted as it began
            await stream.aclose()
            raise

    async def _exchange(
        self, connection: _Connection, request: HttpRequest, deadline: float, now: float
    ) -> HttpResponse:
        # ``now`` is when the attempt started: the HTTP/1.1 core runs no timers, so the bytes
        # are fed with that time rather than a fresh clock read per chunk.
        http = connection.http
        http.send_request(request)
        await connection.stream.send(http.data_to_send(), deadline)
        while True:
            event = http.next_event()
            if isinstance(event, ResponseReceived):
                return event.response
            if isinstance(event, ConnectionClosed):
                raise ReadError("the server closed the connection before answering")
            data = await connection.stream.receive(deadline)
            try:
                if data:
                    http.receive_data(data, now)
                else:
                    http.receive_eof(now)
            except RemoteProtocolError as exc:
                raise read_error(exc) from exc

    async def _sleep(self, seconds: float) -> None:
        await _io.sleep(seconds)

    def _clocks(self) -> tuple[float, int]:
        return _io.clocks()

    def _default_rng(self) -> Callable[[], float]:
        return _io.random_source()

    def _default_logger(self) -> Logger:
        return _log

    def _new_lock(self) -> AbstractContextManager[object]:
        return threading.Lock()
