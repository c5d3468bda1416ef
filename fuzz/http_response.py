"""Fuzz the client's HTTP/1.1 response path, `kalshi_proto.rest.http11.Http11Connection`.

The invariant (STYLE.md, section 8): any bytes, fed whole or split anywhere, give events or
`RemoteProtocolError`, nothing else; and both ways give the same outcome (the same responses, or
an error both times). Run ``python fuzz/http_response.py [--seconds 600] [--seed N]``; see
``fuzz/_runner.py`` for ``--atheris`` and ``--replay``. The Hypothesis version runs in the test
suite (``tests/proto/rest/test_http11.py``, "any bytes").
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import run, whole_and_split
from kalshi_proto.errors import RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.events import ConnectionClosed, ResponseReceived
from kalshi_proto.rest.http11 import Http11Connection

_GET = HttpRequest(method="GET", target="/trade-api/v2/markets", headers=(), body=b"")
_BODY = b'{"markets":[],"cursor":""}'

SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n" + _BODY,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n" + _BODY + b"\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 46\r\n\r\n"
    + gzip.compress(_BODY, mtime=0),
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + _BODY,
    b"HTTP/1.0 200 OK\r\n\r\n" + _BODY,
]
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Encoding: deflate\r\n",
    b"Connection: close\r\n",
    b"HTTP/1.1 ",
    b"0",
    b"99999999999",
    b"-1",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
]

Outcome = tuple[tuple[HttpResponse, ...], bool, bool]  # responses, closed, failed


def _feed(chunks: list[bytes], eof: bool) -> Outcome:
    conn = Http11Connection("api.elections.kalshi.com", max_body_size=4096)
    conn.send_request(_GET)
    conn.data_to_send()
    responses: list[HttpResponse] = []
    closed = failed = False

    def drain() -> None:
        nonlocal closed
        while (event := conn.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                # No next request: bytes after a response are dropped and close the connection
                # when they come in the same read as its end, and would be the next answer when
                # they come after the next request went out, so whole and split reads could not
                # agree past the first response (RFC 9112, section 6.3).
                responses.append(event.response)
            else:
                assert isinstance(event, ConnectionClosed), event
                closed = True

    try:
        for chunk in chunks:
            conn.receive_data(chunk, 0.0)
            drain()
        if eof:
            conn.receive_eof(0.0)
            drain()
    except RemoteProtocolError:
        failed = True
        assert not conn.reusable
    return tuple(responses), closed, failed


def check(data: bytes) -> None:
    """Whole and split (a split derived from the data itself) must both hold the invariant
    and agree."""
    for whole, split in whole_and_split(_feed, data):
        assert whole == split, (whole, split)


if __name__ == "__main__":
    sys.exit(run("http_response", check, SEEDS, TOKENS))
