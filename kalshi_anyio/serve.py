"""Serving a `RestApp` (the local exchange, or your own test double) on loopback with anyio.

`serve_rest` listens, and for each accepted connection runs one task that moves bytes between the
socket and a `kalshi_proto.sim.http.HttpServerConnection`. Every whole request goes to
``app.handle(request, now=..., wall_ms=...)``; the task sleeps the reply's ``delay`` and writes the
response (for a `Drop`, its head and the first ``after`` bytes of its body, then closes the
connection). Pipelined
requests are answered one at a time, in order. Refused request bytes get the core's error answer
(400, 413, ...) and the connection closes. An exception in the app is logged and answered with a
500 ``{"code":"internal",...}``; the server keeps serving. Everything runs on asyncio or trio.

A connection that ends is half-closed first (a FIN, without a TLS ``close_notify``), and what the
client still sends is read and dropped for up to two seconds, so the kernel does not answer unread
bytes with a reset that could destroy the last response in flight. A connection on which no byte
arrives for ``idle_timeout`` seconds (60 by default), idle between requests or stalled in the
middle of one, is closed the same way.

`serve_rest_in_thread` runs the same server on its own asyncio loop in a background thread for
blocking code and sync tests.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import assert_never

import anyio
import anyio.abc
import anyio.from_thread
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from kalshi_anyio import _io
from kalshi_proto.errors import (
    ConfigurationError,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    TransportError,
    WriteError,
)
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.settings import check_optional_seconds
from kalshi_proto.sim.app import Drop, Reply, Respond, RestApp
from kalshi_proto.sim.events import ConnectionClosed, RequestReceived
from kalshi_proto.sim.http import DEFAULT_MAX_BODY_SIZE, HttpServerConnection, error_response

__all__ = ["DEFAULT_IDLE_TIMEOUT", "Server", "serve_rest", "serve_rest_in_thread"]

_log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
#: Seconds a client gets to finish the TLS handshake.
_HANDSHAKE_TIMEOUT = 10.0
#: Seconds a closing connection waits for the client to close its side (see `_Peer.linger`).
_LINGER = 2.0
#: Seconds a connection may go without receiving a byte before the server closes it.
DEFAULT_IDLE_TIMEOUT = 60.0
_STREAM_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class Server:
    """A running server: where it listens and what it has done so far.

    ``connections_accepted`` and ``requests_served`` count from the start; a request counts once
    its answer (a 500 or a cut-off `Drop` included) is ready, just before it is written, so a
    client that has read a response sees it counted.
    """

    def __init__(self, host: str, port: int, *, ca_pem: bytes | None, tls: bool) -> None:
        self._host = host
        self._port = port
        self._ca_pem = ca_pem
        self._tls = tls
        self._connections_accepted = 0
        self._requests_served = 0

    @property
    def host(self) -> str:
        """The host the server listens on, as given to `serve_rest`."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on (the one the OS picked when ``port=0``)."""
        return self._port

    @property
    def origin(self) -> str:
        """``https://HOST:PORT`` with TLS, ``http://HOST:PORT`` without (IPv6 hosts in brackets)."""
        scheme = "https" if self._tls else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    @property
    def connections_accepted(self) -> int:
        """Connections accepted so far."""
        return self._connections_accepted

    @property
    def requests_served(self) -> int:
        """Requests answered so far."""
        return self._requests_served

    @property
    def ca_pem(self) -> bytes | None:
        """The PEM certificate of the throwaway CA of ``tls=True``, for a client in another
        process (write it to a file: ``ssl.create_default_context(cafile=...)``).

        None when the server is plain, or when it serves a context you supplied.
        """
        return self._ca_pem

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """A new client context that trusts the throwaway CA of ``tls=True``.

        None when the server is plain, or when it serves a context you supplied (you know which CA
        signed its certificate).
        """
        if self._ca_pem is None:
            return None
        context = ssl.create_default_context(cadata=self._ca_pem.decode("ascii"))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def __repr__(self) -> str:
        return f"<Server {self.origin}>"


@asynccontextmanager
async def serve_rest(
    app: RestApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool | ssl.SSLContext = False,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> AsyncIterator[Server]:
    """Serve ``app`` over HTTP/1.1 until the ``async with`` block ends.

    The server is listening when the block starts. Leaving the block closes the listener and
    cancels every connection, answered or not.

    Args:
        app: what answers the requests; it runs on the event loop, so it must not block.
        host: the address to listen on; keep the loopback default unless you mean otherwise.
        port: the port to listen on; 0 lets the OS pick one (read it from `Server.port`).
        tls: True to serve TLS with a throwaway CA and a certificate for ``127.0.0.1``,
            ``localhost`` and ``::1`` (needs ``trustme``; `Server.client_ssl_context` trusts it),
            or your own server-side `ssl.SSLContext`.
        max_body_size: the largest request body accepted, in bytes (413 beyond).
        idle_timeout: seconds a connection may go without sending a byte before it is closed;
            None keeps idle connections open until the client or the server stops.

    Yields:
        The `Server`, with its origin and counters.

    Raises:
        ConfigurationError: ``tls=True`` without ``trustme`` installed, or ``tls``, ``host``,
            ``port`` or ``idle_timeout`` of a wrong type or out of range.
        OSError: the address cannot be listened on.
    """
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"host must be an address or a host name, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(
            f"port must be an int from 0 (any free port) to 65535, got {port!r}"
        )
    idle_timeout = check_optional_seconds("idle_timeout", idle_timeout)
    server_context, ca_pem = _tls_contexts(tls)
    try:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    except OSError as exc:
        # The same error, with the address it was about.
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise type(exc)(exc.errno, message) from exc
    async with listener:
        bound = listener.extra(SocketAttribute.local_port)
        server = Server(host, bound, ca_pem=ca_pem, tls=server_context is not None)
        handler = _Handler(app, server, server_context, max_body_size, idle_timeout)
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, handler.serve)
            try:
                yield server
            except Exception as exc:
                # Re-raised below, outside the task group, so the caller gets it unwrapped.
                failure = exc
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure


@contextmanager
def serve_rest_in_thread(
    app: RestApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool | ssl.SSLContext = False,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> Iterator[Server]:
    """`serve_rest` on an asyncio loop in a background thread, for blocking code.

    The server is listening when the ``with`` block starts; leaving the block stops it and joins
    the thread. ``app`` is called from that thread: do not touch its state from yours while
    requests may be in flight. The arguments are those of `serve_rest`.
    """
    with (
        anyio.from_thread.start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(
            serve_rest(
                app,
                host=host,
                port=port,
                tls=tls,
                max_body_size=max_body_size,
                idle_timeout=idle_timeout,
            )
        ) as server,
    ):
        yield server


def _tls_contexts(tls: bool | ssl.SSLContext) -> tuple[ssl.SSLContext | None, bytes | None]:
    # (the server's context, the PEM of the CA a client should trust) for each form of tls.
    if isinstance(tls, ssl.SSLContext):
        return tls, None
    if tls is False:
        return None, None
    if tls is not True:
        raise ConfigurationError(f"tls must be a bool or an ssl.SSLContext, got {tls!r}")
    try:
        import trustme
    except ImportError:
        raise ConfigurationError(
            "serving TLS with test certificates needs trustme: pip install 'kalshi-sansio[sim]'"
        ) from None
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    certificate.configure_cert(context)
    return context, ca.cert_pem.bytes()


class _Peer:
    """One accepted connection: reads and writes with errors translated, and a careful close."""

    def __init__(self, tcp: anyio.abc.SocketStream, stream: anyio.abc.ByteStream) -> None:
        self._tcp = tcp
        self._stream = stream

    async def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self._stream.send(data)
        except anyio.EndOfStream as exc:
            # A TLS stream says so when the client has closed the connection in mid-write.
            raise WriteError("writing the response failed: the client closed the connection") from exc
        except _STREAM_ERRORS as exc:
            raise WriteError(f"writing the response failed: {exc!r}") from exc

    async def receive(self) -> bytes:
        # b"" when the client closed the connection.
        try:
            return await self._stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return b""
        except _STREAM_ERRORS as exc:
            raise ReadError(f"reading the request failed: {exc!r}") from exc

    async def linger(self) -> None:
        # Half-close, then discard what the client still sends until it closes (for at most
        # _LINGER seconds). Closing with unread bytes in the socket makes the kernel send a reset,
        # which can destroy the response still in flight to the client. With TLS the FIN goes out
        # without a close_notify (a ragged EOF); the response itself is complete.
        with anyio.move_on_after(_LINGER):
            try:
                await self._tcp.send_eof()
                while await self._stream.receive(_READ_SIZE):
                    pass
            except (anyio.EndOfStream, anyio.IncompleteRead, *_STREAM_ERRORS):
                pass


class _Handler:
    """Runs each accepted connection."""

    def __init__(
        self,
        app: RestApp,
        server: Server,
        ssl_context: ssl.SSLContext | None,
        max_body_size: int,
        idle_timeout: float | None,
    ) -> None:
        self._app = app
        self._server = server
        self._ssl = ssl_context
        self._max_body = max_body_size
        self._idle = math.inf if idle_timeout is None else idle_timeout

    async def serve(self, tcp: anyio.abc.SocketStream) -> None:
        self._server._connections_accepted += 1
        peer = tcp.extra(SocketAttribute.remote_address, None)
        async with tcp:
            try:
                stream = await self._open(tcp)
                if stream is None:
                    return
                connection = _Peer(tcp, stream)
                await self._exchange(connection)
                await connection.linger()
            except TransportError as exc:
                _log.debug("connection from %s ended: %s", peer, exc)
            except Exception:
                _log.exception("connection from %s failed", peer)

    async def _open(self, tcp: anyio.abc.SocketStream) -> anyio.abc.ByteStream | None:
        if self._ssl is None:
            return tcp
        try:
            with anyio.fail_after(_HANDSHAKE_TIMEOUT):
                return await TLSStream.wrap(
                    tcp, server_side=True, ssl_context=self._ssl, standard_compatible=False
                )
        except (TimeoutError, anyio.EndOfStream, *_STREAM_ERRORS) as exc:
            _log.debug("TLS handshake failed: %r", exc)
            return None

    async def _exchange(self, peer: _Peer) -> None:
        # The pump: returns when the connection should close (after its last bytes are written).
        http = HttpServerConnection(max_body_size=self._max_body)
        while True:
            try:
                event = http.next_event()
            except RemoteProtocolError as exc:
                _log.info("refused a request (answering %s): %s", exc.hint, exc)
                http.send_error_response()
                await peer.send(http.data_to_send())
                return
            match event:
                case None:
                    await peer.send(http.data_to_send())  # a 100 Continue, if any
                    with anyio.move_on_after(self._idle) as waiting:
                        data = await peer.receive()
                    if waiting.cancelled_caught:
                        _log.debug("closing a connection idle for %s seconds", self._idle)
                        return
                    if data:
                        http.receive_data(data, _io.monotonic())
                    else:
                        http.receive_eof(_io.monotonic())
                case RequestReceived(request=request):
                    reply = self._ask(request)
                    if reply.delay > 0:
                        await anyio.sleep(reply.delay)
                    self._respond(http, reply.response)
                    self._server._requests_served += 1
                    out = http.data_to_send()
                    if isinstance(reply, Drop):
                        # The head and the first ``after`` bytes of the body, then the close.
                        body = len(reply.response.body)
                        await peer.send(out[: len(out) - body + max(0, min(reply.after, body))])
                        return
                    await peer.send(out)
                    if http.closing:
                        return
                case ConnectionClosed():
                    return
                case _:
                    assert_never(event)

    def _ask(self, request: HttpRequest) -> Reply:
        now, wall_ms = _io.clocks()
        try:
            reply = self._app.handle(request, now=now, wall_ms=wall_ms)
            if not isinstance(reply, Respond | Drop):
                raise TypeError(f"handle() must return Respond or Drop, got {type(reply).__name__}")
        except Exception as exc:
            _log.exception("the app failed on %s %s", request.method, request.target)
            return Respond(error_response(500, "internal", f"{type(exc).__name__}: {exc}"))
        return reply

    def _respond(self, http: HttpServerConnection, response: HttpResponse) -> None:
        try:
            http.send_response(response)
        except LocalProtocolError as exc:
            # send_response checks before it changes anything, so a 500 can go instead.
            _log.error("the app's response cannot be sent: %s", exc)
            http.send_response(error_response(500, "internal", str(exc)))
