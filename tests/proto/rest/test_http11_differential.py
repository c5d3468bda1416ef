"""The fast path of `Http11Connection` agrees with h11 on every response it is shown.

Each example is a response built from random parts (status, reason, headers, framing, body),
fed to `Http11Connection` in random splits and, separately, to a bare h11 client connection. Both
must produce the same status, headers and body, or both must refuse the bytes.
"""

from __future__ import annotations

import random

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.errors import RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest
from kalshi_proto.rest.events import ResponseReceived
from kalshi_proto.rest.http11 import Http11Connection

GET = HttpRequest(method="GET", target="/trade-api/v2/markets", headers=(), body=b"")
TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=12,
)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


def reference(data: bytes, eof: bool) -> tuple[int, tuple[tuple[str, str], ...], bytes] | None:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    status, body = 0, bytearray()
    headers: tuple[tuple[str, str], ...] = ()
    try:
        conn.receive_data(data)
        if eof:
            conn.receive_data(b"")
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                if event.status_code == 101:
                    return None
                status = event.status_code
                headers = tuple(
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in event.headers
                )
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, bytes(body)
            elif (
                event is h11.NEED_DATA
                or event is h11.PAUSED
                or isinstance(event, h11.ConnectionClosed)
            ):
                return None
    except h11.RemoteProtocolError:
        return None


def ours(
    data: bytes, eof: bool, rng: random.Random
) -> tuple[int, tuple[tuple[str, str], ...], bytes] | None:
    conn = Http11Connection("h")
    conn.send_request(GET)
    conn.data_to_send()
    try:
        rest = data
        while rest:
            cut = rng.randint(1, len(rest))
            conn.receive_data(rest[:cut], 0.0)
            rest = rest[cut:]
        if eof:
            conn.receive_eof(0.0)
    except RemoteProtocolError:
        return None
    event = conn.next_event()
    if not isinstance(event, ResponseReceived):
        return None
    response = event.response
    return response.status, response.headers, response.body


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(
        st.sampled_from([100, 101, 199, 200, 201, 204, 301, 304, 404, 429, 500, 503, 600, 99])
    )
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Some Reason", b" bad\x01"]))
    version = draw(
        st.sampled_from(
            [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x"]
        )
    )
    body = draw(st.binary(max_size=40))
    lines = [version + b" " + str(status).encode() + reason]
    framing = draw(
        st.sampled_from(
            [
                "length",
                "length",
                "chunked",
                "none",
                "double-length",
                "bad-length",
                "length+chunked",
                "padded-length",
            ]
        )
    )
    if framing in ("length", "double-length", "length+chunked"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "padded-length":  # h11 refuses a length of more than 20 digits
        lines.append(b"Content-Length: %s%d" % (b"0" * draw(st.integers(0, 24)), len(body)))
    if framing == "double-length":
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "bad-length":
        lines.append(b"Content-Length: 1x")
    if framing in ("chunked", "length+chunked"):
        lines.append(b"Transfer-Encoding: chunked")
        body_bytes = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        body_bytes = body
    for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4)):
        lines.append(name.encode() + b": " + value.encode())
    if draw(st.booleans()):
        lines.append(
            b"Connection: " + draw(st.sampled_from([b"close", b"keep-alive", b"Upgrade, close"]))
        )
    odd = draw(st.sampled_from([None, b" folded", b"NoColon", b"Bad Name: x", b"X: a\x00b"]))
    if odd is not None:
        lines.append(odd)
    separator = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
    return separator.join(lines) + separator + separator + body_bytes


@settings(max_examples=600, deadline=None)
@given(responses(), st.booleans(), st.integers(0, 2**32))
def test_fast_path_and_h11_agree(data: bytes, eof: bool, seed: int) -> None:
    expected = reference(data, eof)
    got = ours(data, eof, random.Random(seed))
    if expected is None:
        assert got is None, (data, got)
    else:
        assert got == expected, data


def test_the_reference_accepts_a_plain_response() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    assert reference(data, False) == (200, (("content-length", "2"),), b"{}")
    assert ours(data, False, random.Random(0)) == reference(data, False)
