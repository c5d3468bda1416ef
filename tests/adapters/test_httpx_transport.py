"""kalshi_httpx with an injected transport: an `httpx.MockTransport` answers in memory."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

import kalshi_httpx
from kalshi_proto.errors import (
    ApiError,
    ConfigurationError,
    LocalProtocolError,
    NotFoundError,
    TransportError,
)
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.spec import example

BASE = "https://external-api.kalshi.com/trade-api/v2"
STATUS = json.dumps(example("ExchangeStatus")).encode()


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/exchange/status"):
        if request.url.params.get("zip"):
            return httpx.Response(
                200, headers={"content-encoding": "gzip"}, content=gzip.compress(STATUS)
            )
        return httpx.Response(200, content=STATUS)
    return httpx.Response(404, json={"code": "not_found", "message": "no such thing"})


def test_a_mock_transport_answers_the_blocking_client() -> None:
    with kalshi_httpx.KalshiClient(base_url=BASE, transport=httpx.MockTransport(handler)) as client:
        assert client.exchange.status().exchange_active is True
        with pytest.raises(NotFoundError, match="no such thing"):
            client.markets.get("NOPE")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_mock_transport_answers_the_async_client(backend: str) -> None:
    async def main() -> None:
        async with kalshi_httpx.AsyncKalshiClient(
            base_url=BASE, transport=httpx.MockTransport(handler)
        ) as client:
            assert (await client.exchange.status()).exchange_active is True
            with pytest.raises(NotFoundError):
                await client.markets.get("NOPE")

    anyio.run(main, backend=backend)


def test_a_gzip_body_from_a_mock_transport_is_decoded_once() -> None:
    def zipped(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-encoding": "gzip"}, content=gzip.compress(STATUS)
        )

    with kalshi_httpx.KalshiClient(base_url=BASE, transport=httpx.MockTransport(zipped)) as client:
        assert client.exchange.status().exchange_active is True


class RecordingTransport(httpx.MockTransport):
    """A mock transport that remembers each request and whether it was closed."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = False
        super().__init__(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return handler(request)

    def close(self) -> None:
        self.closed = True


def test_requests_carry_the_signed_path_and_a_timeout_and_the_transport_is_closed() -> None:
    transport = RecordingTransport()
    with kalshi_httpx.KalshiClient(base_url=BASE, transport=transport, timeout=7.5) as client:
        client.exchange.status()
        client.exchange.status()
        assert list(client._urls) == ["/trade-api/v2/exchange/status"]  # parsed once, reused
    first, second = transport.requests
    assert first.url == "https://external-api.kalshi.com/trade-api/v2/exchange/status"
    assert second.url == first.url
    assert first.extensions["timeout"] == dict.fromkeys(("connect", "read", "write", "pool"), 7.5)
    assert first.headers["accept-encoding"] == "gzip, deflate"
    assert transport.closed


def test_the_parsed_url_cache_stays_bounded_and_each_request_goes_to_its_own_target() -> None:
    transport = RecordingTransport()
    with kalshi_httpx.KalshiClient(base_url=BASE, transport=transport) as client:
        for number in range(300):
            with pytest.raises(NotFoundError):
                client.markets.get(f"KX-{number}")
            assert transport.requests[-1].url.path == f"/trade-api/v2/markets/KX-{number}"
        assert len(client._urls) <= 256


def test_a_given_http_client_is_used_with_its_settings_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http_client = httpx.Client(transport=httpx.MockTransport(answer), headers={"X-Desk": "rates"})
    with kalshi_httpx.KalshiClient(base_url=BASE, http_client=http_client) as client:
        assert client.exchange.status().exchange_active is True
    assert seen[0].headers["x-desk"] == "rates"
    assert not http_client.is_closed
    http_client.close()


def _redirecting(seen: list[httpx.Request]) -> httpx.MockTransport:
    # Kalshi's host answers every request with a redirect to another host.
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "elsewhere.example":
            return httpx.Response(200, content=STATUS)
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/steal"})

    return httpx.MockTransport(answer)


def test_a_given_http_client_that_follows_redirects_is_not_led_elsewhere() -> None:
    # httpx would resend the signed request, headers and body, to the Location's host.
    seen: list[httpx.Request] = []
    http_client = httpx.Client(transport=_redirecting(seen), follow_redirects=True)
    with kalshi_httpx.KalshiClient(base_url=BASE, http_client=http_client) as client:
        with pytest.raises(ApiError) as info:
            client.exchange.status()
    assert info.value.status == 307
    assert [request.url.host for request in seen] == ["external-api.kalshi.com"]
    http_client.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_given_async_http_client_that_follows_redirects_is_not_led_elsewhere(
    backend: str,
) -> None:
    seen: list[httpx.Request] = []

    async def main() -> None:
        http_client = httpx.AsyncClient(transport=_redirecting(seen), follow_redirects=True)
        async with kalshi_httpx.AsyncKalshiClient(base_url=BASE, http_client=http_client) as client:
            with pytest.raises(ApiError) as info:
                await client.exchange.status()
        assert info.value.status == 307
        await http_client.aclose()

    anyio.run(main, backend=backend)
    assert [request.url.host for request in seen] == ["external-api.kalshi.com"]


def test_a_given_http_client_that_is_closed_is_refused_with_a_kalshi_error() -> None:
    # httpx's own RuntimeError ("Cannot send a request, as the client has been closed") came
    # out of the call, outside the SDK's error tree.
    closed = httpx.Client(transport=httpx.MockTransport(handler))
    closed.close()
    with pytest.raises(ConfigurationError, match=r"^http_client is closed: pass one that is open$"):
        kalshi_httpx.KalshiClient(base_url=BASE, http_client=closed)
    http_client = httpx.Client(transport=httpx.MockTransport(handler))
    with kalshi_httpx.KalshiClient(base_url=BASE, http_client=http_client) as client:
        assert client.exchange.status().exchange_active is True
        http_client.close()  # closed under the SDK's feet
        with pytest.raises(LocalProtocolError, match=r"^the httpx client given as http_client"):
            client.exchange.status()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_given_async_http_client_that_is_closed_is_refused_with_a_kalshi_error(
    backend: str,
) -> None:
    async def main() -> None:
        closed = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        await closed.aclose()
        with pytest.raises(ConfigurationError, match=r"^http_client is closed"):
            kalshi_httpx.AsyncKalshiClient(base_url=BASE, http_client=closed)
        http_client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with kalshi_httpx.AsyncKalshiClient(base_url=BASE, http_client=http_client) as client:
            assert (await client.exchange.status()).exchange_active is True
            await http_client.aclose()
            with pytest.raises(LocalProtocolError, match=r"^the httpx client given as http_client"):
                await client.exchange.status()

    anyio.run(main, backend=backend)


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in pieces and records that it was closed, as a network stream does."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def _streamed(streams: list[_Chunks]) -> httpx.MockTransport:
    # Answers with a body that is not read yet (as a real transport's is), gzip-encoded and cut
    # in three, so the client's own stream reading and decoding run.
    packed = gzip.compress(STATUS)
    third = len(packed) // 3

    def answer(request: httpx.Request) -> httpx.Response:
        stream = _Chunks(packed[:third], packed[third : 2 * third], packed[2 * third :])
        streams.append(stream)
        headers = [(b"Content-Encoding", b"gzip"), (b"Content-Length", str(len(packed)).encode())]
        return httpx.Response(200, headers=headers, stream=stream)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize("through", ["transport", "http_client"])
def test_a_streamed_body_is_read_decoded_and_closed_by_the_blocking_client(through: str) -> None:
    streams: list[_Chunks] = []
    transport = _streamed(streams)
    options: dict[str, object] = {"transport": transport}
    if through == "http_client":
        options = {"http_client": httpx.Client(transport=transport)}
    with kalshi_httpx.KalshiClient(base_url=BASE, **options) as client:  # type: ignore[arg-type]
        assert client.exchange.status().exchange_active is True
        assert client.exchange.status().trading_active == json.loads(STATUS)["trading_active"]
    assert len(streams) == 2 and all(stream.closed for stream in streams)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("through", ["transport", "http_client"])
def test_a_streamed_body_is_read_decoded_and_closed_by_the_async_client(
    through: str, backend: str
) -> None:
    streams: list[_Chunks] = []
    transport = _streamed(streams)

    async def main() -> None:
        options: dict[str, object] = {"transport": transport}
        if through == "http_client":
            options = {"http_client": httpx.AsyncClient(transport=transport)}
        async with kalshi_httpx.AsyncKalshiClient(base_url=BASE, **options) as client:  # type: ignore[arg-type]
            assert (await client.exchange.status()).exchange_active is True
            assert (await client.exchange.status()).trading_active == json.loads(STATUS)["trading_active"]

    anyio.run(main, backend=backend)
    assert len(streams) == 2 and all(stream.closed for stream in streams)


def test_a_proxy_named_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTPS_PROXY set and no transport given, requests go through the proxy, as they
    would with httpx.Client; a proxy that refuses the tunnel is a TransportError. (The target is
    a loopback port nobody listens on, so a client that ignored the proxy fails without ever
    leaving the machine.)"""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    received: list[bytes] = []

    def proxy() -> None:
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := connection.recv(4096)):
                data += chunk
            received.append(data)
            connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        base = f"https://127.0.0.1:{dead_port}/trade-api/v2"
        with kalshi_httpx.KalshiClient(
            base_url=base, timeout=5, retry=RetryPolicy.disabled()
        ) as client:
            with pytest.raises(TransportError):
                client.exchange.status()
    finally:
        thread.join(6)
        listener.close()
    assert received and received[0].startswith(
        f"CONNECT 127.0.0.1:{dead_port} HTTP/1.1\r\n".encode()
    )
