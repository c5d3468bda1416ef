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
handler's permits a queue whose take and give run in C (`_Permits`). An HTTP/2 handler also runs
a main-thread request's work on the connection's shared state in helper threads, where no Ctrl-C
lands (`_SafeHTTP2Connection`, `_Helpers`), its TLS reads and writes take turns, as OpenSSL
requires (`_TakingTurns`; through an HTTPS proxy too, `_TunnelledTLS`), its h2 state is changed by one thread at a time
(`_one_thread_at_a_time`), and it loses no call to a server's GOAWAY (`_goaway`).

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

import contextlib
import functools
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import httpcore
import httpx
from httpcore._backends.sync import SyncStream, TLSinTLSStream

from kalshi_httpx import _goaway
from kalshi_httpx._deadline import DEADLINE, ClampedStream, ClampingBackend, bound
from kalshi_httpx._sync_http2 import ConnectOnce, MendedHTTP2Connection
from kalshi_proto.tls_wrap import interrupted_tls_wrap

__all__ = ["GuardedConnection", "guard_pools"]


class GuardedConnection(httpcore.ConnectionInterface):
    """One of a pool's connections, kept from the pool's clean-up while a request runs on it.

    Args:
        connection: the connection the pool made (an `httpcore.HTTPConnection`, or a proxy's).
        claimed: whether a request in the pool holds this connection, asked under the pool's
            lock; None for a connection outside a pool, which no request holds but its own.
    """

    def __init__(
        self,
        connection: httpcore.ConnectionInterface,
        claimed: Callable[[GuardedConnection], bool] | None = None,
    ) -> None:
        self._connection = connection
        self._claimed = claimed
        self._lock = threading.Lock()
        self._running = 0  # requests on the connection (HTTP/2 carries several at once)
        self._started = False  # given a request once
        # Closed by the pool, or an interrupt passed through: shut when the last request ends.
        self._closing = False
        self._shut = False  # the connection itself closed, once

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        with self._lock:
            if self._closing:
                raise httpcore.ConnectionNotAvailable()
            self._running += 1
            self._started = True
        deadline = request.extensions.get(DEADLINE)  # (see _deadline)
        try:
            with bound(deadline):
                response = self._connection.handle_request(request)
        except BaseException as exc:
            _settle_interrupted_wrap(exc)
            self._request_ended(_interrupts(exc), failed=True)
            raise
        stream = response.stream
        assert isinstance(stream, Iterable)
        response.stream = _Body(stream, self._request_ended, deadline)
        return response

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._running or self._shut:
                return  # the request's end closes it, or it is closed
            self._shut = True
        self._connection.close()

    def has_expired(self) -> bool:
        # The pool asks under its lock. A connection it made for a request that gave up before
        # using it (its wait for a connection timed out as the connection was assigned, or the
        # connection refused it) is no request's: httpcore 1.0.9 keeps such a connection, never
        # connected, neither idle nor closed, and its slot is lost for good (with one
        # connection, every later call waited for it). It expires, and the pool closes it.
        with self._lock:
            if not self._started and self._claimed is not None and not self._claimed(self):
                return True
            return not self._running and self._connection.has_expired()

    def is_idle(self) -> bool:
        # Idle for the pool: no request runs on it and no request in the pool holds it. A
        # request whose response was just read still holds it until the pool lets it go, under
        # the pool's lock. Without that, a pass of the pool that had found the connection busy
        # as it looked for a free one, and found it idle a moment later, closed it "to make
        # room" for a new one (8 threads on 3 TLS connections: 12 connections made in 21,000
        # calls; 3 now).
        with self._lock:
            if self._running or not self._connection.is_idle():
                return False
        return self._claimed is None or not self._claimed(self)

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
        # (closed here: one never connected does not say so itself)
        return self._shut or self._connection.is_closed()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._connection.can_handle_request(origin)

    def info(self) -> str:
        return self._connection.info()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._connection!r}>"

    def _request_ended(self, interrupted: bool = False, failed: bool = False) -> None:
        # An interrupt may have left the connection half-way through a change of state (httpcore
        # marks an HTTP/1.1 one idle before h11 is ready for the next request, and a request of
        # another thread given it then failed before sending anything): it takes no new request.
        # A request that failed, with no other on the connection, may have left it neither idle
        # nor closed, a state no request will end: httpcore's tunnel keeps its connection to the
        # proxy, busy with the CONNECT, when the TLS start inside the tunnel fails, and the pool
        # would keep that slot for good. Such a connection is closed.
        with self._lock:
            self._running -= 1
            stuck = failed and not self._running and not self._settled()
            self._closing = self._closing or interrupted or stuck
            shut = self._closing and not self._running and not self._shut
            self._shut = self._shut or shut
        if shut:
            self._connection.close()

    def _settled(self) -> bool:
        # Whether the connection, with no request on it, is in a state a pool can go on from.
        connection = self._connection
        return connection.is_idle() or connection.is_closed()


class _Body:
    # A response's body stream, which tells its connection when the response is closed, and
    # whether an interrupt passed through it; each chunk is read held to the call's deadline.

    def __init__(
        self, chunks: Iterable[bytes], ended: Callable[[bool], None], deadline: float | None
    ) -> None:
        self._chunks = chunks
        self._ended: Callable[[bool], None] | None = ended
        self._interrupted = False
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._chunks)
        try:
            while True:
                with bound(self._deadline):
                    chunk = next(chunks, None)
                if chunk is None:
                    return
                yield chunk
        except BaseException as exc:
            self._interrupted = self._interrupted or _interrupts(exc)
            if isinstance(exc, GeneratorExit):  # closed part-read: so is httpcore's, at once
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
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
    for pool in _goaway.pools_of(holder):
        if isinstance(pool, httpcore.ConnectionPool):
            _guard(pool)


def _guard(pool: httpcore.ConnectionPool) -> None:
    # httpcore's own lock takes the lock in a Python __enter__, which a Ctrl-C can leave after
    # the lock is taken and before the with block owns it; the pool's request path then takes
    # the lock again in its except clause and waits for itself for good. A plain lock is taken
    # and given back in C, with no such gap. The pool uses its lock in with statements only.
    if hasattr(pool, "_optional_thread_lock"):
        pool._optional_thread_lock = threading.Lock()  # type: ignore[assignment]
    # Each connect, read and write held to the call's deadline (see _deadline).
    pool._network_backend = ClampingBackend(pool._network_backend)
    create = pool.create_connection

    def create_guarded(origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        connection = create(origin)
        ConnectOnce.adopt(connection)
        _watch_handler(connection)
        return GuardedConnection(connection, claimed)

    def claimed(connection: GuardedConnection) -> bool:
        # Whether a request in the pool holds ``connection`` (asked under the pool's lock).
        return any(request.connection is connection for request in pool._requests)

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


class _Job:
    # One unit of work for a helper thread. ``done`` is held until the unit has ended; ``lock``
    # guards the hand-over, in case the thread that asked stops waiting (a Ctrl-C).

    __slots__ = ("abandon", "abandoned", "args", "done", "ended", "error", "lock", "result", "unit")

    def __init__(
        self,
        unit: Callable[..., Any],
        args: tuple[Any, ...],
        abandon: Callable[[Any], None] | None,
    ) -> None:
        self.unit, self.args, self.abandon = unit, args, abandon
        self.result: Any = None
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.abandoned = self.ended = False
        self.done = threading.Lock()
        self.done.acquire()


class _Helpers:
    """Threads that run units of work to their end, whatever happens to the thread that asked.

    Python runs signal handlers, and so raises Ctrl-C's KeyboardInterrupt, in the main thread
    only: a unit a helper runs cannot be cut short by one. The asking thread waits for the
    unit's end, and a Ctrl-C ends that wait, not the unit. A unit not begun by then is skipped;
    what one that ends after it returns is given to its ``abandon``. A helper is started when
    none is idle; at most ``_IDLE`` idle ones are kept."""

    _IDLE = 4

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[_Job]] = []
        self._lock = threading.Lock()

    def run(
        self, unit: Callable[..., Any], *args: Any, abandon: Callable[[Any], None] | None = None
    ) -> Any:
        job = _Job(unit, args, abandon)
        with self._lock:
            jobs = self._idle.pop() if self._idle else None
        if jobs is None:
            jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(jobs,), name=_HELPER, daemon=True).start()
        jobs.put(job)
        try:
            job.done.acquire()
        except BaseException:
            with job.lock:
                job.abandoned = True
                ended = job.ended
            if ended and job.abandon is not None and job.error is None:
                job.abandon(job.result)  # it ended just as the wait did
            raise
        if job.error is not None:
            raise job.error
        return job.result

    def _serve(self, jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            job = jobs.get()
            with job.lock:
                skip = job.abandoned
            if not skip:
                try:
                    job.result = job.unit(*job.args)
                except BaseException as exc:
                    job.error = exc
            with job.lock:
                job.ended = True
                abandoned = job.abandoned and not skip
            if abandoned and job.abandon is not None and job.error is None:
                with contextlib.suppress(Exception):
                    job.abandon(job.result)
            with self._lock:
                kept = len(self._idle) < self._IDLE
                if kept:
                    self._idle.append(jobs)
            job.done.release()
            # (an idle helper keeps nothing of the step it ran: not its connection, nor what it
            # returned)
            del job
            if not kept:
                return


_HELPER = "kalshi_httpx HTTP/2 helper"
_HELPERS = _Helpers()


class _TakingTurns(httpcore.NetworkStream):
    """A TLS connection's stream whose reads and writes, in any threads, take turns.

    An HTTP/2 connection's requests read and write at once, in their threads, and httpcore
    1.0.9 lets them: it has one lock for reads and another for writes. But OpenSSL does not
    allow one TLS connection's read and write to run at the same time, and CPython lets go of
    its interpreter lock for both. In a blocking `KalshiClient` over HTTP/2 shared by three
    threads, about 1 call in 1,000 failed so, as ``Server disconnected`` (from a read that
    OpenSSL ended as if the connection had closed), with no interrupt in the run.

    Here each read or write is tried without blocking, under one lock; when it would block, the
    lock is let go and the socket waited on alone, so a read waiting for the server does not
    hold up a write."""

    #: The longest wait, in seconds, for the socket before a read or write is tried again (TLS
    #: 1.2 may take a record in while writing, which the socket's readiness would not show).
    _WAKE = 0.5

    def __init__(self, stream: httpcore.NetworkStream, sock: ssl.SSLSocket | _TunnelledTLS) -> None:
        self._stream = stream
        self._sock = sock
        self._turn = threading.Lock()
        sock.setblocking(False)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        data: bytes = self._take_turn(
            self._sock.recv, max_bytes, deadline, httpcore.ReadTimeout, httpcore.ReadError, True
        )
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        deadline = None if timeout is None else time.monotonic() + timeout
        while view:
            sent: int = self._take_turn(
                self._sock.send, view, deadline, httpcore.WriteTimeout, httpcore.WriteError, False
            )
            view = view[sent:]
        if isinstance(self._sock, _TunnelledTLS):  # what it took, sent on before this returns
            self._take_turn(
                self._sock.drain, None, deadline, httpcore.WriteTimeout, httpcore.WriteError, False
            )

    def close(self) -> None:
        self._stream.close()

    def readable_within(self, seconds: float) -> bool:
        """Whether a read would find bytes within ``seconds`` (at once, if not positive)."""
        with self._turn:
            if self._sock.pending():  # decrypted already
                return True
        return _wait_for(self._sock, True, max(seconds, 0.0))

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("TLS over an HTTP/2 connection is not supported")

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def _take_turn(
        self,
        step: Callable[[Any], Any],
        argument: Any,
        deadline: float | None,
        timed_out: type[httpcore.TimeoutException],
        failed: type[httpcore.NetworkError],
        reading: bool,
    ) -> Any:
        # ``deadline`` on the time.monotonic() clock; None waits as long as it takes.
        while True:
            with self._turn:
                try:
                    return step(argument)
                except ssl.SSLWantReadError:
                    readable = True
                except ssl.SSLWantWriteError:
                    readable = False
                except BlockingIOError:
                    readable = reading
                except OSError as exc:  # an SSLError too
                    raise failed(exc) from exc
            left = self._WAKE if deadline is None else min(deadline - time.monotonic(), self._WAKE)
            if left <= 0:
                raise timed_out("the socket was not ready in time")
            _wait_for(self._sock, readable, left)


class _TunnelledTLS:
    """The TLS session to the API inside an HTTPS proxy's own TLS connection (httpcore's
    `TLSinTLSStream`: an `ssl.SSLObject` over memory buffers, above the proxy's `ssl.SSLSocket`),
    read and written as `_TakingTurns` reads and writes a non-blocking `ssl.SSLSocket`: a step
    that would block raises as that socket's would, and the outer socket is the one waited on.
    `_TakingTurns` calls it under its lock only.

    httpcore's own stream is not safe to share: a read and a write in two threads ran the inner
    and outer TLS at once, and each sends what it finds in the shared outgoing buffer, so two
    threads could put records on the wire out of order. Here encrypted bytes the outer socket
    has not taken yet wait in ``_unsent``, in order, ahead of any others."""

    def __init__(self, stream: TLSinTLSStream) -> None:
        self._outer: ssl.SSLSocket = stream._sock  # type: ignore[assignment]
        self._tls = stream.ssl_obj
        self._incoming = stream._incoming
        self._outgoing = stream._outgoing
        self._unsent = bytearray()

    def fileno(self) -> int:
        return self._outer.fileno()

    def setblocking(self, flag: bool) -> None:
        self._outer.setblocking(flag)

    def pending(self) -> int:
        # Bytes decrypted already, or received and not decrypted yet (perhaps a partial record,
        # as the socket's readiness may show one).
        return self._tls.pending() or self._incoming.pending or self._outer.pending()

    def recv(self, max_bytes: int) -> bytes:
        while True:
            try:
                data = self._tls.read(max_bytes)
            except ssl.SSLWantReadError:
                self._flush()  # (what the session must send before it can go on, if anything)
                self._fill()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # closed, as a socket's read says (suppress_ragged_eofs)
            self._flush()
            return data

    def send(self, data: memoryview) -> int:
        self._send_unsent()  # older bytes first
        while True:
            try:
                taken = self._tls.write(data[: TLSinTLSStream.TLS_RECORD_SIZE])
            except ssl.SSLWantReadError:
                self._fill()
                continue
            self._flush()
            return taken

    def drain(self, _: None) -> None:
        """Send what the outer socket has not taken yet (raising as it does while some is
        left)."""
        self._send_unsent()

    def _send_unsent(self) -> None:
        # Every encrypted byte waiting, sent; raises as the outer socket does when it takes no
        # more (then the same bytes, and perhaps more after them, go again).
        self._unsent += self._outgoing.read()
        while self._unsent:
            with memoryview(self._unsent) as view:
                sent = self._outer.send(view)
            del self._unsent[:sent]

    def _flush(self) -> None:
        # What can be sent without waiting.
        with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            self._send_unsent()

    def _fill(self) -> None:
        # Move what the outer socket has into the session's incoming buffer; raises as the
        # outer socket does when it has nothing yet.
        data = self._outer.recv(TLSinTLSStream.TLS_RECORD_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()


def _wait_for(sock: socket.socket | _TunnelledTLS, readable: bool, seconds: float) -> bool:
    # Until ``sock`` is ready to read (or to write), or ``seconds`` have passed: whether it is
    # (or has failed: the read or write that follows says how).
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN if readable else select.POLLOUT)
        return bool(poller.poll(seconds * 1000))
    if readable:  # (Windows)
        return any(select.select([sock], [], [sock], seconds))
    return any(select.select([], [sock], [sock], seconds))


class _SafeHTTP2Connection(MendedHTTP2Connection):
    # The class a guarded connection's HTTP/2 handler is given once made (`adopt`). httpcore
    # makes the handler's stream permits on its first request, as a threading.Semaphore of the
    # local stream limit (``Semaphore(n)``); they are swapped for `_Permits` as they are stored.
    #
    # The requests on a connection share its HTTP/2 state (h2's, header compression included)
    # and its socket. A Ctrl-C in one request's read, between the bytes leaving the socket and
    # their events reaching each stream, lost them for every stream: the other threads' calls
    # failed, or waited for their read timeout (12 to 19 per 300 interrupts in
    # interrupt_stress.py --http2 --threads 2). One in a write, or in h2's own code, could
    # garble the connection for all. So in the main thread, where a Ctrl-C lands, a request
    # (up to its response's headers) and each read of its body are run by a helper thread
    # (`_Helpers`), and a Ctrl-C ends the request's wait for them, not their work: a request
    # begun is sent and its answer read, then dropped. A close waits for such work to end.
    #
    # The first request sends the connection's preface under a lock the others wait on. A
    # Ctrl-C there could close the connection, or leave it marked as begun but without permits;
    # the requests that waited then failed on it, before sending anything. They are sent to
    # another connection instead: httpcore's pool takes ConnectionNotAvailable for that.
    #
    # A Ctrl-C that cut a write short could garble what the other requests send after it; the
    # server may then end the connection having processed none of them (a GOAWAY naming stream
    # 0). Such requests, and those of a connection the server retires gracefully, go to another
    # connection as `_goaway` describes.

    _WAKE = _TakingTurns._WAKE  # the longest wait for another thread's read, between looks
    _steps = 0  # units of work running in helper threads
    _closing = False  # closed, or to be as its last unit of work ends
    _close_after_steps = False
    _steps_lock: threading.Lock
    _heard_at: float

    @classmethod
    def adopt(cls, handler: httpcore.HTTP2Connection) -> None:
        """Make ``handler``, made just now and not used yet, one of this class."""
        super().adopt(handler)
        assert isinstance(handler, cls)
        handler._steps_lock = threading.Lock()
        handler._heard_at = time.monotonic()  # when bytes last came
        _one_thread_at_a_time(handler._h2_state)
        stream = handler._network_stream
        if isinstance(stream, ClampedStream):  # its reads serve every call: not one's deadline
            stream = handler._network_stream = stream.inner
        sock = stream.get_extra_info("socket")
        if isinstance(stream, SyncStream) and isinstance(sock, ssl.SSLSocket):
            handler._network_stream = _TakingTurns(stream, sock)
        elif isinstance(stream, TLSinTLSStream) and isinstance(sock, ssl.SSLSocket):
            handler._network_stream = _TakingTurns(stream, _TunnelledTLS(stream))

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        response: httpcore.Response = self._apart(
            super().handle_request, request, abandon=_close_response
        )
        return response

    def _receive_response_body(self, request: httpcore.Request, stream_id: int) -> Iterator[bytes]:
        # httpcore's reads the stream's events, and for each piece of data gives the server its
        # flow-control credit back: both on the connection's shared state.
        while True:
            data: bytes | None = self._apart(self._next_data, request, stream_id)
            if data is None:
                return
            yield data

    def _next_data(self, request: httpcore.Request, stream_id: int) -> bytes | None:
        # The stream's next piece of data, or None at its end. (h2 is there: httpcore made an
        # HTTP/2 connection.)
        import h2.events

        while True:
            event = self._receive_stream_event(request, stream_id)
            if isinstance(event, h2.events.DataReceived):
                assert event.data is not None and event.flow_controlled_length is not None
                self._h2_state.acknowledge_received_data(event.flow_controlled_length, stream_id)
                self._write_outgoing_data(request)
                return event.data
            if isinstance(event, h2.events.StreamEnded):
                return None

    def _response_closed(self, stream_id: int) -> None:
        # A stream closed before its end is reset (see MendedHTTP2Connection): a change to h2's
        # shared state, run apart like the rest. One that ended changes nothing of h2's.
        stream = self._h2_state.streams.get(stream_id)
        if stream is not None and not stream.closed:
            self._apart(super()._response_closed, stream_id)
        else:
            super()._response_closed(stream_id)

    def _receive_events(self, request: httpcore.Request, stream_id: int | None = None) -> None:
        # A request reads until its stream has an event. Once the request stopped waiting (a
        # Ctrl-C) and closed its stream, the work a helper goes on with for it would read for
        # good, holding the connection's read lock the other requests need: it ends here.
        if stream_id is not None and stream_id not in self._events:
            raise httpcore.ReadError(f"stream {stream_id} was closed by its request")
        deadline = request.extensions.get(DEADLINE)
        if stream_id is not None and self._events_or_a_turn(stream_id, deadline):
            return  # another thread's read brought them
        try:
            super()._receive_events(request, stream_id)
        finally:
            # Each read, or a reader's leaving, wakes the threads waiting for one (if any: the
            # first of them made the event; a pop and a setdefault are each one step).
            read = self.__dict__.pop("_read_done", None)
            if read is not None:
                read.set()

    def _events_or_a_turn(self, stream_id: int, deadline: float | None) -> bool:
        # While another thread reads, wait for the events it brings: True once this stream has
        # some; False once no one is reading, for this thread to read. httpcore's reader takes
        # the read lock again at once after each read, so a thread waiting for that lock, its
        # answer read and filed meanwhile, waited until the reader's own answer came: another
        # thread's quick calls each took as long as the slow call's wait.
        reading: Any = self._read_lock  # (a plain lock: see _plain_locks)
        read: threading.Event | None = None
        while True:
            if self._events.get(stream_id):
                return True
            if not reading.locked():
                return False
            if read is None:  # held, then looked at again: a read that ends from now on sets it
                read = self.__dict__.setdefault("_read_done", threading.Event())
                continue
            left = self._WAKE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("the call's timeout passed")
            read.wait(min(left, self._WAKE))
            read = None

    def _read_incoming_data(self, request: httpcore.Request) -> list[Any]:
        # Under the read lock, for every stream. httpcore reads with the call's whole timeout
        # and takes a timeout for the end of the connection: the calls of the other threads
        # fail with it. A call with a deadline (kalshi_httpx._deadline) waits for bytes until
        # then, and fails alone, its stream reset; the connection goes on, unless it has said
        # nothing for a whole read timeout, when it is taken for dead as httpcore would.
        deadline = request.extensions.get(DEADLINE)
        stream = self._network_stream
        if deadline is not None and isinstance(stream, _TakingTurns):
            if self._read_exception is None and not stream.readable_within(
                deadline - time.monotonic()
            ):
                error = httpcore.ReadTimeout("the call's timeout passed")
                full = request.extensions.get("timeout", {}).get("read")
                if full is not None and time.monotonic() - self._heard_at >= full:
                    self._read_exception = error
                    self._connection_error = True
                raise error
        events: list[Any] = super()._read_incoming_data(request)
        self._heard_at = time.monotonic()
        return events

    def close(self) -> None:
        with self._steps_lock:
            self._closing = True
            deferred = self._close_after_steps = bool(self._steps)
        if not deferred:
            super().close()
            return
        # The last unit of work closes it. One may be waiting to read: shut down, the socket
        # ends that wait now, not at the read's timeout (its descriptor stays open until the
        # close, so no other socket can be given its number meanwhile).
        sock = self._network_stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # (the plain socket's, below a TLS one's own)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def is_closed(self) -> bool:
        return self._closing or super().is_closed()

    def is_available(self) -> bool:
        return not self._closing and super().is_available()

    def _apart(
        self, unit: Callable[..., Any], *args: Any, abandon: Callable[[Any], None] | None = None
    ) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return unit(*args)  # no signal handler runs here
        return _HELPERS.run(self._counted, unit, args, abandon=abandon)

    def _counted(self, unit: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        # In a helper thread. A unit that begins once the connection is closed finds its socket
        # closed, and fails at once; one running as it is closed keeps it open until its end.
        with self._steps_lock:
            self._steps += 1
        try:
            return unit(*args)
        finally:
            with self._steps_lock:
                self._steps -= 1
                close = self._close_after_steps and not self._steps
                self._close_after_steps = self._close_after_steps and not close
            if close:
                super().close()

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


# ---- HTTP/2: one thread at a time in h2 ----------------------------------------------------

# httpcore 1.0.9's blocking HTTP/2 handler calls h2 from each thread with a request on the
# connection, and h2 is not made for threads. Its locks cover reading (h2's ``receive_data``)
# and taking what is to be sent (``data_to_send``, which copies h2's buffer, then empties it),
# but not the calls that fill that buffer: headers (with the header compression state every
# stream shares), data, flow-control credit, resets. Nor is a stream's number kept between the
# call that picks it (``get_next_available_stream_id``: the number after the last stream
# opened) and the headers that open it: two threads could pick the same number, or send their
# headers in the other order, which the server takes for a protocol error. With four threads
# sharing one client and the interpreter switching threads often, 1,200 calls broke 32
# connections, and one call read an empty body. A connection the server ends so fails every
# call on it (the stress test's "Server disconnected": stream 5's headers had reached
# Hypercorn before stream 3's).
#
# So each public method of the connection's h2 state runs under one lock (`_safe_class`); each
# request gets a stream number no other has had; and a request whose number is below that of a
# stream opened meanwhile sends nothing and goes to a connection again (httpcore's pool takes
# ConnectionNotAvailable for that), with a new number. No I/O runs under the lock, and no lock
# is held from one call to the next: an interrupt anywhere leaves none held.


def _one_thread_at_a_time(h2_state: Any) -> None:
    """Make ``h2_state``, an h2 connection made just now and not used yet, safe for threads."""
    cls = type(h2_state)
    if cls not in _safe_classes.values():
        if cls not in _safe_classes:
            _safe_classes[cls] = _safe_class(cls)
        h2_state.__class__ = _safe_classes[cls]
    h2_state.kalshi_turn = threading.RLock()
    h2_state.kalshi_last_given = -1  # the last stream number given out (-1: none yet)


_safe_classes: dict[type, type] = {}


class _Overtaken(httpcore.ConnectionNotAvailable):
    """A stream with a higher number was opened since this request's was picked."""


def _safe_class(cls: Any) -> type:
    import h2.connection
    import h2.exceptions

    def in_turn(name: str) -> Callable[..., Any]:
        @functools.wraps(getattr(cls, name))
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self.kalshi_turn:
                return getattr(cls, name)(self, *args, **kwargs)  # (h2's, as it is now)

        return run

    def get_next_available_stream_id(self: Any) -> int:
        # h2 gives the number after the last stream opened, again and again until it is.
        with self.kalshi_turn:
            stream_id: int = max(cls.get_next_available_stream_id(self), self.kalshi_last_given + 2)
            if stream_id > cls.HIGHEST_ALLOWED_STREAM_ID:
                raise h2.exceptions.NoAvailableStreamIDError("no stream numbers left")
            self.kalshi_last_given = stream_id
            return stream_id

    def send_headers(self: Any, stream_id: int, *args: Any, **kwargs: Any) -> None:
        with self.kalshi_turn:
            if stream_id not in self.streams and stream_id < self.highest_outbound_stream_id:
                raise _Overtaken(f"stream {stream_id} was overtaken by a higher one")
            cls.send_headers(self, stream_id, *args, **kwargs)

    members: dict[str, Any] = {
        name: in_turn(name)
        for name, value in vars(h2.connection.H2Connection).items()
        if callable(value) and not name.startswith("_")
    }
    members["get_next_available_stream_id"] = get_next_available_stream_id
    members["send_headers"] = send_headers
    return type(cls.__name__, (cls,), members)


def _close_response(response: httpcore.Response) -> None:
    # A response whose request a Ctrl-C stopped waiting for: its stream is closed.
    response.close()


def _watch_handler(connection: httpcore.ConnectionInterface) -> None:
    # The connection's locks become plain ones, and those of what it holds there already (a
    # proxy's connection holds the one to the proxy); its handler is made safe as httpcore
    # stores it, before its first use.
    _plain_locks(connection)
    if "_connection" in vars(connection):
        _plain_locks(vars(connection)["_connection"])
    _goaway.watch_handler(connection, _store_handler)


def _store_handler(handler: Any) -> None:
    _plain_locks(handler)  # made just now, not used yet (None has no locks)
    if type(handler) is httpcore.HTTP2Connection:
        _SafeHTTP2Connection.adopt(handler)


def _plain_locks(owner: object) -> None:
    # httpcore's blocking Lock takes its lock in a Python __enter__ and gives it back in a Python
    # __exit__: a Ctrl-C after the one took it, or as the other starts, leaves it held, and
    # every later request on the connection waits for it for good. Like the pool's (see
    # _guard), each of ``owner``'s becomes a plain lock: httpcore takes them only in with
    # statements.
    for name, value in list(getattr(owner, "__dict__", {}).items()):
        if isinstance(value, httpcore._synchronization.Lock):
            setattr(owner, name, threading.Lock())
