"""Blocking httpcore pools that close no connection in use and keep no lock after a Ctrl-C.

httpcore (1.0.9) looks over its pool's connections each time a request enters or leaves the
pool, under the pool's lock, and closes those that look idle and expired, surplus or in the way.
A connection's own request runs outside that lock, so in a `KalshiClient` shared by threads the
look can race with a request on the same connection:

* the pool gives connection X to thread B's request; X stays idle until B starts on it;
* thread A's pass finds X idle. Before A asks whether X's socket has bytes to read (an idle
  connection's should not: if it has, the server closed it or sent what nobody asked for), B
  sends its request and the answer arrives. A takes the answer's bytes for a sign that X is
  dead;
* A closes X under B, whose call fails with a ``ReadError`` (``Bad file descriptor``) or, if B
  was already waiting for the socket, waits for its read timeout (encode/httpcore#1110 is the
  same race through the idle checks).

With 8 threads on 3 connections, 1 call in 500 to 850 failed so (``fuzz/pool_race.py``): a GET
is retried, but an order's POST fails after it was sent, and the caller cannot know whether the
exchange took it. The async pool does not race: its look and its close run without a yield
between them.

A Ctrl-C in a call could also hang that call for good: httpcore takes the pool's lock in a
Python ``__enter__``, so the interrupt can come once the lock is taken and before the ``with``
block owns it, and the pool's clean-up after the failed request takes the lock again and waits
for itself (``fuzz/interrupt_stress.py --httpx`` hung so in 3 runs of 4).

A connection has the same gap in its own locks: the one it connects under, a proxy's connect
lock, its HTTP/1.1 or HTTP/2 handler's. A Ctrl-C in one thread's call could leave one held, and
the calls of other threads already given that connection (an HTTP/2 one carries several at once)
waited for it for good (``tests/adapters/test_http2.py`` lands an interrupt at each point in
turn). An HTTP/2 connection has the gap deeper too, in the stream permits it counts with a
`threading.Semaphore`, whose Python ``release`` takes an inner lock in a ``with`` block. When
the server's SETTINGS arrive, httpcore releases 99 permits one by one; a Ctrl-C landing just
after one of them took that inner lock left it held, and the request's clean-up, which releases
a permit, waited for itself for good (1 Ctrl-C in about 1,300 over HTTP/2 in a stress run: the
call hung until a second Ctrl-C; a thread sharing the connection would hang for good). A guarded
connection's locks, and its handler's as httpcore makes it, become plain ones, and an HTTP/2
handler's permits a queue whose take and give run in C (`_Permits`).

A Ctrl-C inside the ``wrap_socket`` of httpcore's TLS start could leave two sockets owning one
descriptor, both closed by the garbage collector (`kalshi_proto.tls_wrap`); a guarded
connection closes it once, at once, as the interrupt passes.

`guard_pools` gives each pool a plain `threading.Lock`, taken and given back in C, and makes
every connection the pool creates a `GuardedConnection`: while a request runs on it, the pool
sees it neither idle nor expired (nor free, over HTTP/1.1), and a close waits for the request's
end. A connection an interrupt passed through may be half-way through a change of state: it
takes no other request, and closes as its last one ends. Its look at an idle
connection and the start of a request on it take one lock, so the bytes the look sees are never
an answer. A connection is wrapped through httpcore's public connection interface; the pools
are reached through the ``_pool`` attribute of httpx's transports (and of `SocksTransport`), and
their lock is their ``_optional_thread_lock``. ``tests/adapters/test_httpx_guard.py`` checks
both on every kind of pool a client builds, so an httpx or httpcore that renames them fails
there. A connection's HTTP/2 handler is caught as httpcore stores it in the connection's
``_connection``, and its permits as it stores them in ``_max_streams_semaphore``; a test in
``tests/adapters/test_http2.py`` checks that a guarded HTTP/2 connection ends up with both, and
with no lock of httpcore's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import httpcore
import httpx

from kalshi_proto.tls_wrap import interrupted_tls_wrap

__all__ = ["GuardedConnection", "guard_pools"]


class GuardedConnection(httpcore.ConnectionInterface):
    """One of a pool's connections, kept from the pool's clean-up while a request runs on it.

    Args:
        connection: the connection the pool made (an `httpcore.HTTPConnection`, or a proxy's).
    """

    def __init__(self, connection: httpcore.ConnectionInterface) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._running = 0  # requests on the connection (HTTP/2 carries several at once)
        # Closed by the pool, or an interrupt passed through: shut when the last request ends.
        self._closing = False
        self._shut = False  # the connection itself closed, once

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        with self._lock:
            if self._closing:
                raise httpcore.ConnectionNotAvailable()
            self._running += 1
        try:
            response = self._connection.handle_request(request)
        except BaseException as exc:
            _settle_interrupted_wrap(exc)
            self._request_ended(_interrupts(exc))
            raise
        stream = response.stream
        assert isinstance(stream, Iterable)
        response.stream = _Body(stream, self._request_ended)
        return response

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._running or self._shut:
                return  # the request's end closes it, or it is closed
            self._shut = True
        self._connection.close()

    def has_expired(self) -> bool:
        with self._lock:
            return not self._running and self._connection.has_expired()

    def is_idle(self) -> bool:
        with self._lock:
            return not self._running and self._connection.is_idle()

    def is_available(self) -> bool:
        with self._lock:
            if self._closing:
                return False
            # An HTTP/1.1 connection carries one request at a time; httpcore marks it idle as
            # its response closes, a moment before h11 is ready for the next request.
            handler = getattr(self._connection, "_connection", None)
            if self._running and isinstance(handler, httpcore.HTTP11Connection):
                return False
        return self._connection.is_available()

    def is_closed(self) -> bool:
        return self._connection.is_closed()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._connection.can_handle_request(origin)

    def info(self) -> str:
        return self._connection.info()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._connection!r}>"

    def _request_ended(self, interrupted: bool = False) -> None:
        # An interrupt may have left the connection half-way through a change of state (httpcore
        # marks an HTTP/1.1 one idle before h11 is ready for the next request, and a request of
        # another thread given it then failed before sending anything): it takes no new request.
        with self._lock:
            self._running -= 1
            self._closing = self._closing or interrupted
            shut = self._closing and not self._running and not self._shut
            self._shut = self._shut or shut
        if shut:
            self._connection.close()


class _Body:
    # A response's body stream, which tells its connection when the response is closed, and
    # whether an interrupt passed through it.

    def __init__(self, chunks: Iterable[bytes], ended: Callable[[bool], None]) -> None:
        self._chunks = chunks
        self._ended: Callable[[bool], None] | None = ended
        self._interrupted = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except BaseException as exc:
            self._interrupted = self._interrupted or _interrupts(exc)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._interrupted = self._interrupted or _interrupts(exc)
            raise
        finally:
            ended, self._ended = self._ended, None
            if ended is not None:
                ended(self._interrupted)


def _interrupts(error: BaseException) -> bool:
    # A Ctrl-C (KeyboardInterrupt), or a SystemExit a signal handler raised: it can land between
    # any two steps of httpcore's. (GeneratorExit only closes a body read part of the way.)
    return not isinstance(error, Exception | GeneratorExit)


def _settle_interrupted_wrap(error: BaseException) -> None:
    # A Ctrl-C inside the wrap_socket of httpcore's TLS start can leave the TLS socket it was
    # making and the plain one owning one descriptor (`kalshi_proto.tls_wrap`); httpcore closes
    # neither on a KeyboardInterrupt, and the garbage collector would close both. The TLS socket
    # lets go, the plain one closes it, now.
    found = interrupted_tls_wrap(error)
    if found is not None:
        found.made.detach()
        found.wrapped.close()


def guard_pools(holder: httpx.BaseTransport | httpx.Client) -> None:
    """Make the connections of every httpcore pool behind ``holder`` `GuardedConnection`s.

    ``holder`` is a transport built by a `KalshiClient` (an `httpx.HTTPTransport`, direct or
    through an HTTP proxy, or a `SocksTransport`) or its internal `httpx.Client`, whose pools
    are its transport's and those of the proxies it mounts. Call it before the first request.
    """
    transports: list[object] = [holder]
    if isinstance(holder, httpx.Client):
        transports = [holder._transport, *holder._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool):
            _guard(pool)


def _guard(pool: httpcore.ConnectionPool) -> None:
    # httpcore's own lock takes the lock in a Python __enter__, which a Ctrl-C can leave after
    # the lock is taken and before the with block owns it; the pool's request path then takes
    # the lock again in its except clause and waits for itself for good. A plain lock is taken
    # and given back in C, with no such gap. The pool uses its lock in with statements only.
    if hasattr(pool, "_optional_thread_lock"):
        pool._optional_thread_lock = threading.Lock()  # type: ignore[assignment]
    create = pool.create_connection

    def create_guarded(origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        connection = create(origin)
        _watch_handler(connection)
        return GuardedConnection(connection)

    # The pool calls self.create_connection(origin) for each connection it opens.
    pool.create_connection = create_guarded  # type: ignore[method-assign]


# ---- HTTP/2: locks and stream permits a Ctrl-C cannot leave taken ------------------------------


#: How often, in seconds, a request waiting for a stream permit checks whether one was lost.
_LOST_PERMIT_CHECK = 0.5


class _Permits:
    """A counting semaphore whose take and give run in C (a `queue.SimpleQueue` of tokens), with
    the two methods of httpcore's blocking ``Semaphore``. A Ctrl-C lands before or after one,
    never inside: no inner lock can be left held.

    A Ctrl-C can still cost a permit: httpcore takes one before the ``try`` that gives it back.
    A new connection has a single permit until the server's SETTINGS are read, and only a request
    past its permit reads them: the other requests would wait for good. So a request that waits
    looks at intervals at the connection's running streams (``streams``); with none running, no
    permit will come back, and it goes on without one (its end gives one back, in place of the
    one lost)."""

    def __init__(self, count: int, streams: Sized) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._streams = streams
        for _ in range(count):
            self._tokens.put(None)

    def acquire(self) -> None:
        while True:
            try:
                self._tokens.get(timeout=_LOST_PERMIT_CHECK)
                return
            except queue.Empty:
                if not self._streams:
                    return

    def release(self) -> None:
        self._tokens.put(None)


class _SafeHTTP2Connection(httpcore.HTTP2Connection):
    # The class a guarded connection's HTTP/2 handler is given once made. httpcore makes the
    # handler's stream permits on its first request, as a threading.Semaphore of the local
    # stream limit (``Semaphore(n)``); they are swapped for `_Permits` as they are stored.
    #
    # The first request sends the connection's preface under a lock the others wait on. A
    # Ctrl-C there closes the connection, or leaves it marked as begun but without permits; the
    # requests that waited then failed on it, before sending anything. They are sent to another
    # connection instead: httpcore's pool takes ConnectionNotAvailable for that.
    #
    # A Ctrl-C that cuts a write short can garble what the other requests send after it; the
    # server may then end the connection having processed none of them (a GOAWAY naming stream
    # 0). httpcore 1.0.9 sends a request to another connection on a GOAWAY naming a stream below
    # its own, but not 0: such a request failed, as if the server might have taken it. Once an
    # interrupt has passed through the connection, it is sent to another too (without one, a
    # server that refused every connection so would be tried for good).

    _interrupted = False

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            return super().handle_request(request)
        except httpcore.RemoteProtocolError as exc:
            ended = self._connection_terminated
            if self._interrupted and ended is not None and ended.last_stream_id == 0:
                raise httpcore.ConnectionNotAvailable() from exc
            raise
        except BaseException as exc:
            self._interrupted = self._interrupted or _interrupts(exc)
            raise

    def _send_connection_init(self, request: httpcore.Request) -> None:
        if self.is_closed():  # by the request before, as a Ctrl-C cut its preface short
            raise httpcore.ConnectionNotAvailable()
        super()._send_connection_init(request)

    @property
    def _max_streams_semaphore(self) -> Any:
        permits = self.__dict__.get("_max_streams_semaphore")
        if permits is None:  # begun, without permits: the connection can carry nothing
            self.close()
            raise httpcore.ConnectionNotAvailable()
        return permits

    @_max_streams_semaphore.setter
    def _max_streams_semaphore(self, permits: Any) -> None:
        count = getattr(getattr(permits, "_semaphore", None), "_value", None)
        if isinstance(count, int):  # a fresh httpcore Semaphore: nothing taken from it yet
            permits = _Permits(count, self._events)
        self.__dict__["_max_streams_semaphore"] = permits


#: Each connection class httpcore's pools make, and its subclass that watches ``_connection``.
_WATCHING: dict[type, type] = {}


def _watch_handler(connection: httpcore.ConnectionInterface) -> None:
    # httpcore's connections (direct, through a proxy's tunnel, through SOCKS) make their HTTP/2
    # or HTTP/1.1 handler on their first request, store it in ``_connection`` and use it at
    # once. The connection's locks become plain ones, and those of what it holds there already
    # (a proxy's connection holds the one to the proxy); it is given a subclass whose
    # ``_connection`` property makes the handler safe as it is stored, before its first use.
    _plain_locks(connection)
    if "_connection" not in vars(connection):
        return
    _plain_locks(vars(connection)["_connection"])
    cls = type(connection)
    watching = _WATCHING.get(cls)
    if watching is None:
        attributes = {"_connection": property(_handler, _store_handler), "__module__": __name__}
        watching = _WATCHING[cls] = type(cls.__name__, (cls,), attributes)
    connection.__class__ = watching


def _handler(connection: Any) -> Any:
    return connection.__dict__["_connection"]


def _store_handler(connection: Any, handler: Any) -> None:
    _plain_locks(handler)  # made just now, not used yet (None has no locks)
    if type(handler) is httpcore.HTTP2Connection:
        handler.__class__ = _SafeHTTP2Connection
    connection.__dict__["_connection"] = handler


def _plain_locks(owner: object) -> None:
    # httpcore's blocking Lock takes its lock in a Python __enter__ and gives it back in a Python
    # __exit__: a Ctrl-C after the one took it, or as the other starts, leaves it held, and
    # every later request on the connection waits for it for good. Like the pool's (see
    # _guard), each of ``owner``'s becomes a plain lock: httpcore takes them only in with
    # statements.
    for name, value in list(getattr(owner, "__dict__", {}).items()):
        if isinstance(value, httpcore._synchronization.Lock):
            setattr(owner, name, threading.Lock())
