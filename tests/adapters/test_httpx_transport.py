"""kalshi_httpx with an injected transport: an `httpx.MockTransport` answers in memory."""

from __future__ import annotations

import gzip
import json

import anyio
import httpx
import pytest

import kalshi_httpx
from kalshi_proto.errors import NotFoundError
from tests.helpers.spec import example

BASE = "https://external-api.kalshi.com/trade-api/v2"
STATUS = json.dumps(example("ExchangeStatus")).encode()


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/exchange/status"):
        if request.url.params.get("zip"):
            return httpx.Response(200, headers={"content-encoding": "gzip"}, content=gzip.compress(STATUS))
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
        async with kalshi_httpx.AsyncKalshiClient(base_url=BASE, transport=httpx.MockTransport(handler)) as client:
            assert (await client.exchange.status()).exchange_active is True
            with pytest.raises(NotFoundError):
                await client.markets.get("NOPE")

    anyio.run(main, backend=backend)


def test_a_gzip_body_from_a_mock_transport_is_decoded_once() -> None:
    def zipped(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=gzip.compress(STATUS))

    with kalshi_httpx.KalshiClient(base_url=BASE, transport=httpx.MockTransport(zipped)) as client:
        assert client.exchange.status().exchange_active is True
