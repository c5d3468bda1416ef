"""httpcore's HTTP/2 handler and its connections, mended: for a server's GOAWAY, for a connect
that fails, and (async) for cancellation.

A server retiring a connection costs no call it took or turned away: see `_goaway`. A
connection whose connect failed, or was cut short, is never connected again (`ConnectOnce`).

httpcore 1.0.9 breaks an async HTTP/2 connection when the first request on it is cancelled as
the connection starts (encode/httpcore#1054, #1022), and the calls queued on it failed:

* a cancellation as that request takes its stream permits (one at a checkpoint each, 99 of
  them) left the connection marked as started with permits to spare, and the server's SETTINGS
  then gave back more than there were: ``ValueError: semaphore released too many times``;
* one as it sends the connection's preface closes the connection, and each request queued
  behind it sent the preface again on the closed one: h2's ``ProtocolError``.

And a cancellation as any request wrote to the connection lost what TLS had encrypted of the
write: the connection failed for every call on it.

Here a permit on hand is taken without a checkpoint (`_Permits`), so the first request takes
its permits at once; a request that finds the connection closed before its preface goes to
another connection (in both flavours); and a write runs to its end, shielded. The
pools also close a socket whose TLS handshake a cancellation cut short (`_ClosingBackend`), and
a connection a cancelled request left neither usable nor closed (`_reaping`), over HTTP/1.1 as
well.

``scripts/unasync.py`` writes the blocking twin, ``_sync_http2.py``, from this async source;
the blocking pools' handler (``_guard._SafeHTTP2Connection``) builds on that twin, with
permits of its own.
"""

from __future__ import annotations

import ssl

# unasync: async only
from collections.abc import Callable, Iterable

# unasync: end
from typing import Any

import anyio
import anyio.abc
import httpcore
import httpcore._synchronization
import httpx
from httpcore._async.http_proxy import AsyncTunnelHTTPConnection

from kalshi_httpx import _goaway
from kalshi_proto.dropped_connect import dropped_connection

__all__ = ["SENDING", "ConnectOnce", "MendedHTTP2Connection", "TunnelOnce"]

#: The key a request's extensions get as its connection starts to send it: from then on, the
#: server may have it (read by the async client: see `kalshi_httpx._body`).
SENDING = "kalshi_httpx.sending"


class _ClosedEarly(httpcore.AsyncConnectionInterface):
    """A connection closed before it has connected is closed again if its request fails:
    httpcore's close does nothing to a connection not connected yet, and its pool, closed, has
    let go of it. (A request that succeeds goes on over it; `AsyncKalshiClient` closes it
    after.) Each class below says when it is connected."""

    def _connecting(self) -> bool:
        raise NotImplementedError

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            response: httpcore.Response = await super().handle_async_request(request)
            return response
        except BaseException:
            if self.__dict__.get("_closed_early"):
                # Closed as it connected, and now no request's: closed for good.
                # unasync: async only
                with anyio.CancelScope(shield=True):
                    await self.aclose()
                # unasync: end
                # unasync: blocking only: self.close()
            raise

    async def aclose(self) -> None:
        if self._connecting():
            # Not connected (yet): the request connecting closes it if it fails (above).
            self.__dict__["_closed_early"] = True
        await super().aclose()


class ConnectOnce(_ClosedEarly, httpcore.AsyncHTTPConnection):
    """httpcore's connection, which connects once: a request that finds its connect failed, or
    cut short, goes to another connection, and only the request that connects marks it so.

    With HTTP/2 on, httpcore 1.0.9's pool gives a connection still connecting to the requests
    that come meanwhile, and they wait for its connect. It marks the connection failed when any
    of them raises, or is cancelled, one that only waited as well; its pool then drops the
    connection as closed, with no close. A request still waiting on it connected again, or the
    connect under way went on: either way the connection served its requests out of the pool,
    and nothing closed it but the garbage collector. A connection becomes one with `adopt`.

    And a connection closed while it connects is closed for good if its request fails
    (`_ClosedEarly`)."""

    @classmethod
    def adopt(cls, connection: httpcore.AsyncConnectionInterface) -> None:
        """Make ``connection``, made by a pool just now, one of this class; or, for a tunnel
        through an HTTP proxy, make it a `TunnelOnce` and the connection to the proxy, made
        first, one of this class."""
        if type(connection) is AsyncTunnelHTTPConnection:
            connection.__class__ = TunnelOnce
        for each in (connection, vars(connection).get("_connection")):
            if type(each) is httpcore.AsyncHTTPConnection:
                each.__class__ = cls

    def _connecting(self) -> bool:
        return self._connection is None

    @property
    def _connect_failed(self) -> bool:
        # httpcore's mark, read by its pool (a failed connection is closed to it). Its own
        # handler sets it as any request on the connection raises: `_connect` sets it instead.
        return bool(self.__dict__.get("_connect_failed"))

    @_connect_failed.setter
    def _connect_failed(self, failed: bool) -> None:
        pass

    async def _connect(self, request: httpcore.Request) -> httpcore.AsyncNetworkStream:
        if self._connect_failed:  # another request's connect: the pool has dropped it
            raise httpcore.ConnectionNotAvailable()
        try:
            return await super()._connect(request)
        except BaseException:
            self.__dict__["_connect_failed"] = True
            raise


class TunnelOnce(_ClosedEarly, AsyncTunnelHTTPConnection):
    """httpcore's tunnel through an HTTP proxy, closed for good if it was closed before its
    tunnel was up and its request then fails (`_ClosedEarly`). Closing it early closes its
    connection to the proxy, a `ConnectOnce`, which does the same; but when the CONNECT went
    through and the request failed after (cancelled at the lock of the HTTP/1.1 handler the
    tunnel had just made over it), that handler was no pool's and never closed."""

    def _connecting(self) -> bool:
        return not self._connected


class MendedHTTP2Connection(httpcore.AsyncHTTP2Connection):
    """httpcore's HTTP/2 handler, given a connection the server retires (a GOAWAY) the way
    `_goaway` describes: the streams the server took read on, the others are sent elsewhere;
    and, async, mended for cancellation as the module says. A handler becomes one with
    `adopt`, made and not used yet."""

    _sent: dict[httpcore.Request, int]  # the stream of each request sent, until its answer

    @classmethod
    def adopt(cls, handler: httpcore.AsyncHTTP2Connection) -> None:
        """Make ``handler``, made just now and not used yet, one of this class."""
        handler.__class__ = cls
        assert isinstance(handler, cls)
        handler._sent = {}
        _goaway.graceful(handler._h2_state)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            response: httpcore.Response = await super().handle_async_request(request)
            return response
        except (httpcore.ConnectionNotAvailable, _goaway.TurnedAway):
            raise
        except Exception:
            # A write to the connection the server closed, say: a GOAWAY read meanwhile may
            # say it did not process the stream.
            stream_id = self._sent.get(request)
            if stream_id is not None and _goaway.turned_away(self, stream_id):
                _goaway.reroute(self, request)
            raise
        finally:
            self._sent.pop(request, None)

    async def _send_request_headers(self, request: httpcore.Request, stream_id: int) -> None:
        if self._connection_terminated is not None:  # it picked the connection before the GOAWAY
            _goaway.reroute(self, request)
        self._sent[request] = stream_id
        # unasync: async only
        request.extensions[SENDING] = True
        # unasync: end
        await super()._send_request_headers(request, stream_id)

    async def _receive_response(
        self, request: httpcore.Request, stream_id: int
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        try:
            return await super()._receive_response(request, stream_id)
        except httpcore.RemoteProtocolError as exc:
            if _goaway.refused(exc):
                _goaway.reroute(self, request)
            raise

    async def _receive_events(
        self, request: httpcore.Request, stream_id: int | None = None
    ) -> None:
        # httpcore's own, but after a GOAWAY a stream the server took reads on.
        async with self._read_lock:
            if stream_id is not None and _goaway.turned_away(self, stream_id):
                _goaway.reroute(self, request)
            if stream_id is None or not self._events.get(stream_id):
                events = await self._read_incoming_data(request)
                for change in _goaway.take_events(self, events):
                    await self._receive_remote_settings_change(change)
        await self._write_outgoing_data(request)

    async def _response_closed(self, stream_id: int) -> None:
        # A stream closed before its end (a timeout, a cancellation, a body left unread) is
        # reset. httpcore 1.0.9 only forgets it: the server went on sending the rest, which no
        # one read, and the connection's flow-control window shrank by it for good, until the
        # server could send nothing on it. The reset goes out with the connection's next write;
        # h2 gives back the credit of what comes for the stream meanwhile.
        import h2.errors
        import h2.exceptions

        stream = self._h2_state.streams.get(stream_id)
        if stream is not None and not stream.closed:
            try:
                self._h2_state.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.ProtocolError:
                pass  # the connection is closed: nothing more comes on it
        await super()._response_closed(stream_id)

    def is_available(self) -> bool:
        return self._connection_terminated is None and super().is_available()

    async def _send_connection_init(self, request: httpcore.Request) -> None:
        # Closed by the request before, as a cancellation (a Ctrl-C, blocking) cut its preface
        # short: the requests queued behind it go to another connection, nothing sent.
        if self.is_closed():
            raise httpcore.ConnectionNotAvailable()
        await super()._send_connection_init(request)

    # unasync: async only
    async def _write_outgoing_data(self, request: httpcore.Request) -> None:
        # The TLS stream encrypts what it is given before it sends it: a cancellation as it
        # sends loses records the server's TLS then misses, and the connection failed for every
        # stream on it. A write runs to its end (its write timeout bounds it); the request that
        # was cancelled stops at its next checkpoint.
        with anyio.CancelScope(shield=True):
            await super()._write_outgoing_data(request)

    @property
    def _max_streams_semaphore(self) -> Any:
        return self.__dict__["_max_streams_semaphore"]

    @_max_streams_semaphore.setter
    def _max_streams_semaphore(self, permits: Any) -> None:
        # httpcore makes its permits on the first request, as an AsyncSemaphore of the local
        # stream limit, and stores them here: they become `_Permits`.
        if type(permits) is httpcore._synchronization.AsyncSemaphore:
            permits = _Permits(permits._bound)
        self.__dict__["_max_streams_semaphore"] = permits

    # unasync: end


# unasync: async only
def mend_pools(holder: httpx.AsyncBaseTransport | httpx.AsyncClient) -> None:
    """Make the HTTP/2 handlers of every httpcore pool behind ``holder`` (a transport or an
    `httpx.AsyncClient` an `AsyncKalshiClient` built) `MendedHTTP2Connection`s. (The
    blocking pools' guard does so for the blocking ones.) Call it before the first request."""
    for pool in _goaway.pools_of(holder):
        backend = pool._network_backend
        # httpcore's own backends connect through anyio.connect_tcp (or trio's); others, the
        # SOCKS one among them, make their connections as they see fit. Through an https://
        # proxy, the API's TLS session starts inside the proxy's.
        proxy_url = getattr(pool, "_proxy_url", None)
        pool._network_backend = _ClosingBackend(
            backend,
            own_connect=type(backend).__module__.startswith("httpcore."),
            nested_tls=proxy_url is not None and proxy_url.scheme == b"https",
        )
        create = pool.create_connection

        def create_watched(
            origin: httpcore.Origin, create: Any = create
        ) -> httpcore.AsyncConnectionInterface:
            connection: httpcore.AsyncConnectionInterface = create(origin)
            ConnectOnce.adopt(connection)
            _goaway.watch_handler(connection, _adopt)
            return connection

        # The pool calls self.create_connection(origin) for each connection it opens.
        pool.create_connection = create_watched
        # And self._assign_requests_to_connections() as each request comes and goes.
        pool._assign_requests_to_connections = _reaping(pool)


def _reaping(pool: httpcore.AsyncConnectionPool) -> Callable[[], list[Any]]:
    # The pool's own assignment of requests to connections, which first takes out of the pool
    # each connection no request holds that is neither idle nor closed, for the pool to close.
    # A request cancelled after the pool gave it a connection, and before that connection
    # took it, left the connection so in httpcore 1.0.9, for good (encode/httpcore#1093):
    # never connected, or connected and never used (the cancellation landed at the lock it
    # takes a request under). A request holds its connection until its response is closed, and
    # the connection is idle by then.
    assign = pool._assign_requests_to_connections

    def assign_reaping() -> list[Any]:
        held = {id(waiting.connection) for waiting in pool._requests}
        lost = [
            each
            for each in pool._connections
            if id(each) not in held and not each.is_idle() and not each.is_closed()
        ]
        for each in lost:
            pool._connections.remove(each)
        return lost + assign()

    return assign_reaping


async def connect_closing(
    backend: httpcore.AsyncNetworkBackend,
    host: str,
    port: int,
    timeout: float | None = None,
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
) -> httpcore.AsyncNetworkStream:
    """``backend.connect_tcp(...)`` (one of httpcore's backends), closing the connection that
    anyio's connect dropped when a cancellation ended it as an attempt connected: anyio before
    4.16 left it to the garbage collector (`kalshi_proto.dropped_connect`).

    ``timeout`` bounds the connect from here, around httpcore's backend: a timeout inside it
    became a `ConnectTimeout` that kept no trace of anyio's frame and its connection."""
    try:
        with anyio.fail_after(timeout):
            try:
                return await backend.connect_tcp(host, port, None, local_address, socket_options)
            except BaseException as exc:
                dropped = dropped_connection(exc)
                if isinstance(dropped, anyio.abc.SocketStream):
                    await anyio.aclose_forcefully(dropped)
                raise
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None


class _ClosingBackend(httpcore.AsyncNetworkBackend):
    """A pool's network backend whose connections close their socket when a cancellation cuts
    their TLS handshake short: httpcore 1.0.9 closes it only on an `Exception`, and left it to
    the garbage collector (a `ResourceWarning` each, the descriptor open until then). Over
    httpcore's own backends (``own_connect``), a connect cut short closes what it had made too
    (`connect_closing`). With ``nested_tls`` (an https:// proxy's pool), so do the TLS starts
    inside a TLS session."""

    def __init__(
        self, backend: httpcore.AsyncNetworkBackend, *, own_connect: bool, nested_tls: bool = False
    ) -> None:
        self._backend = backend
        self._own_connect = own_connect
        self._nested_tls = nested_tls

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        if self._own_connect:
            stream = await connect_closing(self._backend, *args, **kwargs)
        else:
            stream = await self._backend.connect_tcp(*args, **kwargs)
        return _ClosingStream(stream, nested_tls=self._nested_tls)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _ClosingStream(await self._backend.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _ClosingStream(httpcore.AsyncNetworkStream):
    # A plain connection, as `_ClosingBackend` makes it; what its TLS start returns is the
    # backend's own, unless a TLS session is to start inside that one (``nested_tls``).

    def __init__(self, stream: httpcore.AsyncNetworkStream, *, nested_tls: bool = False) -> None:
        self._stream = stream
        self._nested_tls = nested_tls

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            started = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise
        return _ClosingStream(started) if self._nested_tls else started

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Permits(httpcore._synchronization.AsyncSemaphore):
    """httpcore's stream permits, but a permit on hand is taken at once, with no checkpoint
    where a cancellation could land: only a take that has to wait is a checkpoint."""

    async def acquire(self) -> None:
        if not self._backend:
            self.setup()
        semaphore: Any = getattr(self, "_trio_semaphore", None) or self._anyio_semaphore
        if semaphore.value > 0:
            semaphore.acquire_nowait()
            return
        await super().acquire()


class _MarkingHTTP11Connection(httpcore.AsyncHTTP11Connection):
    # httpcore's HTTP/1.1 handler, which marks each request as it starts to send it (SENDING).

    async def _send_request_headers(self, request: httpcore.Request) -> None:
        request.extensions[SENDING] = True
        await super()._send_request_headers(request)


def _adopt(handler: Any) -> None:
    if type(handler) is httpcore.AsyncHTTP2Connection:
        MendedHTTP2Connection.adopt(handler)
    elif type(handler) is httpcore.AsyncHTTP11Connection:
        handler.__class__ = _MarkingHTTP11Connection


# unasync: end
