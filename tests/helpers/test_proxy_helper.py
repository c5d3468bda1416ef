"""The CONNECT proxy helper counts the tunnels its clients hold, not those it still relays."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers.proxy import TunnelProxy, peer_closed, tunnel_proxy
from tests.helpers.test_socks_helper import echo_server


@contextmanager
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def test_an_open_socket_with_nothing_to_read_is_not_closed() -> None:
    with pair() as (ours, _):
        assert not peer_closed(ours)
        ours.settimeout(0.01)  # a socket with a timeout waits for it, then says the same
        assert not peer_closed(ours)


def test_unread_bytes_come_before_the_close() -> None:
    with pair() as (ours, theirs):
        theirs.sendall(b"last words")
        theirs.close()
        assert not peer_closed(ours)
        assert peer_closed(ours) is False  # looking read nothing
        assert ours.recv(64) == b"last words"
        assert peer_closed(ours)


def test_a_close_or_a_reset_is_seen() -> None:
    with pair() as (ours, theirs):
        theirs.shutdown(socket.SHUT_WR)
        assert peer_closed(ours)
    with pair() as (ours, theirs):
        theirs.close()
        assert peer_closed(ours)
        ours.close()
        assert peer_closed(ours)  # closed here too


def _open_tunnel(proxy: TunnelProxy, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), 5)
    sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, "the proxy closed before it answered"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    return sock


def test_a_tunnel_its_client_closed_does_not_count_though_its_relay_has_not_seen_it() -> None:
    # Each relay waits until the test lets it go, as a thread not yet scheduled on a busy
    # machine would: the close of the first tunnel is seen only by looking at its socket.
    go = threading.Event()

    def held_relay(
        peers: dict[socket.socket, socket.socket],
        poller: select.poll,
        by_fd: dict[int, socket.socket],
    ) -> bool:
        go.wait(10)
        return TunnelProxy._relay(peers, poller, by_fd)

    with echo_server() as echo, tunnel_proxy() as proxy:
        proxy._relay = held_relay  # type: ignore[method-assign]
        try:
            first = _open_tunnel(proxy, echo.port)
            first.close()
            second = _open_tunnel(proxy, echo.port)
            assert (proxy.accepted, proxy.most_open, proxy._open) == (2, 1, 1)
            third = _open_tunnel(proxy, echo.port)
            assert (proxy.most_open, proxy._open) == (2, 2)
        finally:
            go.set()
        for sock in (second, third):
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
            sock.close()
