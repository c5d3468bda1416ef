"""A KeyboardInterrupt at any point of a blocking call loses no connection slot and no lock.

Python runs a signal handler (Ctrl-C's, which raises KeyboardInterrupt) only at some points of
the bytecode: as a Python function starts, after a call returns, and on a loop's backward jump.
Between those points nothing can interrupt, so a slot or a lock taken and recorded with no call
in between cannot be lost. These tests make the interrupt land at each such point of one call in
turn (`tests.helpers.interrupts`). After each, the
client must have every slot back, no lock held, no socket open once the interrupt is dropped,
and make its next call as usual.

A socket can still be left to the garbage collector (which closes it at once, as the interrupt's
traceback goes, with a ResourceWarning): an interrupt just after a function returns a socket
drops it before the caller can own it, and no ``try`` can cover that. These tests let those
warnings pass and check that the socket is closed all the same.

The walk covers a call on a pooled connection, one that must connect, and one of a rate-limited
client (whose slot is claimed before the request is paced). It does not cover a loop's
backward jumps; ``fuzz/interrupt_stress.py`` (Ctrl-C from a timer at random moments) does. The
limiters' own walks, a waiting thread among them, are in ``test_limiters.py``.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable

import pytest

import kalshi_sync
from kalshi_proto.rest.ratelimit import BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import Driver, Flavour, backend_of, open_sockets_to
from tests.helpers.interrupts import count_checkpoints, interrupt_at
from tests.helpers.proxy import proxy_tls_context, tunnel_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.flavours("kalshi_sync")]


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


def assert_nothing_held(client: kalshi_sync.KalshiClient, slots: int, where: str) -> None:
    limiter = client._limiter
    assert limiter._free == slots, f"{where}: {slots - limiter._free} slot(s) lost"
    assert not limiter._waiters, f"{where}: a waiter left in the queue"
    assert not limiter._lock.locked(), f"{where}: the limiter's lock left held"
    assert not client._pool_lock.locked(), f"{where}: the pool's lock left held"


def walk(
    client: kalshi_sync.KalshiClient, prepare: Callable[[], object], port: int
) -> int:
    """Interrupt one call at each of its checkpoints in turn; the number of points walked."""
    prepare()
    total = count_checkpoints(client.exchange.status)
    assert total > 50  # the profile saw the call
    for point in range(1, total + 1):
        prepare()
        landed = interrupt_at(point, client.exchange.status)
        where = f"interrupt at checkpoint {point} of {total} ({landed})"
        assert_nothing_held(client, 1, where)
        assert open_sockets_to(port) <= 1, where  # the pooled one, at most
        prepare()
        assert client.exchange.status().exchange_active, where
    return total


async def test_an_interrupt_anywhere_in_a_call_on_a_pooled_connection(kx: Driver) -> None:
    async with kx.client(retry=RetryPolicy.disabled(), max_connections=1) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        walk(client, client.exchange.status, kx.server.port)


async def test_an_interrupt_anywhere_in_a_call_that_connects(kx: Driver) -> None:
    async with kx.client(retry=RetryPolicy.disabled(), max_connections=1) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        def expire() -> None:
            for connection in client._idle:
                connection.idle_since -= 3600.0

        client.exchange.status()
        walk(client, expire, kx.server.port)


async def test_an_interrupt_anywhere_in_a_rate_limited_call(kx: Driver) -> None:
    plenty = BucketLimit(refill_rate=1e9, capacity=1e9)
    limiter = RateLimiter(plenty, plenty)
    async with kx.client(
        retry=RetryPolicy.disabled(), max_connections=1, rate_limit=limiter
    ) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        walk(client, client.exchange.status, kx.server.port)


async def test_an_interrupt_as_a_pooled_connection_is_checked_closes_it(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The call has taken the connection from the pool when it checks it for a server's close:
    # the connection is the call's own, to close, not the garbage collector's.
    def interrupt(stream: object) -> bool:
        raise KeyboardInterrupt

    async with kx.client(retry=RetryPolicy.disabled(), max_connections=1) as client:
        assert isinstance(client, kalshi_sync.KalshiClient)
        client.exchange.status()
        monkeypatch.setattr(kalshi_sync._io.Stream, "is_readable", interrupt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(KeyboardInterrupt):
                client.exchange.status()
            gc.collect()
        monkeypatch.undo()
        assert [str(warning.message) for warning in caught] == []
        assert open_sockets_to(kx.server.port) == 0
        assert_nothing_held(client, 1, "after the interrupt")
        assert client.exchange.status().exchange_active


async def test_an_interrupt_anywhere_in_a_call_that_connects_through_an_https_proxy(
    kx: Driver,
) -> None:
    # Two TLS sessions, the API's inside the proxy's (kalshi_sync._io._TunnelledTLS).
    with tunnel_proxy(tls=proxy_tls_context(kx.server.ca)) as proxy:
        async with kx.client(
            retry=RetryPolicy.disabled(),
            max_connections=1,
            proxy=proxy.url(),
            proxy_ssl_context=kx.server.ssl_context(),
        ) as client:
            assert isinstance(client, kalshi_sync.KalshiClient)

            def expire() -> None:
                for connection in client._idle:
                    connection.idle_since -= 3600.0

            client.exchange.status()
            walk(client, expire, proxy.port)
