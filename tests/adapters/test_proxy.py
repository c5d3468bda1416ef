"""Clients that reach the API through an HTTP proxy's ``CONNECT`` tunnel.

Every client takes ``proxy=``: `kalshi_sync` and `kalshi_anyio` open the tunnel with
`kalshi_proto.proxy`, `kalshi_httpx` hands it to httpx (which also takes an httpx client with
its own proxy). The proxy (``tests/helpers/proxy.py``) is a plain socket relay written apart from
the SDK's tunnel code; the server behind it is the usual uvicorn test server, which verifies
every signature, so a call that works went through the tunnel with its TLS session and its
signed request intact.
"""

from __future__ import annotations

import base64
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest

from kalshi_proto.errors import (
    CertificateError,
    ConfigurationError,
    ConnectError,
    ConnectTimeout,
    ProxyError,
    TransportError,
)
from kalshi_proto.proxy import ProxyUrl
from kalshi_proto.rest.client import USER_AGENT
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import (
    FAST_RETRY,
    Driver,
    Flavour,
    backend_of,
    maybe,
    run_without_loop,
)
from tests.adapters.server import Fault
from tests.adapters.test_rest_clients import connection_limit, order_request
from tests.helpers.proxy import TunnelProxy, proxy_tls_context, tunnel_proxy

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy.disabled()
OURS = ("kalshi_sync", "kalshi_anyio")  #: the clients whose tunnel is `kalshi_proto.proxy`


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


def _target(kx: Driver) -> str:
    return f"127.0.0.1:{kx.server.port}"


def _ours(kx: Driver) -> bool:
    return kx.flavour.family in OURS


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
        assert proxy.headers()["host"] == _target(kx)
        seen = kx.server.requests()
        assert [request.operation_id for request in seen] == ["GetBalance", "GetMarket"]
        assert seen[0].auth == kx.server.ed25519.key_id  # the signature verified
        assert {request.client_port for request in seen} == set(proxy.upstream_ports)


async def test_concurrent_calls_share_at_most_max_connections_tunnels(kx: Driver) -> None:
    limit = {"max_connections": 3} if _ours(kx) else {"limits": httpx.Limits(max_connections=3)}
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url(), **limit) as client:

            async def one(number: int) -> str:
                reply = await maybe(client.markets.get(f"KXTEST-{number}"))
                return reply.market.ticker

            tickers: list[str] = []
            if kx.is_async:
                async with anyio.create_task_group() as group:
                    for number in range(24):

                        async def call(number: int = number) -> None:
                            tickers.append(await one(number))

                        group.start_soon(call)
            else:
                pool = ThreadPoolExecutor(8)
                try:
                    tickers = list(pool.map(lambda n: run_without_loop(one(n)), range(24)))
                finally:
                    pool.shutdown()
        assert sorted(tickers) == sorted(f"KXTEST-{number}" for number in range(24))
        assert 1 <= proxy.most_open <= 3
        assert {request.client_port for request in kx.server.requests()} == set(
            proxy.upstream_ports
        )


@pytest.mark.flavours(*OURS)
async def test_the_connect_request_carries_the_client_user_agent_and_nothing_else(
    kx: Driver,
) -> None:
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            await maybe(client.markets.get("KXTEST-1"))
        async with kx.client(proxy=proxy.url(), user_agent="my-bot/2") as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert proxy.headers(0) == {"host": _target(kx), "user-agent": USER_AGENT}
        assert proxy.headers(1) == {"host": _target(kx), "user-agent": "my-bot/2"}


async def test_a_proxy_url_object_is_taken(kx: Driver) -> None:
    with tunnel_proxy(credentials=("bot", "s@cret")) as proxy:
        given = ProxyUrl("127.0.0.1", proxy.port, "bot", "s@cret")
        async with kx.client(proxy=given) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 1
        assert len(kx.server.requests()) == 1


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
            assert "wrong-one" not in repr(client)
        assert len(proxy.heads) == 1  # not retried: the proxy would refuse again
    error = info.value
    assert error.status == 407
    assert "wrong-one" not in str(error)
    assert error.__notes__ == ["not retried: the proxy would refuse again (HTTP 407)"]
    assert kx.server.requests() == []
    if _ours(kx):
        assert str(error) == (
            f"the proxy 127.0.0.1:{proxy.port} refused the tunnel to {_target(kx)}: HTTP 407 "
            "Proxy Authentication Required (it refused the user name and password of the proxy "
            "URL)"
        )
    else:
        assert str(error) == (
            f"the proxy refused the tunnel to {_target(kx)}: HTTP 407 Proxy Authentication "
            "Required"
        )


async def test_the_proxy_password_is_in_no_log_line_error_or_repr(
    kx: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    package = "kalshi_httpx" if kx.flavour.family == "httpx" else kx.flavour.family
    caplog.set_level(logging.DEBUG, logger=package)
    secret = "pa55-w0rd-XYZ"
    texts: list[str] = []
    with tunnel_proxy(credentials=("bot", secret), answer=None) as proxy:
        url = proxy.url(f"bot:{secret}@")
        async with kx.client(proxy=url, retry=FAST_RETRY) as client:
            await maybe(client.markets.get("KXTEST-1"))  # through the tunnel
            texts.append(repr(client))
        wrong = proxy.url("bot:other-one@")
        async with kx.client(proxy=wrong, retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError) as info:
                await maybe(client.markets.get("KXTEST-1"))
        texts += [str(info.value), repr(info.value), *info.value.__notes__]
    assert any(record.name == package for record in caplog.records)  # it logged, at DEBUG
    for text in [caplog.text, *texts]:
        assert secret not in text and "other-one" not in text


@pytest.mark.flavours(*OURS)
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


async def test_an_order_refused_by_the_proxy_says_it_never_left(kx: Driver) -> None:
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    with tunnel_proxy(answer=answer) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(ProxyError) as info:
                await maybe(client.orders.create_v2(order_request()))
        assert len(proxy.heads) == 1
    assert info.value.status == 403
    assert info.value.__notes__ == ["not retried: the proxy would refuse again (HTTP 403)"]


@pytest.mark.flavours(*OURS)
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


async def test_a_proxy_that_never_answers_times_out(kx: Driver) -> None:
    with tunnel_proxy(silent=True) as proxy:
        async with kx.client(proxy=proxy.url(), timeout=0.3, retry=NO_RETRY) as client:
            started = kx.now()
            with pytest.raises(TransportError) as info:
                await maybe(client.markets.get("KXTEST-1"))
            assert kx.now() - started < 3
    assert isinstance(info.value, ConnectTimeout if _ours(kx) else TimeoutError)


async def test_a_proxy_that_is_not_there_is_a_connect_error(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = TunnelProxy()
    proxy.stop()  # its port now refuses connections
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    async with kx.client(proxy=proxy.url(), retry=NO_RETRY) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KXTEST-1"))
    assert not isinstance(info.value, ProxyError)
    if _ours(kx):
        assert str(info.value).startswith(f"cannot connect to the proxy 127.0.0.1:{proxy.port}: ")
        # A proxy was used: no note about the variable.
        assert not any("HTTPS_PROXY" in note for note in info.value.__notes__)


async def test_the_api_certificate_is_still_verified_inside_the_tunnel(kx: Driver) -> None:
    untrusting = ssl.create_default_context()  # the system CAs: not the test CA
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url(), **kx.tls(untrusting)) as client:
            with pytest.raises(CertificateError, match="certificate verify failed"):
                await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 1  # a certificate failure is not retried
    assert kx.server.requests() == []


async def test_a_tls_start_that_fails_inside_a_tunnel_costs_no_connection_slot(kx: Driver) -> None:
    # httpcore's tunnel connection (1.0.9) keeps its connection to the proxy, the CONNECT
    # answered, when the TLS start inside the tunnel fails; that connection looks busy for good,
    # and the pool never gives its slot back. With one connection, every later call waited for
    # it and failed as a ConnectTimeout (the REST soak found it). Each call here must fail on the
    # certificate, through a tunnel of its own.
    untrusting = ssl.create_default_context()  # the system CAs: not the test CA
    one = connection_limit(kx, 1)
    with tunnel_proxy() as proxy:
        options = {**kx.tls(untrusting), **one}
        async with kx.client(proxy=proxy.url(), timeout=2.0, retry=NO_RETRY, **options) as client:
            for _ in range(3):
                with pytest.raises(CertificateError, match="certificate verify failed"):
                    await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 3
    assert kx.server.requests() == []


@pytest.mark.parametrize("proxy", ["http://proxy.example.com:3128", "https://[2001:db8::1]:8443"])
async def test_a_loopback_api_through_a_proxy_elsewhere_is_refused(kx: Driver, proxy: str) -> None:
    with pytest.raises(ConfigurationError, match=r"would reach the proxy's own loopback"):
        kx.build(proxy=proxy)


@pytest.mark.flavours(*OURS)
@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("socks4://proxy.example.com", "a socks4:// proxy is not supported here"),
        ("https://proxy.example.com:99999", "Port out of range"),
        ("proxy.example.com:3128", "URL has no scheme"),
        (3128, "proxy must be a URL such as"),
    ],
)
def test_a_bad_proxy_is_refused_at_construction(flavour: Flavour, proxy: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        flavour.cls(proxy=proxy)


@pytest.mark.parametrize("context", ["a context", True])
def test_a_proxy_ssl_context_of_another_type_is_refused(flavour: Flavour, context: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"proxy_ssl_context must be an ssl\.SSLContext"):
        flavour.cls(proxy="https://proxy.example.com", proxy_ssl_context=context)


@pytest.mark.flavours("httpx")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"proxy": "proxy.example.com:3128"}, "URL has no scheme"),
        ({"proxy": "ftp://proxy.example.com"}, "a ftp:// proxy is not supported here"),
        ({"proxy": "https://"}, "proxy URL has no host"),
        ({"proxy": "https://proxy.example.com:99999"}, "Port out of range"),
        ({"proxy": "socks4://proxy.example.com"}, "a socks4:// proxy is not supported here"),
        ({"proxy": 3128}, "proxy must be a URL such as"),
        ({"proxy": "http://proxy.example.com", "transport": "T"}, "give proxy= or transport="),
        ({"proxy": "http://proxy.example.com", "http_client": "C"}, "give proxy= or http_client="),
    ],
)
def test_a_bad_proxy_is_refused_by_the_httpx_clients(
    flavour: Flavour, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = dict(kwargs)  # (shared by the flavours' variants)
    if kwargs.get("transport") == "T":
        kwargs["transport"] = (
            httpx.AsyncHTTPTransport() if flavour.is_async else httpx.HTTPTransport()
        )
    if kwargs.get("http_client") == "C":
        kwargs["http_client"] = httpx.AsyncClient() if flavour.is_async else httpx.Client()
    try:
        with pytest.raises(ConfigurationError, match=message) as info:
            flavour.cls(**kwargs)
        assert "proxy.example.com:99999" not in str(info.value)
    finally:
        for closable in (kwargs.get("transport"), kwargs.get("http_client")):
            if isinstance(closable, httpx.Client | httpx.HTTPTransport):
                closable.close()
            elif closable is not None:
                anyio.run(closable.aclose)


@pytest.mark.flavours("httpx")
async def test_a_given_proxy_wins_over_the_environment(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # the discard port: nothing there
    with tunnel_proxy() as proxy:
        async with kx.client(proxy=proxy.url()) as client:
            await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 1


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


# ---- https:// proxies: the CONNECT, and the API's TLS session, inside a TLS session with the
# proxy. Every client takes them; `kalshi_sync` runs the API's session on memory buffers
# (`_TunnelledTLS`), `kalshi_anyio` wraps one TLSStream in another, httpx does its own.


@pytest.fixture
def proxy_tls(kx: Driver) -> ssl.SSLContext:
    """The proxy's side of its TLS session: a certificate for 127.0.0.1 from the test CA."""
    return proxy_tls_context(kx.server.ca)


def trusting_the_proxy(kx: Driver) -> dict[str, Any]:
    """The option that makes a client trust the test CA for its session with the proxy."""
    return {"proxy_ssl_context": kx.server.ssl_context()}


async def test_calls_go_through_an_https_proxy_inside_its_tls_session(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    with tunnel_proxy(tls=proxy_tls, credentials=("bot", "s3cret")) as proxy:
        url = proxy.url("bot:s3cret@")
        assert url.startswith("https://")
        async with kx.client(proxy=url, **trusting_the_proxy(kx)) as client:
            balance = await maybe(client.portfolio.balance())
            market = await maybe(client.markets.get("KXTEST-1"))
            created = await maybe(client.orders.create_v2(order_request()))
        assert balance.balance >= 0
        assert market.market.ticker == "KXTEST-1"
        assert created.order_id
        assert len(proxy.heads) == 1  # one tunnel, kept alive
        assert proxy.heads[0].split(b"\r\n")[0].decode() == f"CONNECT {_target(kx)} HTTP/1.1"
        token = base64.b64encode(b"bot:s3cret").decode()
        assert proxy.headers()["proxy-authorization"] == f"Basic {token}"
        seen = kx.server.requests()
        assert [request.operation_id for request in seen] == [
            "GetBalance",
            "GetMarket",
            "CreateOrderV2",
        ]
        # The signatures of the private calls verified (GetMarket is public).
        assert [request.auth for request in seen] == [
            kx.server.ed25519.key_id,
            None,
            kx.server.ed25519.key_id,
        ]
        assert {request.client_port for request in seen} == set(proxy.upstream_ports)


async def test_large_answers_come_whole_through_an_https_proxy(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    # Answers of many TLS records each, inside records of the proxy's session, on tunnels
    # shared by concurrent calls.
    kx.server.script("/markets/KXBIG", Fault(pad=1_000_000), times=6)
    with tunnel_proxy(tls=proxy_tls) as proxy:
        options = {**trusting_the_proxy(kx), **connection_limit(kx, 2)}
        async with kx.client(proxy=proxy.url(), timeout=10.0, **options) as client:

            async def one() -> int:
                raw = (await maybe(client.markets.get("KXBIG"))).model_extra or {}
                return len(raw.get("padding", ""))

            sizes: list[int] = []
            if kx.is_async:
                async with anyio.create_task_group() as group:
                    for _ in range(6):

                        async def call() -> None:
                            sizes.append(await one())

                        group.start_soon(call)
            else:
                pool = ThreadPoolExecutor(3)
                try:
                    sizes = list(pool.map(lambda _: run_without_loop(one()), range(6)))
                finally:
                    pool.shutdown()
        assert sizes == [1_000_000] * 6
        assert 1 <= len(proxy.heads) <= 2


async def test_the_https_proxy_certificate_is_verified(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    # Without proxy_ssl_context, the system's certificates (not the test CA) judge the proxy.
    with tunnel_proxy(tls=proxy_tls) as proxy:
        async with kx.client(proxy=proxy.url(), retry=FAST_RETRY) as client:
            with pytest.raises(TransportError, match="certificate verify failed") as info:
                await maybe(client.markets.get("KXTEST-1"))
        assert proxy.heads == []  # no CONNECT went out
    assert kx.server.requests() == []
    if _ours(kx):
        assert isinstance(info.value, CertificateError)
        assert str(info.value).startswith(f"TLS handshake with the proxy 127.0.0.1:{proxy.port}")
        assert proxy.accepted == 1  # a certificate failure is not retried


async def test_the_api_certificate_is_verified_inside_an_https_proxy(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    untrusting = ssl.create_default_context()  # the system CAs: not the test CA
    with tunnel_proxy(tls=proxy_tls) as proxy:
        options = {**kx.tls(untrusting), **trusting_the_proxy(kx)}
        async with kx.client(proxy=proxy.url(), retry=NO_RETRY, **options) as client:
            with pytest.raises(CertificateError, match="certificate verify failed") as info:
                await maybe(client.markets.get("KXTEST-1"))
        assert len(proxy.heads) == 1  # the tunnel opened; the API's certificate failed in it
    assert kx.server.requests() == []
    if _ours(kx):
        assert str(info.value).startswith(f"TLS handshake with {_target(kx)} failed")


async def test_a_tunnel_the_server_closed_while_idle_is_replaced(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    # The server's close reaches the client as the end of the proxy's session: an idle
    # connection so ended is seen before it is reused, in either session's buffers or on the
    # socket.
    with tunnel_proxy(tls=proxy_tls) as proxy:
        options = trusting_the_proxy(kx)
        async with kx.client(proxy=proxy.url(), retry=NO_RETRY, **options) as client:
            await maybe(client.markets.get("KXA"))
            assert kx.server.close_idle_connections() == 1
            await kx.sleep(0.2)  # for the close to reach the client through the proxy
            # No retries: sending on the dead connection would fail this call.
            reply = await maybe(client.markets.get("KXB"))
        assert reply.market.ticker == "KXB"
        assert len(proxy.heads) == 2
    assert kx.server.connections() == 2


async def test_an_https_proxy_that_never_answers_the_connect_times_out(
    kx: Driver, proxy_tls: ssl.SSLContext
) -> None:
    with tunnel_proxy(tls=proxy_tls, silent=True) as proxy:
        options = trusting_the_proxy(kx)
        async with kx.client(proxy=proxy.url(), timeout=0.3, retry=NO_RETRY, **options) as client:
            started = kx.now()
            with pytest.raises(TransportError) as info:
                await maybe(client.markets.get("KXTEST-1"))
            assert kx.now() - started < 3
    assert isinstance(info.value, ConnectTimeout if _ours(kx) else TimeoutError)
