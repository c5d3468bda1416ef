"""Clients that reach the API through an HTTP proxy's ``CONNECT`` tunnel.

`kalshi_sync` and `kalshi_anyio` take ``proxy=``; `kalshi_httpx` takes an httpx client with
its own proxy. The proxy (``tests/helpers/proxy.py``) is a plain socket relay written apart from
the SDK's tunnel code; the server behind it is the usual uvicorn test server, which verifies
every signature, so a call that works went through the tunnel with its TLS session and its
signed request intact.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from kalshi_proto.errors import ConfigurationError, ConnectError, ConnectTimeout, ProxyError
from kalshi_proto.proxy import ProxyUrl
from kalshi_proto.rest.client import USER_AGENT
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import FAST_RETRY, Driver, Flavour, backend_of, maybe
from tests.helpers.proxy import TunnelProxy, tunnel_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.flavours("kalshi_sync", "kalshi_anyio")]

NO_RETRY = RetryPolicy.disabled()


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


def _target(kx: Driver) -> str:
    return f"127.0.0.1:{kx.server.port}"


async def test_calls_go_through_one_tunnel_that_is_kept_alive(kx: Driver) -> None:
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            balance = await maybe(client.portfolio.balance())
            market = await maybe(client.markets.get("KXTEST-1"))
        assert balance.balance >= 0
        assert market.market.ticker == "KXTEST-1"
        assert len(proxy.heads) == 1  # the second call reused the tunnel
        request_line = proxy.heads[0].split(b"\r\n")[0].decode()
        assert request_line == f"CONNECT {_target(kx)} HTTP/1.1"
        assert proxy.headers() == {"host": _target(kx), "user-agent": USER_AGENT}
        seen = kx.server.requests()
        assert [request.operation_id for request in seen] == ["GetBalance", "GetMarket"]
        assert seen[0].auth == kx.server.ed25519.key_id  # the signature verified
        assert {request.client_port for request in seen} == set(proxy.upstream_ports)


async def test_a_proxy_url_object_and_the_client_user_agent_are_used(kx: Driver) -> None:
    with tunnel_proxy() as proxy:
        given = ProxyUrl("127.0.0.1", proxy.port)
        async with kx.client(proxy=given, user_agent="my-bot/2") as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert proxy.headers()["user-agent"] == "my-bot/2"
        assert kx.server.requests()[0].headers["user-agent"] == "my-bot/2"


async def test_credentials_in_the_url_are_sent_percent_decoded(kx: Driver) -> None:
    with tunnel_proxy(credentials=("bot", "p@ss:word")) as proxy:
        async with kx.client(proxy=proxy.url("bot:p%40ss%3Aword@")) as client:
            await maybe(client.markets.get("KXTEST-1"))
        token = base64.b64encode(b"bot:p@ss:word").decode()
        assert proxy.headers()["proxy-authorization"] == f"Basic {token}"
        assert len(kx.server.requests()) == 1


async def test_refused_credentials_end_the_call_at_once_without_showing_them(kx: Driver) -> None:
    with tunnel_proxy(credentials=("bot", "right")) as proxy:
        async with kx.client(proxy=proxy.url("bot:wrong-one@"), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError) as info:
                await maybe(client.markets.get("KXTEST-1"))
            assert "bot:***" not in repr(client) and "wrong-one" not in repr(client)
        assert len(proxy.heads) == 1  # not retried: the proxy would refuse again
    error = info.value
    assert error.status == 407
    assert str(error) == (
        f"the proxy 127.0.0.1:{proxy.port} refused the tunnel to {_target(kx)}: HTTP 407 Proxy "
        "Authentication Required (it refused the user name and password of the proxy URL)"
    )
    assert error.__notes__ == ["not retried: the proxy would refuse again (HTTP 407)"]
    assert kx.server.requests() == []


async def test_missing_credentials_say_how_to_give_them(kx: Driver) -> None:
    with tunnel_proxy(credentials=("bot", "right")) as proxy:
        async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
            with pytest.raises(ProxyError, match=r"it wants credentials: http://user:password@"):
                await maybe(client.portfolio.balance())


async def test_a_proxy_that_cannot_reach_the_api_is_retried_like_a_refused_connection(
    kx: Driver,
) -> None:
    answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
    with tunnel_proxy(answer=answer) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError) as info:
                await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == FAST_RETRY.max_attempts
    assert info.value.status == 502


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "closed the connection before it answered the CONNECT"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "sent a broken answer to the CONNECT"),
        (b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01", "sent 3 bytes past its answer"),
    ],
)
async def test_a_broken_proxy_is_a_proxy_error(kx: Driver, answer: bytes, message: str) -> None:
    with tunnel_proxy(answer=answer) as proxy:
        async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
            with pytest.raises(ProxyError, match=message) as info:
                await maybe(client.markets.get("KXTEST-1"))
    assert info.value.status is None


async def test_a_proxy_that_never_answers_is_a_connect_timeout(kx: Driver) -> None:
    with tunnel_proxy(silent=True) as proxy:
        async with kx.client(proxy=proxy.url(), timeout=0.3, retry=NO_RETRY) as client:
            started = kx.now()
            with pytest.raises(ConnectTimeout, match="timed out"):
                await maybe(client.markets.get("KXTEST-1"))
            assert kx.now() - started < 3


async def test_a_proxy_that_is_not_there_is_named(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = TunnelProxy()
    proxy.stop()  # its port now refuses connections
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KXTEST-1"))
    assert str(info.value).startswith(f"cannot connect to the proxy 127.0.0.1:{proxy.port}: ")
    assert not isinstance(info.value, ProxyError)
    # A proxy was used: no note about the variable.
    assert not any("HTTPS_PROXY" in note for note in info.value.__notes__)


async def test_the_api_certificate_is_still_verified_inside_the_tunnel(kx: Driver) -> None:
    import ssl

    untrusting = ssl.create_default_context()  # the system CAs: not the test CA
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url(), ssl_context=untrusting) as client:
            with pytest.raises(ConnectError, match="certificate verify failed"):
                await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 1  # a certificate failure is not retried
    assert kx.server.requests() == []


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("https://proxy.example.com", "a https:// proxy is not supported here"),
        ("proxy.example.com:3128", "URL has no scheme"),
        (3128, "proxy must be a URL such as"),
    ],
)
def test_a_bad_proxy_is_refused_at_construction(flavour: Flavour, proxy: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        flavour.cls(proxy=proxy)  # type: ignore[call-arg]


@pytest.mark.flavours("httpx")
async def test_kalshi_httpx_goes_through_the_same_proxy_with_an_httpx_client(kx: Driver) -> None:
    # The README's way for kalshi_httpx: an httpx client configured with the proxy.
    context = kx.server.ssl_context()
    with tunnel_proxy() as proxy:
        if kx.is_async:
            given: Any = httpx.AsyncClient(proxy=proxy.url(), verify=context)
        else:
            given = httpx.Client(proxy=proxy.url(), verify=context)
        try:
            async with kx.client(http_client=given, verify=True) as client:
                await maybe(client.markets.get("KXTEST-1"))
        finally:
            await maybe(given.aclose() if kx.is_async else given.close())
        assert proxy.heads[0].startswith(f"CONNECT {_target(kx)} HTTP/1.1".encode())
        assert {request.client_port for request in kx.server.requests()} == set(
            proxy.upstream_ports
        )
