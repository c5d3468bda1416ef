"""A call cancelled as its connection is made leaves no socket behind (the async clients).

Before anyio 4.16, ``anyio.connect_tcp`` dropped the connection it had just made when a
cancellation landed as its attempts' task group ended: the socket stayed open until the garbage
collector found it (`kalshi_proto.dropped_connect`). Each walk here cancels a call on a new
client after a given number of scheduler steps, for every number from 0 until the call ends on
its own, and collects garbage after each: a socket the collector finds open fails the walk.
The walks pass with any anyio the project allows; ``.ci/lowest`` runs them on the oldest.

The unit tests below feed `dropped_connection` the traceback of a cancelled
``anyio.connect_tcp`` and of other errors.
"""

from __future__ import annotations

import gc
import socket
import types
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import httpcore
import pytest

import kalshi_httpx
from kalshi_httpx import _goaway
from kalshi_httpx._async_http2 import connect_closing
from kalshi_proto.dropped_connect import (
    CONNECT_FUNCTION,
    CONNECT_MODULE,
    CONNECTION_LOCAL,
    dropped_connection,
)
from kalshi_proto.errors import KalshiError
from tests.adapters.conftest import Driver, Flavour, backend_of, maybe, open_sockets_to
from tests.helpers.proxy import proxy_tls_context, tunnel_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.flavours("async")]

#: More steps than a call on a new connection takes to end on its own, on this machine by far.
MOST_STEPS = 3000


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


async def cancel_after(kx: Driver, steps: int, **options: Any) -> str | None:
    """Cancel a call on a new client (built with ``options``) after ``steps`` scheduler steps;
    how it ended before that (``"ok"``, or its error's class name), or None if it did not."""
    outcome: str | None = None
    async with kx.client(**options) as client:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    nonlocal outcome
                    try:
                        await maybe(client.exchange.status())
                    except KalshiError as exc:
                        outcome = type(exc).__name__
                    else:
                        outcome = "ok"

                group.start_soon(call)
                for _ in range(steps):
                    await anyio.lowlevel.checkpoint()
                scope.cancel()
    return outcome


async def walk(kx: Driver, **options: Any) -> tuple[int, list[tuple[int, str]]]:
    """Cancel a call on a new client at each step in turn until it succeeds on its own; the
    steps it took, and the sockets left to the garbage collector (step, warning) on the way.
    A call that fails on its own, instead of succeeding, fails the walk."""
    dropped: list[tuple[int, str]] = []
    for steps in range(MOST_STEPS):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            outcome = await cancel_after(kx, steps, **options)
            gc.collect()
        dropped += [(steps, str(w.message)[:70]) for w in caught]
        if outcome == "ok":
            return steps, dropped
        if outcome is not None:
            raise AssertionError(f"the call failed on its own within {steps} steps: {outcome}")
    raise AssertionError(f"the call did not end within {MOST_STEPS} steps")


async def test_a_call_cancelled_at_any_step_of_its_connect_leaves_no_socket_open(
    kx: Driver,
) -> None:
    steps, dropped = await walk(kx)
    assert dropped == []
    assert steps > 3  # the walk went through the connect, not around it


# ---- dropped_connection ------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_connection_a_cancelled_connect_made_is_found_in_its_traceback(
    listener: socket.socket, backend: str
) -> None:
    # The cancellation lands at each step in turn; once an attempt has connected, the
    # traceback names its connection (open before anyio 4.16, closed since), and it closes.
    port = listener.getsockname()[1]

    async def walk() -> list[tuple[bool, bool]]:
        seen: list[tuple[bool, bool]] = []
        for steps in range(MOST_STEPS):
            connection: anyio.abc.SocketStream | None = None
            found: anyio.abc.SocketStream | None = None
            try:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as group:

                        async def connect() -> None:
                            nonlocal connection, found
                            try:
                                connection = await anyio.connect_tcp("127.0.0.1", port)
                            except BaseException as exc:
                                dropped = dropped_connection(exc)
                                if isinstance(dropped, anyio.abc.SocketStream):
                                    found = dropped
                                raise

                        group.start_soon(connect)
                        for _ in range(steps):
                            await anyio.lowlevel.checkpoint()
                        scope.cancel()
            finally:
                for each in (connection, found):
                    if each is not None:
                        await anyio.aclose_forcefully(each)
            seen.append((found is not None, connection is not None))
            if connection is not None:
                return seen
        raise AssertionError(f"the connect did not end within {MOST_STEPS} steps")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        seen = anyio.run(walk, backend=backend)
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert seen[-1] == (False, True)  # it ended on its own: nothing dropped
    assert (False, False) in seen  # cancelled before any attempt connected: nothing to find
    assert (True, False) in seen  # cancelled as the attempts' group ended: found


def fake_connect_frame_error(held: object) -> BaseException:
    """An error whose traceback passes through a frame that looks like anyio's
    ``connect_tcp``, holding ``held`` in its local."""
    source = f"def {CONNECT_FUNCTION}():\n    {CONNECTION_LOCAL} = held\n    raise KeyError('cut')\n"
    namespace: dict[str, object] = {"__name__": CONNECT_MODULE, "held": held}
    exec(compile(source, "<fake anyio>", "exec"), namespace)
    function = namespace[CONNECT_FUNCTION]
    assert isinstance(function, types.FunctionType)
    try:
        function()
    except KeyError as exc:
        return exc
    raise AssertionError("the fake connect did not raise")


def test_dropped_connection_is_read_from_connect_tcp_frame_only() -> None:
    held = object()
    assert dropped_connection(fake_connect_frame_error(held)) is held
    # No attempt had connected.
    assert dropped_connection(fake_connect_frame_error(None)) is None
    # An error from elsewhere, and one never raised.
    try:
        raise KeyError("elsewhere")
    except KeyError as exc:
        assert dropped_connection(exc) is None
    assert dropped_connection(KeyError("never raised")) is None


class _NeverConnects(httpcore.AsyncNetworkBackend):
    # A backend whose connect waits for ever, and says what timeout it was given.
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.timeouts.append(timeout)
        await anyio.sleep_forever()
        raise AssertionError("woke up")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_connect_closing_times_the_connect_out_around_the_backend(backend: str) -> None:
    # The timeout is kept from httpcore's backend, whose own would hide anyio's frame.
    never = _NeverConnects()

    async def connect() -> None:
        await connect_closing(never, "example.test", 443, timeout=0.05)

    with pytest.raises(httpcore.ConnectTimeout, match=r"connecting to example\.test:443 timed out"):
        anyio.run(connect, backend=backend)
    assert never.timeouts == [None]


def test_the_async_pools_connect_through_connect_closing_over_httpcores_backends() -> None:
    plain = kalshi_httpx.AsyncKalshiClient(base_url="http://127.0.0.1:9")
    socks = kalshi_httpx.AsyncKalshiClient(
        base_url="http://127.0.0.1:9", proxy="socks5://127.0.0.1:1080"
    )
    own = {}
    for name, client in (("plain", plain), ("socks", socks)):
        pools = list(_goaway.pools_of(client._transport))  # type: ignore[arg-type]
        own[name] = [pool._network_backend._own_connect for pool in pools]
        anyio.run(client.aclose)
    # The SOCKS backend connects to its proxy through connect_closing itself.
    assert own == {"plain": [True], "socks": [False]}


async def test_a_call_cancelled_at_any_step_of_a_connect_through_an_https_proxy(
    kx: Driver,
) -> None:
    # Three starts: TCP to the proxy, TLS with it, and the API's TLS inside that one. httpcore
    # closes a stream whose TLS start fails on an Exception only: a cancellation in the inner
    # start left the connection to the proxy open (the REST soak found it, with 20 ms timeouts).
    with tunnel_proxy(tls=proxy_tls_context(kx.server.ca)) as proxy:
        steps, dropped = await walk(
            kx, proxy=proxy.url(), proxy_ssl_context=kx.server.ssl_context()
        )
        assert open_sockets_to(proxy.port) == 0
    assert dropped == []
    # The walk went through the tunnel's start, not around it: its last call, which ended on
    # its own, went through the tunnel, and every step before was a cancellation. (How many
    # CONNECTs the proxy read depends on the machine's pace: on a busy one, a walk of 138 steps
    # had the proxy read 1, so they are not counted.)
    assert proxy.upstream_ports
    assert steps > 3
