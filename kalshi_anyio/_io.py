"""The I/O primitives of `kalshi_anyio`: TCP/TLS streams, clocks, sleep, a connection limit.

Everything else in this package is written against these few calls, and ``scripts/unasync.py``
turns it into `kalshi_sync` by swapping this module for ``kalshi_sync/_io.py``. anyio runs the
same code on asyncio and trio. Third-party exceptions are translated here, once, into the
`kalshi_proto.errors.TransportError` tree.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TypeVar

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from kalshi_proto.dropped_connect import dropped_connection
from kalshi_proto.environ import unused_proxy_note
from kalshi_proto.errors import (
    CertificateError,
    ConfigurationError,
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportError,
    WriteError,
)
from kalshi_proto.proxy import TUNNEL_READ_SIZE, ProxyUrl, Tunnel, tunnel_for
from kalshi_proto.rest.hold import Hold, SlotQueue
from kalshi_proto.rest.http11 import http11_only

__all__ = [
    "FORKS",
    "Deadline",
    "Limiter",
    "Stream",
    "abandon",
    "clocks",
    "close_all",
    "connect",
    "current_loop",
    "default_ssl_context",
    "forget",
    "monotonic",
    "random_source",
    "sleep",
    "within",
]

T = TypeVar("T")

_READ_SIZE = 256 * 1024

#: How many ``os.fork()`` calls made this process, counted in the child. A client pools
#: connections with the count it saw; when the count has changed, its idle connections are the
#: parent's too, and one reused here would mix this process's bytes with the parent's.
FORKS = 0


def _count_fork() -> None:
    global FORKS
    FORKS += 1


os.register_at_fork(after_in_child=_count_fork)

# Connections inherited through os.fork(), kept from use and from the garbage collector.
_INHERITED: list[Stream] = []


def forget(streams: Iterable[Stream]) -> None:
    """Put connections inherited through ``os.fork()`` out of use for good.

    They are not closed: an event loop's stream closes through its loop, and a child's copy of
    the parent's loop shares the parent's epoll instance, so closing one here could stop the
    parent hearing from it. They are kept referenced, so the garbage collector does not close
    them either; a child holds at most ``max_connections`` of them per client.
    """
    _INHERITED.extend(streams)


def current_loop() -> object | None:
    """The asyncio event loop running the caller, or None on trio.

    A connection opened on one asyncio loop works on that loop only (`abandon`); trio's streams
    carry on from one ``trio.run`` to the next.
    """
    return asyncio._get_running_loop()


def abandon(streams: Iterable[Stream]) -> None:
    """Put out of use connections opened on an asyncio event loop other than the running one.

    They cannot be closed through their loop: ``asyncio.run`` has closed it, or it runs in
    another thread. Each socket is shut down instead, so the server sees the connection end at
    once, and the garbage collector frees its descriptor; asyncio then warns ``ResourceWarning:
    unclosed transport``, which Python shows only in development mode and under test runners.
    """
    for stream in streams:
        stream.shut_down()


# select.poll takes any descriptor; select.select only those below FD_SETSIZE (1024), so a
# process with many files open would find every idle connection "readable" and never reuse one.
# (Windows has no poll, and no such limit on descriptor values.)
_POLL = getattr(select, "poll", None)


def _has_input(fd: int) -> bool:
    # True when ``fd`` has bytes or EOF waiting, or is no longer a valid descriptor.
    try:
        if _POLL is None:
            readable, _, _ = select.select([fd], [], [], 0)
            return bool(readable)
        poller = _POLL()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def monotonic() -> float:
    """The process's monotonic clock, in seconds; the ``now`` every core call receives.

    Not the event loop's clock: trio's starts at a random offset in every ``trio.run``, so a
    rate limiter fed it by one loop would be read against another loop's clock, or a blocking
    client's, and refill by a day or ask for a day's wait. Deadlines given in this clock become
    loop-clock deadlines in `Deadline`.
    """
    return time.monotonic()


def clocks() -> tuple[float, int]:
    """(`monotonic` seconds, Unix milliseconds), read together."""
    return time.monotonic(), time.time_ns() // 1_000_000


async def sleep(seconds: float) -> None:
    """Sleep without blocking the event loop."""
    await anyio.sleep(seconds)


def random_source() -> Callable[[], float]:
    """A jitter source for retries: the OS's, so processes forked from one parent do not back
    off in step, as copies of one seeded generator would."""
    return random.SystemRandom().random


def default_ssl_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    """The caller's context, or a verifying default that offers HTTP/1.1 by ALPN."""
    if context is not None:
        return context
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class Stream:
    """One TCP connection, TLS or not."""

    def __init__(self, stream: anyio.abc.ByteStream, raw: object) -> None:
        self._stream = stream
        self._raw = raw
        # anyio's TLSStream reads all the socket has into a memory buffer and decrypts one
        # record at a time: a record that came after a response's last one (an answer nothing
        # asked for, a close_notify) waits there, where polling the socket cannot see it. The
        # buffer is not public (``_read_bio``); tests/adapters/test_rest_clients.py fails if it
        # moves. Both are looked up once: ``extra()`` costs microseconds on every call. Through
        # an https:// proxy there are two sessions, the API's inside the proxy's: each has its
        # buffers.
        self._tls: list[tuple[ssl.SSLObject, ssl.MemoryBIO | None]] = []
        layer: object = stream
        while isinstance(layer, TLSStream):
            self._tls.append(
                (layer.extra(TLSAttribute.ssl_object), getattr(layer, "_read_bio", None))
            )
            layer = layer.transport_stream

    async def send(self, data: bytes, deadline: float) -> None:
        """Write all of ``data``; the enclosing `Deadline` bounds the time."""
        del deadline
        try:
            await self._stream.send(data)
        except anyio.EndOfStream as exc:
            # A TLS stream says so when the server has closed the connection in mid-write.
            raise WriteError("writing the request failed: the server closed the connection") from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError) as exc:
            raise WriteError(f"writing the request failed: {exc!r}") from exc

    async def receive(self, deadline: float) -> bytes:
        """Read some bytes; ``b""`` when the peer closed the connection. The enclosing
        `Deadline` bounds the time."""
        del deadline
        try:
            return await self._stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return b""
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError) as exc:
            raise ReadError(f"reading the response failed: {exc!r}") from exc

    def is_readable(self) -> bool:
        """True when the idle connection has bytes or EOF waiting: the server dropped it, or
        sent what no request asked for."""
        for session, buffer in self._tls:
            if session.pending() or (buffer is not None and buffer.pending):
                return True
        fileno = getattr(self._raw, "fileno", None)
        if fileno is None:
            return False
        return _has_input(fileno())

    def shut_down(self) -> None:
        """End the connection in both directions without the event loop (see `abandon`)."""
        shutdown = getattr(self._raw, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already ended by the peer, or never connected

    async def aclose(self) -> None:
        """Close the connection at once, without waiting for the peer."""
        await anyio.aclose_forcefully(self._stream)


class Deadline:
    """``with Deadline(when):`` cancels the block at ``when`` (`monotonic` clock) and raises
    ``error`` with ``message`` instead (`ReadTimeout` by default).

    One cancel scope per exchange: cheaper than a timeout around every socket operation. The
    connect and the wait for a free connection use it too, with `ConnectTimeout`.
    """

    __slots__ = ("_error", "_message", "_scope")

    def __init__(
        self,
        when: float,
        error: type[TransportError] = ReadTimeout,
        message: str = "the request timed out before the response was complete",
    ) -> None:
        # The same moment on the loop's clock, which may run from another origin (or be a
        # test's mock clock).
        self._scope = anyio.CancelScope(deadline=anyio.current_time() + (when - time.monotonic()))
        self._error = error
        self._message = message

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The scope swallows only its own cancellation, and that becomes ``error``: nothing
        # else is ever suppressed.
        self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught:
            raise self._error(self._message) from None


async def close_all(streams: Iterable[Stream]) -> None:
    """Close every one of ``streams``, also in a cancelled scope: a cancellation delivered
    after the first close would otherwise leave the others open. Closing is forceful, so the
    shield holds for no network round trip.

    Raises:
        BaseException: what interrupted a close (a native asyncio cancellation, say), once
            every stream is closed.
    """
    interrupted: BaseException | None = None
    with anyio.CancelScope(shield=True):
        for stream in streams:
            try:
                await stream.aclose()
            except BaseException as exc:
                # The shield holds off anyio's and trio's cancellation, not asyncio's own
                # (``task.cancel()``, as asyncio.timeout and task groups use): it lands at the
                # checkpoint of a close, after the stream's transport is aborted. The rest are
                # closed before it goes on.
                if interrupted is None:
                    interrupted = exc
    if interrupted is not None:
        raise interrupted


async def within(deadline: float, exchange: Awaitable[T]) -> T:
    """Await ``exchange``, cancelled at ``deadline`` (`monotonic` clock) with `ReadTimeout`."""
    with Deadline(deadline):
        return await exchange


async def connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
    proxy: ProxyUrl | None = None,
    user_agent: str | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
) -> Stream:
    """Open a TCP connection (and a TLS session when ``ssl_context`` is given) before
    ``deadline``: to ``host:port``, or through a tunnel of ``proxy`` (an HTTP proxy's
    ``CONNECT`` request carries ``user_agent``; an ``https://`` proxy's TLS session takes
    ``proxy_ssl_context``)."""
    try:
        return await _connect(
            host, port, ssl_context, deadline, proxy, user_agent, proxy_ssl_context
        )
    except ConnectError as exc:
        note = unused_proxy_note("kalshi_anyio") if proxy is None else None
        if note is not None:
            exc.add_note(note)
        raise


async def _connect_tcp(host: str, port: int, what: str) -> anyio.abc.SocketStream:
    try:
        return await anyio.connect_tcp(host, port)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {what}: {exc}") from exc
    except BaseException as exc:
        # A cancellation (the Deadline's, or the caller's) that landed as an attempt connected:
        # anyio before 4.16 dropped that connection unclosed (`kalshi_proto.dropped_connect`).
        dropped = dropped_connection(exc)
        if isinstance(dropped, anyio.abc.SocketStream):
            await anyio.aclose_forcefully(dropped)
        raise


async def _open_tunnel(tcp: anyio.abc.ByteStream, tunnel: Tunnel) -> None:
    # The tunnel's exchange on a fresh connection to the proxy (a CONNECT, or the SOCKS5
    # handshake's steps); the caller's Deadline bounds it.
    try:
        await tcp.send(tunnel.data_to_send())
        while True:
            try:
                data = await tcp.receive(TUNNEL_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            if tunnel.receive_data(data):
                return
            step = tunnel.data_to_send()
            if step:
                await tcp.send(step)
    except (OSError, anyio.BrokenResourceError) as exc:  # ssl.SSLError is an OSError
        raise ConnectError(f"opening a tunnel through {tunnel.proxy} failed: {exc!r}") from exc


async def _start_tls(
    stream: anyio.abc.ByteStream, hostname: str, context: ssl.SSLContext, what: str
) -> TLSStream:
    # The TLS handshake with ``what`` (the API's host:port, or the proxy) over ``stream``; the
    # caller closes ``stream`` if it fails.
    try:
        return await TLSStream.wrap(
            stream, hostname=hostname, ssl_context=context, standard_compatible=False
        )
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"TLS handshake with {what} failed: {exc}") from exc
    except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        raise ConnectError(f"TLS handshake with {what} failed: {exc}") from exc


async def _connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
    proxy: ProxyUrl | None,
    user_agent: str | None,
    proxy_ssl_context: ssl.SSLContext | None,
) -> Stream:
    via = "" if proxy is None else f" through the proxy {proxy.address}"
    with Deadline(deadline, ConnectTimeout, f"connecting to {host}:{port}{via} timed out"):
        if proxy is None:
            tcp = await _connect_tcp(host, port, f"{host}:{port}")
            carrier: anyio.abc.ByteStream = tcp
        else:
            tcp = await _connect_tcp(proxy.host, proxy.port, f"the proxy {proxy.address}")
            try:
                carrier = tcp
                if proxy.is_tls:
                    # The CONNECT, and then the API's TLS session, inside the proxy's.
                    context = proxy_ssl_context or default_ssl_context(None)
                    carrier = await _start_tls(
                        tcp, proxy.host, context, f"the proxy {proxy.address}"
                    )
                await _open_tunnel(carrier, tunnel_for(proxy, host, port, user_agent=user_agent))
            except BaseException:
                await anyio.aclose_forcefully(tcp)
                raise
        raw = tcp.extra(anyio.abc.SocketAttribute.raw_socket)
        if ssl_context is None:
            return Stream(carrier, raw)
        try:
            tls = await _start_tls(carrier, host, ssl_context, f"{host}:{port}")
        except BaseException:
            # Failed, timed out or cancelled: the socket goes either way.
            await anyio.aclose_forcefully(tcp)
            raise
        chosen = tls.extra(TLSAttribute.alpn_protocol, None)
        if chosen not in (None, "http/1.1"):
            await anyio.aclose_forcefully(tls)
            raise ConfigurationError(http11_only(host, port, chosen))
        return Stream(tls, raw)


class Limiter(SlotQueue):
    """At most ``total`` connections in use at once (0: no limit).

    ``await limiter.acquire(deadline, hold)`` takes one slot into ``hold`` (a
    `kalshi_proto.rest.hold.Hold`), ``limiter.release(hold)`` gives it back. A free slot is taken
    without a checkpoint. Waiters are served in arrival order, each until its own deadline
    (`SlotQueue`), so a task arriving meanwhile cannot take a slot first.
    """

    async def acquire(self, deadline: float, hold: Hold | None = None) -> bool:
        """Take a slot, waiting until ``deadline`` (`monotonic` clock) at most; True if this
        waited.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        if self._free < 0:
            return False
        hold = Hold() if hold is None else hold
        if self._take(hold):
            return False
        self._queue(hold, anyio.Event())  # set to hand this task a slot
        try:
            with Deadline(deadline, ConnectTimeout, "no connection became free before the timeout"):
                await hold.wake.wait()
        except BaseException:
            self.release(hold)  # leaves the queue; or, handed a slot, passes it on
            raise
        return True

    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds (to the first waiter, or to the free ones), or take
        ``hold`` out of the queue; nothing if it has neither. Without ``hold``, give back a
        slot taken by the caller."""
        if self._free < 0:
            return
        handed = self._give_back(hold)
        if handed is not None:
            handed.wake.set()
