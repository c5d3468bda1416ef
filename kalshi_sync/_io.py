"""The I/O primitives of `kalshi_sync`: blocking sockets with deadlines, clocks, sleep, a limit.

The rest of this package is generated from `kalshi_anyio` by ``scripts/unasync.py``; only this
module is written by hand. Third-party exceptions are translated here, once, into the
`kalshi_proto.errors.TransportError` tree.
"""

from __future__ import annotations

import os
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TypeVar

from kalshi_proto.environ import unused_proxy_note
from kalshi_proto.errors import (
    CertificateError,
    ConfigurationError,
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
)
from kalshi_proto.proxy import TUNNEL_READ_SIZE, ProxyUrl, Tunnel, tunnel_for
from kalshi_proto.rest.hold import Hold, SlotQueue
from kalshi_proto.rest.http11 import http11_only
from kalshi_proto.tls_wrap import interrupted_tls_wrap

__all__ = [
    "FORKS",
    "Limiter",
    "Stream",
    "abandon",
    "clocks",
    "close_all",
    "connect",
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


def forget(streams: Iterable[Stream]) -> None:
    """Close this process's descriptors of connections it inherited through ``os.fork()``.

    Nothing is sent: a TLS connection closed this way says no goodbye, and the parent's
    descriptor keeps the connection open, so the parent goes on using it undisturbed.
    """
    close_all(streams)


def abandon(streams: Iterable[Stream]) -> None:
    """Close connections of another event loop; a blocking client never has any."""
    close_all(streams)


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
    """The monotonic clock, in seconds; the ``now`` every core call receives."""
    return time.monotonic()


def clocks() -> tuple[float, int]:
    """(monotonic seconds, Unix milliseconds), read together."""
    return time.monotonic(), time.time_ns() // 1_000_000


def sleep(seconds: float) -> None:
    """Block the calling thread for ``seconds``."""
    time.sleep(seconds)


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


def _remaining(deadline: float, error: type[Exception], what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(f"{what} timed out")
    return left


class Stream:
    """One TCP connection, TLS or not."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` before ``deadline``."""
        view = memoryview(data)
        while view:
            self._sock.settimeout(_remaining(deadline, ReadTimeout, "the request"))
            try:
                sent = self._sock.send(view)
            except TimeoutError:
                raise ReadTimeout("the request timed out while it was being written") from None
            except OSError as exc:
                raise WriteError(f"writing the request failed: {exc!r}") from exc
            view = view[sent:]

    def receive(self, deadline: float) -> bytes:
        """Read some bytes before ``deadline``; ``b""`` when the peer closed the connection."""
        self._sock.settimeout(_remaining(deadline, ReadTimeout, "reading the response"))
        try:
            return self._sock.recv(_READ_SIZE)
        except TimeoutError:
            raise ReadTimeout("reading the response timed out") from None
        except ssl.SSLZeroReturnError:
            return b""
        except OSError as exc:
            raise ReadError(f"reading the response failed: {exc!r}") from exc

    def is_readable(self) -> bool:
        """True when the idle connection has bytes or EOF waiting: the server dropped it."""
        return _has_input(self._sock.fileno())

    def close(self) -> None:
        """Close the connection at once."""
        self._sock.close()


def _connect_tcp(host: str, port: int, deadline: float, what: str) -> socket.socket:
    # socket.create_connection, but closing the socket whatever interrupts the connect (a
    # KeyboardInterrupt, say), where the standard one closes it on OSError only.
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {what}: {exc}") from exc
    first: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline, ConnectTimeout, f"connecting to {what}"))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"connecting to {what} timed out") from None
        except OSError as exc:
            sock.close()
            first = first or exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise ConnectError(f"cannot connect to {what}: {first}") from first


def _open_tunnel(sock: socket.socket, tunnel: Tunnel, deadline: float) -> None:
    # The tunnel's exchange on a fresh connection to the proxy: a CONNECT, or the SOCKS5
    # handshake's steps.
    what = f"opening a tunnel through {tunnel.proxy}"
    try:
        step = tunnel.data_to_send()
        while True:
            if step:
                sock.settimeout(_remaining(deadline, ConnectTimeout, what))
                sock.sendall(step)
            sock.settimeout(_remaining(deadline, ConnectTimeout, what))
            if tunnel.receive_data(sock.recv(TUNNEL_READ_SIZE)):
                return
            step = tunnel.data_to_send()
    except TimeoutError:
        raise ConnectTimeout(f"{what} timed out") from None
    except OSError as exc:
        raise ConnectError(f"{what} failed: {exc}") from exc


def connect(
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
        return _connect(host, port, ssl_context, deadline, proxy, user_agent, proxy_ssl_context)
    except ConnectError as exc:
        note = unused_proxy_note("kalshi_sync") if proxy is None else None
        if note is not None:
            exc.add_note(note)
        raise


def _connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
    proxy: ProxyUrl | None,
    user_agent: str | None,
    proxy_ssl_context: ssl.SSLContext | None,
) -> Stream:
    if proxy is None:
        sock = _connect_tcp(host, port, deadline, f"{host}:{port}")
    else:
        sock = _connect_tcp(proxy.host, proxy.port, deadline, f"the proxy {proxy.address}")
        try:
            if proxy.is_tls:
                # The CONNECT, and then the API's TLS session, inside the proxy's.
                context = proxy_ssl_context or default_ssl_context(None)
                sock = _start_tls(sock, proxy.host, context, deadline, f"the proxy {proxy.address}")
            _open_tunnel(sock, tunnel_for(proxy, host, port, user_agent=user_agent), deadline)
        except BaseException:
            sock.close()  # (closing a socket twice, or one a TLS socket took over, does nothing)
            raise
    if ssl_context is None:
        try:
            return Stream(sock)
        except BaseException:  # interrupted as it began (a Ctrl-C)
            sock.close()
            raise
    if isinstance(sock, ssl.SSLSocket):
        return _tunnelled_tls(sock, host, port, ssl_context, deadline)
    tls = _start_tls(sock, host, ssl_context, deadline, f"{host}:{port}")
    chosen = tls.selected_alpn_protocol()
    if chosen not in (None, "http/1.1"):
        tls.close()
        raise ConfigurationError(http11_only(host, port, chosen))
    try:
        return Stream(tls)
    except BaseException:  # interrupted as it began (a Ctrl-C)
        tls.close()
        raise


def _start_tls(
    sock: socket.socket, hostname: str, context: ssl.SSLContext, deadline: float, what: str
) -> ssl.SSLSocket:
    # The TLS handshake with ``what`` (the API's host:port, or the proxy) on ``sock``, closed if
    # it fails. The handshake runs apart from the wrapping: ``wrap_socket`` takes over the
    # descriptor from ``sock``, so only the wrapped socket can close it if the handshake is
    # interrupted.
    tls: ssl.SSLSocket | None = None
    try:
        sock.settimeout(_remaining(deadline, ConnectTimeout, f"connecting to {what}"))
        tls = context.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
        tls.do_handshake()
    except BaseException as exc:
        if tls is None:
            _settle_interrupted_wrap(exc)
        (sock if tls is None else tls).close()
        _raise_handshake_error(exc, what)
        raise
    return tls


def _raise_handshake_error(exc: BaseException, what: str) -> None:
    # The SDK's error for ``exc``, which ended the TLS handshake with ``what``; returns for
    # anything else (a Ctrl-C, or the SDK's own error), for the caller to raise as it is.
    if isinstance(exc, TimeoutError):
        raise ConnectTimeout(f"the TLS handshake with {what} timed out") from None
    if isinstance(exc, ssl.SSLCertVerificationError):
        raise CertificateError(f"TLS handshake with {what} failed: {exc}") from exc
    if isinstance(exc, OSError):  # ssl.SSLError among them
        raise ConnectError(f"TLS handshake with {what} failed: {exc}") from exc


def _tunnelled_tls(
    outer: ssl.SSLSocket, host: str, port: int, context: ssl.SSLContext, deadline: float
) -> Stream:
    # The API's TLS session inside the proxy's (``outer``), its handshake run; ``outer`` is
    # closed if it fails.
    what = f"{host}:{port}"
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        inner = context.wrap_bio(incoming, outgoing, server_hostname=host)
        stream = _TunnelledTLS(outer, inner, incoming, outgoing)
        stream.run(inner.do_handshake, deadline, ConnectTimeout, f"connecting to {what}")
    except BaseException as exc:
        outer.close()
        _raise_handshake_error(exc, what)
        raise
    chosen = inner.selected_alpn_protocol()
    if chosen not in (None, "http/1.1"):
        outer.close()
        raise ConfigurationError(http11_only(host, port, chosen))
    return stream


class _TunnelledTLS(Stream):
    """The API's TLS session inside the TLS session with an ``https://`` proxy (the socket's).
    The inner session runs on memory buffers (an `ssl.SSLObject`): its records go out and come
    in through the outer one."""

    def __init__(
        self,
        outer: ssl.SSLSocket,
        inner: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        super().__init__(outer)
        self._outer = outer
        self._inner = inner
        self._incoming = incoming
        self._outgoing = outgoing

    def run(self, step: Callable[[], T], deadline: float, error: type[Exception], what: str) -> T:
        """``step()``, a call of the inner session, fed the proxy's bytes until it needs no
        more; what it wrote is sent before it returns. Raises ``error`` at ``deadline``."""
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self._flush(deadline, error, what)
                self._outer.settimeout(_remaining(deadline, error, what))
                data = self._outer.recv(_READ_SIZE)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._flush(deadline, error, what)
            return result

    def _flush(self, deadline: float, error: type[Exception], what: str) -> None:
        data = self._outgoing.read()
        if data:
            self._outer.settimeout(_remaining(deadline, error, what))
            self._outer.sendall(data)

    def send(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` before ``deadline``."""
        view = memoryview(data)
        try:
            while view:
                write = partial(self._inner.write, view)
                written = self.run(write, deadline, ReadTimeout, "the request")
                view = view[written:]
        except TimeoutError:
            raise ReadTimeout("the request timed out while it was being written") from None
        except OSError as exc:
            raise WriteError(f"writing the request failed: {exc!r}") from exc

    def receive(self, deadline: float) -> bytes:
        """Read some bytes before ``deadline``; ``b""`` when the peer closed the connection."""
        try:
            return self.run(
                lambda: self._inner.read(_READ_SIZE), deadline, ReadTimeout, "reading the response"
            )
        except TimeoutError:
            raise ReadTimeout("reading the response timed out") from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""  # closed, with or without a close_notify (as the socket's session)
        except OSError as exc:
            raise ReadError(f"reading the response failed: {exc!r}") from exc

    def is_readable(self) -> bool:
        """True when the idle connection has bytes or EOF waiting, in either session's buffers
        or on the socket."""
        return bool(
            self._inner.pending()
            or self._incoming.pending
            or self._incoming.eof
            or self._outer.pending()
            or super().is_readable()
        )


def _settle_interrupted_wrap(error: BaseException) -> None:
    # A Ctrl-C inside wrap_socket can leave the TLS socket it was making and ``sock`` owning
    # one descriptor (`kalshi_proto.tls_wrap`): the TLS socket lets go, ``sock`` closes it.
    found = interrupted_tls_wrap(error)
    if found is not None:
        found.made.detach()
        found.wrapped.close()


def close_all(streams: Iterable[Stream]) -> None:
    """Close every one of ``streams``, also when one close is interrupted (a
    KeyboardInterrupt, say): what interrupted it is raised once the rest are closed."""
    interrupted: BaseException | None = None
    for stream in streams:
        try:
            stream.close()
        except BaseException as exc:
            # Interrupted perhaps as the close began: once more (closing twice is harmless).
            stream.close()
            if interrupted is None:
                interrupted = exc
    if interrupted is not None:
        try:
            raise interrupted
        finally:
            # Not kept in this frame, which its traceback holds: a cycle that would keep the
            # frame, and every stream it names, until the garbage collector runs.
            interrupted = None


def within(deadline: float, result: T) -> T:
    """The result of an exchange already made. Nothing to bound here: every socket call of
    `Stream` had its own timeout, computed from the same ``deadline``."""
    del deadline
    return result


class Limiter(SlotQueue):
    """At most ``total`` connections in use at once, across threads (0: no limit).

    ``limiter.acquire(deadline, hold)`` takes one slot into ``hold`` (a
    `kalshi_proto.rest.hold.Hold`), ``limiter.release(hold)`` gives it back. Waiters are served
    in arrival order, each until its own deadline (`SlotQueue`): without the hand-over a busy
    thread could take slot after slot while another waited past its timeout.

    A Ctrl-C can land wherever Python runs a signal handler: as a function starts, after a call
    returns. The state changes under ``with self._lock``, which nothing can part from its
    release, and `SlotQueue` writes each change into the hold with no call in between, so the
    caller's ``finally`` always finds out what it has to give back.
    """

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self._lock = threading.Lock()

    def acquire(self, deadline: float, hold: Hold | None = None) -> bool:
        """Take a slot, waiting until ``deadline`` (`monotonic` clock) at most; True if this
        waited.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        if self._free < 0:
            return False
        hold = Hold() if hold is None else hold
        with self._lock:
            if self._take(hold):
                return False
            wake = threading.Lock()  # released to hand this thread a slot
            wake.acquire()
            self._queue(hold, wake)
        try:
            wait = deadline - time.monotonic()
            if wait > 0 and wake.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
                return True
        except BaseException:  # interrupted (KeyboardInterrupt, say): its turn passes on
            self.release(hold)
            raise
        with self._lock:
            if self._kept_after_wait(hold):
                return True
        raise ConnectTimeout("no connection became free before the timeout")

    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds (to the first waiter, or to the free ones), or take
        ``hold`` out of the queue; nothing if it has neither. Without ``hold``, give back a
        slot taken by the caller."""
        if self._free < 0:
            return
        with self._lock:
            handed = self._give_back(hold)
        if handed is not None:
            handed.wake.release()
