"""The REST clients of every adapter against a real HTTP server over TLS on loopback.

Each test runs on the six flavours listed in ``conftest.py`` (two blocking clients without an
event loop, two async clients on asyncio and on trio). The server (``server.py``) is uvicorn
with httptools, an HTTP implementation independent of the h11 the core uses; it verifies every
signature with the public key and follows a per-test fault script.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import logging
import os
import re
import resource
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest
import sniffio

from kalshi_proto.errors import (
    ApiError,
    AuthenticationError,
    AuthRequiredError,
    CallTimeout,
    CertificateError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    ConnectTimeout,
    KalshiError,
    LocalProtocolError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReadError,
    ReadTimeout,
    ServerError,
    TransportError,
    ValidationError,
)
from kalshi_proto.rest.call import HttpResponse, Page
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated.models import (
    CreateOrderV2Request,
    CreateOrderV2Response,
    GetBalanceResponse,
    Market,
)
from kalshi_proto.rest.ratelimit import Bucket, BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.conftest import (
    Client,
    Driver,
    Flavour,
    backend_of,
    close_iterator,
    collect,
    first,
    maybe,
    open_sockets_to,
)
from tests.adapters.server import PREFIX, Fault, KeyPair

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    """asyncio or trio for the async flavours; None (no loop at all) for the blocking ones."""
    return backend_of(flavour)


NO_RETRY = RetryPolicy.disabled()
ORDERS = "/portfolio/events/orders"


def order_request() -> CreateOrderV2Request:
    return CreateOrderV2Request(
        ticker="KXBTC-25DEC31-T100000",
        client_order_id="order-0001",
        side="bid",
        count=Decimal("10"),
        price=Decimal("0.5600"),
        time_in_force="good_till_canceled",
        self_trade_prevention_type="maker",
    )


#: The exact body `order_request` must put on the wire: prices and counts as strings.
ORDER_JSON = (
    b'{"ticker":"KXBTC-25DEC31-T100000","client_order_id":"order-0001","side":"bid",'
    b'"count":"10","price":"0.5600","time_in_force":"good_till_canceled",'
    b'"self_trade_prevention_type":"maker"}'
)


async def wait_until(
    kx: Driver, condition_met: Callable[[], bool], what: str, seconds: float = 3.0
) -> None:
    """Poll ``condition_met()`` until it is true; fail after ``seconds``."""
    deadline = kx.now() + seconds
    while not condition_met():
        assert kx.now() < deadline, f"timed out waiting for {what}"
        await kx.sleep(0.01)


# ---- credentials and signing -----------------------------------------------------------------


async def test_public_get_works_without_credentials(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        assert client.is_authenticated is False
        reply = await maybe(client.markets.get("KXTEST-1"))
    assert reply.market.ticker == "KXTEST-1"
    [seen] = kx.server.requests()
    assert (seen.method, seen.path, seen.operation_id) == (
        "GET",
        f"{PREFIX}/markets/KXTEST-1",
        "GetMarket",
    )
    assert not any(name.startswith("kalshi-access") for name in seen.headers)


async def test_private_call_without_credentials_sends_nothing(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        with pytest.raises(AuthRequiredError, match="GetBalance"):
            await maybe(client.portfolio.balance())
        with pytest.raises(AuthRequiredError, match="CreateOrderV2"):
            await maybe(client.orders.create_v2(order_request()))
    assert kx.server.requests() == []


@pytest.mark.parametrize("key_kind", ["rsa", "ed25519"])
async def test_private_get_is_signed_and_verified(kx: Driver, key_kind: str) -> None:
    key = kx.server.rsa if key_kind == "rsa" else kx.server.ed25519
    async with kx.client(key=key) as client:
        assert client.is_authenticated is True
        balance = await maybe(client.portfolio.balance(subaccount=0))
        await maybe(client.markets.get("KXPUBLIC"))
    assert isinstance(balance, GetBalanceResponse)
    assert balance.balance_dollars == Decimal("0.5600")
    private, public = kx.server.requests()
    # The query is not signed; the server verified over the path alone.
    assert private.query == "subaccount=0"
    assert private.auth == key.key_id
    assert private.headers["kalshi-access-key"] == key.key_id
    # A public call from an authenticated client carries no credentials.
    assert public.auth is None
    assert "kalshi-access-signature" not in public.headers


async def test_escaped_path_parameter_is_signed_as_sent(kx: Driver) -> None:
    # Every reserved character, a percent sign and a non-ASCII letter: the path is signed in
    # the percent-encoded form the transport sends, and the server routes it back intact.
    order_id = "a b/c?d#e%f~g'h(i)j*k!l+m=n&o;p:q@r,s$t[u]v{w}x|y\\z^`\u00e9"
    async with kx.client() as client:
        reply = await maybe(client.orders.get(order_id))
        await maybe(client.markets.list(tickers="KXA:1,KXB 2~x'y"))
    assert reply.order.order_id == order_id
    private, public = kx.server.requests()
    assert private.operation_id == "GetOrder"
    assert private.auth == kx.server.ed25519.key_id
    assert private.path == (
        f"{PREFIX}/portfolio/orders/a%20b%2Fc%3Fd%23e%25f~g%27h%28i%29j%2Ak%21l%2Bm%3Dn%26o%3B"
        "p%3Aq%40r%2Cs%24t%5Bu%5Dv%7Bw%7Dx%7Cy%5Cz%5E%60%C3%A9"
    )
    # The query reaches the server exactly as the core encoded it.
    assert public.query == "tickers=KXA:1,KXB%202~x%27y"


async def test_wrong_private_key_is_an_authentication_error(kx: Driver) -> None:
    impostor = KeyPair.ed25519(kx.server.rsa.key_id)  # the right key id, another key
    async with kx.client(key=impostor) as client:
        with pytest.raises(AuthenticationError) as info:
            await maybe(client.portfolio.balance())
    error = info.value
    assert (error.status, error.code, error.operation_id) == (
        401,
        "invalid_signature",
        "GetBalance",
    )
    assert error.message == "the signature does not verify"
    assert error.details == "signature check"
    assert len(kx.server.requests()) == 1  # 401 is not retried
    # The server (uvicorn) sends a Date header: the note can rule the clock out.
    [note] = error.__notes__
    assert note.startswith(f"the request was signed with key id {kx.server.rsa.key_id!r} for ")
    assert note.endswith("; this machine's clock agrees with the server's Date header")


async def test_unknown_key_id_is_an_authentication_error(kx: Driver) -> None:
    stranger = KeyPair.ed25519("99999999-0000-0000-0000-unknown00000")
    async with kx.client(key=stranger) as client:
        with pytest.raises(AuthenticationError) as info:
            await maybe(client.orders.create_v2(order_request()))
    assert info.value.code == "unknown_api_key"
    [seen] = kx.server.requests()
    assert seen.auth is None and seen.status == 401


# ---- pagination ------------------------------------------------------------------------------


async def test_list_returns_a_page_with_items_and_cursor(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        page = await maybe(client.markets.list(limit=2, status="open"))
    assert isinstance(page, Page)
    assert all(isinstance(item, Market) for item in page)
    assert [m.ticker for m in page] == ["x-P1-0", "x-P1-1"]
    assert (page.cursor, page.has_next) == ("p2", True)
    [seen] = kx.server.requests()
    assert seen.query == "limit=2&status=open"


async def test_list_all_walks_every_page_lazily(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        items = client.markets.list_all(limit=2)
        try:
            head = await first(items)
            assert len(kx.server.requests()) == 1  # one page fetched for the first item
            rest = await collect(items)
        finally:
            await close_iterator(items)
    tickers = [head.ticker] + [m.ticker for m in rest]
    assert tickers == [f"x-P{page}-{i}" for page in (1, 2, 3) for i in (0, 1)]
    queries = [r.query for r in kx.server.requests()]
    assert queries == ["limit=2", "limit=2&cursor=p2", "limit=2&cursor=p3"]


async def test_list_all_stops_after_max_pages(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        markets = await collect(client.markets.list_all(max_pages=2))
    assert len(markets) == 4
    assert len(kx.server.requests()) == 2


async def test_list_all_refuses_max_pages_zero(kx: Driver) -> None:
    async with kx.client(key=None) as client:
        with pytest.raises(ValueError, match="max_pages"):
            await collect(client.markets.list_all(max_pages=0))
    assert kx.server.requests() == []


async def test_private_list_all_signs_every_page(kx: Driver) -> None:
    async with kx.client(key=kx.server.ed25519) as client:
        orders = await collect(client.orders.list_all(limit=2))
    assert len({o.order_id for o in orders}) == 6
    seen = kx.server.requests()
    assert [r.auth for r in seen] == [kx.server.ed25519.key_id] * 3
    assert [r.query for r in seen] == ["limit=2", "limit=2&cursor=p2", "limit=2&cursor=p3"]


# ---- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ValidationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (418, ApiError),
    ],
)
async def test_error_status_maps_to_exception(
    kx: Driver, status: int, error_class: type[ApiError]
) -> None:
    kx.server.fail(
        "/markets/KXGONE", status, code="some_code", message="what went wrong", details="why"
    )
    async with kx.client(retry=NO_RETRY) as client:
        with pytest.raises(error_class) as info:
            await maybe(client.markets.get("KXGONE"))
    error = info.value
    assert type(error) is error_class
    assert (error.status, error.code, error.message, error.details) == (
        status,
        "some_code",
        "what went wrong",
        "why",
    )
    assert error.operation_id == "GetMarket"
    assert error.request_id is not None and error.request_id.startswith("req-")
    assert len(kx.server.requests()) == 1


async def test_validation_error_carries_details(kx: Driver) -> None:
    kx.server.fail(
        ORDERS, 400, code="invalid_parameters", message="bad order", details="price out of range"
    )
    async with kx.client() as client:
        with pytest.raises(ValidationError) as info:
            await maybe(client.orders.create_v2(order_request()))
    assert info.value.details == "price out of range"
    assert "price out of range" in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
    ids=["seconds", "decimal", "past-http-date", "unreadable", "absent"],
)
async def test_rate_limit_error_reads_retry_after(
    kx: Driver, header: str | None, expected: float | None
) -> None:
    headers = (("Retry-After", header),) if header is not None else ()
    kx.server.fail("/markets", 429, headers=headers)
    async with kx.client(retry=NO_RETRY) as client:
        with pytest.raises(RateLimitError) as info:
            await maybe(client.markets.list())
    assert info.value.retry_after == expected


async def test_error_body_that_is_not_json_becomes_the_message(kx: Driver) -> None:
    kx.server.fail("/markets/KX", 502, body=b"<html>bad gateway</html>")
    async with kx.client(retry=NO_RETRY) as client:
        with pytest.raises(ServerError) as info:
            await maybe(client.markets.get("KX"))
    assert (info.value.status, info.value.message, info.value.code) == (
        502,
        "<html>bad gateway</html>",
        None,
    )


# ---- retries ---------------------------------------------------------------------------------


async def test_get_is_retried_after_two_503s(kx: Driver) -> None:
    # Before 23b398f a call that succeeded after a retry raised the error of the retried
    # attempt; this suite caught it against the real server too.
    kx.server.fail("/portfolio/balance", 503, times=2)
    async with kx.client(key=kx.server.rsa) as client:
        balance = await maybe(client.portfolio.balance())
    assert isinstance(balance, GetBalanceResponse)
    seen = kx.server.requests()
    assert [r.status for r in seen] == [503, 503, 200]
    # Every attempt is signed afresh and verifies.
    assert [r.auth for r in seen] == [kx.server.rsa.key_id] * 3


async def test_each_attempt_and_retry_is_logged_without_key_or_signature(
    kx: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    package = "kalshi_httpx" if kx.flavour.family == "httpx" else kx.flavour.family
    caplog.set_level(logging.DEBUG, logger=package)
    kx.server.fail("/portfolio/balance", 503)
    async with kx.client(key=kx.server.rsa) as client:
        await maybe(client.portfolio.balance())
    records = [r for r in caplog.records if r.name == package]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.INFO, logging.DEBUG]
    failed, retry, answered = (r.getMessage() for r in records)
    seen = kx.server.requests()
    path = "/trade-api/v2/portfolio/balance"
    first = re.fullmatch(
        rf"GetBalance: GET {path} -> 503 in [0-9.]+ ms, attempt 1 \[request id req-(\d+)\]", failed
    )
    assert first is not None, failed
    assert re.fullmatch(
        r"GetBalance: HTTP 503 on GET, attempt 1 of \d, backing off [0-9.]+s \(ServerError: .*\)",
        retry,
    ), retry
    assert re.fullmatch(
        rf"GetBalance: GET {path} -> 200 in [0-9.]+ ms, attempt 2 \[request id req-{int(first[1]) + 1}\]",
        answered,
    ), answered
    assert [r.__dict__["kalshi_status"] for r in records[::2]] == [r.status for r in seen]
    # Nothing of the signed headers reaches the log: not the key id, nor any signature.
    signed = [r.headers[f"kalshi-access-{name}"] for r in seen for name in ("key", "signature")]
    assert kx.server.rsa.key_id in signed
    for value in signed:
        assert value not in caplog.text


async def test_post_is_not_retried_after_503(kx: Driver) -> None:
    kx.server.fail(ORDERS, 503, times=5)
    async with kx.client() as client:
        with pytest.raises(ServerError) as info:
            await maybe(client.orders.create_v2(order_request()))
    assert info.value.status == 503
    assert len(kx.server.requests()) == 1
    assert kx.server.pending_faults() == 4


async def test_retry_policy_bounds_the_attempts(kx: Driver) -> None:
    kx.server.fail("/markets", 500, times=10)
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, retry_max_delay=0.02)
    async with kx.client(retry=policy) as client:
        with pytest.raises(ServerError):
            await maybe(client.markets.list())
    assert len(kx.server.requests()) == 4
    assert kx.server.pending_faults() == 6


async def test_retry_after_is_honoured_between_attempts(kx: Driver) -> None:
    kx.server.fail("/markets", 429, headers=(("Retry-After", "0.2"),))
    async with kx.client() as client:
        start = kx.now()
        page = await maybe(client.markets.list())
        elapsed = kx.now() - start
    assert len(page) == 2
    assert [r.status for r in kx.server.requests()] == [429, 200]
    assert elapsed >= 0.2


async def test_dropped_connection_on_get_is_retried(kx: Driver) -> None:
    kx.server.script("/markets/KXDROP", Fault(drop=True))
    async with kx.client() as client:
        reply = await maybe(client.markets.get("KXDROP"))
    assert reply.market.ticker == "KXDROP"
    assert len(kx.server.requests()) == 2
    assert kx.server.connections() == 2  # the broken connection was not reused


async def test_dropped_connection_on_post_is_a_read_error(kx: Driver) -> None:
    kx.server.script(ORDERS, Fault(drop=True), times=3)
    async with kx.client() as client:
        with pytest.raises(ReadError) as info:
            await maybe(client.orders.create_v2(order_request()))
    assert not isinstance(info.value, TimeoutError)
    assert len(kx.server.requests()) == 1


async def test_a_failed_orders_traceback_with_locals_shows_no_signature(kx: Driver) -> None:
    # Error reporters (Sentry, rich, pytest --showlocals) print the locals of every frame; the
    # adapter's frames hold the signed request, its headers and the bytes written.
    kx.server.script(ORDERS, Fault(drop=True))
    async with kx.client() as client:
        with pytest.raises(ReadError) as info:
            await maybe(client.orders.create_v2(order_request()))
    report = "".join(  # made before the signature is a local of this frame too
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    signature = kx.server.requests()[0].headers["kalshi-access-signature"]
    assert len(signature) > 40
    assert signature not in report
    assert "<hidden>" in report  # the request is among the locals shown, masked


@pytest.mark.parametrize(
    "answer",
    [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", b""],
    ids=["not-http", "bad-header", "no-answer"],
)
async def test_garbled_or_missing_answer_is_a_read_error(kx: Driver, answer: bytes) -> None:
    async with kx.raw_server(answer) as raw:
        async with kx.client(base_url=raw.base_url) as client:
            with pytest.raises(ReadError):
                await maybe(client.markets.get("KX"))
            assert raw.accepted == 3  # a GET: every attempt of FAST_RETRY, each on a new connection
            with pytest.raises(ReadError):
                await maybe(client.orders.create_v2(order_request()))
            assert raw.accepted == 4  # a POST: once


def status_answer(active: bool) -> bytes:
    """A whole HTTP response to exchange.status(), as a raw server sends it."""
    body = json.dumps({"exchange_active": active, "trading_active": active}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.mark.known_bug(
    "httpx",
    reason="upstream, httpcore 1.0.9: bytes after a response stay in h11's buffer and are read "
    "as the answer to the connection's next request (RFC 9112, section 6.3 forbids it)",
    raises=AssertionError,
)
async def test_bytes_after_an_answer_are_not_the_answer_to_the_next_request(kx: Driver) -> None:
    # The server answers each request twice in one write: the second answer answers nothing.
    async with kx.raw_server(status_answer(True) + status_answer(False), keep_open=True) as raw:
        async with kx.client(base_url=raw.base_url, retry=NO_RETRY) as client:
            first = await maybe(client.exchange.status())
            second = await maybe(client.exchange.status())
    assert (first.exchange_active, second.exchange_active) == (True, True)
    assert raw.accepted == 2  # the first connection was not used again


@pytest.mark.known_bug(
    "httpx_async-asyncio",
    "httpx_async-trio",
    reason="upstream, httpcore 1.0.9: a TLS record after a response waits in anyio's TLS "
    "buffer, unseen by the pool's check of an idle connection, and is read as the answer to the "
    "connection's next request",
    raises=AssertionError,
)
async def test_a_tls_record_after_an_answer_is_not_the_answer_to_the_next_request(
    kx: Driver,
) -> None:
    # As above, but the second answer is a TLS record of its own, sent with the first in one
    # write: the client's TLS layer reads both from the socket and decrypts only the first, so
    # polling the socket for bytes left over sees nothing.
    records = (status_answer(True), status_answer(False))
    async with kx.raw_server(status_answer(True), records=records) as raw:
        async with kx.client(base_url=raw.base_url, retry=NO_RETRY) as client:
            answers = []
            for _ in range(3):
                answers.append((await maybe(client.exchange.status())).exchange_active)
                await anyio.sleep(0.05) if kx.flavour.is_async else time.sleep(0.05)
    assert answers == [True, True, True]
    assert raw.accepted == 3  # each connection sent an extra answer, and was not used again


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_no_answer_at_all_says_so(kx: Driver) -> None:
    async with kx.raw_server(b"") as raw:
        async with kx.client(base_url=raw.base_url, retry=NO_RETRY) as client:
            with pytest.raises(ReadError) as info:
                await maybe(client.markets.get("KX"))
    assert str(info.value) == "the server closed the connection before answering"


async def test_refused_connection_is_a_connect_error(kx: Driver) -> None:
    async with kx.raw_server(b"") as raw:
        base_url = raw.base_url
    # The raw server is gone; its port now refuses connections.
    async with kx.client(base_url=base_url) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KX"))
    port = base_url.split(":")[2].split("/")[0]
    assert str(info.value).startswith(f"cannot connect to 127.0.0.1:{port}: ")


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_failed_connection_says_when_a_proxy_variable_is_set_but_not_used(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with kx.raw_server(b"") as raw:
        base_url = raw.base_url
    package = kx.flavour.id.split("-")[0]
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    async with kx.client(base_url=base_url, retry=NO_RETRY) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KX"))
    assert info.value.__notes__[0] == (
        f"ALL_PROXY is set, but {package} connects directly unless given a proxy: "
        "pass proxy=os.environ['ALL_PROXY'], or use kalshi_httpx"
    )
    monkeypatch.delenv("ALL_PROXY")
    async with kx.client(base_url=base_url, retry=NO_RETRY) as client:
        with pytest.raises(ConnectError) as info:
            await maybe(client.markets.get("KX"))
    assert not any("connects directly" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_server_that_chooses_http2_by_alpn_is_refused_with_a_clear_error(
    kx: Driver,
) -> None:
    # With a context offering h2 (one made for an HTTP/2 client, say), a server that chose it
    # got HTTP/1.1 bytes, and its answer read as a garbled response.
    offers_h2 = kx.server.ssl_context()
    offers_h2.set_alpn_protocols(["h2", "http/1.1"])
    async with kx.raw_server(b"HTTP/1.1 200 OK\r\n\r\n", alpn=("h2",)) as raw:
        port = raw.base_url.split(":")[2].split("/")[0]
        async with kx.client(base_url=raw.base_url, **kx.tls(offers_h2)) as client:
            with pytest.raises(ConfigurationError) as info:
                await maybe(client.markets.get("KX"))
        assert raw.accepted == 1  # not retried: it would choose h2 again
        left_open = open_sockets_to(int(port))
    assert str(info.value).startswith(
        f"the server at 127.0.0.1:{port} chose 'h2' from the protocols the ssl_context offers "
        "by ALPN, and this client speaks HTTP/1.1 only"
    )
    assert left_open == 0


async def test_untrusted_certificate_is_a_certificate_error_that_is_not_retried(
    kx: Driver,
) -> None:
    trusts_nothing = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    async with kx.client(**kx.tls(trusts_nothing), retry=RetryPolicy(max_attempts=4)) as client:
        with pytest.raises(CertificateError) as info:
            await maybe(client.markets.get("KX"))
    assert isinstance(info.value, ConnectError)
    assert str(info.value).startswith(f"TLS handshake with 127.0.0.1:{kx.server.port} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    # One attempt: after four, the note would say "attempt 4 of 4, no attempts left".
    assert info.value.__notes__ == ["not retried: the server's certificate failed verification"]
    assert kx.server.requests() == []


@contextlib.contextmanager
def plain_http_listener(answer: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """A loopback port where no TLS is spoken: each connection's first bytes (a ClientHello,
    for a TLS client) are recorded, ``answer`` is written back and the connection closed.
    Yields the port and the list of first reads."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stopping = threading.Event()
    received: list[bytes] = []

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    received.append(conn.recv(65536))
                    conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, name="plain-http", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), received
    finally:
        stopping.set()
        thread.join(10)
        listener.close()


async def test_a_server_that_does_not_speak_tls_is_a_connect_error_that_is_retried(
    kx: Driver,
) -> None:
    # An https URL to a plain HTTP port (a port mix-up, a proxy answering in clear): the
    # handshake reads an HTTP answer where a TLS record should be. That fails before a byte of
    # the request is written, so a GET is tried again; the error names where, and says it was
    # the handshake, not a certificate.
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with plain_http_listener(answer) as (port, received):
        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        twice = RetryPolicy(max_attempts=2, base_delay=0.01)
        async with kx.client(base_url=base_url, retry=twice) as client:
            with pytest.raises(ConnectError) as info:
                await maybe(client.markets.get("KX"))
        left_open = open_sockets_to(port)
    error = info.value
    assert not isinstance(error, CertificateError)
    assert str(error).startswith(f"TLS handshake with 127.0.0.1:{port} failed: ")
    assert "WRONG_VERSION_NUMBER" in str(error)  # docs/troubleshooting.md says what it means
    assert error.__notes__ == [
        "not retried: connection error on GET, attempt 2 of 2, no attempts left"
    ]
    assert len(received) == 2
    assert all(first.startswith(b"\x16\x03") for first in received)  # TLS handshake records
    assert left_open == 0


async def test_tls_handshake_that_never_completes_is_a_connect_timeout(kx: Driver) -> None:
    async with kx.silent_listener() as port:
        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        async with kx.client(base_url=base_url, timeout=0.2, retry=NO_RETRY) as client:
            start = kx.now()
            with pytest.raises(ConnectTimeout) as info:
                await maybe(client.markets.get("KX"))
            elapsed = kx.now() - start
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, ConnectError)
        assert elapsed >= 0.2
        left_open = open_sockets_to(port)
        # Drop the traceback, so that a leaked socket goes to the GC with this test, not a later one.
        del info
    # The half-open connection was closed, not left to the garbage collector.
    assert left_open == 0


@pytest.mark.flavours("async")
async def test_cancelled_tls_handshake_closes_the_socket(kx: Driver) -> None:
    # httpcore 1.0.9 closes the TCP stream of a failed TLS start on an Exception only: the
    # httpx client's pools close it on a cancellation too (kalshi_httpx._async_http2).
    async with kx.silent_listener() as port:
        base_url = f"https://127.0.0.1:{port}{PREFIX}"
        async with kx.client(base_url=base_url, retry=NO_RETRY) as client:
            with anyio.move_on_after(0.1) as scope:
                await maybe(client.markets.get("KX"))
            assert scope.cancelled_caught
        left_open = open_sockets_to(port)
    assert left_open == 0


# ---- timeouts --------------------------------------------------------------------------------


async def test_slow_post_raises_read_timeout(kx: Driver) -> None:
    kx.server.script(ORDERS, Fault(delay=3))
    async with kx.client(timeout=0.2) as client:
        start = kx.now()
        with pytest.raises(ReadTimeout) as info:
            await maybe(client.orders.create_v2(order_request()))
        elapsed = kx.now() - start
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, TransportError)
    assert elapsed >= 0.2
    assert len(kx.server.requests()) == 1


async def test_slow_get_is_retried_then_raises_read_timeout(kx: Driver) -> None:
    kx.server.script("/markets/KXSLOW", Fault(delay=3), times=2)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    async with kx.client(timeout=0.1, retry=policy) as client:
        with pytest.raises(ReadTimeout):
            await maybe(client.markets.get("KXSLOW"))
    assert len(kx.server.requests()) == 2


async def test_a_view_with_a_short_timeout_shares_the_client_and_its_connection(
    kx: Driver,
) -> None:
    kx.server.script("/markets/KXSLOW", Fault(delay=0.5))
    async with kx.client(timeout=5.0) as client:
        quick = client.with_options(timeout=0.1, retry=NO_RETRY)
        await maybe(quick.markets.get("KXFIRST"))
        await maybe(client.markets.get("KXSECOND"))  # the same connection, kept alive
        with pytest.raises(ReadTimeout):
            await maybe(quick.markets.get("KXSLOW"))
        assert (await maybe(client.markets.get("KXSLOW"))).market.ticker == "KXSLOW"
    first, second, slow, slow_again = kx.server.requests()
    assert first.client_port == second.client_port
    assert slow.api_path == slow_again.api_path == "/markets/KXSLOW"


async def test_timeout_bounds_the_whole_attempt_not_each_read(kx: Driver) -> None:
    # Eight body chunks 0.1 s apart: no read waits 0.15 s, the whole answer takes 0.7 s or more.
    kx.server.script(ORDERS, Fault(trickle=0.1))
    async with kx.client(timeout=0.15) as client:
        with pytest.raises(ReadTimeout):
            await maybe(client.orders.create_v2(order_request()))


def connection_limit(kx: Driver, count: int) -> dict[str, object]:
    """The keyword arguments that give a client of ``kx``'s flavour at most ``count``
    connections."""
    if kx.flavour.family == "httpx":
        return {"limits": httpx.Limits(max_connections=count, max_keepalive_connections=count)}
    return {"max_connections": count}


async def test_a_response_head_that_trickles_in_ends_the_attempt(kx: Driver) -> None:
    # A byte of the head every 0.05 s: no read ever waits long, and the head takes 4 s. (The
    # blocking httpx client holds each read to what is left: kalshi_httpx._deadline.)
    # The attempt costs its connection, not the connection's slot: with one connection, the
    # next call connects again (a lost slot would make it wait, a ConnectTimeout).
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"p" * 60
    one = connection_limit(kx, 1)
    async with kx.raw_server(head, drip=0.05) as raw:
        async with kx.client(base_url=raw.base_url, timeout=0.3, retry=NO_RETRY, **one) as client:
            elapsed = []
            for _ in range(2):
                start = kx.now()
                with pytest.raises(ReadTimeout):
                    await maybe(client.orders.create_v2(order_request()))
                elapsed.append(kx.now() - start)
        accepted = raw.accepted
    assert max(elapsed) < 3.0  # each ends at 0.3 s, against the 4 s the head takes
    assert accepted == 2


async def test_a_body_that_stops_coming_ends_the_attempt_at_its_deadline(kx: Driver) -> None:
    # The head trickles in over about 0.8 s of the 1.2 s timeout, then the body stops after its
    # first byte. The read that waits for the rest must end at the attempt's deadline, not a
    # whole timeout after it began (about 2 s).
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{"
    )
    async with kx.raw_server(answer, drip=0.01, keep_open=True) as raw:
        async with kx.client(base_url=raw.base_url, timeout=1.2, retry=NO_RETRY) as client:
            start = kx.now()
            with pytest.raises(ReadTimeout):
                await maybe(client.markets.get("KXSTALL"))
            elapsed = kx.now() - start
    assert elapsed < 1.7


@pytest.mark.flavours("async")
async def test_a_call_that_finds_no_free_connection_in_time_is_a_connect_timeout(
    kx: Driver,
) -> None:
    # One connection, which a slow call holds: the next call waits for it past its timeout,
    # and fails saying nothing was sent (a ConnectTimeout), which the server confirms.
    kx.server.script("/markets/KXSLOW", Fault(delay=1.0))
    one = connection_limit(kx, 1)
    async with kx.client(timeout=5.0, retry=NO_RETRY, **one) as client:
        quick = client.with_options(timeout=0.3)
        outcomes: list[object] = []

        async def slow() -> None:
            outcomes.append(await maybe(client.markets.get("KXSLOW")))

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await anyio.sleep(0.2)  # the slow call holds the connection
            start = kx.now()
            with pytest.raises(ConnectTimeout):
                await maybe(quick.orders.create_v2(order_request()))
            elapsed = kx.now() - start
    assert elapsed < 0.9  # its own timeout, not the slow call's end
    assert len(outcomes) == 1
    assert [seen.api_path for seen in kx.server.requests()] == ["/markets/KXSLOW"]


async def test_total_timeout_caps_the_attempt_timeout(kx: Driver) -> None:
    kx.server.script("/markets/KXSLOW", Fault(delay=3), times=5)
    policy = RetryPolicy(max_attempts=5, base_delay=0.05, total_timeout=0.2)
    async with kx.client(timeout=10, retry=policy) as client:
        start = kx.now()
        with pytest.raises(ReadTimeout):
            await maybe(client.markets.get("KXSLOW"))
        elapsed = kx.now() - start
    # The attempt was cut at the total timeout, not at timeout=10 or the server's 3 s delay,
    # and no retry was started once the time was up.
    assert 0.2 <= elapsed < 2.5
    assert len(kx.server.requests()) == 1


async def test_total_timeout_bounds_a_get_that_keeps_failing(kx: Driver) -> None:
    kx.server.fail("/markets", 503, times=1000)
    policy = RetryPolicy(
        max_attempts=1000, base_delay=0.01, retry_max_delay=0.03, total_timeout=0.3
    )
    async with kx.client(retry=policy) as client:
        start = kx.now()
        with pytest.raises((ServerError, CallTimeout, ReadTimeout, ConnectTimeout)) as info:
            await maybe(client.markets.list())
        elapsed = kx.now() - start
    # Which error the caller gets depends on timing near the deadline:
    # - ServerError (the last answer) when the next back-off would pass the deadline;
    # - CallTimeout, caused by that ServerError, when a back-off ended just before the deadline
    #   and the sleep overshot it;
    # - ReadTimeout when an attempt went out with only a sliver of time left (its timeout is
    #   capped by what remains of total_timeout) and the answer did not make it;
    # - ConnectTimeout when such an attempt did not even reach a connection in time (nothing
    #   was sent: the async httpx client marks a request as a connection takes it).
    if isinstance(info.value, CallTimeout):
        assert isinstance(info.value.__cause__, ServerError)
        assert "total_timeout of 0.3s" in str(info.value)
    attempts = len(kx.server.requests())
    assert 3 <= attempts < 1000  # the time ran out, not the attempts
    assert 0.3 - 0.03 <= elapsed < 5


async def test_rate_limit_wait_past_total_timeout_is_a_call_timeout(kx: Driver) -> None:
    # Each GetMarkets costs 10 tokens; the second call would wait 10 s for the bucket.
    slow = BucketLimit(refill_rate=1, capacity=10)
    policy = RetryPolicy(max_attempts=1, total_timeout=0.5)
    async with kx.client(rate_limit=RateLimiter(slow, slow), retry=policy) as client:
        await maybe(client.markets.list())
        with pytest.raises(CallTimeout, match="rate limiter"):
            await maybe(client.markets.list())
    assert len(kx.server.requests()) == 1


async def test_a_429_from_the_server_makes_the_next_call_wait_for_the_refill(kx: Driver) -> None:
    # A bucket of ten calls, refilled at 20 tokens a second: the local limiter would let the
    # second call go at once, but the server's 429 says the account's bucket is empty.
    kx.server.fail("/markets", 429)
    bucket = BucketLimit(refill_rate=20, capacity=100)
    limiter = RateLimiter(bucket, bucket)
    async with kx.client(key=None, rate_limit=limiter, retry=RetryPolicy.disabled()) as client:
        with pytest.raises(RateLimitError):
            await maybe(client.markets.list())
        assert limiter.bucket(Bucket.READ).available(kx.now()) < 10
        await maybe(client.markets.list())
    first, second = kx.server.requests("/markets")
    # The bucket was emptied after the first request arrived; 10 tokens take 0.5 s to refill.
    assert second.arrived - first.arrived >= 0.5 - 1e-6


# ---- a core deadline wakes the adapter -------------------------------------------------------


async def test_rate_limiter_wait_is_slept_by_the_adapter(kx: Driver) -> None:
    # Capacity 10, refill 100/s, 10 tokens a call: the 2nd and 3rd call wait 0.1 s each.
    bucket = BucketLimit(refill_rate=100, capacity=10)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.02)
            ticks += 1

    async with kx.client(key=None, rate_limit=RateLimiter(bucket, bucket)) as client:
        if kx.is_async:
            async with anyio.create_task_group() as group:
                group.start_soon(ticker)
                start = kx.now()
                for _ in range(3):
                    await maybe(client.markets.list())
                elapsed = kx.now() - start
                group.cancel_scope.cancel()
            # The loop ran other tasks while the client waited: it slept, it did not block.
            assert ticks >= 5
        else:
            start = kx.now()
            for _ in range(3):
                await maybe(client.markets.list())
            elapsed = kx.now() - start
    assert elapsed >= 0.2 - 0.005
    assert len(kx.server.requests()) == 3


# ---- connections -----------------------------------------------------------------------------


async def test_sequential_calls_reuse_one_connection(kx: Driver) -> None:
    kx.server.fail("/markets/KXMISSING", 404)
    async with kx.client(retry=NO_RETRY) as client:
        await maybe(client.markets.get("KXA"))
        await maybe(client.portfolio.balance())
        await maybe(client.orders.create_v2(order_request()))
        with pytest.raises(NotFoundError):
            await maybe(client.markets.get("KXMISSING"))
        await collect(client.markets.list_all())
        await maybe(client.orders.cancel_all())
    assert len(kx.server.requests()) == 8
    assert kx.server.connections() == 1


async def test_connections_are_reused_with_many_files_open(kx: Driver) -> None:
    # With 1,100 descriptors open the client's sockets get numbers above 1024, which
    # select.select cannot watch: a client checking idle connections with it found every one
    # "readable" and opened a new connection for every call.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    extra: list[int] = []
    try:
        extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
        async with kx.client(retry=NO_RETRY) as client:
            for _ in range(3):
                await maybe(client.exchange.status())
    finally:
        for fd in extra:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert kx.server.connections() == 1


async def test_connection_close_answer_opens_a_new_connection(kx: Driver) -> None:
    kx.server.script("/markets/KXA", Fault(close=True))
    async with kx.client(retry=NO_RETRY) as client:
        await maybe(client.markets.get("KXA"))
        reply = await maybe(client.markets.get("KXB"))
    assert reply.market.ticker == "KXB"
    assert kx.server.connections() == 2


async def test_idle_connection_closed_by_the_server_is_replaced(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY) as client:
        await maybe(client.markets.get("KXA"))
        assert kx.server.close_idle_connections() == 1
        await kx.sleep(0.1)  # for the server's close to reach the client
        # No retries: sending on the dead connection would fail this call.
        reply = await maybe(client.markets.get("KXB"))
    assert reply.market.ticker == "KXB"
    assert len(kx.server.requests()) == 2
    assert kx.server.connections() == 2


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_a_connection_idle_past_keepalive_expiry_is_not_reused(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY, keepalive_expiry=0.2) as client:
        await maybe(client.markets.get("KXA"))
        await maybe(client.markets.get("KXB"))  # within the expiry: the same connection
        await kx.sleep(0.3)
        reply = await maybe(client.markets.get("KXC"))
    assert reply.market.ticker == "KXC"
    assert kx.server.connections() == 2


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
async def test_without_keepalive_expiry_an_old_idle_connection_is_reused(kx: Driver) -> None:
    async with kx.client(retry=NO_RETRY, keepalive_expiry=None) as client:
        await maybe(client.markets.get("KXA"))
        await kx.sleep(0.3)
        await maybe(client.markets.get("KXB"))
    assert kx.server.connections() == 1


@pytest.mark.flavours("kalshi_sync", "kalshi_anyio")
@pytest.mark.parametrize("expiry", [0, -1.0, float("nan")])
async def test_keepalive_expiry_must_be_positive(kx: Driver, expiry: float) -> None:
    with pytest.raises(ConfigurationError, match="keepalive_expiry must be a positive number"):
        kx.build(keepalive_expiry=expiry)


async def test_timed_out_connection_is_not_reused(kx: Driver) -> None:
    kx.server.script(ORDERS, Fault(delay=0.15))
    async with kx.client(timeout=0.1, retry=NO_RETRY) as client:
        with pytest.raises(ReadTimeout):
            await maybe(client.orders.create_v2(order_request()))
        await kx.sleep(0.15)  # the late answer would now be waiting on the old connection
        reply = await maybe(client.markets.get("KXNEXT"))
    assert reply.market.ticker == "KXNEXT"
    assert kx.server.connections() == 2


@pytest.mark.flavours("async")
async def test_cancelled_call_leaves_the_client_usable(kx: Driver) -> None:
    kx.server.script("/markets/KXSLOW", Fault(delay=3))
    async with kx.client(retry=NO_RETRY) as client:
        with anyio.move_on_after(0.2) as scope:
            await maybe(client.markets.get("KXSLOW"))
        assert scope.cancelled_caught
        reply = await maybe(client.markets.get("KXNEXT"))
    assert reply.market.ticker == "KXNEXT"
    assert kx.server.connections() == 2


@pytest.mark.flavours("async")
async def test_concurrent_calls_share_a_bounded_pool(kx: Driver) -> None:
    kx.server.script("/markets/KXSLOW", Fault(delay=0.1), times=6)
    limit = connection_limit(kx, 2)
    tickers: list[str] = []

    async def one(client: Client) -> None:
        reply = await maybe(client.markets.get("KXSLOW"))
        tickers.append(reply.market.ticker)

    async with kx.client(key=None, **limit) as client:
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one, client)
    assert tickers == ["KXSLOW"] * 6
    assert kx.server.connections() == 2


# ---- bodies ----------------------------------------------------------------------------------


async def test_order_body_reaches_the_server_exactly(kx: Driver) -> None:
    async with kx.client(key=kx.server.rsa) as client:
        reply = await maybe(client.orders.create_v2(order_request()))
    assert isinstance(reply, CreateOrderV2Response)
    [seen] = kx.server.requests()
    assert (seen.method, seen.path, seen.auth) == (
        "POST",
        f"{PREFIX}{ORDERS}",
        kx.server.rsa.key_id,
    )
    assert seen.body == ORDER_JSON
    assert json.loads(seen.body)["price"] == "0.5600"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["content-length"] == str(len(ORDER_JSON))


async def test_no_content_answer_is_read_without_a_body(kx: Driver) -> None:
    async with kx.client() as client:
        await maybe(client.orders.cancel_all())  # typed -> None; a body parse would raise
        after = await maybe(client.markets.get("KXAFTER"))  # the connection is still in step
    assert after.market.ticker == "KXAFTER"
    assert kx.server.connections() == 1
    assert [r.status for r in kx.server.requests()] == [204, 200]


@pytest.mark.parametrize(
    "fault",
    [Fault(gzip=True), Fault(chunked=True), Fault(gzip=True, chunked=True)],
    ids=["gzip", "chunked", "gzip-chunked"],
)
async def test_encoded_answers_decode(kx: Driver, fault: Fault) -> None:
    kx.server.script("/markets/KXENC", fault)
    async with kx.client(retry=NO_RETRY) as client:
        reply = await maybe(client.markets.get("KXENC"))
    assert reply.market.ticker == "KXENC"
    assert reply.market.yes_bid_dollars == Decimal("0.5600")
    [seen] = kx.server.requests()
    assert "gzip" in seen.headers["accept-encoding"]


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_a_raw_call_gives_the_decoded_body_and_maps_errors(
    kx: Driver, encoding: str
) -> None:
    kx.server.script("/markets/KXRAW", Fault(gzip=encoding == "gzip"))
    kx.server.fail("/markets/KXGONE", 404)
    async with kx.client(retry=NO_RETRY) as client:
        response = await maybe(client.execute(calls.get_market("KXRAW").raw()))
        with pytest.raises(NotFoundError):
            await maybe(client.execute(calls.get_market("KXGONE").raw()))
    assert isinstance(response, HttpResponse) and response.status == 200
    assert json.loads(response.body)["market"]["ticker"] == "KXRAW"
    assert response.header("content-type") == "application/json"
    raw, gone = kx.server.requests()
    assert raw.headers["accept-encoding"] and raw.auth is None  # a public call, unsigned
    assert gone.status == 404


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_large_answer_spans_many_reads(kx: Driver, encoding: str) -> None:
    kx.server.script("/markets", Fault(pad=3_000_000, gzip=encoding == "gzip"), times=2)
    async with kx.client(retry=NO_RETRY) as client:
        for _ in range(2):  # the second on the same connection: the first was read to its end
            page = await maybe(client.markets.list())
            assert len(page.response.model_extra or {}) == 1
            assert (page.response.model_extra or {})["padding"] == "p" * 3_000_000
    assert kx.server.connections() == 1


async def test_corrupt_gzip_answer_is_a_read_error(kx: Driver) -> None:
    kx.server.script("/markets/KXBAD", Fault(corrupt_gzip=True))
    async with kx.client(retry=NO_RETRY) as client:
        with pytest.raises(ReadError):
            await maybe(client.markets.get("KXBAD"))


@functools.cache
def gzip_bomb() -> bytes:
    """About 70 KB that inflate to one byte more than the clients' 64 MiB body limit."""
    return gzip.compress(bytes(64 * 1024 * 1024 + 1), compresslevel=9)


async def test_a_body_over_the_limit_is_a_read_error_never_retried(kx: Driver) -> None:
    # Another attempt would get the same body: the call ends at the first.
    bomb = Fault(body=gzip_bomb(), headers=(("Content-Encoding", "gzip"),))
    kx.server.script("/markets/KXBIG", bomb, times=5)
    async with kx.client(retry=RetryPolicy(max_attempts=5, base_delay=0.01)) as client:
        with pytest.raises(ReadError) as info:
            await maybe(client.markets.get("KXBIG"))
    assert str(info.value).endswith("response body exceeds 67108864 bytes")
    reason = "the response body is over the limit of 67108864 bytes, and would be again"
    assert info.value.final_reason == reason
    assert info.value.__notes__ == [f"not retried: {reason}"]
    assert len(kx.server.requests("/markets/KXBIG")) == 1


@pytest.mark.flavours("sync")
async def test_blocking_clients_run_without_an_event_loop(kx: Driver) -> None:
    # conftest.run_without_loop drives this coroutine by hand; prove there is no loop at all.
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()
    async with kx.client() as client:
        await maybe(client.portfolio.balance())
        assert len(await collect(client.markets.list_all())) == 6
    assert len(kx.server.requests()) == 4


# ---- construction, environment, lifecycle ----------------------------------------------------


async def test_from_env_builds_an_authenticated_client(
    kx: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = kx.server.ed25519
    key_file = tmp_path / "kalshi.pem"
    key_file.write_text(key.pem)
    monkeypatch.delenv("KALSHI_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("KALSHI_KEY_ID", key.key_id)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(key_file))
    client = kx.flavour.cls.from_env(base_url=kx.server.base_url, **kx.tls())
    try:
        assert client.is_authenticated is True
        await maybe(client.portfolio.balance())
    finally:
        await kx.close(client)
    [seen] = kx.server.requests()
    assert seen.auth == key.key_id


async def test_from_env_without_variables_is_unauthenticated(
    kx: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KALSHI_KEY_ID", "KALSHI_PRIVATE_KEY", "KALSHI_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PASSPHRASE", raising=False)
    client = kx.flavour.cls.from_env(base_url=kx.server.base_url, **kx.tls())
    try:
        assert client.is_authenticated is False
        with pytest.raises(AuthRequiredError):
            await maybe(client.portfolio.balance())
    finally:
        await kx.close(client)
    assert kx.server.requests() == []


async def test_context_manager_closes_the_client(kx: Driver) -> None:
    client = kx.build()
    try:
        async with kx.entered(client) as entered:
            assert entered is client
            await maybe(client.markets.get("KXA"))
        # The kept-alive connection went with the client.
        await wait_until(kx, lambda: kx.server.open_connections() == 0, "the connection to close")
        with pytest.raises(KalshiError) as info:
            await maybe(client.markets.get("KXB"))
        assert isinstance(info.value, LocalProtocolError)
        assert "closed" in str(info.value)
    finally:
        await kx.close(client)  # closing twice is allowed
    assert len(kx.server.requests()) == 1


async def test_repr_shows_no_secret(kx: Driver) -> None:
    key = kx.server.rsa
    async with kx.client(key=key) as client:
        shown = [repr(client), str(client), repr(client.config)]
    pem_lines = [line for line in key.pem.splitlines() if line and not line.startswith("-----")]
    for text in shown:
        assert "PRIVATE KEY" not in text
        assert not any(line[:16] in text for line in pem_lines)
    assert key.key_id in shown[0]
    assert kx.server.base_url in shown[0]


@pytest.mark.parametrize(
    ("base_url", "allow_any_host"),
    [
        ("https://example.com/trade-api/v2", False),
        ("http://example.com/trade-api/v2", True),
        ("http://api.elections.kalshi.com/trade-api/v2", False),
        ("https://user:secret@127.0.0.1:1/trade-api/v2", False),
    ],
    ids=["foreign-host", "http-foreign-host", "http-kalshi-host", "user-info"],
)
async def test_refused_base_url_is_a_configuration_error(
    kx: Driver, base_url: str, allow_any_host: bool
) -> None:
    with pytest.raises(ConfigurationError) as info:
        kx.build(base_url=base_url, allow_any_host=allow_any_host)
    assert "secret" not in str(info.value)
    assert kx.server.requests() == []


@pytest.mark.parametrize(
    ("base_url", "allow_any_host"),
    [
        ("http://127.0.0.1:9/trade-api/v2", False),
        ("https://api.elections.kalshi.com/trade-api/v2", False),
        ("https://proxy.example.com/trade-api/v2", True),
    ],
    ids=["http-loopback", "kalshi-host", "allowed-foreign-host"],
)
async def test_accepted_base_url(kx: Driver, base_url: str, allow_any_host: bool) -> None:
    client = kx.build(base_url=base_url, allow_any_host=allow_any_host)
    try:
        assert client.config.base_url.url == base_url
    finally:
        await kx.close(client)
