"""`kalshi_proto.rest.http11.Http11Connection`: request bytes out, response bytes in."""

from __future__ import annotations

import gzip
import pickle
import random
import re
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.errors import (
    ConfigurationError,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    ResponseTooLargeError,
)
from kalshi_proto.rest import http11
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.events import ConnectionClosed, HttpEvent, ResponseReceived
from kalshi_proto.rest.http11 import (
    ACCEPT_ENCODING,
    Http11Connection,
    body_too_large,
    decode_body,
    read_error,
)
from tests.helpers.feed import (
    ReceiveData,
    chunks_random,
    drain,
    feed_bytewise,
    feed_random_splits,
    feed_whole,
)

HOST = "api.elections.kalshi.com"
GET = HttpRequest(
    method="GET",
    target="/trade-api/v2/markets?limit=1&status=open",
    headers=(("Accept", "application/json"), ("User-Agent", "kalshi-sansio/0.1.0")),
    body=b"",
)

Feed = Callable[[ReceiveData, bytes], None]


def feed_random(receive_data: ReceiveData, data: bytes) -> None:
    feed_random_splits(receive_data, data, random.Random(20260101))


FEEDS = pytest.mark.parametrize(
    "feed", [feed_whole, feed_bytewise, feed_random], ids=["whole", "bytewise", "random"]
)


def awaiting(host: str = HOST, **kwargs: int) -> Http11Connection:
    """A connection with one GET sent and its bytes taken."""
    conn = Http11Connection(host, **kwargs)
    conn.send_request(GET)
    assert conn.data_to_send().startswith(b"GET ")
    return conn


def http(status_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    lines = [status_line, *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def ok(body: bytes, *headers: tuple[bytes, bytes]) -> bytes:
    framing = [(b"Content-Length", str(len(body)).encode())]
    return http(b"HTTP/1.1 200 OK", [*headers, *framing], body)


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def only_response(conn: Http11Connection) -> HttpResponse:
    events = drain(conn)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ResponseReceived)
    return event.response


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


BODY = b'{"markets": [], "cursor": ""}' * 4


# ---- request bytes ------------------------------------------------------------------------


def test_get_request_golden_bytes() -> None:
    conn = Http11Connection(HOST)
    assert conn.reusable and not conn.closed
    assert conn.next_deadline() is None
    conn.send_request(GET)
    assert conn.data_to_send() == (
        b"GET /trade-api/v2/markets?limit=1&status=open HTTP/1.1\r\n"
        b"Host: api.elections.kalshi.com\r\n"
        b"Accept-Encoding: gzip, deflate\r\n"
        b"Accept: application/json\r\n"
        b"User-Agent: kalshi-sansio/0.1.0\r\n"
        b"\r\n"
    )
    assert conn.data_to_send() == b""
    assert not conn.reusable and not conn.closed
    assert conn.next_event() is None
    assert ACCEPT_ENCODING == "gzip, deflate"


def test_post_request_golden_bytes() -> None:
    body = b'{"ticker":"KX-1","count":"1"}'
    conn = Http11Connection("127.0.0.1:8080")
    conn.send_request(
        HttpRequest(
            method="POST",
            target="/trade-api/v2/portfolio/events/orders",
            headers=(
                ("Content-Type", "application/json"),
                ("KALSHI-ACCESS-KEY", "key-1"),
                ("KALSHI-ACCESS-TIMESTAMP", "1767225600000"),
            ),
            body=body,
        )
    )
    assert conn.data_to_send() == (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"Accept-Encoding: gzip, deflate\r\n"
        b"Content-Type: application/json\r\n"
        b"KALSHI-ACCESS-KEY: key-1\r\n"
        b"KALSHI-ACCESS-TIMESTAMP: 1767225600000\r\n"
        b"Content-Length: 29\r\n"
        b"\r\n" + body
    )


@pytest.mark.parametrize(
    ("method", "body", "length"),
    [
        ("POST", b"", b"0"),
        ("PUT", b"", b"0"),
        ("PATCH", b"", b"0"),
        ("DELETE", b"", None),
        ("GET", b"", None),
        ("DELETE", b"{}", b"2"),
    ],
)
def test_content_length_is_sent_for_bodies_and_bodyless_writes(
    method: str, body: bytes, length: bytes | None
) -> None:
    conn = Http11Connection(HOST)
    conn.send_request(HttpRequest(method=method, target="/x", headers=(), body=body))
    head, _, sent_body = conn.data_to_send().partition(b"\r\n\r\n")
    expected = [
        b"%s /x HTTP/1.1" % method.encode(),
        b"Host: " + HOST.encode(),
        b"Accept-Encoding: gzip, deflate",
    ]
    if length is not None:
        expected.append(b"Content-Length: " + length)
    assert head.split(b"\r\n") == expected
    assert sent_body == body


def test_a_request_h11_refuses_is_local_and_changes_nothing() -> None:
    conn = Http11Connection(HOST)
    bad = HttpRequest(method="GET", target="/x", headers=(("X-Bad", "a\r\nb"),), body=b"")
    with pytest.raises(LocalProtocolError, match=r"^cannot encode the request: "):
        conn.send_request(bad)
    assert conn.reusable
    assert conn.data_to_send() == b""
    conn.send_request(GET)
    conn.receive_data(ok(b"{}"), 0.0)
    assert only_response(conn).body == b"{}"


def test_send_request_while_awaiting_is_local_and_changes_nothing() -> None:
    conn = Http11Connection(HOST)
    conn.send_request(GET)
    with pytest.raises(LocalProtocolError, match="a request is already in flight"):
        conn.send_request(GET)
    assert conn.data_to_send().count(b"GET ") == 1
    conn.receive_data(ok(b"[]"), 0.0)
    assert only_response(conn).body == b"[]"
    assert conn.reusable


# ---- responses ----------------------------------------------------------------------------


@FEEDS
def test_response_is_parsed(feed: Feed) -> None:
    conn = awaiting()
    data = ok(BODY, (b"Content-Type", b"application/json"), (b"X-Request-Id", b"r-\xe9"))
    feed(conn.receive_data, data)
    resp = only_response(conn)
    assert resp.status == 200
    assert resp.headers == (
        ("content-type", "application/json"),
        ("x-request-id", "r-é"),
        ("content-length", str(len(BODY))),
    )
    assert resp.header("X-Request-Id") == "r-é"
    assert resp.body == BODY
    assert conn.reusable and not conn.closed
    assert conn.next_event() is None


@FEEDS
def test_header_values_lose_the_spaces_and_tabs_around_them(feed: Feed) -> None:
    conn = awaiting()
    feed(
        conn.receive_data,
        b"HTTP/1.1 200 OK\r\nContent-Length:2\r\nX-Request-Id: \t r1 \t\r\n\r\n{}",
    )
    assert only_response(conn).headers == (("content-length", "2"), ("x-request-id", "r1"))


# Bytes after a complete response do not stay buffered for the next request, as STYLE.md's
# third way of feeding a parser would have it (and as this connection did before): this client
# never pipelines, so such bytes answer nothing it asked, and read as the next response they
# would answer the next request (an order placed would get another call's answer). RFC 9112,
# section 6.3: a client must not process them as a response. The response is delivered, the
# bytes are dropped, and the connection is closed so that the adapter does not pool it.


def assert_closed_for_good(conn: Http11Connection) -> None:
    """No further request, no event, and later bytes or EOF are ignored."""
    assert conn.closed and not conn.reusable
    with pytest.raises(
        LocalProtocolError, match=r"^cannot send a request: the connection is closed$"
    ):
        conn.send_request(GET)
    assert conn.data_to_send() == b""
    conn.receive_data(ok(b'{"n": 3}'), 0.0)
    conn.receive_eof(0.0)
    assert conn.next_event() is None


@pytest.mark.parametrize("split", [1, 17, 30, 10_000])
def test_bytes_after_a_response_in_the_same_read_close_the_connection(split: int) -> None:
    first = ok(b'{"n": 1}')
    second = ok(b'{"n": 2}', (b"X-Seq", b"2"))
    conn = awaiting()
    conn.receive_data(first + second[:split], 0.0)
    assert only_response(conn).body == b'{"n": 1}'
    assert_closed_for_good(conn)


def test_bytes_after_a_byte_by_byte_response_close_the_connection() -> None:
    first = ok(b'{"n": 1}')
    conn = awaiting()
    feed_bytewise(conn.receive_data, first[:-1])
    assert conn.next_event() is None
    conn.receive_data(first[-1:] + ok(b'{"n": 2}')[:5], 0.0)
    assert only_response(conn).body == b'{"n": 1}'
    assert_closed_for_good(conn)


@pytest.mark.parametrize(
    ("method", "first"),
    [
        ("GET", http(b"HTTP/1.1 200 OK", [(b"Transfer-Encoding", b"chunked")], chunked(b"1st"))),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"),
        ("GET", b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"1st")),
    ],
    ids=["chunked", "no-content", "head", "after-continue"],
)
def test_bytes_after_a_response_parsed_by_h11_close_the_connection(
    method: str, first: bytes
) -> None:
    conn = Http11Connection(HOST)
    conn.send_request(HttpRequest(method=method, target="/", headers=(), body=b""))
    conn.data_to_send()
    conn.receive_data(first + b"X", 0.0)
    assert only_response(conn).body in (b"", b"1st")
    assert_closed_for_good(conn)


def test_a_response_that_ends_a_read_leaves_the_connection_reusable() -> None:
    # Two responses as above, but the second comes after the second request went out: it is
    # that request's answer.
    conn = awaiting()
    conn.receive_data(ok(b'{"n": 1}'), 0.0)
    assert only_response(conn).body == b'{"n": 1}'
    assert conn.reusable
    conn.send_request(GET)
    conn.receive_data(ok(b'{"n": 2}'), 0.0)
    assert only_response(conn).body == b'{"n": 2}'
    assert conn.reusable


@FEEDS
def test_keep_alive_carries_two_requests(feed: Feed) -> None:
    conn = Http11Connection(HOST)
    for n in (1, 2):
        conn.send_request(GET)
        assert conn.data_to_send().startswith(b"GET /trade-api/v2/markets?limit=1&status=open ")
        assert not conn.reusable
        feed(conn.receive_data, ok(b'{"n": %d}' % n))
        assert only_response(conn).body == b'{"n": %d}' % n
        assert conn.reusable and not conn.closed


@FEEDS
def test_connection_close_closes_after_the_response(feed: Feed) -> None:
    conn = awaiting()
    feed(conn.receive_data, ok(b"bye", (b"Connection", b"close")))
    assert only_response(conn).body == b"bye"
    assert conn.closed and not conn.reusable
    with pytest.raises(
        LocalProtocolError, match=r"^cannot send a request: the connection is closed$"
    ):
        conn.send_request(GET)
    conn.receive_eof(0.0)  # the server's close that follows: nothing more to say
    assert conn.next_event() is None


def test_http_1_0_response_closes_after_the_response() -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0.0)
    assert only_response(conn).body == b"ok"
    assert conn.closed


def test_bytes_after_a_closing_response_are_ignored() -> None:
    conn = awaiting()
    conn.receive_data(ok(b"bye", (b"Connection", b"close")), 0.0)
    only_response(conn)
    conn.receive_data(b"HTTP/1.1", 0.0)  # the connection is finished; nothing more is read
    assert conn.closed
    assert conn.next_event() is None


def test_a_whole_response_after_a_closing_response_is_not_read() -> None:
    conn = awaiting()
    conn.receive_data(ok(b"bye", (b"Connection", b"close")), 0.0)
    only_response(conn)
    conn.receive_data(ok(b"{}"), 0.0)
    assert conn.next_event() is None
    assert conn.closed


@FEEDS
def test_chunked_body(feed: Feed) -> None:
    conn = awaiting()
    data = http(
        b"HTTP/1.1 200 OK", [(b"Transfer-Encoding", b"chunked")], chunked(b"hello", b" world")
    )
    feed(conn.receive_data, data)
    assert only_response(conn).body == b"hello world"
    assert conn.reusable


def test_chunked_framing_wins_over_a_content_length_before_it() -> None:
    conn = awaiting()
    framing = [(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")]
    conn.receive_data(http(b"HTTP/1.1 200 OK", framing, chunked(b"hello")), 0.0)
    assert only_response(conn).body == b"hello"
    assert conn.reusable


def test_head_response_has_no_body() -> None:
    conn = Http11Connection(HOST)
    conn.send_request(HttpRequest(method="HEAD", target="/", headers=(), body=b""))
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0.0)
    assert only_response(conn).body == b""
    assert conn.reusable


def test_no_content_response_has_no_body() -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n", 0.0)
    resp = only_response(conn)
    assert (resp.status, resp.headers, resp.body) == (204, (), b"")
    assert conn.reusable


def test_no_content_response_ignores_a_content_length() -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n", 0.0)
    assert only_response(conn).body == b""
    assert conn.reusable


@pytest.mark.parametrize("end", [b"\n\n", b"\n\r\n"], ids=["lf-lf", "lf-crlf"])
def test_a_head_ending_in_bare_line_feeds_is_read(end: bytes) -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2" + end + b"{}", 0.0)
    assert only_response(conn).body == b"{}"


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close", b"upgrade ,close"])
def test_a_close_token_in_connection_closes_after_the_response(value: bytes) -> None:
    conn = awaiting()
    conn.receive_data(ok(b"{}", (b"Connection", value)), 0.0)
    assert only_response(conn).body == b"{}"
    assert conn.closed


def test_close_in_another_header_keeps_the_connection_open() -> None:
    conn = awaiting()
    conn.receive_data(ok(b"{}", (b"X-Mode", b"close")), 0.0)
    assert only_response(conn).body == b"{}"
    assert conn.reusable


def test_conflicting_content_lengths_are_remote_protocol_error() -> None:
    conn = awaiting()
    data = http(b"HTTP/1.1 200 OK", [(b"Content-Length", b"0"), (b"Content-Length", b"2")], b"{}")
    with pytest.raises(RemoteProtocolError, match="conflicting Content-Length headers"):
        conn.receive_data(data, 0.0)


@FEEDS
def test_informational_responses_are_skipped(feed: Feed) -> None:
    conn = awaiting()
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(
        b"ok"
    )
    feed(conn.receive_data, data)
    resp = only_response(conn)
    assert (resp.status, resp.body) == (200, b"ok")
    assert resp.header("link") is None


# ---- content encodings --------------------------------------------------------------------


@FEEDS
@pytest.mark.parametrize("name", [b"gzip", b"GZip "])
def test_gzip_body_is_decoded(feed: Feed, name: bytes) -> None:
    conn = awaiting()
    feed(conn.receive_data, ok(gzip.compress(BODY), (b"Content-Encoding", name)))
    resp = only_response(conn)
    assert resp.body == BODY
    assert resp.header("content-encoding") == name.decode().strip()
    assert conn.reusable


@FEEDS
def test_gzip_body_in_chunks_is_decoded(feed: Feed) -> None:
    packed = gzip.compress(BODY)
    data = http(
        b"HTTP/1.1 200 OK",
        [(b"Content-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
        chunked(packed[:3], packed[3:20], packed[20:]),
    )
    conn = awaiting()
    feed(conn.receive_data, data)
    assert only_response(conn).body == BODY


@FEEDS
def test_zlib_wrapped_deflate_body_is_decoded(feed: Feed) -> None:
    conn = awaiting()
    feed(conn.receive_data, ok(zlib.compress(BODY), (b"Content-Encoding", b"deflate")))
    assert only_response(conn).body == BODY


def test_raw_deflate_body_is_decoded() -> None:
    conn = awaiting()
    conn.receive_data(ok(raw_deflate(BODY), (b"Content-Encoding", b"deflate")), 0.0)
    assert only_response(conn).body == BODY


@pytest.mark.parametrize("feed", [feed_bytewise], ids=["bytewise"])
def test_raw_deflate_body_is_decoded_when_split(feed: Feed) -> None:
    conn = awaiting()
    feed(conn.receive_data, ok(raw_deflate(BODY), (b"Content-Encoding", b"deflate")))
    assert only_response(conn).body == BODY


def test_raw_deflate_body_in_a_one_byte_first_chunk() -> None:
    packed = raw_deflate(BODY)
    data = http(
        b"HTTP/1.1 200 OK",
        [(b"Content-Encoding", b"deflate"), (b"Transfer-Encoding", b"chunked")],
        chunked(packed[:1], packed[1:]),
    )
    conn = awaiting()
    # The first read holds only one byte of the raw stream: too short to tell it from zlib.
    conn.receive_data(data, 0.0)
    assert only_response(conn).body == BODY


def test_identity_content_encoding_is_passed_through() -> None:
    conn = awaiting()
    conn.receive_data(ok(b"plain", (b"Content-Encoding", b"identity")), 0.0)
    assert only_response(conn).body == b"plain"


@pytest.mark.parametrize("name", [b"br", b"x-gzip", b"compress", b"identity, br"])
def test_unknown_content_encoding_is_remote_protocol_error(name: bytes) -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(ok(b"data", (b"Content-Encoding", name)), 0.0)
    coding = name.decode().split(", ")[-1]
    assert str(info.value) == (
        f"the response uses content-encoding {coding!r}, which was not asked for"
    )
    assert conn.closed
    assert conn.next_event() is None


@FEEDS
@pytest.mark.parametrize(
    ("lines", "listed"),
    [
        ([b"gzip, br"], "gzip, br"),
        ([b"gzip, gzip"], "gzip, gzip"),
        ([b"gzip", b"gzip"], "gzip, gzip"),
        ([b"deflate", b" GZIP"], "deflate, GZIP"),
    ],
)
def test_a_body_encoded_twice_is_remote_protocol_error(
    feed: Feed, lines: list[bytes], listed: str
) -> None:
    # Several Content-Encoding lines are one list (RFC 9110, section 5.3): the second line is
    # not ignored, which would hand over a body still encoded once.
    packed = gzip.compress(gzip.compress(BODY))
    conn = awaiting()
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn.receive_data, ok(packed, *((b"Content-Encoding", line) for line in lines)))
    assert str(info.value) == (
        f"the response body is encoded more than once (content-encoding {listed!r}), "
        "which was not asked for"
    )
    assert conn.closed
    assert conn.next_event() is None


@FEEDS
@pytest.mark.parametrize("lines", [[b"identity", b"gzip"], [b"gzip", b"identity"], [b"gzip", b""]])
def test_identity_beside_gzip_in_content_encoding_lines_is_no_encoding(
    feed: Feed, lines: list[bytes]
) -> None:
    conn = awaiting()
    feed(conn.receive_data, ok(gzip.compress(BODY), *((b"Content-Encoding", v) for v in lines)))
    assert only_response(conn).body == BODY
    assert conn.reusable


def test_corrupt_gzip_is_remote_protocol_error() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the gzip response body is corrupt$"):
        conn.receive_data(ok(b"\x1f\x8b not gzip at all", (b"Content-Encoding", b"gzip")), 0.0)
    assert conn.next_event() is None
    assert not conn.reusable


def test_a_zlib_stream_labelled_gzip_is_corrupt() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the gzip response body is corrupt$"):
        conn.receive_data(ok(zlib.compress(BODY), (b"Content-Encoding", b"gzip")), 0.0)


def test_a_gzip_body_that_refers_32_kib_back_is_decoded() -> None:
    # Incompressible 30 KiB, twice: the second copy refers back past a 16 KiB window.
    block = random.Random(7).randbytes(30 * 1024)
    conn = awaiting()
    conn.receive_data(ok(gzip.compress(block * 2), (b"Content-Encoding", b"gzip")), 0.0)
    assert only_response(conn).body == block * 2


_DECODER_FAILURES = [
    pytest.param(ok(b"\x1f\x8b not gzip at all", (b"Content-Encoding", b"gzip")), id="corrupt"),
    pytest.param(ok(gzip.compress(b"0123456789A"), (b"Content-Encoding", b"gzip")), id="too-big"),
]


@pytest.mark.parametrize("data", _DECODER_FAILURES)
def test_a_decoder_failure_finishes_the_connection(data: bytes) -> None:
    conn = awaiting(max_body_size=10)
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(data, 0.0)
    assert conn.closed
    with pytest.raises(LocalProtocolError, match=re.escape(f"failed earlier: {info.value}")):
        conn.receive_data(b"more", 0.0)


def test_deflate_that_is_neither_zlib_nor_raw_is_corrupt() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the deflate response body is corrupt$"):
        conn.receive_data(ok(b"\xff\xff\xff\xff garbage", (b"Content-Encoding", b"deflate")), 0.0)


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_corrupt_after_some_output_is_not_retried(wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    good = compressor.compress(BODY) + compressor.flush(zlib.Z_SYNC_FLUSH)
    data = http(
        b"HTTP/1.1 200 OK",
        [(b"Content-Encoding", b"deflate"), (b"Transfer-Encoding", b"chunked")],
        chunked(good, b"\xff\xff\xff\xff"),
    )
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the deflate response body is corrupt$"):
        conn.receive_data(data, 0.0)


@pytest.mark.parametrize("cut", [4, 8, 40])
def test_truncated_gzip_is_remote_protocol_error(cut: int) -> None:
    packed = gzip.compress(BODY)[:-cut]
    conn = awaiting()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(ok(packed, (b"Content-Encoding", b"gzip")), 0.0)


# A body with no bytes at all has nothing to decode, whatever its Content-Encoding says (an
# empty gzip body is no gzip stream, but servers label empty bodies too): a 503 or the 204 of a
# DELETE must not turn into a transport error.
_EMPTY_ENCODED = [
    pytest.param(
        "HEAD", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 123", id="head"
    ),
    pytest.param("DELETE", b"HTTP/1.1 204 No Content\r\nContent-Encoding: gzip", id="204"),
    pytest.param("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Encoding: deflate", id="304"),
    pytest.param(
        "GET", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0", id="length-0"
    ),
    pytest.param(
        "GET",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: deflate\r\nContent-Length: 0",
        id="503-deflate",
    ),
    pytest.param(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0",
        id="no-chunks",
    ),
    pytest.param(
        "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Encoding: gzip",
        id="after-continue",
    ),
]


@FEEDS
@pytest.mark.parametrize(("method", "head"), _EMPTY_ENCODED)
def test_an_empty_body_with_a_content_encoding_is_empty(
    feed: Feed, method: str, head: bytes
) -> None:
    conn = Http11Connection(HOST)
    conn.send_request(HttpRequest(method=method, target="/x", headers=(), body=b""))
    conn.data_to_send()
    feed(conn.receive_data, head + b"\r\n\r\n")
    resp = only_response(conn)
    assert resp.body == b""
    assert resp.status == int(head.rsplit(b"HTTP/1.1 ", 1)[1][:3])
    assert conn.reusable


@pytest.mark.parametrize("encoding", ["gzip", "deflate", " GZip "])
def test_decode_body_of_no_bytes_is_no_bytes(encoding: str) -> None:
    assert decode_body(encoding, b"") == b""


def test_one_byte_of_gzip_is_still_truncated() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the gzip response body is truncated$"):
        conn.receive_data(ok(b"\x1f", (b"Content-Encoding", b"gzip")), 0.0)


# A gzip body may be several members one after another (RFC 1952, section 2.2), as gzip files
# joined with ``cat`` are; gzip.decompress reads them all.
MEMBERS = gzip.compress(b'{"markets": [], ') + gzip.compress(b"") + gzip.compress(b'"cursor": ""}')
MEMBERS_BODY = b'{"markets": [], "cursor": ""}'


@FEEDS
def test_a_gzip_body_of_several_members_is_decoded(feed: Feed) -> None:
    assert gzip.decompress(MEMBERS) == MEMBERS_BODY
    conn = awaiting()
    feed(conn.receive_data, ok(MEMBERS, (b"Content-Encoding", b"gzip")))
    assert only_response(conn).body == MEMBERS_BODY
    assert conn.reusable


@FEEDS
def test_gzip_members_split_across_chunks_are_decoded(feed: Feed) -> None:
    # Every cut from just before the end of the first member to just after the magic bytes of
    # the second: each piece goes to the decoder as it arrives.
    end = len(gzip.compress(b'{"markets": [], '))
    for cut in range(end - 2, end + 4):
        data = http(
            b"HTTP/1.1 200 OK",
            [(b"Content-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
            chunked(MEMBERS[:cut], MEMBERS[cut:]),
        )
        conn = awaiting()
        feed(conn.receive_data, data)
        assert only_response(conn).body == MEMBERS_BODY, cut


def test_large_gzip_members_are_decoded() -> None:
    # A later member is fed to zlib in pieces; this one spans several.
    block = random.Random(11).randbytes(50 * 1024)
    packed = gzip.compress(b"a") + gzip.compress(block) + gzip.compress(block[:7])
    conn = awaiting()
    conn.receive_data(ok(packed, (b"Content-Encoding", b"gzip")), 0.0)
    assert only_response(conn).body == b"a" + block + block[:7]


def test_many_tiny_gzip_members_are_decoded() -> None:
    packed = b"".join(gzip.compress(b"%d," % n) for n in range(3000))
    assert decode_body("gzip", packed) == b"".join(b"%d," % n for n in range(3000))


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"junk", "has bytes after its end"),
        (b"\x1f", "has bytes after its end"),
        (b"\x00\x00", "has bytes after its end"),
        (b"\x1f\x8b", "is truncated"),
        (gzip.compress(BODY)[:-3], "is truncated"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xff\xff\xff", "is corrupt"),
        (b"\x1f\x8b\x01\x00\x00\x00\x00\x00\x00\xff\x03\x00", "is corrupt"),
    ],
    ids=["junk", "one-byte", "zeros", "magic-only", "truncated-member", "corrupt-member", "method"],
)
def test_what_follows_a_gzip_member_must_be_a_whole_member(tail: bytes, message: str) -> None:
    packed = gzip.compress(BODY) + gzip.compress(BODY) + tail
    match = f"^the gzip response body {message}$"
    with pytest.raises(RemoteProtocolError, match=match):
        decode_body("gzip", packed)
    for cut in range(len(packed) - len(tail) - 1, len(packed)):  # streamed, cut near the tail
        data = http(
            b"HTTP/1.1 200 OK",
            [(b"Content-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
            chunked(packed[:cut], packed[cut:]),
        )
        conn = awaiting()
        with pytest.raises(RemoteProtocolError, match=match):
            conn.receive_data(data, 0.0)
        assert conn.closed


@pytest.mark.parametrize("second", [zlib.compress(b"more"), raw_deflate(b"more")])
def test_deflate_is_one_stream_and_what_follows_it_is_refused(second: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match=r"^the deflate response body has bytes after"):
        decode_body("deflate", zlib.compress(BODY) + second)
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^the deflate response body has bytes after"):
        conn.receive_data(ok(zlib.compress(BODY) + second, (b"Content-Encoding", b"deflate")), 0.0)


@pytest.mark.parametrize(("limit", "fits"), [(12, True), (11, False)])
def test_the_body_limit_counts_every_gzip_member(limit: int, fits: bool) -> None:
    packed = gzip.compress(b"012345") + gzip.compress(b"6789ab")
    if fits:
        assert decode_body("gzip", packed, max_body_size=limit) == b"0123456789ab"
    else:
        with pytest.raises(
            RemoteProtocolError, match=f"^the decoded response body exceeds {limit}"
        ):
            decode_body("gzip", packed, max_body_size=limit)
    conn = awaiting(max_body_size=limit)
    data = ok(packed, (b"Content-Encoding", b"gzip"))
    if fits:
        conn.receive_data(data, 0.0)
        assert only_response(conn).body == b"0123456789ab"
    else:
        with pytest.raises(RemoteProtocolError, match=f"exceeds {limit} bytes$"):
            conn.receive_data(data, 0.0)


def test_a_gzip_bomb_in_a_later_member_is_stopped_at_max_body_size() -> None:
    bomb = gzip.compress(b"{}") + gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9)
    with pytest.raises(RemoteProtocolError, match=r"^the decoded response body exceeds 1048576"):
        decode_body("gzip", bomb, max_body_size=1024 * 1024)


def test_gzip_members_that_decode_to_nothing_cannot_go_on_without_end() -> None:
    # Each empty member decodes to no bytes, so the decoded size never grows; the encoded
    # bytes are counted against the same limit.
    empty = gzip.compress(b"")
    allowed = 4096 + 64 * 1024  # the limit, and room for what encoding adds
    stream = empty * (allowed // len(empty) + 1)
    with pytest.raises(RemoteProtocolError, match=rf"^the encoded response body exceeds {allowed}"):
        decode_body("gzip", stream, max_body_size=4096)
    assert decode_body("gzip", empty * 10, max_body_size=4096) == b""
    conn = awaiting(max_body_size=4096)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.receive_data(head, 0.0)
    chunk = b"%x\r\n%s\r\n" % (len(empty) * 100, empty * 100)
    with pytest.raises(RemoteProtocolError, match=f"exceeds {allowed} bytes"):
        for _ in range(allowed // (len(empty) * 100) + 1):
            conn.receive_data(chunk, 0.0)
    assert conn.closed


# ---- size limits --------------------------------------------------------------------------


@FEEDS
def test_body_at_max_body_size_is_accepted(feed: Feed) -> None:
    conn = awaiting(max_body_size=10)
    feed(conn.receive_data, ok(b"0123456789"))
    assert only_response(conn).body == b"0123456789"


@FEEDS
def test_body_over_max_body_size_is_remote_protocol_error(feed: Feed) -> None:
    conn = awaiting(max_body_size=10)
    with pytest.raises(RemoteProtocolError, match=r"^the response body exceeds 10 bytes$"):
        feed(conn.receive_data, ok(b"0123456789A"))
    assert conn.closed


def test_a_plain_body_over_the_limit_is_refused_at_its_head() -> None:
    conn = awaiting(max_body_size=10)
    with pytest.raises(RemoteProtocolError, match=r"^the response body exceeds 10 bytes$"):
        conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 0.0)
    assert conn.closed


def test_the_default_body_limit_is_64_mib() -> None:
    limit = 64 * 1024 * 1024
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % limit, 0.0)
    assert conn.next_event() is None  # the body may come
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=f"^the response body exceeds {limit} bytes$"):
        conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (limit + 1), 0.0)


def test_the_body_limit_applies_to_each_response_on_a_kept_alive_connection() -> None:
    conn = Http11Connection(HOST, max_body_size=10)
    for _ in range(3):
        conn.send_request(GET)
        conn.receive_data(ok(b"0123456789"), 0.0)
        assert only_response(conn).body == b"0123456789"


@FEEDS
@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_decoded_body_at_max_body_size_is_accepted(feed: Feed, encoding: bytes) -> None:
    packed = gzip.compress(b"0123456789") if encoding == b"gzip" else zlib.compress(b"0123456789")
    conn = awaiting(max_body_size=10)
    feed(conn.receive_data, ok(packed, (b"Content-Encoding", encoding)))
    assert only_response(conn).body == b"0123456789"


@FEEDS
@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_decoded_body_over_max_body_size_is_remote_protocol_error(
    feed: Feed, encoding: bytes
) -> None:
    packed = gzip.compress(b"0123456789A") if encoding == b"gzip" else zlib.compress(b"0123456789A")
    assert len(packed) > 11  # the compressed body alone is not what trips the limit
    conn = awaiting(max_body_size=10)
    with pytest.raises(RemoteProtocolError, match=r"^the decoded response body exceeds 10 bytes$"):
        feed(conn.receive_data, ok(packed, (b"Content-Encoding", encoding)))
    assert not conn.reusable


def test_an_encoded_body_too_long_for_the_limit_is_refused_at_its_head() -> None:
    # An encoded body is kept whole until its last byte; its length may exceed the decoded
    # limit only by the slack that headers and incompressible data need.
    most = 10 + http11._ENCODING_SLACK
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    conn = awaiting(max_body_size=10)
    conn.receive_data(head % most, 0.0)
    assert conn.next_event() is None and not conn.closed  # the body may come
    conn = awaiting(max_body_size=10)
    with pytest.raises(
        RemoteProtocolError, match=f"^the encoded response body exceeds {most} bytes$"
    ):
        conn.receive_data(head % (most + 1), 0.0)
    assert conn.closed


def test_gzip_bomb_is_stopped_at_max_body_size() -> None:
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    conn = awaiting(max_body_size=1024 * 1024)
    with pytest.raises(
        RemoteProtocolError, match=r"^the decoded response body exceeds 1048576 bytes$"
    ):
        conn.receive_data(ok(bomb, (b"Content-Encoding", b"gzip")), 0.0)


# ---- end of stream ------------------------------------------------------------------------


def test_eof_on_a_fresh_connection_is_connection_closed() -> None:
    conn = Http11Connection(HOST)
    conn.receive_eof(0.0)
    assert drain(conn) == [ConnectionClosed()]
    assert conn.closed and not conn.reusable
    conn.receive_eof(0.0)  # reported twice: nothing new
    assert conn.next_event() is None


def test_eof_while_idle_after_a_response_is_connection_closed() -> None:
    conn = awaiting()
    conn.receive_data(ok(b"{}"), 0.0)
    events: list[HttpEvent] = drain(conn)
    conn.receive_eof(0.0)
    events += drain(conn)
    assert [type(e) for e in events] == [ResponseReceived, ConnectionClosed]
    assert conn.closed
    with pytest.raises(LocalProtocolError, match="the connection is closed"):
        conn.send_request(GET)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "peer unexpectedly closed connection"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", "peer closed connection"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n0", "peer closed connection"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "peer closed"),
    ],
    ids=["mid-headers", "mid-body", "one-byte-short", "mid-chunks"],
)
def test_eof_mid_response_is_remote_protocol_error(data: bytes, message: str) -> None:
    conn = awaiting()
    feed_whole(conn.receive_data, data)
    with pytest.raises(RemoteProtocolError, match=r"^invalid HTTP/1\.1 response: ") as info:
        conn.receive_eof(0.0)
    assert message in str(info.value)
    assert conn.closed
    assert conn.next_event() is None
    with pytest.raises(LocalProtocolError, match=r"^the connection failed earlier: invalid HTTP"):
        conn.receive_data(b"x", 0.0)


def test_eof_before_any_byte_of_the_answer_is_connection_closed() -> None:
    # No answer at all is not a broken answer: the adapter reports "the server closed the
    # connection before answering", not h11's words for a state it never reached.
    conn = awaiting()
    conn.receive_eof(0.0)
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.next_event() is None
    assert conn.closed and not conn.reusable
    with pytest.raises(LocalProtocolError, match="the connection is closed"):
        conn.send_request(GET)


def test_eof_after_one_byte_of_the_answer_is_remote_protocol_error() -> None:
    conn = awaiting()
    conn.receive_data(b"H", 0.0)
    with pytest.raises(RemoteProtocolError, match=r"^invalid HTTP/1\.1 response: "):
        conn.receive_eof(0.0)


def test_body_read_until_eof_is_a_response() -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhel", 0.0)
    conn.receive_data(b"lo", 0.0)
    assert conn.next_event() is None
    conn.receive_eof(0.0)
    assert only_response(conn).body == b"hello"


def test_body_read_until_eof_leaves_the_connection_closed() -> None:
    conn = awaiting()
    conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\nhello", 0.0)
    conn.receive_eof(0.0)
    assert only_response(conn).body == b"hello"
    assert conn.closed and not conn.reusable


def test_switching_protocols_is_remote_protocol_error() -> None:
    conn = Http11Connection(HOST)
    conn.send_request(
        HttpRequest(
            method="GET",
            target="/trade-api/ws/v2",
            headers=(("Upgrade", "websocket"), ("Connection", "Upgrade")),
            body=b"",
        )
    )
    # A REST connection never asked to switch; the bytes after a 101 are not HTTP any more.
    with pytest.raises(RemoteProtocolError, match=r"switched protocols \(101\)"):
        conn.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0.0)
    assert conn.closed
    assert conn.next_event() is None


def test_bytes_after_eof_while_idle_are_local_protocol_error() -> None:
    conn = Http11Connection(HOST)
    conn.receive_eof(0.0)
    assert drain(conn) == [ConnectionClosed()]
    with pytest.raises(LocalProtocolError):
        conn.receive_data(ok(b"{}"), 0.0)
    assert conn.next_event() is None


# ---- misuse and garbage -------------------------------------------------------------------


def test_receive_data_with_no_bytes_is_local_protocol_error() -> None:
    conn = awaiting()
    with pytest.raises(LocalProtocolError, match=r"^receive_data\(\) needs bytes; report EOF"):
        conn.receive_data(b"", 0.0)
    conn.receive_data(ok(b"{}"), 0.0)  # nothing changed
    assert only_response(conn).body == b"{}"


@pytest.mark.parametrize("kind", [bytearray, memoryview])
@FEEDS
def test_receive_data_takes_any_bytes_like_object_and_copies_it(
    kind: Callable[[bytes], bytes], feed: Feed
) -> None:
    # A memoryview (of a recv_into buffer, say) raised AttributeError; a bytearray reused for
    # the next read must not change what was received.
    buffers: list[bytearray] = []

    def receive(data: bytes, now: float) -> None:
        buffer = bytearray(data)
        buffers.append(buffer)
        conn.receive_data(kind(buffer), now)  # type: ignore[arg-type]

    conn = awaiting()
    feed(receive, ok(b'{"a": 1}'))
    for buffer in buffers:
        buffer[:] = b"x" * len(buffer)  # the adapter reuses its buffer
    assert only_response(conn).body == b'{"a": 1}'


@pytest.mark.parametrize("data", ["HTTP/1.1 200 OK\r\n", 200, None])
def test_receive_data_that_is_not_bytes_like_is_a_type_error(data: object) -> None:
    conn = awaiting()
    with pytest.raises(TypeError, match=rf"^data must be bytes, got {type(data).__name__}$"):
        conn.receive_data(data, 0.0)  # type: ignore[arg-type]
    conn.receive_data(ok(b"{}"), 0.0)  # nothing changed
    assert only_response(conn).body == b"{}"


@pytest.mark.parametrize(
    ("host", "shown"),
    [("", "''"), ("a\r\nX-Evil: 1", "'a\\r\\nX-Evil: 1'"), ("h/x", "'h/x'"), (5, "int")],
)
def test_a_host_that_is_not_a_host_header_value_is_refused(host: object, shown: str) -> None:
    # Any str was accepted and written into the Host header as it was, line breaks included.
    with pytest.raises(ConfigurationError) as info:
        Http11Connection(host)  # type: ignore[arg-type]
    assert str(info.value) == f"host must be a Host header value (host or host:port), got {shown}"


@pytest.mark.parametrize("host", [HOST, "127.0.0.1:8443", "[::1]:8080", "localhost"])
def test_host_header_values_are_accepted(host: str) -> None:
    conn = Http11Connection(host)
    conn.send_request(GET)
    assert f"\r\nHost: {host}\r\n".encode() in conn.data_to_send()


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, f"max_body_size must be from 1 to {sys.maxsize - 1}, got 0"),
        (-1, f"max_body_size must be from 1 to {sys.maxsize - 1}, got -1"),
        # zlib takes no longer length: a larger limit would fail at the first encoded body.
        (sys.maxsize, f"max_body_size must be from 1 to {sys.maxsize - 1}, got {sys.maxsize}"),
        (2**63, f"max_body_size must be from 1 to {sys.maxsize - 1}, got {2**63}"),
        ("1", "max_body_size must be an int, got str"),
        (True, "max_body_size must be an int, got bool"),
    ],
)
def test_max_body_size_must_be_a_positive_int(size: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Http11Connection(HOST, max_body_size=size)  # type: ignore[arg-type]
    assert str(info.value) == message
    with pytest.raises(ConfigurationError) as info:
        decode_body("gzip", gzip.compress(BODY), max_body_size=size)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_the_largest_max_body_size_decodes() -> None:
    largest = sys.maxsize - 1
    assert decode_body("gzip", gzip.compress(BODY), max_body_size=largest) == BODY
    conn = awaiting(max_body_size=largest)
    conn.receive_data(ok(gzip.compress(BODY), (b"Content-Encoding", b"gzip")), 0.0)
    assert only_response(conn).body == BODY


def test_send_request_refuses_what_is_not_a_request_or_a_body_that_is_not_bytes() -> None:
    conn = Http11Connection(HOST)
    with pytest.raises(TypeError, match=r"^request must be an HttpRequest, got str$"):
        conn.send_request("GET / HTTP/1.1")  # type: ignore[arg-type]
    text: Any = "{}"
    text_body = HttpRequest(method="POST", target="/x", headers=(), body=text)
    with pytest.raises(
        LocalProtocolError, match=r"^cannot encode the request: the body must be bytes, got str$"
    ):
        conn.send_request(text_body)
    assert conn.data_to_send() == b"" and conn.reusable  # nothing was queued
    conn.send_request(GET)
    assert conn.data_to_send().startswith(b"GET ")


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "after-a-response"])
def test_bytes_while_idle_close_the_connection(fresh: bool) -> None:
    # Split or whole, bytes after a response are handled alike: dropped, and the connection
    # closed (they used to be kept and read as the answer to the next request; see
    # assert_closed_for_good).
    conn = Http11Connection(HOST)
    if not fresh:
        conn.send_request(GET)
        conn.data_to_send()
        conn.receive_data(ok(b"{}"), 0.0)
        only_response(conn)
        assert conn.reusable
    conn.receive_data(ok(b'{"early": 1}'), 0.0)
    assert conn.next_event() is None
    assert_closed_for_good(conn)


@FEEDS
def test_garbage_is_remote_protocol_error_and_later_calls_are_local(feed: Feed) -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn.receive_data, b"SMTP ready\r\n\r\n")
    first = str(info.value)
    assert first.startswith("invalid HTTP/1.1 response: illegal status line")
    assert conn.closed
    with pytest.raises(LocalProtocolError) as later:
        conn.receive_data(ok(b"{}"), 0.0)
    assert str(later.value) == f"the connection failed earlier: {first}"
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        conn.receive_eof(0.0)
    assert conn.next_event() is None


def test_send_request_after_a_failure_names_the_first_failure() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"SMTP ready\r\n\r\n", 0.0)
    with pytest.raises(LocalProtocolError, match="illegal status line"):
        conn.send_request(GET)


def test_oversized_headers_are_remote_protocol_error() -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match="Receive buffer too long"):
        conn.receive_data(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000, 0.0)


def test_a_response_head_may_take_64_kib_across_reads() -> None:
    conn = awaiting()
    start = b"HTTP/1.1 200 OK\r\nX-Big: "
    conn.receive_data(start + b"a" * (64 * 1024 - len(start)), 0.0)
    assert conn.next_event() is None
    with pytest.raises(RemoteProtocolError, match="Receive buffer too long"):
        conn.receive_data(b"a", 0.0)


# ---- any bytes: events or RemoteProtocolError ---------------------------------------------

_PREFIXES = [
    b"",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n\x1f\x8b",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    ok(b"{}"),
    ok(b"{}", (b"Connection", b"close")),
    b"HTTP/1.0 200 OK\r\n\r\n",
]


def _run(chunks: list[bytes], eof: bool) -> None:
    conn = awaiting(max_body_size=1000)
    try:
        for chunk in chunks:
            conn.receive_data(chunk, 0.0)
            for event in drain(conn):
                assert isinstance(event, ResponseReceived | ConnectionClosed)
        if eof:
            conn.receive_eof(0.0)
    except RemoteProtocolError:
        assert not conn.reusable
        return
    for event in drain(conn):
        assert isinstance(event, ResponseReceived | ConnectionClosed)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(_PREFIXES),
    tail=st.binary(max_size=200),
    seed=st.integers(0, 2**32 - 1),
    eof=st.booleans(),
)
def test_any_bytes_give_events_or_remote_protocol_error(
    prefix: bytes, tail: bytes, seed: int, eof: bool
) -> None:
    data = prefix + tail
    _run([data] if data else [], eof)
    _run(list(chunks_random(data, random.Random(seed))), eof)


def test_bytes_after_the_end_of_a_gzip_stream_are_remote_protocol_error() -> None:
    conn = awaiting()
    packed = gzip.compress(BODY) + b"junk"
    with pytest.raises(RemoteProtocolError, match="gzip response body has bytes after its end"):
        conn.receive_data(ok(packed, (b"Content-Encoding", b"gzip")), 0.0)
    assert conn.closed


@pytest.mark.parametrize(
    ("request_", "what"),
    [
        (HttpRequest(method="GE T", target="/", headers=(), body=b""), "bad method"),
        (HttpRequest(method="GET", target="/a b", headers=(), body=b""), "bad target"),
        (HttpRequest(method="GET", target="http://x/", headers=(), body=b""), "bad target"),
        (
            HttpRequest(method="GET", target="/", headers=(("X-A", "1\r\nX-B: 2"),), body=b""),
            "bad header",
        ),
        (
            HttpRequest(method="GET", target="/", headers=(("Bad Name", "1"),), body=b""),
            "bad header",
        ),
        (HttpRequest(method="GET", target="/", headers=(("X-A", "1\r2"),), body=b""), "bad header"),
        (HttpRequest(method="GET", target="/", headers=(("X-A", "1\n2"),), body=b""), "bad header"),
        (
            HttpRequest(method="GET", target="/", headers=(("X-A", "1\x002"),), body=b""),
            "bad header",
        ),
        (HttpRequest(method="GÉT", target="/", headers=(), body=b""), "bad method"),
        (HttpRequest(method="GET", target="/", headers=(("Nämé", "1"),), body=b""), "bad header"),
        (
            HttpRequest(method="GET", target="/", headers=(("X-A", "5 €"),), body=b""),
            "a header value is not Latin-1",
        ),
    ],
)
def test_requests_that_cannot_be_written_are_refused_unchanged(
    request_: HttpRequest, what: str
) -> None:
    conn = Http11Connection(HOST)
    with pytest.raises(LocalProtocolError, match=f"cannot encode the request: {what}"):
        conn.send_request(request_)
    assert conn.data_to_send() == b""
    assert conn.reusable  # nothing moved: the connection can still send a good request
    conn.send_request(GET)
    assert conn.data_to_send().startswith(b"GET ")


def test_switching_protocols_after_an_informational_response() -> None:
    conn = awaiting()
    with pytest.raises(
        RemoteProtocolError, match=r"^invalid HTTP/1\.1 response: .*_SWITCH_UPGRADE"
    ):
        conn.receive_data(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", 0.0
        )
    assert conn.closed


def test_a_chunked_body_over_the_limit_is_remote_protocol_error() -> None:
    conn = awaiting(max_body_size=10)
    data = http(
        b"HTTP/1.1 200 OK", [(b"Transfer-Encoding", b"chunked")], chunked(b"0123456789", b"x")
    )
    with pytest.raises(RemoteProtocolError, match="the response body exceeds 10 bytes"):
        conn.receive_data(data, 0.0)
    assert conn.closed


def test_decode_body_for_transports_that_hand_over_raw_bytes() -> None:
    assert decode_body("", BODY) == BODY
    assert decode_body(" Identity ", BODY) == BODY
    assert decode_body("gzip", gzip.compress(BODY)) == BODY
    assert decode_body("deflate", raw_deflate(BODY)) == BODY
    with pytest.raises(RemoteProtocolError, match="content-encoding 'br'"):
        decode_body("br", BODY)
    with pytest.raises(RemoteProtocolError, match="truncated"):
        decode_body("gzip", gzip.compress(BODY)[:-8])
    with pytest.raises(RemoteProtocolError, match="exceeds 10 bytes"):
        decode_body("gzip", gzip.compress(BODY), max_body_size=10)


def test_an_unusual_method_and_many_header_names_are_written_as_given() -> None:
    conn = Http11Connection(HOST)
    names = [f"X-Name-{n}" for n in range(300)]  # more than the checked-names cache keeps
    headers = tuple((name, "v") for name in names)
    conn.send_request(HttpRequest(method="PROPFIND", target="/", headers=headers, body=b""))
    data = conn.data_to_send()
    assert data.startswith(b"PROPFIND / HTTP/1.1\r\nHost: ")
    assert all(f"\r\n{name}: v\r\n".encode() in data for name in names)
    assert len(http11._VALID_NAMES) <= 256


def test_a_content_length_with_a_non_ascii_digit_is_remote_protocol_error() -> None:
    # Found by fuzz/http_response.py: "\xb2" reads as a superscript two, which str.isdigit()
    # accepts and int() refuses.
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^invalid HTTP/1\.1 response: "):
        conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: \xb26\r\n\r\n" + b"x" * 26, 0.0)
    assert conn.closed


@FEEDS
@pytest.mark.parametrize("digits", [21, 26, 5000])
def test_a_content_length_of_more_than_20_digits_is_refused_as_h11_does(
    feed: Feed, digits: int
) -> None:
    # Leading zeros keep the value small; h11 refuses the length all the same, and int() would
    # refuse one of over 4,300 digits with a plain ValueError.
    length = b"0" * (digits - 1) + b"2"
    conn = awaiting()
    with pytest.raises(RemoteProtocolError, match=r"^invalid HTTP/1\.1 response: "):
        feed(conn.receive_data, b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n{}" % length)
    assert conn.closed


@FEEDS
def test_a_content_length_of_20_digits_is_read(feed: Feed) -> None:
    conn = awaiting()
    feed(conn.receive_data, b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n{}" % (b"0" * 19 + b"2"))
    assert only_response(conn).body == b"{}"
    assert conn.reusable


def test_the_repr_of_a_request_hides_the_signature_and_keeps_the_rest() -> None:
    request = HttpRequest(
        method="POST",
        target="/trade-api/v2/portfolio/orders",
        headers=(
            ("KALSHI-ACCESS-KEY", "key-1"),
            ("kalshi-access-signature", "c2VjcmV0"),
            ("Authorization", "Bearer t0ken"),
            ("Proxy-Authorization", "Basic cHc="),
        ),
        body=b"{}",
    )
    text = repr(request)
    assert "c2VjcmV0" not in text and "t0ken" not in text and "cHc=" not in text
    assert text == (
        "HttpRequest(method='POST', target='/trade-api/v2/portfolio/orders', headers=("
        "('KALSHI-ACCESS-KEY', 'key-1'), ('kalshi-access-signature', '<hidden>'), "
        "('Authorization', '<hidden>'), ('Proxy-Authorization', '<hidden>')), body=b'{}')"
    )


def test_the_repr_of_the_bytes_to_send_shows_only_their_length() -> None:
    # The adapter's write holds these bytes in its locals when it fails; a traceback that
    # prints locals must not print the signature.
    conn = Http11Connection("127.0.0.1:8080")
    conn.send_request(
        HttpRequest(
            method="GET",
            target="/x",
            headers=(("KALSHI-ACCESS-SIGNATURE", "c2VjcmV0"),),
            body=b"",
        )
    )
    out = conn.data_to_send()
    assert b"KALSHI-ACCESS-SIGNATURE: c2VjcmV0\r\n" in out
    assert repr(out) == f"<{len(out)} bytes of HTTP request, not shown>"
    assert bytes(out).startswith(b"GET /x HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "case",
    ["plain-at-head", "plain-chunked", "decoded", "encoded-at-head", "decode_body"],
)
def test_every_body_over_the_limit_is_response_too_large_with_the_limit(case: str) -> None:
    conn = awaiting(max_body_size=10)
    with pytest.raises(ResponseTooLargeError) as info:
        if case == "plain-at-head":
            conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 0.0)
        elif case == "plain-chunked":
            framing = [(b"Transfer-Encoding", b"chunked")]
            conn.receive_data(http(b"HTTP/1.1 200 OK", framing, chunked(b"0123456789", b"x")), 0.0)
        elif case == "decoded":
            conn.receive_data(ok(gzip.compress(bytes(11)), (b"Content-Encoding", b"gzip")), 0.0)
        elif case == "encoded-at-head":
            head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            conn.receive_data(head % (10 + http11._ENCODING_SLACK + 1), 0.0)
        else:
            decode_body("gzip", gzip.compress(bytes(11)), max_body_size=10)
    assert info.value.limit == 10
    assert "exceeds" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        ok(b"\x1f\x8b not gzip at all", (b"Content-Encoding", b"gzip")),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}",
    ],
    ids=["corrupt-gzip", "bad-length"],
)
def test_other_broken_responses_are_not_response_too_large(data: bytes) -> None:
    conn = awaiting()
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(data, 0.0)
    assert not isinstance(info.value, ResponseTooLargeError)


def test_read_error_is_final_only_for_a_body_over_the_limit() -> None:
    large = read_error(ResponseTooLargeError("the response body exceeds 10 bytes", limit=10))
    assert str(large) == "bad response from the server: the response body exceeds 10 bytes"
    assert large.final_reason == (
        "the response body is over the limit of 10 bytes, and would be again"
    )
    corrupt = RemoteProtocolError("the gzip response body is corrupt")
    broken = read_error(corrupt, "bad response body")
    assert str(broken) == "bad response body: the gzip response body is corrupt"
    assert broken.final_reason is None
    copied = pickle.loads(pickle.dumps(large))
    assert (type(copied), copied.final_reason) == (ReadError, large.final_reason)
    too_large = pickle.loads(pickle.dumps(ResponseTooLargeError("x", limit=3)))
    assert (type(too_large), too_large.limit) == (ResponseTooLargeError, 3)


@pytest.mark.parametrize(
    ("encoding", "most"),
    [("", 10), ("identity", 10), ("gzip", 10 + http11._ENCODING_SLACK), ("br", 10 + 65536)],
)
def test_body_too_large_counts_the_body_as_sent(encoding: str, most: int) -> None:
    assert body_too_large(encoding, most, max_body_size=10) is None
    error = body_too_large(encoding, most + 1, max_body_size=10)
    assert isinstance(error, ResponseTooLargeError) and error.limit == 10
    what = "encoded response body" if most > 10 else "response body"
    assert str(error) == f"the {what} exceeds {most} bytes"
    assert body_too_large(encoding, 64 * 1024 * 1024) is None  # the default limit
