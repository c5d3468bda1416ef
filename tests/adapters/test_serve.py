"""`kalshi_anyio.serve`: a `RestApp` served over real loopback sockets, on asyncio and trio.

The clients here are raw anyio streams, blocking sockets, ``http.client`` and ``httpx`` — never
the SDK's own clients — so this suite stands on its own.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import httpx
import pytest
import trustme

from kalshi_anyio import Server, serve_rest, serve_rest_in_thread
from kalshi_anyio.serve import _Peer
from kalshi_proto.errors import ConfigurationError, WriteError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.sim.app import Drop, Reply, Respond
from tests.helpers.streams import EndedInMidWrite

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class EchoApp:
    """Answers with a JSON echo of the request; the target picks other behaviours.

    ``/boom`` raises, ``/delay?s=S`` waits S seconds, ``/drop?after=N`` cuts the answer after N
    bytes, ``/status-100`` returns a response HTTP cannot carry, ``/not-a-reply`` returns junk.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[HttpRequest, float, int]] = []

    def handle(self, request: HttpRequest, *, now: float, wall_ms: int) -> Reply:
        self.seen.append((request, now, wall_ms))
        url = urlsplit(request.target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        echo = {
            "method": request.method,
            "target": request.target,
            "headers": dict(request.headers),
            "body": request.body.decode("latin-1"),
        }
        response = HttpResponse(
            status=200,
            headers=(("content-type", "application/json"),),
            body=json.dumps(echo, separators=(",", ":")).encode(),
        )
        match url.path:
            case "/boom":
                raise RuntimeError("the app broke")
            case "/delay":
                return Respond(response, delay=float(query["s"]))
            case "/drop":
                return Drop(response, after=int(query["after"]), delay=float(query.get("s", 0)))
            case "/status-100":
                return Respond(HttpResponse(status=100, headers=(), body=b""))
            case "/not-a-reply":
                return "junk"  # type: ignore[return-value]
        return Respond(response)


class RawClient:
    """Bytes to and from the server, and a minimal reader of Content-Length-framed responses."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def _fill(self) -> bool:
        try:
            self.buffer += await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
        return True

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            if not await self._fill():
                raise EOFError(f"EOF inside a response head: {bytes(self.buffer)!r}")
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        self.buffer = bytearray(rest)
        while len(self.buffer) < length:
            if not await self._fill():
                raise EOFError(f"EOF inside a body: {bytes(self.buffer)!r}")
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return status, headers, body

    async def rest_until_eof(self) -> bytes:
        while await self._fill():
            pass
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest


@asynccontextmanager
async def raw_client(server: Server) -> AsyncIterator[RawClient]:
    context = server.client_ssl_context()
    stream: anyio.abc.ByteStream
    if context is None:
        stream = await anyio.connect_tcp(server.host, server.port)
    else:
        stream = await anyio.connect_tcp(
            server.host, server.port, ssl_context=context, tls_standard_compatible=False
        )
    async with stream:
        yield RawClient(stream)


def get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- the happy path ---------------------------------------------------------------------------


async def test_serves_a_request(tls: bool) -> None:
    app = EchoApp()
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(app, tls=tls) as server:
            scheme = "https" if tls else "http"
            assert server.origin == f"{scheme}://127.0.0.1:{server.port}"
            assert server.port > 0 and server.host == "127.0.0.1"
            assert (server.client_ssl_context() is not None) == tls
            body = b'{"ticker":"KX"}'
            async with raw_client(server) as client:
                await client.send(
                    b"POST /trade-api/v2/portfolio/orders?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 15\r\n\r\n" + body
                )
                status, headers, answer = await client.response()
            assert status == 200
            assert headers["content-type"] == "application/json"
            echo = json.loads(answer)
            assert echo["method"] == "POST"
            assert echo["target"] == "/trade-api/v2/portfolio/orders?x=1"
            assert echo["headers"]["content-type"] == "application/json"
            assert echo["body"] == body.decode()
            assert server.connections_accepted == 1
            assert server.requests_served == 1
            ((_, now, wall_ms),) = app.seen
            assert now <= anyio.current_time()
            assert abs(wall_ms - time.time() * 1000) < 60_000


async def test_keep_alive_uses_one_connection(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            for target in ("/one", "/two"):
                await client.send(get(target))
                status, _, body = await client.response()
                assert status == 200 and json.loads(body)["target"] == target
            assert server.connections_accepted == 1
            assert server.requests_served == 2


async def test_an_idle_connection_is_closed_after_the_idle_timeout(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve_rest(EchoApp(), tls=tls, idle_timeout=0.3) as server,
            raw_client(server) as client,
        ):
            await client.send(get("/one"))
            assert (await client.response())[0] == 200
            started = anyio.current_time()
            assert await client.rest_until_eof() == b""  # the server closed it, answering nothing
            assert anyio.current_time() - started >= 0.25


async def test_a_request_stalled_midway_is_closed_after_the_idle_timeout(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve_rest(EchoApp(), tls=tls, idle_timeout=0.3) as server,
            raw_client(server) as client,
        ):
            await client.send(b"GET /half HTTP/1.1\r\nHost: 127.")
            assert await client.rest_until_eof() == b""
            assert server.requests_served == 0


async def test_without_an_idle_timeout_an_idle_connection_stays_usable(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve_rest(EchoApp(), tls=tls, idle_timeout=None) as server,
            raw_client(server) as client,
        ):
            await client.send(get("/one"))
            assert (await client.response())[0] == 200
            await anyio.sleep(0.5)
            await client.send(get("/two"))
            status, _, body = await client.response()
            assert status == 200 and json.loads(body)["target"] == "/two"
            assert server.connections_accepted == 1


@pytest.mark.parametrize("idle_timeout", [0, -1.0, float("nan")])
async def test_an_idle_timeout_must_be_positive(idle_timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="idle_timeout must be a positive number"):
        async with serve_rest(EchoApp(), idle_timeout=idle_timeout):
            pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_timeout": "5"}, r"^idle_timeout must be a positive number of seconds .* got str$"),
        ({"idle_timeout": True}, r"^idle_timeout must be .* got bool$"),
        ({"port": 65536}, r"^port must be an int from 0 \(any free port\) to 65535, got 65536$"),
        ({"port": "8080"}, r"^port must be an int .* got '8080'$"),
        ({"port": True}, r"^port must be an int .* got True$"),
        ({"host": None}, r"^host must be an address or a host name, got None$"),
        ({"host": ""}, r"^host must be an address or a host name, got ''$"),
    ],
)
async def test_options_of_a_wrong_kind_are_refused_before_listening(
    options: dict[str, Any], message: str
) -> None:
    # (host=None would otherwise listen on every interface.)
    with pytest.raises(ConfigurationError, match=message):
        async with serve_rest(EchoApp(), **options):
            pass


async def test_pipelined_requests_are_answered_in_order(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            # The first answer is the slowest; order must still hold.
            await client.send(get("/delay?s=0.05") + get("/b") + get("/c"))
            targets = [json.loads((await client.response())[2])["target"] for _ in range(3)]
            assert targets == ["/delay?s=0.05", "/b", "/c"]


async def test_connection_close_is_honoured(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            await client.send(get("/x", "Connection: close"))
            status, headers, _ = await client.response()
            assert status == 200 and headers["connection"] == "close"
            assert await client.rest_until_eof() == b""


async def test_expect_100_continue(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            await client.send(
                b"PUT /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
            )
            assert await client.response() == (100, {}, b"")
            await client.send(b"{}")
            status, _, body = await client.response()
            assert status == 200 and json.loads(body)["body"] == "{}"


async def test_httpx_client(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server:
            verify: ssl.SSLContext | bool = server.client_ssl_context() or False
            async with httpx.AsyncClient(base_url=server.origin, verify=verify) as client:
                first = await client.get("/markets", params={"limit": 2})
                second = await client.post("/orders", json={"count": 1})
            assert first.status_code == 200 and first.json()["target"] == "/markets?limit=2"
            # (httpx before 0.28 writes JSON with spaces: compare what it says, not its layout)
            assert json.loads(second.json()["body"]) == {"count": 1}
            assert server.connections_accepted == 1


# --- failures ----------------------------------------------------------------------------------


async def test_garbage_gets_400_and_the_connection_closes(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server:
            async with raw_client(server) as client:
                await client.send(b"GARBAGE\r\n\r\nmore garbage the server never reads")
                status, headers, body = await client.response()
                assert status == 400 and headers["connection"] == "close"
                assert json.loads(body)["code"] == "bad_request"
                assert await client.rest_until_eof() == b""
            assert server.requests_served == 0
            # The server still serves.
            async with raw_client(server) as client:
                await client.send(get("/after"))
                assert (await client.response())[0] == 200


async def test_body_over_the_limit_gets_413(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls, max_body_size=4) as server:
            async with raw_client(server) as client:
                await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
                status, _, body = await client.response()
                assert status == 413 and json.loads(body)["code"] == "request_too_large"
                assert await client.rest_until_eof() == b""


async def test_bytes_after_a_closing_response_are_discarded(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            await client.send(get("/x", "Connection: close"))
            assert (await client.response())[0] == 200
            # The server has half-closed and is waiting for us to close; what we send is read
            # and dropped, not answered.
            await client.send(get("/ignored"))
            await anyio.sleep(0.05)
            assert await client.rest_until_eof() == b""
            assert server.requests_served == 1


async def test_a_client_reset_mid_request_leaves_the_server_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kalshi_anyio.serve")
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp()) as server:
            stream = await anyio.connect_tcp(server.host, server.port)
            await stream.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()  # with SO_LINGER 0: a reset, not a FIN
            async with raw_client(server) as client:
                await client.send(get("/after"))
                assert (await client.response())[0] == 200
            # The reset ends the first connection quietly: read as a reset ("ended", anyio 4.5
            # and later) or as an end of stream before the body ("refused", anyio 4.4), never
            # as a failure logged with its traceback.
            with anyio.fail_after(2):
                while not any(_ended_or_refused(r.getMessage()) for r in caplog.records):
                    await anyio.sleep(0.01)
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _ended_or_refused(message: str) -> bool:
    return " ended: " in message or message.startswith("refused a request (answering 400)")


async def test_a_client_gone_in_mid_response_is_a_transport_error() -> None:
    # anyio.EndOfStream used to escape as an unexpected failure, logged with its traceback at
    # ERROR level, instead of ending the connection quietly like any other client that left.
    stream = EndedInMidWrite()
    peer = _Peer(stream, stream)  # type: ignore[arg-type]
    with pytest.raises(WriteError, match="the client closed the connection"):
        await peer.send(b"HTTP/1.1 200 OK\r\n\r\n")


async def test_handler_exception_gets_500_and_the_server_keeps_serving(
    tls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kalshi_anyio.serve")
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            await client.send(get("/boom"))
            status, _, body = await client.response()
            assert status == 500
            assert json.loads(body) == {
                "code": "internal",
                "message": "RuntimeError: the app broke",
            }
            # Same connection, next request.
            await client.send(get("/fine"))
            assert (await client.response())[0] == 200
            assert server.requests_served == 2
    assert any("the app failed on GET /boom" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("target", ["/status-100", "/not-a-reply"])
async def test_an_unusable_reply_gets_500(target: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp()) as server, raw_client(server) as client:
            await client.send(get(target))
            status, _, body = await client.response()
            assert status == 500 and json.loads(body)["code"] == "internal"


async def test_delay_is_honoured(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server, raw_client(server) as client:
            start = anyio.current_time()
            await client.send(get("/delay?s=0.1"))
            assert (await client.response())[0] == 200
            assert anyio.current_time() - start >= 0.1


async def test_drop_closes_mid_response(tls: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=tls) as server:
            async with raw_client(server) as client:
                start = anyio.current_time()
                await client.send(get("/drop?after=20&s=0.05"))
                head, _, body = (await client.rest_until_eof()).partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert len(body) == 20  # the head, then 20 bytes of the body
                assert anyio.current_time() - start >= 0.05
            async with raw_client(server) as client:
                await client.send(get("/drop?after=100000"))
                assert (await client.response())[0] == 200  # the whole response, then EOF
                assert await client.rest_until_eof() == b""
            assert server.requests_served == 2


async def test_a_failed_tls_handshake_leaves_the_server_running() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=True) as server:
            untrusting = ssl.create_default_context()
            with pytest.raises((ssl.SSLError, anyio.BrokenResourceError, OSError)):
                stream = await anyio.connect_tcp(server.host, server.port, ssl_context=untrusting)
                await stream.aclose()
            async with raw_client(server) as client:
                await client.send(get("/ok"))
                assert (await client.response())[0] == 200
            assert server.connections_accepted == 2


async def test_own_server_ssl_context() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp(), tls=server_context) as server:
            assert server.origin.startswith("https://")
            assert server.client_ssl_context() is None
            stream = await anyio.connect_tcp(
                server.host, server.port, ssl_context=client_context, tls_standard_compatible=False
            )
            async with stream:
                client = RawClient(stream)
                await client.send(get("/own"))
                assert (await client.response())[0] == 200


# --- the context manager -------------------------------------------------------------------------


async def test_leaving_the_block_stops_the_server() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve_rest(EchoApp()) as server:
            port = server.port
            idle = await anyio.connect_tcp("127.0.0.1", port)  # left open: it is cancelled
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)
        # The idle connection was closed by the server.
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await idle.receive()
        await idle.aclose()


async def test_an_exception_in_the_block_propagates_unwrapped() -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError, match="mine"):
        async with serve_rest(EchoApp()):
            raise KeyError("mine")


async def test_tls_without_trustme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'kalshi-sansio\[sim\]'"):
        async with serve_rest(EchoApp(), tls=True):
            pass


async def test_tls_of_a_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="tls must be"):
        async with serve_rest(EchoApp(), tls="yes"):  # type: ignore[arg-type]
            pass


async def test_ipv6_origin_uses_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        async with serve_rest(EchoApp(), host="::1") as server:
            assert server.origin == f"http://[::1]:{server.port}"
            assert repr(server) == f"<Server http://[::1]:{server.port}>"
    except OSError:
        pytest.skip("::1 is not available")


# --- the blocking helper ---------------------------------------------------------------------------


@pytest.fixture
def thread_count() -> Iterator[int]:
    before = threading.active_count()
    yield before
    assert threading.active_count() == before


@pytest.mark.parametrize("tls_", [False, True], ids=["plain", "tls"])
def test_serve_rest_in_thread_with_http_client(tls_: bool, thread_count: int) -> None:
    with serve_rest_in_thread(EchoApp(), tls=tls_) as server:
        assert threading.active_count() > thread_count
        connection: http.client.HTTPConnection
        if tls_:
            connection = http.client.HTTPSConnection(
                server.host, server.port, timeout=TIMEOUT, context=server.client_ssl_context()
            )
        else:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            for target in ("/a", "/b"):
                connection.request("GET", target)
                response = connection.getresponse()
                assert response.status == 200
                assert json.loads(response.read())["target"] == target
        finally:
            connection.close()
        assert server.connections_accepted == 1
        assert server.requests_served == 2


def test_serve_rest_in_thread_with_a_raw_socket(thread_count: int) -> None:
    del thread_count
    with serve_rest_in_thread(EchoApp()) as server:
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            sock.sendall(get("/drop?after=12"))
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and len(body) == 12
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(OSError), socket.create_connection((server.host, server.port), timeout=1):
        pass


def test_serve_rest_in_thread_propagates_errors(thread_count: int) -> None:
    del thread_count
    with pytest.raises(ValueError, match="inside"), serve_rest_in_thread(EchoApp()):
        raise ValueError("inside")
