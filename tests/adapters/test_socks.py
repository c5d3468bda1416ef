"""Clients that reach the API through a SOCKS5 proxy (``socks5://`` or ``socks5h://``).

Every flavour runs the handshake of `kalshi_proto.proxy.Socks5Tunnel`: `kalshi_sync` and
`kalshi_anyio` over their own sockets, `kalshi_httpx` in the network backend of its SOCKS5
transport (``kalshi_httpx/_async_socks.py``), under httpcore's pool. The proxy (``tests/helpers/socks.py``) is written from the RFCs apart from the SDK's code, and the
server behind it is the usual uvicorn test server, which verifies every signature: a call that
works went through the tunnel with its TLS session and its signed request intact.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import httpx
import pytest

from kalshi_httpx._errors import map_exceptions
from kalshi_proto.errors import ConfigurationError, ConnectError, ConnectTimeout, ProxyError
from kalshi_proto.proxy import ProxyUrl
from kalshi_proto.rest.generated.models import CreateOrderV2Response
from tests.adapters.conftest import FAST_RETRY, Driver, Flavour, maybe
from tests.adapters.test_proxy import NO_RETRY, anyio_backend
from tests.adapters.test_rest_clients import ORDER_JSON, ORDERS, order_request
from tests.helpers.socks import SocksProxy, SocksRequest, socks_proxy

pytestmark = pytest.mark.anyio
__all__ = ["anyio_backend"]  # the fixture, shared with test_proxy.py


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_calls_go_through_one_tunnel_that_is_kept_alive(kx: Driver, scheme: str) -> None:
    with socks_proxy() as proxy:
        async with kx.client(proxy=proxy.url(scheme=scheme)) as client:
            balance = await maybe(client.portfolio.balance())
            market = await maybe(client.markets.get("KXTEST-1"))
        assert balance.balance >= 0
        assert market.market.ticker == "KXTEST-1"
        # One connection, no authentication offered, the API's address and port asked for.
        assert proxy.requests == [SocksRequest(b"\x00", None, 1, 1, "127.0.0.1", kx.server.port)]
    seen = kx.server.requests()
    assert [request.operation_id for request in seen] == ["GetBalance", "GetMarket"]
    assert seen[0].auth == kx.server.ed25519.key_id  # the signature verified
    assert {request.client_port for request in seen} == set(proxy.upstream_ports)


async def test_an_order_goes_through_the_tunnel_exactly(kx: Driver) -> None:
    with socks_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            reply = await maybe(client.orders.create_v2(order_request()))
        assert len(proxy.requests) == 1
    assert isinstance(reply, CreateOrderV2Response)
    [seen] = kx.server.requests(ORDERS)
    assert (seen.method, seen.body) == ("POST", ORDER_JSON)


async def test_a_host_name_is_left_to_the_proxy_to_resolve(kx: Driver) -> None:
    base_url = kx.server.base_url.replace("127.0.0.1", "localhost")
    assert "localhost" in base_url
    with socks_proxy() as proxy:
        async with kx.client(proxy=proxy.url(), base_url=base_url) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert [(r.address_type, r.host) for r in proxy.requests] == [(3, "localhost")]
    assert len(kx.server.requests()) == 1


async def test_credentials_go_as_rfc_1929_asks(kx: Driver) -> None:
    with socks_proxy(credentials=("bot", "p@ss:wörd")) as proxy:
        async with kx.client(proxy=proxy.url("bot:p%40ss%3Aw%C3%B6rd@")) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert [(r.methods, r.username) for r in proxy.requests] == [(b"\x02", "bot")]
    assert len(kx.server.requests()) == 1


async def test_a_proxy_url_object_is_taken(kx: Driver) -> None:
    with socks_proxy(credentials=("bot", "secret")) as proxy:
        given = ProxyUrl("127.0.0.1", proxy.port, "bot", "secret", scheme="socks5h")
        async with kx.client(proxy=given) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.requests) == 1


async def test_refused_credentials_end_the_call_without_showing_them(
    kx: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: httpx's and httpcore's too
    with socks_proxy(credentials=("bot", "right")) as proxy:
        async with kx.client(proxy=proxy.url("bot:wrong-one@"), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError) as info:
                await maybe(client.markets.get("KXTEST-1"))
            texts = [repr(client), str(info.value), repr(info.value), *info.value.__notes__]
        assert proxy.accepted == 1  # not retried: the proxy would refuse again
    assert any(record.name.startswith("kalshi_") for record in caplog.records)
    for text in [caplog.text, *texts]:
        assert "wrong-one" not in text
    assert kx.server.requests() == []
    assert str(info.value) == (
        f"the proxy 127.0.0.1:{proxy.port} refused the user name and password of the proxy URL"
    )
    assert info.value.__notes__ == [
        "not retried: the proxy would refuse the same credentials again"
    ]


async def test_missing_credentials_say_how_to_give_them(kx: Driver) -> None:
    with socks_proxy(credentials=("bot", "right")) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError, match=r"wants credentials: socks5://user:password@"):
                await maybe(client.portfolio.balance())
        assert proxy.accepted == 1


@pytest.mark.parametrize(("reply", "retried"), [(5, True), (4, True), (2, False)])
async def test_a_failure_reply_is_retried_unless_it_would_come_again(
    kx: Driver, reply: int, retried: bool
) -> None:
    with socks_proxy(reply=reply) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError, match=f"SOCKS5 reply {reply} ") as info:
                await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.requests) == (FAST_RETRY.max_attempts if retried else 1)
    assert info.value.reply == reply
    assert kx.server.requests() == []


async def test_an_order_refused_by_the_proxy_is_not_sent_again(kx: Driver) -> None:
    with socks_proxy(reply=5) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError):
                await maybe(client.orders.create_v2(order_request()))
        assert len(proxy.requests) == 1  # a POST is never retried
    assert kx.server.requests() == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"answer": b""}, "closed the connection during the SOCKS5 handshake"),
        ({"answer": b"HTTP/1.1 400 Bad Request\r\n\r\n"}, "it looks like an HTTP proxy"),
        ({"answer": b"\x05\x07"}, "chose authentication method 7, which was not offered"),
    ],
)
async def test_a_broken_proxy_is_a_proxy_error(
    kx: Driver, settings: dict[str, Any], message: str
) -> None:
    with socks_proxy(**settings) as proxy:
        async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
            with pytest.raises(ProxyError, match=message) as info:
                await maybe(client.markets.get("KXTEST-1"))
    assert (info.value.status, info.value.reply) == (None, None)


@pytest.mark.parametrize(
    "bound", [(4, bytes(15) + b"\x01"), (3, b"\x0bexample.com"), (1, b"\x0a\x00\x00\x01")]
)
async def test_any_bound_address_in_the_reply_is_taken(
    kx: Driver, bound: tuple[int, bytes]
) -> None:
    with socks_proxy(bound=bound) as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            await maybe(client.markets.get("KXTEST-1"))
    assert len(kx.server.requests()) == 1


async def test_a_proxy_that_never_answers_times_out(kx: Driver) -> None:
    with socks_proxy(silent=True) as proxy:
        async with kx.client(proxy=proxy.url(), timeout=0.3, retry=NO_RETRY) as client:
            started = kx.now()
            with pytest.raises(ConnectTimeout):
                await maybe(client.markets.get("KXTEST-1"))
            assert kx.now() - started < 3
        assert proxy.accepted == 1


async def test_a_proxy_that_is_not_there_is_a_connect_error(kx: Driver) -> None:
    proxy = SocksProxy()
    proxy.stop()  # its port now refuses connections
    async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KXTEST-1"))
    assert not isinstance(info.value, ProxyError)
    assert str(info.value).startswith(f"cannot connect to the proxy 127.0.0.1:{proxy.port}: ")


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_a_loopback_api_through_a_proxy_elsewhere_is_refused(
    kx: Driver, scheme: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"would reach the proxy's own loopback"):
        kx.build(proxy=f"{scheme}://proxy.example.com:1080")


@pytest.mark.flavours("httpx")
async def test_kalshi_httpx_needs_no_socksio(kx: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # import socksio fails
    with pytest.raises(ImportError):
        importlib.import_module("socksio")
    with socks_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.requests) == 1
    assert len(kx.server.requests()) == 1


@pytest.mark.flavours("httpx_sync")
@pytest.mark.parametrize(
    ("message", "final"),
    [
        ("Invalid username/password", "the proxy would refuse the same credentials again"),
        (
            "Requested NO_AUTH_REQUIRED from proxy server, but got NO_ACCEPTABLE_METHODS.",
            "the proxy would refuse again",
        ),
        ("Proxy Server could not connect: SOCKS5ReplyCode.CONNECTION_REFUSED.", None),
    ],
)
def test_kalshi_httpx_reads_httpcores_socks_refusals(
    flavour: Flavour, message: str, final: str | None
) -> None:
    # httpcore 1.0.9's words for a SOCKS5 handshake that failed: httpx's own client, which
    # kalshi_httpx routes by the environment (ALL_PROXY=socks5://...), reaches it with httpcore.
    url = httpx.URL("https://127.0.0.1:8443/trade-api/v2/markets")
    with pytest.raises(ProxyError) as info, map_exceptions(url):
        raise httpx.ProxyError(message)
    assert str(info.value) == f"the proxy did not open a tunnel to 127.0.0.1:8443: {message}"
    assert (info.value.final_reason, info.value.status) == (final, None)
