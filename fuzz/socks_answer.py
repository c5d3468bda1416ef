"""Fuzz a SOCKS5 proxy's answers, as `kalshi_proto.proxy.Socks5Tunnel` reads them.

The invariant (STYLE.md, section 8): any bytes, fed whole or split anywhere, open the tunnel,
ask for more, or raise `ProxyError`, nothing else; the bytes the tunnel sends are the greeting,
the RFC 1929 credentials and the connect request, in that order and each once; the proxy
password is in no error; and whole and split agree. Bytes past the reply are an error whether
they come in the reply's read (`ProxyError`) or in a later one (the driver would hand them to
TLS: here they count as the same outcome). Run
``python fuzz/socks_answer.py [--seconds 600] [--seed N]``; see ``fuzz/_runner.py`` for
``--atheris`` and ``--replay``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import run, whole_and_split
from kalshi_proto.errors import ProxyError
from kalshi_proto.proxy import ProxyUrl, Socks5Tunnel

_PROXY = ProxyUrl("proxy.example.com", 1080, "user", "secret", scheme="socks5")
_GREETING = b"\x05\x01\x02"
_CREDENTIALS = b"\x01\x04user\x06secret"
_REQUEST = b"\x05\x01\x00\x03\x18api.elections.kalshi.com\x01\xbb"
#: What the tunnel may have sent by the end: a prefix of its three steps, whole steps only.
_STEPS = (b"", _GREETING, _GREETING + _CREDENTIALS, _GREETING + _CREDENTIALS + _REQUEST)

SEEDS = [
    b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38",
    b"\x05\x02\x01\x00\x05\x00\x00\x04" + bytes(16) + b"\x04\x38",
    b"\x05\x02\x01\x00\x05\x00\x00\x03\x0bexample.com\x04\x38",
    b"\x05\x02\x01\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00",
    b"\x05\x02\x01\x01",
    b"\x05\xff",
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
]
TOKENS = [b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\xff", b"\x05\x00", b"\x01\x00"]

Outcome = tuple[str, int | None, bytes]


def _feed(chunks: list[bytes], eof: bool) -> Outcome:
    tunnel = Socks5Tunnel(_PROXY, "api.elections.kalshi.com", 443)
    sent = tunnel.data_to_send()
    outcome: tuple[str, int | None]
    try:
        for index, chunk in enumerate(chunks):
            opened = tunnel.receive_data(chunk)
            sent += tunnel.data_to_send()
            if opened:
                assert tunnel.is_open
                past = any(chunks[index + 1 :])
                outcome = ("bytes past the reply", None) if past else ("open", None)
                break
            assert not tunnel.is_open
        else:
            if eof:
                tunnel.receive_data(b"")
                raise AssertionError("EOF before the reply must raise")
            outcome = ("incomplete", None)
    except ProxyError as exc:
        sent += tunnel.data_to_send()  # what a step queued before the error, in the same read
        assert not tunnel.is_open
        assert "secret" not in str(exc)
        assert exc.status is None
        if "past its reply" in str(exc):
            outcome = ("bytes past the reply", None)
        else:
            outcome = ("refused" if exc.reply is not None else "broken", exc.reply)
    assert sent in _STEPS, sent
    if outcome[0] in ("open", "bytes past the reply") or outcome[1] is not None:
        assert sent == _STEPS[-1]  # a reply answers the connect request, sent whole before it
    return (*outcome, sent)


def check(data: bytes) -> None:
    """Whole and split (a split derived from the data itself) must both hold the invariant
    and agree."""
    for whole, split in whole_and_split(_feed, data):
        assert whole == split, (whole, split)


if __name__ == "__main__":
    sys.exit(run("socks_answer", check, SEEDS, TOKENS))
