"""The httpx clients with ``http2=True``, against a server that speaks HTTP/2.

The server is `Http2ApiServer`: the same app as the rest of the adapter suite (spec-shaped
answers, every signature verified with the public key, scripted faults), served by Hypercorn,
which offers ``h2`` by ALPN. Each test runs on the three httpx flavours: blocking, and async on
asyncio and on trio. One test checks that ``http2=True`` still works against a server that
offers only HTTP/1.1 (the uvicorn server of the other tests).
"""

from __future__ import annotations

import contextlib
import gc
import signal
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import anyio
import h2.connection
import h2.events
import httpcore
import httpcore._sync.connection
import httpcore._sync.connection_pool
import httpcore._sync.http2
import httpcore._synchronization
import httpx
import pytest

import kalshi_httpx
import kalshi_httpx._guard
from kalshi_httpx._guard import GuardedConnection
from kalshi_proto.errors import (
    ConfigurationError,
    ConnectError,
    RateLimitError,
    ReadError,
    ReadTimeout,
    ValidationError,
)
from kalshi_proto.rest.generated.models import (
    CreateOrderV2Response,
    ExchangeStatus,
    GetBalanceResponse,
    Market,
)
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import (
    Driver,
    Flavour,
    backend_of,
    collect,
    maybe,
    open_sockets_to,
    run_in_threads,
)
from tests.adapters.server import PAGE_SIZE, PAGES, ApiServer, Fault, running_server
from tests.adapters.test_httpx_guard import pools
from tests.adapters.test_rest_clients import ORDER_JSON, ORDERS, order_request
from tests.adapters.test_shared_clients import switching_often
from tests.helpers.interrupts import Checkpoints
from tests.helpers.proxy import TunnelProxy, tunnel_proxy
from tests.helpers.socks import socks_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.flavours("httpx")]

BALANCE = "/portfolio/balance"
PLAIN_LOCK = type(threading.Lock())
HTTP2_LOCKS = ("_init_lock", "_state_lock", "_read_lock", "_write_lock")


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


@pytest.fixture(scope="module")
def h2_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-server-h2")


@pytest.fixture(scope="module")
def h2_server(h2_files: Path) -> Iterator[ApiServer]:
    with running_server(h2_files, http2=True) as server:
        yield server


@pytest.fixture
def kx(flavour: Flavour, h2_server: ApiServer, h2_files: Path) -> Iterator[Driver]:
    """The driver of ``conftest.py``, on the HTTP/2 server; a leaked socket fails the test."""
    h2_server.reset()
    yield Driver(flavour, h2_server, h2_files / "server.pem")
    h2_server.reset()
    gc.collect()


@pytest.fixture
def https_proxy(
    h2_server: ApiServer, h2_files: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TunnelProxy]:
    """A CONNECT proxy spoken to over TLS (``https://``), its certificate issued by the test CA,
    which ``SSL_CERT_FILE`` makes trusted, as a company's CA would be."""
    ca = h2_files / "ca.pem"
    h2_server.ca.cert_pem.write_to_path(str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(h2_files / "server.pem"))
    with tunnel_proxy(tls=context) as proxy:
        yield proxy


def routed(kx: Driver, request: pytest.FixtureRequest, route: str) -> tuple[dict[str, Any], int]:
    """The client options for ``route``, ``"direct"`` or ``"https_tunnel"`` (through the
    `https_proxy`, TLS inside TLS), and the port the client's own sockets connect to."""
    if route == "direct":
        return {}, kx.server.port
    proxy: TunnelProxy = request.getfixturevalue("https_proxy")
    return {"proxy": proxy.url()}, proxy.port


async def test_signed_get_goes_over_http2(kx: Driver) -> None:
    for key in (kx.server.ed25519, kx.server.rsa):
        async with kx.client(key=key, http2=True) as client:
            reply = await maybe(client.portfolio.balance())
        assert isinstance(reply, GetBalanceResponse)
        assert isinstance(reply.balance_dollars, Decimal)
    seen = kx.server.requests(BALANCE)
    assert [(r.http_version, r.auth, r.status) for r in seen] == [
        ("2", kx.server.ed25519.key_id, 200),
        ("2", kx.server.rsa.key_id, 200),
    ]


async def test_order_body_goes_over_http2_exactly(kx: Driver) -> None:
    async with kx.client(http2=True) as client:
        reply = await maybe(client.orders.create_v2(order_request()))
    assert isinstance(reply, CreateOrderV2Response)
    [seen] = kx.server.requests(ORDERS)
    assert (seen.method, seen.http_version, seen.body) == ("POST", "2", ORDER_JSON)
    assert seen.auth == kx.server.ed25519.key_id


async def test_http2_goes_through_a_socks5_tunnel(kx: Driver) -> None:
    # The SOCKS5 transport's pool starts TLS, with h2 offered, inside the tunnel.
    with socks_proxy() as proxy:
        async with kx.client(http2=True, proxy=proxy.url(scheme="socks5h")) as client:
            await maybe(client.portfolio.balance())
            await maybe(client.orders.create_v2(order_request()))
        assert len(proxy.requests) == 1  # both calls on one connection
    [balance] = kx.server.requests(BALANCE)
    [order] = kx.server.requests(ORDERS)
    assert (balance.http_version, balance.auth) == ("2", kx.server.ed25519.key_id)
    assert (order.http_version, order.body) == ("2", ORDER_JSON)


async def test_pages_share_one_http2_connection(kx: Driver) -> None:
    async with kx.client(http2=True) as client:
        markets = await collect(client.markets.list_all(limit=PAGE_SIZE))
    assert len(markets) == PAGE_SIZE * PAGES
    assert all(isinstance(market, Market) for market in markets)
    seen = kx.server.requests("/markets")
    assert [r.query.split("cursor=")[-1] if "cursor=" in r.query else "" for r in seen] == [
        "",
        "p2",
        "p3",
    ]
    assert {r.http_version for r in seen} == {"2"}
    assert kx.server.connections() == 1


async def test_errors_and_retries_over_http2(kx: Driver) -> None:
    kx.server.fail(BALANCE, 503)
    kx.server.fail(ORDERS, 429, headers=(("Retry-After", "0"),))
    kx.server.fail(ORDERS, 400, code="invalid_parameters", message="bad", details="price")
    async with kx.client(http2=True) as client:
        reply = await maybe(client.portfolio.balance())
        assert isinstance(reply, GetBalanceResponse)
        with pytest.raises(RateLimitError):
            await maybe(client.orders.create_v2(order_request()))
        with pytest.raises(ValidationError) as invalid:
            await maybe(client.orders.create_v2(order_request()))
    assert (invalid.value.status, invalid.value.code) == (400, "invalid_parameters")
    assert [r.status for r in kx.server.requests(BALANCE)] == [503, 200]  # a GET is retried
    assert [r.status for r in kx.server.requests(ORDERS)] == [429, 400]  # a POST never is
    assert kx.server.pending_faults() == 0


async def test_gzip_body_over_http2(kx: Driver) -> None:
    kx.server.script(BALANCE, Fault(gzip=True))
    async with kx.client(http2=True) as client:
        reply = await maybe(client.portfolio.balance())
    assert isinstance(reply, GetBalanceResponse)
    assert kx.server.pending_faults() == 0


async def test_timed_out_stream_leaves_the_client_usable(kx: Driver) -> None:
    kx.server.script(BALANCE, Fault(delay=3))
    async with kx.client(http2=True, timeout=0.3, retry=RetryPolicy.disabled()) as client:
        started = kx.now()
        with pytest.raises(ReadTimeout):
            await maybe(client.portfolio.balance())
        assert kx.now() - started < 2
        reply = await maybe(client.portfolio.balance())
    assert isinstance(reply, GetBalanceResponse)
    assert [r.status for r in kx.server.requests(BALANCE)] == [200, 200]


async def test_streams_cut_short_give_their_flow_control_credit_back(kx: Driver) -> None:
    # Each answer is a 4 MB body sent in eight pieces 0.2 s apart, and each call times out
    # after its first piece or two. Unless the client resets such a stream, the server sends
    # the rest, which the client never reads: the connection's flow-control window (about
    # 16.8 MB, which httpcore gives every connection) shrinks by it for good, and after a few
    # such calls the server can send no call anything on the connection.
    big = "/markets/KXBIG"
    cut_short = 8
    kx.server.script(big, Fault(trickle=0.2, pad=4_000_000), times=cut_short)
    async with kx.client(http2=True, timeout=5, retry=RetryPolicy.disabled()) as client:
        quick = client.with_options(timeout=0.3)
        for _ in range(cut_short):
            with pytest.raises(ReadTimeout):
                await maybe(quick.markets.get("KXBIG"))
        await kx.sleep(1.6)  # the server has sent what it would of every body by now
        reply = await maybe(client.portfolio.balance())
    assert isinstance(reply, GetBalanceResponse)
    assert len(kx.server.requests(big)) == cut_short
    # One connection carried every call: none was given up for a stalled window.
    assert len({seen.client_port for seen in kx.server.requests()}) == 1


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
async def test_concurrent_calls_share_one_http2_connection(kx: Driver) -> None:
    replies: list[object] = []
    async with kx.client(http2=True) as client:
        replies.append(await maybe(client.portfolio.balance()))  # the connection is made

        async def call() -> None:
            replies.append(await maybe(client.portfolio.balance()))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(call)
    assert len(replies) == 11
    assert all(isinstance(reply, GetBalanceResponse) for reply in replies)
    seen = kx.server.requests(BALANCE)
    assert len(seen) == 11
    assert {(r.http_version, r.auth) for r in seen} == {("2", kx.server.ed25519.key_id)}
    assert kx.server.connections() == 1


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
@pytest.mark.parametrize("retry", [False, True])
async def test_a_fault_inside_httpcore_over_http2_is_a_read_error_and_the_pool_is_replaced(
    kx: Driver, monkeypatch: pytest.MonkeyPatch, retry: bool
) -> None:
    # A fault inside httpcore or h2 is neither an httpx error nor the SDK's. httpcore 1.0.9
    # raised a ValueError so ("semaphore released too many times") when the first request on a
    # connection was cancelled as it took its stream permits, until the client's handler took
    # them without checkpoints (tests/adapters/test_http2_cancel.py). Each is a ReadError now
    # (the request may have gone out), the pool is replaced, and a GET tries again on the new
    # one.
    policy = RetryPolicy(base_delay=0.01) if retry else RetryPolicy.disabled()
    send = httpcore.AsyncHTTP2Connection._send_request_headers
    faults = [1]

    async def faulty(
        connection: httpcore.AsyncHTTP2Connection, request: httpcore.Request, stream_id: int
    ) -> None:
        if faults[0]:
            faults[0] -= 1
            raise ValueError("semaphore released too many times")
        await send(connection, request, stream_id)

    monkeypatch.setattr(httpcore.AsyncHTTP2Connection, "_send_request_headers", faulty)
    async with kx.client(http2=True, retry=policy) as client:
        assert isinstance(client, kalshi_httpx.AsyncKalshiClient)
        first_pool = client._transport
        if retry:
            assert isinstance(await client.portfolio.balance(), GetBalanceResponse)
        else:
            with pytest.raises(ReadError) as caught:
                await client.portfolio.balance()
            assert str(caught.value).startswith("the connection failed inside httpx: ValueError: ")
            assert isinstance(caught.value.__cause__, ValueError)
        assert client._transport is not first_pool
        later = await client.portfolio.balance()
    assert isinstance(later, GetBalanceResponse)
    assert faults == [0]
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_threads_share_one_http2_connection_and_a_close_lets_them_finish(
    kx: Driver,
) -> None:
    # The blocking client's guarded connection counts the requests running on it at once; a
    # close while they run must wait for the last of them, then close the connection.
    replies: list[object] = []
    client = kx.build(http2=True)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    client.portfolio.balance()  # the connection is made
    (connection,) = [each for pool in pools(client) for each in pool.connections]
    assert isinstance(connection, GuardedConnection)
    kx.server.script(BALANCE, Fault(delay=0.5), times=8)

    def call() -> None:
        replies.append(client.portfolio.balance())

    calls = threading.Thread(target=lambda: replies.extend(run_in_threads(call, 8)))
    calls.start()
    deadline = time.monotonic() + 10
    while connection._running < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert connection._running == 8  # eight requests at once on the one connection
    client.close()
    assert open_sockets_to(kx.server.port) == 1  # kept for the requests still running
    calls.join(30)
    assert not calls.is_alive()
    assert len(replies) == 8
    assert all(isinstance(reply, GetBalanceResponse) for reply in replies), [
        type(r).__name__ for r in replies
    ]
    assert open_sockets_to(kx.server.port) == 0
    seen = kx.server.requests(BALANCE)
    assert [(r.status, r.http_version) for r in seen] == [(200, "2")] * 9
    assert kx.server.connections() == 1


def assert_http2_handler_is_safe(client: kalshi_httpx.KalshiClient) -> None:
    """The HTTP/2 handler of the client's one connection has plain locks and `_Permits`, and
    neither it nor the connection holding it has a lock of httpcore's."""
    [connection] = [each for pool in pools(client) for each in pool.connections]
    assert isinstance(connection, GuardedConnection)
    made: Any = connection._connection  # httpcore's connection, which holds its HTTP/2 handler
    handler = made._connection
    assert isinstance(handler, httpcore.HTTP2Connection)
    assert type(handler._max_streams_semaphore).__name__ == "_Permits"
    assert all(type(getattr(handler, name)) is PLAIN_LOCK for name in HTTP2_LOCKS)
    left = [
        f"{type(layer).__name__}.{name}"
        for layer in (made, handler)
        for name, value in vars(layer).items()
        if isinstance(value, httpcore._synchronization.Lock)
    ]
    assert not left


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize("route", ["direct", "tunnel", "https_tunnel", "socks5"])
async def test_every_http2_connection_of_a_blocking_client_is_made_interrupt_safe(
    kx: Driver, route: str, request: pytest.FixtureRequest
) -> None:
    # httpcore makes the HTTP/2 handler inside the connection: direct, through an HTTP or HTTPS
    # proxy's tunnel, or through SOCKS5 (kalshi_httpx._guard catches it as it is stored).
    with contextlib.ExitStack() as stack:
        options: dict[str, Any] = {"http2": True}
        tunnels: Callable[[], int] = lambda: 1  # noqa: E731
        if route in ("tunnel", "https_tunnel"):
            tunnel = (
                stack.enter_context(tunnel_proxy())
                if route == "tunnel"
                else request.getfixturevalue("https_proxy")
            )
            options["proxy"], tunnels = tunnel.url(), lambda: len(tunnel.heads)
        elif route == "socks5":
            socks = stack.enter_context(socks_proxy())
            options["proxy"], tunnels = socks.url(scheme="socks5h"), lambda: len(socks.requests)
        client = kx.build(**options)
        assert isinstance(client, kalshi_httpx.KalshiClient)
        with client:
            client.portfolio.balance()
            assert_http2_handler_is_safe(client)
            client.portfolio.balance()  # the permits given back work as the old ones did
        assert tunnels() == 1
    assert [r.http_version for r in kx.server.requests(BALANCE)] == ["2", "2"]


INTERRUPTED = "interrupted call"


def interrupted_call(
    client: kalshi_httpx.KalshiClient, checkpoints: Checkpoints
) -> tuple[threading.Thread, list[BaseException]]:
    """Call ``client.exchange.status()`` in a daemon thread named `INTERRUPTED` (a call that
    hangs cannot hold up the run), with ``checkpoints`` as its profile function
    (`tests.helpers.interrupts`), and wait up to 10 s for it; the thread, and what it raised.

    An interrupt that lands in a finalizer run inside the call (as a generator the call made is
    dropped) is lost there, as Python's would be: it is listed as raised all the same."""
    raised: list[BaseException] = []

    def call() -> None:
        sys.setprofile(checkpoints)
        try:
            client.exchange.status()
        except BaseException as exc:
            raised.append(exc)
        finally:
            sys.setprofile(None)

    def lost(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            raised.append(unraisable.exc_value)
        else:
            hook(unraisable)

    hook = sys.unraisablehook
    caller = threading.Thread(target=call, name=INTERRUPTED, daemon=True)
    sys.unraisablehook = lost
    try:
        caller.start()
        caller.join(10)
    finally:
        sys.unraisablehook = hook
    return caller, raised


def interrupt_as_settings_apply(
    client: kalshi_httpx.KalshiClient, point: int
) -> tuple[threading.Thread, list[BaseException], Checkpoints]:
    """`interrupted_call`, with a KeyboardInterrupt at the ``point``-th checkpoint passed while
    httpcore applies the server's SETTINGS, or with none if it passes fewer; the `Checkpoints`
    say how many were passed there."""
    inside = [False]
    checkpoints = Checkpoints(point, counting=lambda frame: inside[0])
    apply = httpcore.HTTP2Connection._receive_remote_settings_change

    def watched(connection: httpcore.HTTP2Connection, event: Any) -> None:
        if threading.current_thread().name != INTERRUPTED:
            return apply(connection, event)
        inside[0] = True
        try:
            return apply(connection, event)
        finally:
            inside[0] = False

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpcore.HTTP2Connection, "_receive_remote_settings_change", watched)
        caller, raised = interrupted_call(client, checkpoints)
    return caller, raised, checkpoints


@pytest.mark.flavours("httpx_sync")
async def test_an_interrupt_as_the_server_settings_apply_ends_the_call_at_once(
    kx: Driver,
) -> None:
    # When the server's SETTINGS arrive, httpcore releases the connection's stream permits one
    # by one (99 of them). They were a threading.Semaphore, whose release takes an inner lock in
    # a with block: a Ctrl-C just after it took that lock left it held, and the request's
    # clean-up, which releases a permit too, waited for itself for good (kalshi_httpx._guard).
    # Here the interrupt lands at each checkpoint of that work in turn, on a new connection
    # each time: the call must end with it at once, and the client work on.
    def fresh_client() -> kalshi_httpx.KalshiClient:
        client = kx.build(http2=True, retry=RetryPolicy.disabled())
        assert isinstance(client, kalshi_httpx.KalshiClient)
        return client

    client = fresh_client()
    caller, raised, checkpoints = interrupt_as_settings_apply(client, 0)
    assert not caller.is_alive() and not raised
    assert checkpoints.seen > 99  # the walk sees the permits given out
    assert_http2_handler_is_safe(client)
    client.close()
    total = checkpoints.seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # sockets left to the collector
        for point in range(1, total + 1):
            client = fresh_client()
            caller, raised, checkpoints = interrupt_as_settings_apply(client, point)
            where = f"interrupt at checkpoint {point} of {total} ({checkpoints.where})"
            assert not caller.is_alive(), f"{where}: the call hangs"
            assert [type(exc) for exc in raised] == [KeyboardInterrupt], where
            assert client.exchange.status().trading_active is not None, where
            client.close()
        del raised  # its traceback holds the interrupted call's frames
        gc.collect()
    assert open_sockets_to(kx.server.port) == 0


#: httpcore's blocking pool, connection, HTTP/2 handler and locks, and the guard around them: the
#: code where a call on a shared HTTP/2 connection takes and gives back that connection's locks.
CONNECTION_CODE = frozenset(
    module.__file__
    for module in (
        httpcore._sync.connection_pool,
        httpcore._sync.connection,
        httpcore._sync.http2,
        httpcore._synchronization,
        kalshi_httpx._guard,
    )
)


#: What a request on a connection an interrupt left in a bad state may raise: a protocol error
#: or a timeout.
CONNECTION_ERRORS = (httpcore.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException)


#: The guard's TLS reads and writes, which try again until the socket is ready: how many
#: checkpoints they pass depends on the moment, and a walk must pass the same ones each time.
TAKING_TURNS = frozenset(
    (kalshi_httpx._guard._TakingTurns._take_turn.__code__, kalshi_httpx._guard._wait_for.__code__)
)


def in_connection_code(frame: FrameType) -> bool:
    """Whether a checkpoint is in `CONNECTION_CODE`, or at the start or return of a function it
    calls (not in `TAKING_TURNS`, nor in what they call)."""
    caller = frame.f_back
    if frame.f_code in TAKING_TURNS or (caller is not None and caller.f_code in TAKING_TURNS):
        return False
    return frame.f_code.co_filename in CONNECTION_CODE or (
        caller is not None and caller.f_code.co_filename in CONNECTION_CODE
    )


def unprocessed(outcome: object) -> bool:
    """Whether ``outcome`` is a failure though the server said it processed no request on the
    connection (a GOAWAY naming stream 0)."""
    given = outcome.args if isinstance(outcome, httpcore.RemoteProtocolError) else ()
    ended = given[0] if given else None
    return isinstance(ended, h2.events.ConnectionTerminated) and ended.last_stream_id == 0


#: What `request_on_each` gives for a request that has not ended after 10 s.
WAITS = "waits for good"


def admit(connection: GuardedConnection) -> GuardedConnection:
    """Count a request as running on ``connection``, as its guard does as a call the pool gave
    it starts there (`request_on_each` sends it later)."""
    with connection._lock:
        connection._running += 1
    return connection


def admit_on_each(pool: httpcore.ConnectionPool) -> list[GuardedConnection]:
    """The pool's connections, now and as it makes them, each with a request admitted (`admit`)
    as it is made: as if another thread's call had been given it at once."""
    admitted = [admit(each) for each in pool.connections if isinstance(each, GuardedConnection)]
    create = pool.create_connection

    def create_admitted(origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        made = create(origin)
        assert isinstance(made, GuardedConnection)
        admitted.append(admit(made))
        return made

    pool.create_connection = create_admitted  # type: ignore[method-assign]
    return admitted


def request_on_each(connections: list[GuardedConnection], url: str) -> list[object]:
    """Send the GET of ``url`` admitted on each of ``connections`` (`admit_on_each`), each in a
    daemon thread, and wait up to 10 s for it; for each, the answer's status, what the request
    raised, or `WAITS`."""
    request = httpcore.Request(
        "GET",
        url,
        headers=[("Host", urlsplit(url).netloc)],
        extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), 2.0)},
    )

    def send(connection: GuardedConnection, outcome: list[object]) -> None:
        try:
            response = connection._connection.handle_request(request)  # past the guard's door
            try:
                response.read()
            finally:
                response.close()
            outcome.append(response.status)
        except Exception as exc:
            outcome.append(exc)
        finally:
            connection._request_ended()

    outcomes: list[object] = []
    for connection in connections:
        outcome: list[object] = []
        sender = threading.Thread(target=send, args=(connection, outcome), daemon=True)
        sender.start()
        sender.join(10)
        outcomes.append(WAITS if sender.is_alive() else outcome[0])
    return outcomes


class Recording:
    """A TLS socket that records whether a read and a write ever ran at the same time: each
    takes a few milliseconds, so that two in different threads would meet."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._running: dict[str, int] = {"recv": 0, "send": 0}
        self.met = 0  # reads and writes that began while the other kind ran
        self.steps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def recv(self, *args: Any) -> Any:
        return self._step("recv", args)

    def send(self, *args: Any) -> Any:
        return self._step("send", args)

    def sendall(self, *args: Any) -> Any:
        return self._step("send", args, "sendall")

    def _step(self, kind: str, args: tuple[Any, ...], method: str = "") -> Any:
        other = "send" if kind == "recv" else "recv"
        with self._lock:
            self._running[kind] += 1
            self.met += self._running[other] > 0
            self.steps += 1
        try:
            time.sleep(0.002)
            return getattr(self._sock, method or kind)(*args)
        finally:
            with self._lock:
                self._running[kind] -= 1


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize("route", ["direct", "https_tunnel"])
async def test_threads_on_one_http2_connection_never_read_and_write_its_tls_at_once(
    kx: Driver, route: str, request: pytest.FixtureRequest
) -> None:
    # OpenSSL does not allow one TLS connection's read and write at the same time, and httpcore
    # 1.0.9 runs them so, in the threads sharing an HTTP/2 connection: about 1 call in 1,000
    # failed as "Server disconnected" with three threads (kalshi_httpx._guard._TakingTurns).
    # Through an HTTPS proxy (TLS inside TLS) both sessions are shared so, and the encrypted
    # bytes of two threads could go out of order (kalshi_httpx._guard._TunnelledTLS).
    options, port = routed(kx, request, route)
    client = kx.build(http2=True, retry=RetryPolicy.disabled(), timeout=5.0, **options)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    with client:
        client.portfolio.balance()
        [connection] = [each for pool in pools(client) for each in pool.connections]
        stream: Any = connection._connection._connection._network_stream  # type: ignore[attr-defined]
        recording = stream._sock = Recording(stream._sock)
        replies: list[object] = []
        errors = run_in_threads(
            lambda: replies.extend(client.portfolio.balance() for _ in range(15)), 4
        )
    assert errors == []
    assert len(replies) == 4 * 15
    assert all(isinstance(reply, GetBalanceResponse) for reply in replies), replies
    assert recording.steps > 4 * 15 * 2  # (each call read and wrote through it)
    assert recording.met == 0
    assert open_sockets_to(port) == 0


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize("route", ["direct", "https_tunnel"])
async def test_threads_sharing_an_http2_connection_change_its_h2_state_one_at_a_time(
    kx: Driver, route: str, request: pytest.FixtureRequest
) -> None:
    # httpcore 1.0.9 calls h2 from every thread with a request on the connection, with no lock
    # over most calls, and two threads could open streams with one number, or in the wrong
    # order: the server ended the connection, and a POST on it failed unretried
    # (kalshi_httpx._guard._one_thread_at_a_time). Without that, 400 calls here broke 8 to 12
    # connections; without any one of its three parts (the lock, numbers given once, a request
    # overtaken sent again), the test fails. Through an HTTPS proxy, TLS inside TLS, too.
    options, port = routed(kx, request, route)
    client = kx.build(http2=True, retry=RetryPolicy.disabled(), timeout=10.0, **options)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    replies: list[object] = []

    def calls() -> None:
        for _ in range(50):
            replies.append(client.portfolio.balance())
            replies.append(client.orders.create_v2(order_request()))

    with client:
        client.portfolio.balance()
        with switching_often():
            errors = run_in_threads(calls, 4)
    assert errors == []
    assert sorted(type(reply).__name__ for reply in replies) == sorted(
        ["GetBalanceResponse", "CreateOrderV2Response"] * 200
    )
    assert kx.server.connections() == 1
    orders = kx.server.requests(ORDERS)
    assert len(orders) == 200
    assert {(seen.http_version, seen.body) for seen in orders} == {("2", ORDER_JSON)}
    assert open_sockets_to(port) == 0


@pytest.mark.flavours("httpx_sync")
async def test_large_answers_and_orders_of_threads_through_an_https_proxy_come_whole(
    kx: Driver, request: pytest.FixtureRequest
) -> None:
    # TLS inside TLS over HTTP/2: answers of many records each (2 MB) read by several threads at
    # once, between orders sent, on one connection (kalshi_httpx._guard._TunnelledTLS).
    kx.server.script("/markets/KXBIG", Fault(pad=2_000_000), times=9)
    options, port = routed(kx, request, "https_tunnel")
    client = kx.build(http2=True, retry=RetryPolicy.disabled(), timeout=10.0, **options)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    sizes: list[int] = []
    orders: list[object] = []

    def calls() -> None:
        for _ in range(3):
            raw = client.markets.get("KXBIG").model_extra or {}
            sizes.append(len(raw.get("padding", "")))
            orders.append(client.orders.create_v2(order_request()))

    with client:
        client.portfolio.balance()
        errors = run_in_threads(calls, 3)
    assert errors == []
    assert sizes == [2_000_000] * 9
    assert all(isinstance(each, CreateOrderV2Response) for each in orders)
    assert {seen.body for seen in kx.server.requests(ORDERS)} == {ORDER_JSON}
    assert kx.server.connections() == 1
    assert open_sockets_to(port) == 0


@pytest.mark.flavours("httpx_async-asyncio", "httpx_async-trio")
async def test_concurrent_calls_of_an_async_client_through_an_https_proxy_share_one_connection(
    kx: Driver, request: pytest.FixtureRequest
) -> None:
    # The async clients' TLS inside TLS (httpcore over anyio's TLS streams), with tasks reading
    # large answers while others send orders on the same HTTP/2 connection.
    kx.server.script("/markets/KXBIG", Fault(pad=1_000_000), times=6)
    options, port = routed(kx, request, "https_tunnel")
    sizes: list[int] = []
    orders: list[object] = []
    options.update(http2=True, retry=RetryPolicy.disabled(), timeout=10.0)
    async with kx.client(**options) as client:
        await maybe(client.portfolio.balance())  # the connection is made

        async def calls(reader: bool) -> None:
            for _ in range(3):
                if reader:
                    raw = (await maybe(client.markets.get("KXBIG"))).model_extra or {}
                    sizes.append(len(raw.get("padding", "")))
                else:
                    orders.append(await maybe(client.orders.create_v2(order_request())))

        async with anyio.create_task_group() as group:
            for task in range(6):
                group.start_soon(calls, task < 2)
    assert sizes == [1_000_000] * 6
    assert len(orders) == 12
    assert all(isinstance(each, CreateOrderV2Response) for each in orders)
    assert {seen.body for seen in kx.server.requests(ORDERS)} == {ORDER_JSON}
    assert kx.server.connections() == 1
    assert open_sockets_to(port) == 0


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize("route", ["direct", "https_tunnel"])
async def test_a_late_answer_holds_up_no_other_thread_and_ends_its_call_alone_at_its_deadline(
    kx: Driver, route: str, request: pytest.FixtureRequest
) -> None:
    # A thread whose answer comes late reads the connection for everyone meanwhile. httpcore's
    # reader takes the read lock again at once after each read, so another thread whose answer
    # that read brought waited for the lock until the late answer came or the read timed out
    # (a quick call took as long as the slow one). And httpcore gives each read the reading
    # call's whole timeout: while other answers kept the connection busy, the late answer's
    # call went on past its deadline (1.5 s for a 0.5 s timeout); on a quiet connection, its
    # read timed out and ended the connection for every call on it. Here the quick calls go on
    # meanwhile, and the slow one ends at its deadline, alone; through an HTTPS proxy too.
    options, _ = routed(kx, request, route)
    client = kx.build(http2=True, retry=RetryPolicy.disabled(), timeout=10.0, **options)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    kx.server.script("/markets/KXSLOW", Fault(delay=1.5))
    elapsed: list[float] = []
    answers: list[object] = []
    busy, done = threading.Event(), threading.Event()
    with client:
        client.portfolio.balance()  # the connection is made

        def slow() -> None:
            busy.wait(5)
            start = time.monotonic()
            try:
                with pytest.raises(ReadTimeout):
                    client.with_options(timeout=0.5).markets.get("KXSLOW")
            finally:
                elapsed.append(time.monotonic() - start)
                done.set()

        def quick() -> None:
            busy.set()
            while not done.is_set():
                answers.append(client.exchange.status())

        roles = [slow, quick]
        errors = run_in_threads(lambda: roles.pop()(), 2)
        assert errors == []
        assert client.exchange.status().trading_active is not None
    assert elapsed[0] < 1.4  # not the answer's 1.5 s
    assert len(answers) > 10  # the quick calls went on meanwhile
    assert all(isinstance(each, ExchangeStatus) for each in answers)
    assert kx.server.connections() == 1


@pytest.mark.flavours("httpx_sync")
async def test_a_ctrl_c_as_a_read_takes_another_calls_answer_loses_nothing_of_it(
    kx: Driver,
) -> None:
    # The main thread's call is reading its connection when the answer to another thread's
    # call, on the same connection, arrives; a Ctrl-C lands between those bytes leaving the
    # socket and their events reaching the other call's stream. Read in the main thread, they
    # were lost: the other call waited for its read timeout. The main thread's reads run in a
    # helper thread, where no Ctrl-C lands; the interrupt ends the main thread's wait only.
    client = kx.build(http2=True, retry=RetryPolicy.disabled(), timeout=3.0)
    assert isinstance(client, kalshi_httpx.KalshiClient)
    main = threading.main_thread()
    sent_other, interrupted = threading.Event(), threading.Event()
    receive = h2.connection.H2Connection.receive_data

    def ctrl_c(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def received(state: h2.connection.H2Connection, data: bytes) -> Any:
        # For the main thread's call, once the other call is out: the interrupt, right here.
        working_for_main = (
            threading.current_thread() is main
            or threading.current_thread().name == kalshi_httpx._guard._HELPER
        )
        if working_for_main and sent_other.is_set() and not interrupted.is_set():
            interrupted.set()
            signal.pthread_kill(main.ident, signal.SIGALRM)  # type: ignore[arg-type]
            time.sleep(0.2)  # (the handler runs here, if this is the main thread)
        return receive(state, data)

    with client:
        client.portfolio.balance()  # the connection is made
        kx.server.script(BALANCE, Fault(delay=1.0))  # the main thread's answer comes late
        other: list[object] = []

        def other_call() -> None:
            while not reading_for_main():
                time.sleep(0.005)
            sent_other.set()
            try:
                other.append(client.exchange.status())
            except Exception as exc:  # recorded, to be shown if the test fails
                other.append(exc)

        [connection] = [each for pool in pools(client) for each in pool.connections]
        handler: Any = connection._connection._connection  # type: ignore[attr-defined]

        def reading_for_main() -> bool:
            return bool(handler._read_lock.locked())

        previous = signal.signal(signal.SIGALRM, ctrl_c)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(h2.connection.H2Connection, "receive_data", received)
                caller = threading.Thread(target=other_call, daemon=True)
                caller.start()
                with pytest.raises(KeyboardInterrupt):
                    client.portfolio.balance()
                caller.join(10)
        finally:
            signal.signal(signal.SIGALRM, previous)
        assert interrupted.is_set()
        assert len(other) == 1 and isinstance(other[0], ExchangeStatus), other
        assert client.exchange.status().trading_active is not None
    assert open_sockets_to(kx.server.port) == 0


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize("connected", [False, True], ids=["first call", "later call"])
async def test_an_interrupted_call_leaves_its_http2_connection_to_the_calls_sharing_it(
    kx: Driver, connected: bool
) -> None:
    # Threads sharing a blocking client run their calls on one HTTP/2 connection at once. A
    # Ctrl-C ends one of them, and the client replaces its pool; the calls already given the
    # old connection finish on it. The interrupted call must leave none of the connection's
    # locks held: httpcore gives its locks back in a Python __exit__, and a Ctrl-C as that
    # starts left the lock held, and the other calls waiting for it for good. Nor may it keep
    # the one stream permit a new connection has until the server's SETTINGS are read. Here the
    # interrupt lands at each checkpoint of one call's pool, connection and HTTP/2 code in turn,
    # as the call makes the connection or on one made before; a request then runs on the same
    # connection, and must end, and not fail for a write the interrupt garbled.
    def new_client() -> tuple[kalshi_httpx.KalshiClient, list[GuardedConnection]]:
        client = kx.build(http2=True, retry=RetryPolicy.disabled())
        assert isinstance(client, kalshi_httpx.KalshiClient)
        if connected:
            client.exchange.status()
        [pool] = pools(client)
        return client, admit_on_each(pool)

    status_url = kx.server.base_url + "/exchange/status"
    client, admitted = new_client()
    checkpoints = Checkpoints(counting=in_connection_code)
    caller, raised = interrupted_call(client, checkpoints)
    assert not caller.is_alive() and not raised
    total = checkpoints.seen
    assert total > 100
    client.close()
    failed: list[type] = []
    tried = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # sockets left to the collector
        # The collector stays off during the walk: run inside the call, its finalizers would
        # pass checkpoints there, and take an interrupt meant for the call.
        gc.disable()
        try:
            for point in range(1, total + 1):
                client, admitted = new_client()
                checkpoints = Checkpoints(point, counting=in_connection_code)
                caller, raised = interrupted_call(client, checkpoints)
                where = f"interrupt at checkpoint {point} of {total} ({checkpoints.where})"
                assert not caller.is_alive(), f"{where}: the call hangs"
                assert [type(exc) for exc in raised] == [KeyboardInterrupt], where
                outcomes = request_on_each(admitted, status_url)  # none if no connection made
                assert WAITS not in outcomes, f"{where}: the other request {WAITS}"
                # Not taken by the server: it goes to another connection (ConnectionNotAvailable).
                assert not any(map(unprocessed, outcomes)), f"{where}: {outcomes}"
                # So does one on a connection whose connect the interrupt cut short
                # (kalshi_httpx._sync_http2.ConnectOnce): the pool gives it another, no failure.
                failed.extend(
                    type(each)
                    for each in outcomes
                    if each != 200 and not isinstance(each, httpcore.ConnectionNotAvailable)
                )
                tried += len(outcomes)
                client.close()
        finally:
            gc.enable()
        # The last old connections, held here, and the frames the last errors' tracebacks hold,
        # are let go: the collector closes the sockets of the pools left behind.
        del admitted, raised, outcomes
        gc.collect()
    # The connection goes on serving; an interrupt that cut its read short can leave the next
    # request a protocol error (or a timeout), never an error of another kind.
    assert tried > total // 2
    assert len(failed) < tried // 10, failed
    assert all(issubclass(kind, CONNECTION_ERRORS) for kind in failed), failed
    assert open_sockets_to(kx.server.port) == 0


def queued_on_one(pool: Any) -> bool:
    """Whether ``pool`` has given its one connection to two calls (the first still connecting)."""
    return sum(waiting.connection is not None for waiting in pool._requests) == 2


class FailFirstConnect(httpcore.NetworkBackend):
    """A pool's network backend whose first connect fails, once a second call waits on it."""

    def __init__(self, pool: httpcore.ConnectionPool) -> None:
        self._pool, self._backend = pool, pool._network_backend
        self._failed = False

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        if self._failed:
            return self._backend.connect_tcp(*args, **kwargs)
        self._failed = True
        deadline = time.monotonic() + 5
        while not queued_on_one(self._pool) and time.monotonic() < deadline:
            time.sleep(0.005)
        raise httpcore.ConnectError("refused, as the test says")


class AsyncFailFirstConnect(httpcore.AsyncNetworkBackend):
    """`FailFirstConnect`, for an async pool."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool, self._backend = pool, pool._network_backend
        self._failed = False

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        if self._failed:
            return await self._backend.connect_tcp(*args, **kwargs)
        self._failed = True
        with anyio.move_on_after(5):
            while not queued_on_one(self._pool):
                await anyio.sleep(0.005)
        raise httpcore.ConnectError("refused, as the test says")


async def test_a_failed_connect_leaves_the_call_waiting_on_it_a_connection_its_pool_closes(
    kx: Driver,
) -> None:
    # With HTTP/2 on, a call that comes while the pool's connection is connecting waits for
    # that connect. httpcore 1.0.9's pool dropped the connection unclosed as the connect
    # failed, and the waiting call connected again on it: a connection out of the pool, which
    # nothing closed but the garbage collector (kalshi_httpx._async_http2.ConnectOnce).
    async with kx.client(
        http2=True, retry=RetryPolicy.disabled(), limits=httpx.Limits(max_connections=1)
    ) as client:
        assert isinstance(client, kalshi_httpx.KalshiClient | kalshi_httpx.AsyncKalshiClient)
        transport: Any = client._transport
        pool = transport._pool
        outcomes: list[object] = []

        async def call() -> None:
            try:
                outcomes.append(await maybe(client.portfolio.balance()))
            except ConnectError as exc:
                outcomes.append(exc)

        if isinstance(pool, httpcore.AsyncConnectionPool):
            pool._network_backend = AsyncFailFirstConnect(pool)
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                await anyio.sleep(0.05)  # the first call is connecting
                group.start_soon(call)
        else:
            pool._network_backend = FailFirstConnect(pool)
            first = threading.Thread(target=lambda: anyio.run(call))
            first.start()
            time.sleep(0.05)
            await call()
            first.join(10)
        kinds = sorted(type(outcome).__name__ for outcome in outcomes)
        assert kinds == ["ConnectError", "GetBalanceResponse"], outcomes
        assert open_sockets_to(kx.server.port) == len(pool.connections) == 1


async def test_http2_falls_back_to_http11(
    flavour: Flavour, fresh_api_server: ApiServer, _server_files: Path
) -> None:
    # uvicorn offers no h2 by ALPN: the client must speak HTTP/1.1 to it, signed as ever.
    driver = Driver(flavour, fresh_api_server, _server_files / "server.pem")
    async with driver.client(http2=True) as client:
        reply = await maybe(client.portfolio.balance())
    assert isinstance(reply, GetBalanceResponse)
    [seen] = fresh_api_server.requests(BALANCE)
    assert (seen.http_version, seen.auth) == ("1.1", fresh_api_server.ed25519.key_id)
    gc.collect()


def test_http2_without_h2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h2", None)  # ``import h2`` now raises ImportError
    for cls in (kalshi_httpx.KalshiClient, kalshi_httpx.AsyncKalshiClient):
        with pytest.raises(ConfigurationError, match=r"kalshi-sansio\[http2\]"):
            cls(http2=True)
