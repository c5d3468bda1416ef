"""A server retiring an HTTP/2 connection gracefully costs no call of a `kalshi_httpx` client.

The server (`GracefulH2Server`) sends a GOAWAY frame naming the last stream it took, answers
the streams up to it, and closes the connection; the streams above it it did not process. Each
test runs on the blocking client (calls in threads) and the async one (tasks, on asyncio and on
trio), with no retries: a call that fails shows. httpcore 1.0.9 and h2 4 alone fail every call
still waiting when the GOAWAY arrives (see kalshi_httpx._goaway).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import h2.events
import httpcore
import pytest
import trustme

import kalshi_httpx
from kalshi_httpx import _goaway
from kalshi_httpx._sync_http2 import MendedHTTP2Connection
from kalshi_proto.errors import ConnectError, KalshiError, ReadError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.graceful_h2 import GracefulH2Server, Processed, Retire
from tests.adapters.server import PREFIX, KeyPair
from tests.adapters.test_rest_clients import order_request

#: The kinds of client: the blocking client, and the async one on each backend.
KINDS = ("blocking", "asyncio", "trio")

KEY = KeyPair.ed25519("goaway-key")

#: What each of the four calls of a test does: three balance reads and an order.
CALLS = ("balance", "balance", "balance", "order")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., GracefulH2Server]]:
    """Start a `GracefulH2Server` with these arguments (its certificate made here)."""
    ca = trustme.CA()
    cert_file = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    started: list[GracefulH2Server] = []

    def start(**arguments: Any) -> GracefulH2Server:
        server = GracefulH2Server(ca, cert_file, **arguments)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def call_all(kind: str, server: GracefulH2Server, calls: tuple[str, ...]) -> list[object]:
    """Make ``calls`` at once on one client of ``kind`` over HTTP/2, without retries; for
    each, in order, what it returned or the `KalshiError` it raised. The client is closed."""
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "key_id": KEY.key_id,
        "private_key": KEY.pem,
        "verify": server.client_context(),
        "http2": True,
        "retry": RetryPolicy.disabled(),
        "timeout": 5.0,
    }
    outcomes: list[object] = [None] * len(calls)
    if kind == "blocking":
        with kalshi_httpx.KalshiClient(**options) as client:

            def one(index: int) -> None:
                try:
                    outcomes[index] = (
                        client.orders.create_v2(order_request())
                        if calls[index] == "order"
                        else client.portfolio.balance()
                    )
                except KalshiError as exc:
                    outcomes[index] = exc

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return outcomes

    async def run() -> None:
        async with kalshi_httpx.AsyncKalshiClient(**options) as client:

            async def one(index: int) -> None:
                try:
                    outcomes[index] = await (
                        client.orders.create_v2(order_request())
                        if calls[index] == "order"
                        else client.portfolio.balance()
                    )
                except KalshiError as exc:
                    outcomes[index] = exc

            async with anyio.create_task_group() as group:
                for index in range(len(calls)):
                    group.start_soon(one, index)

    anyio.run(run, backend=kind)
    return outcomes


def failures(outcomes: list[object]) -> list[object]:
    return [outcome for outcome in outcomes if isinstance(outcome, Exception)]


def on(server: GracefulH2Server, connection: int) -> list[Processed]:
    return [each for each in server.processed if each.connection == connection]


@pytest.mark.parametrize("kind", KINDS)
def test_the_calls_the_server_took_get_their_answers_after_its_goaway(
    kind: str, serve: Callable[..., GracefulH2Server]
) -> None:
    # The four requests arrive; the GOAWAY names the third, and only then are the three
    # answered. The fourth was not processed: it is sent again, on a new connection.
    server = serve(plans=[Retire(after=4, last=lambda ids: sorted(ids)[2], hold=True)])
    outcomes = call_all(kind, server, CALLS)
    assert failures(outcomes) == []
    assert server.refused == 1
    assert sorted(each.stream_id for each in on(server, 0)) == [1, 3, 5]
    assert len(on(server, 1)) == 1
    orders = [each for each in server.processed if each.method == "POST"]
    assert len(orders) == 1  # the order was processed once, wherever it went
    assert orders[0].path == PREFIX + "/portfolio/events/orders"


@pytest.mark.parametrize("kind", KINDS)
def test_a_goaway_naming_no_stream_sends_every_call_again(
    kind: str, serve: Callable[..., GracefulH2Server]
) -> None:
    server = serve(plans=[Retire(after=4, last=lambda ids: 0, hold=True)])
    outcomes = call_all(kind, server, CALLS)
    assert failures(outcomes) == []
    assert on(server, 0) == []
    assert len(on(server, 1)) == 4
    assert server.refused == 4


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_every_connection_turns_away_fails_after_a_few(
    kind: str, serve: Callable[..., GracefulH2Server]
) -> None:
    server = serve(otherwise=Retire(after=1, last=lambda ids: 0, hold=True))
    (outcome,) = call_all(kind, server, ("order",))
    assert isinstance(outcome, ConnectError)
    turns = _goaway.MAX_REROUTES + 1
    assert f"turned the request away on {turns} connections in a row" in str(outcome)
    assert "it was not processed" in str(outcome)
    assert server.accepted == _goaway.MAX_REROUTES + 1
    assert server.processed == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_the_server_took_and_never_answered_fails_and_is_not_sent_again(
    kind: str, serve: Callable[..., GracefulH2Server]
) -> None:
    # Its outcome is unknown: the server took it. An order must not go out a second time.
    server = serve(plans=[Retire(after=2, hold=True, answer=False)])
    outcomes = call_all(kind, server, ("balance", "order"))
    assert all(isinstance(outcome, ReadError) for outcome in outcomes), outcomes
    assert server.unanswered == 2
    assert server.accepted == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_refused_before_any_processing_is_sent_again(
    kind: str, serve: Callable[..., GracefulH2Server]
) -> None:
    server = serve(refuse_first=1)
    (outcome,) = call_all(kind, server, ("order",))
    assert not isinstance(outcome, Exception), outcome
    assert server.reset == 1
    assert len(server.processed) == 1


def test_a_request_that_picked_the_connection_before_its_goaway_is_not_sent_on_it(
    serve: Callable[..., GracefulH2Server],
) -> None:
    # The pool gave the connection to a request just before the GOAWAY came: it goes to
    # another connection without a byte sent on this one.
    server = serve()
    trust = server.client_context()
    with kalshi_httpx.KalshiClient(verify=trust, http2=True, base_url=server.base_url) as client:
        client.exchange.status()
        assert client._transport is not None
        (pool,) = _goaway.pools_of(client._transport)
        handler = pool.connections[0]._connection._connection
        assert isinstance(handler, MendedHTTP2Connection)
        assert handler.is_available()
        ended = h2.events.ConnectionTerminated()
        ended.last_stream_id = 1
        handler._connection_terminated = ended
        assert not handler.is_available()
        url = server.base_url + "/exchange/status"
        request = httpcore.Request("GET", url, headers=[("Host", url.split("/")[2])])
        with pytest.raises(httpcore.ConnectionNotAvailable):
            handler.handle_request(request)
    server.stop()  # once it has read all the client sent
    assert len(server.processed) == 1


@pytest.mark.parametrize(("last", "raised"), [(1, httpcore.ConnectionNotAvailable), (3, None)])
def test_a_request_that_fails_on_a_stream_the_goaway_says_was_not_processed_is_sent_again(
    serve: Callable[..., GracefulH2Server], last: int, raised: type[Exception] | None
) -> None:
    # Its body's write fails (the server closed the connection), and by then another request
    # has read the GOAWAY: above the stream it names (1), the request goes to another
    # connection; at or below it (3: the server may have taken it), it fails as it failed.
    server = serve()
    trust = server.client_context()
    with kalshi_httpx.KalshiClient(verify=trust, http2=True, base_url=server.base_url) as client:
        client.exchange.status()  # stream 1
        assert client._transport is not None
        (pool,) = _goaway.pools_of(client._transport)
        handler = pool.connections[0]._connection._connection
        assert isinstance(handler, MendedHTTP2Connection)

        def body_write_fails(request: httpcore.Request, stream_id: int) -> None:
            assert stream_id == 3
            ended = h2.events.ConnectionTerminated()
            ended.last_stream_id = last
            handler._connection_terminated = ended
            raise httpcore.WriteError("EOF occurred in violation of protocol")

        handler._send_request_body = body_write_fails  # type: ignore[method-assign]
        url = server.base_url + "/exchange/status"
        request = httpcore.Request("GET", url, headers=[("Host", url.split("/")[2])])
        with pytest.raises(raised or httpcore.WriteError):
            handler.handle_request(request)
        assert handler._sent == {}
