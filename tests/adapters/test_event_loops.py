"""An async client used from one event loop after another: a second ``asyncio.run``, a new
``trio.run``.

An asyncio connection works only on the loop that opened it, and ``asyncio.run`` closes its
loop at the end. A client kept from one run to the next used to reuse the old loop's idle
connections: its first call on the new loop failed with ``RuntimeError: Event loop is closed``
(not even a `TransportError`), and so did closing it. Now a client that finds itself on another
asyncio loop leaves the old loop's idle connections, shut down at once (`kalshi_httpx` builds
another pool), and opens new ones. trio's connections carry on from one ``trio.run`` to the
next, so on trio the connection is simply reused.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from typing import Any

import anyio
import pytest

import kalshi_anyio
import kalshi_httpx
from kalshi_anyio.sim import LocalExchange, serve_exchange_in_thread
from kalshi_proto.rest.generated.models import ExchangeStatus
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.rest import Faults
from tests.adapters.conftest import open_sockets_to
from tests.helpers.sockets import ESTABLISHED

NO_RETRY = RetryPolicy.disabled()
BACKENDS = ["asyncio", "trio"]
ADAPTERS = ["kalshi_anyio", "kalshi_httpx"]


# asyncio warns about an abandoned transport when the collector frees it, which can be at any
# moment after the loop is left: under ``-W error`` that warning, raised in ``__del__``, would
# also stop asyncio closing the socket there. (docs/rest.md, "Sharing a client".)
ABANDONED = pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")


def build(adapter: str, local: LocalExchange, **options: Any) -> Any:
    if adapter == "kalshi_anyio":
        return kalshi_anyio.AsyncKalshiClient(retry=NO_RETRY, **local.client_options(), **options)
    return kalshi_httpx.AsyncKalshiClient(
        retry=NO_RETRY, **local.client_options(httpx=True), **options
    )


def collect_garbage() -> list[warnings.WarningMessage]:
    """Collect garbage, and return the warnings that raised (an abandoned asyncio transport
    says ``unclosed transport`` when the collector frees it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return caught


def established_sockets_to(port: int) -> int:
    """How many of this process's sockets to ``port`` are still open and not shut down."""
    return open_sockets_to(port, state=ESTABLISHED)


@ABANDONED
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_client_goes_on_working_from_one_event_loop_to_the_next(
    adapter: str, backend: str
) -> None:
    statuses: list[ExchangeStatus] = []
    with serve_exchange_in_thread() as local:
        client = build(adapter, local)

        async def two_calls() -> None:
            with anyio.fail_after(10):
                for _ in range(2):
                    statuses.append(await client.exchange.status())

        async def close() -> None:
            await client.aclose()

        for _ in range(3):
            anyio.run(two_calls, backend=backend)
        anyio.run(close, backend=backend)  # from yet another loop
        accepted = local.server.connections_accepted
        caught = collect_garbage()
        left_open = open_sockets_to(local.server.port)
    assert len(statuses) == 6
    # asyncio: a connection per loop, reused for the loop's second call. trio: one in all.
    assert accepted == (3 if backend == "asyncio" else 1)
    assert left_open == 0
    assert all(issubclass(warning.category, ResourceWarning) for warning in caught)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_client_built_outside_any_loop_closes_from_its_loop(adapter: str, backend: str) -> None:
    with serve_exchange_in_thread() as local:
        client = build(adapter, local)

        async def call_then_close() -> None:
            with anyio.fail_after(10):
                await client.exchange.status()
                await client.aclose()

        anyio.run(call_then_close, backend=backend)
        caught = collect_garbage()
        left_open = open_sockets_to(local.server.port)
    # Closed through the loop that opened it: nothing was left for the collector to warn about.
    assert left_open == 0
    assert [str(warning.message) for warning in caught] == []


@ABANDONED
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_old_loops_idle_connections_are_shut_down_at_once(adapter: str) -> None:
    with serve_exchange_in_thread() as local:
        client = build(adapter, local)
        port = local.server.port

        async def call() -> int:
            await client.exchange.status()
            return established_sockets_to(port)

        try:
            assert asyncio.run(call()) == 1
            # The first loop's connection is shut down, before any garbage collection.
            assert asyncio.run(call()) == 1
            assert local.server.connections_accepted == 2
        finally:
            asyncio.run(client.aclose())
        collect_garbage()
        assert open_sockets_to(port) == 0


def test_a_call_still_running_on_the_old_loop_does_not_pool_its_connection() -> None:
    # Loops side by side in two threads are not a supported use of one client, but they must
    # not mix: the connection of a call that finishes on the loop the client has left is closed
    # there, not handed to the new loop; and each call gives its connection slot back to the
    # limiter it took it from, so the limit still holds afterwards.
    latency = 0.3
    with serve_exchange_in_thread(faults=Faults(latency=latency)) as local:
        client = build("kalshi_anyio", local, max_connections=1)
        results: list[object] = []

        def on_loop_a() -> None:
            try:
                results.append(asyncio.run(client.exchange.status()))
            except BaseException as exc:  # reported by the assertion below
                results.append(exc)

        thread = threading.Thread(target=on_loop_a)
        thread.start()
        time.sleep(latency / 3)  # loop A's call is in flight

        async def on_loop_b() -> list[object]:
            await client.exchange.status()  # the client moves to loop B
            thread.join(5)  # loop A's call finishes meanwhile
            pooled = [connection.loop for connection in client._idle]
            assert pooled == [asyncio.get_running_loop()]
            # One slot, not two: two calls at once run one after the other.
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for _ in range(2):
                    group.start_soon(client.exchange.status)
            return [time.monotonic() - started]

        try:
            (elapsed,) = asyncio.run(on_loop_b())
        finally:
            asyncio.run(client.aclose())
        collect_garbage()
        left_open = open_sockets_to(local.server.port)
    assert not thread.is_alive()
    assert len(results) == 1 and not isinstance(results[0], BaseException), results
    assert isinstance(elapsed, float) and elapsed >= 2 * latency * 0.95
    assert left_open == 0
