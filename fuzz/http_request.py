"""Fuzz the local exchange's HTTP/1.1 request path, `kalshi_proto.sim.http.HttpServerConnection`.

The invariant (STYLE.md, section 8): any bytes, fed whole or split anywhere, give events or a
`RemoteProtocolError` whose ``hint`` is a status to answer (400, 413, 431, 501, 505), nothing
else; after one, `send_error_response` writes that status. Whole and split give the same
requests and both refuse or neither, with one exception: 431 is a buffering limit, so a section
over ``max_header_size`` that h11 meets in pieces (chunk trailers, chunk-size lines) may be
refused where, arriving whole, it passes; then the requests accepted before the refusal must be
the first requests of the other run. The status of a refusal may differ too (a head both
malformed and too long is refused for whichever the parser meets first). Run ``python fuzz/http_request.py [--seconds 600] [--seed N]``;
see ``fuzz/_runner.py`` for ``--atheris`` and ``--replay``. The Hypothesis version runs in the
test suite (``tests/proto/sim/test_http.py``, "fuzz").
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import run, whole_and_split
from kalshi_proto.errors import RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.sim.events import ConnectionClosed, RequestReceived
from kalshi_proto.sim.http import HttpServerConnection

_OK = HttpResponse(status=200, headers=(("content-type", "application/json"),), body=b"{}")
_REFUSALS = (400, 413, 431, 501, 505)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

SEEDS = [
    b"GET /trade-api/v2/markets?status=open&limit=100 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"KALSHI-ACCESS-KEY: key-1\r\nAccept: application/json\r\n\r\n",
    b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: localhost\r\n"
    b'Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{"ticker":"KX-1"}',
    b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    # A HEAD whose whole head is over the limit (512 bytes here): refused with no body.
    b"HEAD /x HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"a" * 600 + b"\r\n\r\n",
]
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b" HTTP/1.1",
    b"HTTP/2.0",
    b"CONNECT ",
    b"HEAD ",
    b"0",
    b"99999999999",
    b"-1",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
]

Outcome = tuple[tuple[HttpRequest, ...], int | None, bool]  # requests, refusal status, closed


def _feed(chunks: list[bytes], eof: bool) -> Outcome:
    conn = HttpServerConnection(max_body_size=64, max_header_size=512)
    requests: list[HttpRequest] = []
    closed = False

    def drain() -> None:
        nonlocal closed
        while (event := conn.next_event()) is not None:
            if isinstance(event, RequestReceived):
                requests.append(event.request)
                conn.send_response(_OK)
                out = conn.data_to_send().removeprefix(_CONTINUE)  # for Expect: 100-continue
                assert out.startswith(b"HTTP/1.1 200 OK\r\n"), out
                if conn.closing:
                    closed = True
                    return
            else:
                assert isinstance(event, ConnectionClosed), event
                assert conn.closing
                closed = True
                return
        # Waiting for more bytes: what is queued now can only be a 100 Continue.
        assert conn.data_to_send() in (b"", _CONTINUE)

    try:
        for chunk in chunks:
            if closed:
                break
            conn.receive_data(chunk, 0.0)
            drain()
        if eof and not closed:
            conn.receive_eof(0.0)
            drain()
    except RemoteProtocolError as exc:
        assert exc.hint in _REFUSALS, exc.hint
        assert conn.closing
        conn.send_error_response()
        out = conn.data_to_send().removeprefix(_CONTINUE)
        assert out.startswith(f"HTTP/1.1 {exc.hint} ".encode()), out
        return tuple(requests), exc.hint, True
    return tuple(requests), None, closed


def check(data: bytes) -> None:
    """Whole and split (a split derived from the data itself) must both hold the invariant
    and agree."""
    for whole, split in whole_and_split(_feed, data):
        if 431 in (whole[1], split[1]):
            shorter, longer = sorted((whole[0], split[0]), key=len)
            assert longer[: len(shorter)] == shorter, (whole, split)
        else:
            assert whole[0] == split[0] and (whole[1] is None) == (split[1] is None), (whole, split)
            assert whole[2] == split[2], (whole, split)


if __name__ == "__main__":
    sys.exit(run("http_request", check, SEEDS, TOKENS))
