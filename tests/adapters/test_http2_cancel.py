"""Cancelling the first call on a new HTTP/2 connection costs the calls queued behind it nothing
(the async `kalshi_httpx` client, on asyncio and on trio).

httpcore 1.0.9 broke the connection when its first request was cancelled as the connection
started, and the calls queued on it failed (see kalshi_httpx._async_http2). Each walk here
cancels the first call after a given number of scheduler steps, for every number from 0 until
the call ends on its own, with a second call queued on the same connection: the second must
get its answer each time.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import httpcore
import httpcore._synchronization
import httpx
import pytest
import trustme

import kalshi_httpx
from kalshi_httpx._async_http2 import MendedHTTP2Connection, _Permits
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.graceful_h2 import GracefulH2Server

#: More steps than the first call takes to end on its own, on this machine class by far.
MOST_STEPS = 3000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GracefulH2Server]:
    ca = trustme.CA()
    cert_file = tmp_path_factory.mktemp("h2-cancel") / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    serving = GracefulH2Server(ca, cert_file)
    yield serving
    serving.stop()


def client_of(server: GracefulH2Server) -> kalshi_httpx.AsyncKalshiClient:
    return kalshi_httpx.AsyncKalshiClient(
        base_url=server.base_url,
        verify=server.client_context(),
        http2=True,
        limits=httpx.Limits(max_connections=1),
        retry=RetryPolicy.disabled(),
        timeout=5.0,
    )


async def connected_handler(client: kalshi_httpx.AsyncKalshiClient) -> MendedHTTP2Connection:
    """The HTTP/2 handler of ``client``'s one connection, made by a call now."""
    await client.exchange.status()
    assert client._transport is not None
    (connection,) = client._transport._pool.connections  # type: ignore[attr-defined]
    handler = connection._connection
    assert isinstance(handler, MendedHTTP2Connection)
    return handler


async def cancel_one_after(
    server: GracefulH2Server, steps: int, cancelled: int
) -> tuple[bool, object]:
    """Start two calls on a new client (one connection), the second queued behind the first,
    and cancel call ``cancelled`` (0 or 1) after ``steps`` scheduler steps; whether it ended
    before that, and what the other call gave."""
    outcome: list[object] = []
    ended = anyio.Event()
    async with client_of(server) as client:

        async def cancelled_call(scope: anyio.CancelScope) -> None:
            with scope:
                await client.exchange.status()
            ended.set()

        async def other_call() -> None:
            try:
                outcome.append(await client.exchange.status())
            except KalshiError as exc:
                outcome.append(exc)

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as group:
            if cancelled == 0:
                group.start_soon(cancelled_call, scope)
            group.start_soon(other_call)
            if cancelled == 1:
                group.start_soon(cancelled_call, scope)
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            done = ended.is_set()
            scope.cancel()
    return done, outcome[0]


@pytest.mark.parametrize("cancelled", [0, 1], ids=["first", "queued"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelling_a_call_on_a_new_connection_at_each_step_spares_the_other_and_its_socket(
    server: GracefulH2Server, backend: str, cancelled: int
) -> None:
    # Each step closes its client: a socket the garbage collector then finds open was left
    # unclosed by the client (a ResourceWarning).
    async def walk() -> tuple[list[tuple[int, object]], list[tuple[int, str]]]:
        failed: list[tuple[int, object]] = []
        dropped: list[tuple[int, str]] = []
        for steps in range(MOST_STEPS):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                done, other = await cancel_one_after(server, steps, cancelled)
                gc.collect()
            dropped += [(steps, str(w.message)[:60]) for w in caught]
            if isinstance(other, Exception):
                failed.append((steps, other))
            if done:
                return failed, dropped
        raise AssertionError(f"the cancelled call did not end within {MOST_STEPS} steps")

    assert anyio.run(walk, backend=backend) == ([], [])


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_stream_permit_on_hand_is_taken_with_no_checkpoint(backend: str) -> None:
    async def take() -> tuple[int, bool]:
        permits = _Permits(2)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await permits.acquire()  # on hand: a cancellation cannot land here
            await permits.acquire()
            await permits.acquire()  # none left: it waits, and the cancellation lands
        semaphore = getattr(permits, "_trio_semaphore", None) or permits._anyio_semaphore
        return semaphore.value, scope.cancelled_caught

    assert anyio.run(take, backend=backend) == (0, True)


def test_a_new_http2_connection_takes_such_permits(server: GracefulH2Server) -> None:
    async def call() -> object:
        async with client_of(server) as client:
            handler = await connected_handler(client)
            return handler._max_streams_semaphore

    permits = anyio.run(call, backend="asyncio")
    assert isinstance(permits, _Permits)
    assert isinstance(permits, httpcore._synchronization.AsyncSemaphore)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_write_on_a_shared_connection_runs_to_its_end_though_its_call_is_cancelled(
    server: GracefulH2Server, backend: str
) -> None:
    # What the write takes from h2 is gone from h2 as it starts: cut short, it would be lost,
    # and the connection's later frames garbled for every call on it.
    async def write_cancelled() -> object:
        async with client_of(server) as client:
            handler = await connected_handler(client)
            handler._h2_state.ping(b"cancel!!")
            request = httpcore.Request("GET", server.base_url)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await handler._write_outgoing_data(request)
            assert not scope.cancelled_caught  # the write ended, and with it the shield
            return await client.exchange.status()

    pings = server.pings
    assert anyio.run(write_cancelled, backend=backend) is not None
    assert server.pings == pings + 1
