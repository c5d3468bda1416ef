"""kalshi_httpx._deadline: the blocking httpx client's network waits held to the attempt's
deadline, against a stand-in for httpcore's stream (no sockets)."""

from __future__ import annotations

import time
from typing import Any

import httpcore
import pytest

from kalshi_httpx._deadline import ClampedStream, ClampingBackend, bound


class Inner(httpcore.NetworkStream):
    """Records the timeouts it is given, and whether it was closed."""

    def __init__(self) -> None:
        self.timeouts: list[tuple[str, float | None]] = []
        self.closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(("read", timeout))
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(("write", timeout))

    def close(self) -> None:
        self.closed = True

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self.timeouts.append(("start_tls", timeout))
        return Inner()


class Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.made: list[Inner] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, *rest: Any) -> Inner:
        self.made.append(Inner())
        self.made[-1].timeouts.append(("connect", timeout))
        return self.made[-1]


def test_without_a_deadline_every_wait_keeps_its_timeout() -> None:
    stream = ClampingBackend(Backend()).connect_tcp("127.0.0.1", 1, timeout=5.0)
    assert isinstance(stream, ClampedStream)
    inner = stream.inner
    assert isinstance(inner, Inner)
    stream.write(b"GET", timeout=5.0)
    stream.read(10, timeout=5.0)
    assert inner.timeouts == [("connect", 5.0), ("write", 5.0), ("read", 5.0)]


def test_each_wait_is_held_to_what_is_left_of_the_deadline() -> None:
    backend = Backend()
    with bound(time.monotonic() + 0.5):
        stream = ClampingBackend(backend).connect_tcp("127.0.0.1", 1, timeout=5.0)
        stream.write(b"GET", timeout=5.0)
        stream.read(10, timeout=0.1)  # a shorter timeout of its own stays
    [(_, connect), (_, write), (_, read)] = backend.made[0].timeouts
    assert connect is not None and write is not None
    assert 0.3 < write <= connect <= 0.5
    assert read == 0.1


def test_past_the_deadline_a_read_takes_only_what_has_arrived_and_a_write_fails() -> None:
    stream = ClampedStream(inner := Inner())
    with bound(time.monotonic() - 1):
        assert stream.read(10, timeout=5.0) == b"x"
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"GET", timeout=5.0)
    [(kind, timeout)] = inner.timeouts
    assert kind == "read" and timeout is not None and timeout <= 0.001
    assert not inner.closed  # httpcore closes the connection on a write that fails


def test_a_tls_start_refused_past_the_deadline_closes_the_connection_it_would_run_on() -> None:
    # httpcore holds the TCP stream in a local while it starts TLS on it, and closes nothing if
    # the start fails: its own streams close themselves then. The clamp must too, or the socket
    # was left to the garbage collector (the soak found them: fuzz/soak_rest.py).
    stream = ClampedStream(inner := Inner())
    with bound(time.monotonic() - 1), pytest.raises(httpcore.ConnectTimeout):
        stream.start_tls(object(), "127.0.0.1", timeout=5.0)
    assert inner.closed
    assert inner.timeouts == []  # no handshake was begun


def test_a_tls_start_within_the_deadline_is_clamped_and_stays_clamped() -> None:
    stream = ClampedStream(inner := Inner())
    with bound(time.monotonic() + 0.5):
        tls = stream.start_tls(object(), "127.0.0.1", timeout=5.0)
    assert isinstance(tls, ClampedStream)
    [(kind, timeout)] = inner.timeouts
    assert kind == "start_tls" and timeout is not None and timeout <= 0.5
    assert not inner.closed
