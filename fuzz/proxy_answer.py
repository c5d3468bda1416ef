"""Fuzz a proxy's answer to ``CONNECT``, as `kalshi_proto.proxy.ProxyTunnel` reads it.

The invariant (STYLE.md, section 8): any bytes, fed whole or split anywhere, open the tunnel,
ask for more, or raise `ProxyError`, nothing else; and both ways agree. Bytes past a 2xx answer
are an error whether they come in the answer's read (`ProxyError`) or in a later one (the
driver would hand them to TLS: here they count as the same outcome). Run
``python fuzz/proxy_answer.py [--seconds 600] [--seed N]``; see ``fuzz/_runner.py`` for
``--atheris`` and ``--replay``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import run, whole_and_split
from kalshi_proto.errors import ProxyError
from kalshi_proto.proxy import ProxyTunnel, ProxyUrl

_PROXY = ProxyUrl("proxy.example.com", 3128, "user", "secret")

SEEDS = [
    b"HTTP/1.1 200 Connection established\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nProxy-Agent: squid\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
    b"Content-Length: 5\r\n\r\nnope!",
    b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03\x00\x02",
]
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b"HTTP/1.1 ",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"1",
    b"2",
    b" ",
    b"\x00",
    b"\xff",
]

Outcome = tuple[str, int | None]


def _feed(chunks: list[bytes], eof: bool) -> Outcome:
    tunnel = ProxyTunnel(_PROXY, "api.elections.kalshi.com", 443, user_agent="fuzz")
    assert tunnel.data_to_send().startswith(b"CONNECT api.elections.kalshi.com:443 HTTP/1.1\r\n")
    try:
        for index, chunk in enumerate(chunks):
            if tunnel.receive_data(chunk):
                assert tunnel.is_open
                if any(chunks[index + 1 :]):
                    return ("bytes past the answer", None)
                return ("open", None)
            assert not tunnel.is_open
        if eof:
            tunnel.receive_data(b"")
            raise AssertionError("EOF before an answer must raise")
    except ProxyError as exc:
        assert not tunnel.is_open
        assert "secret" not in str(exc)
        if "past its answer" in str(exc):
            return ("bytes past the answer", None)
        return ("refused" if exc.status is not None else "broken", exc.status)
    return ("incomplete", None)


def check(data: bytes) -> None:
    """Whole and split (a split derived from the data itself) must both hold the invariant
    and agree."""
    for whole, split in whole_and_split(_feed, data):
        assert whole == split, (whole, split)


if __name__ == "__main__":
    sys.exit(run("proxy_answer", check, SEEDS, TOKENS))
