"""The SOCKS5 test proxy itself, driven by a plain blocking socket client written here.

Nothing from the SDK: the client below speaks RFC 1928 and RFC 1929 byte by byte, so the proxy
the SDK's SOCKS code is tested against is checked against the RFCs, not against that code.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers.socks import SocksProxy, SocksRequest, socks_proxy

LOOPBACK_V4 = b"\x7f\x00\x00\x01"
LOOPBACK_V6 = bytes(15) + b"\x01"


class EchoServer:
    """A loopback TCP server that sends back whatever it receives, one thread a connection."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        #: The client port of each connection it accepted.
        self.peer_ports: list[int] = []
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = self.listener.accept()
            except TimeoutError:
                continue
            self.peer_ports.append(peer[1])
            self._sockets.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)

    def stop(self) -> None:
        self._stopping.set()
        self._threads[0].join(10)
        for thread in self._threads:
            thread.join(10)
        self.listener.close()
        for conn in self._sockets:
            conn.close()


@contextmanager
def echo_server(host: str = "127.0.0.1") -> Iterator[EchoServer]:
    server = EchoServer(host)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def client_of(proxy: SocksProxy) -> Iterator[socket.socket]:
    """A blocking connection to ``proxy``, closed after."""
    with socket.create_connection(("127.0.0.1", proxy.port), 5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"the proxy closed after {data!r}, {size} bytes expected"
        data += chunk
    return data


def assert_closed(sock: socket.socket) -> None:
    """The proxy has ended the connection: nothing more comes, only the end."""
    assert sock.recv(1) == b""


def connect_request(address_type: int, address: bytes, port: int, command: int = 1) -> bytes:
    return bytes([5, command, 0, address_type]) + address + port.to_bytes(2, "big")


def failure(code: int) -> bytes:
    return bytes([5, code, 0, 1]) + bytes(6)


def assert_echoes(sock: socket.socket) -> None:
    for payload in (b"ping", b"\x00\xff" * 5000):
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("host", "address_type", "address", "recorded"),
    [
        ("127.0.0.1", 1, LOOPBACK_V4, "127.0.0.1"),
        ("127.0.0.1", 3, b"\x09localhost", "localhost"),
        pytest.param(
            "::1",
            4,
            LOOPBACK_V6,
            "::1",
            marks=pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
    ids=["ipv4", "domain", "ipv6"],
)
def test_connect_without_authentication_relays_both_ways(
    host: str, address_type: int, address: bytes, recorded: str
) -> None:
    with echo_server(host) as echo, socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert recv_exactly(sock, 2) == b"\x05\x00"
        sock.sendall(connect_request(address_type, address, echo.port))
        reply = recv_exactly(sock, 10)
        assert reply[:8] == b"\x05\x00\x00\x01" + LOOPBACK_V4
        assert_echoes(sock)
        bound_port = int.from_bytes(reply[8:], "big")
        assert proxy.upstream_ports == [bound_port]
        assert echo.peer_ports == [bound_port]
        assert proxy.requests == [SocksRequest(b"\x00", None, 1, address_type, recorded, echo.port)]
        assert proxy.greetings == [b"\x05\x01\x00"]
        assert (proxy.accepted, proxy.most_open, proxy.heads) == (1, 1, [])


def test_tunnel_ends_when_the_client_stops_sending() -> None:
    with echo_server() as echo, socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port))
        assert recv_exactly(sock, 12)[2:4] == b"\x05\x00"
        assert_echoes(sock)
        sock.shutdown(socket.SHUT_WR)
        assert_closed(sock)


def test_credentials_accepted() -> None:
    with (
        echo_server() as echo,
        socks_proxy(credentials=("bot", "p@ss:wörd")) as proxy,
        client_of(proxy) as sock,
    ):
        sock.sendall(b"\x05\x02\x00\x02")
        assert recv_exactly(sock, 2) == b"\x05\x02"
        password = "p@ss:wörd".encode()
        sock.sendall(b"\x01\x03bot" + bytes([len(password)]) + password)
        assert recv_exactly(sock, 2) == b"\x01\x00"
        sock.sendall(connect_request(1, LOOPBACK_V4, echo.port))
        assert recv_exactly(sock, 10)[:2] == b"\x05\x00"
        assert_echoes(sock)
        assert proxy.requests == [SocksRequest(b"\x00\x02", "bot", 1, 1, "127.0.0.1", echo.port)]


def test_empty_password_accepted() -> None:
    with echo_server() as echo, socks_proxy(credentials=("bot", "")) as proxy:
        with client_of(proxy) as sock:
            sock.sendall(b"\x05\x01\x02")
            assert recv_exactly(sock, 2) == b"\x05\x02"
            sock.sendall(b"\x01\x03bot\x00")
            assert recv_exactly(sock, 2) == b"\x01\x00"
            sock.sendall(connect_request(1, LOOPBACK_V4, echo.port))
            assert recv_exactly(sock, 10)[:2] == b"\x05\x00"
            assert_echoes(sock)
        assert [request.username for request in proxy.requests] == ["bot"]


@pytest.mark.parametrize(
    ("user", "password"), [(b"bot", b"wrong"), (b"bob", b"right"), (b"bot", b"")]
)
def test_wrong_credentials_refused(user: bytes, password: bytes) -> None:
    with socks_proxy(credentials=("bot", "right")) as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x02")
        assert recv_exactly(sock, 2) == b"\x05\x02"
        sock.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        assert recv_exactly(sock, 2) == b"\x01\x01"
        assert_closed(sock)
        assert proxy.requests == []
        assert proxy.upstream_ports == []


@pytest.mark.parametrize(
    ("credentials", "greeting"),
    [
        (None, b"\x05\x01\x02"),
        (None, b"\x05\x00"),
        (("bot", "right"), b"\x05\x01\x00"),
        (("bot", "right"), b"\x05\x03\x00\x01\x03"),
    ],
    ids=["plain-offers-password", "plain-offers-nothing", "auth-offers-none", "auth-offers-other"],
)
def test_no_acceptable_method(credentials: tuple[str, str] | None, greeting: bytes) -> None:
    with socks_proxy(credentials=credentials) as proxy, client_of(proxy) as sock:
        sock.sendall(greeting)
        assert recv_exactly(sock, 2) == b"\x05\xff"
        assert_closed(sock)
        assert proxy.greetings == [greeting]
        assert proxy.requests == []


def test_other_version_closed_without_answer() -> None:
    with socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")  # a SOCKS4 CONNECT
        assert_closed(sock)
        assert proxy.greetings == [b"\x04"]
        assert proxy.requests == []


@pytest.mark.parametrize(
    ("address_type", "address", "recorded"),
    [
        (1, b"\xc0\x00\x02\x01", "192.0.2.1"),
        (4, b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", "2001:db8::1"),
        (3, b"\x0bexample.com", "example.com"),
        (3, b"\x00", ""),
    ],
    ids=["ipv4", "ipv6", "domain", "empty-domain"],
)
def test_non_loopback_target_not_allowed(address_type: int, address: bytes, recorded: str) -> None:
    with socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert recv_exactly(sock, 2) == b"\x05\x00"
        sock.sendall(connect_request(address_type, address, 443))
        assert recv_exactly(sock, 10) == failure(0x02)
        assert_closed(sock)
        assert proxy.requests == [SocksRequest(b"\x00", None, 1, address_type, recorded, 443)]
        assert proxy.upstream_ports == []


def test_other_command_not_supported() -> None:
    with echo_server() as echo, socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port, command=2))
        assert recv_exactly(sock, 12) == b"\x05\x00" + failure(0x07)
        assert_closed(sock)
        assert [request.command for request in proxy.requests] == [2]
        assert echo.peer_ports == []


def test_unknown_address_type_not_supported() -> None:
    with socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00\x05\x01\x00\x05")
        assert recv_exactly(sock, 12) == b"\x05\x00" + failure(0x08)
        assert_closed(sock)
        assert proxy.requests == [SocksRequest(b"\x00", None, 1, 5, "", 0)]


def test_refused_upstream() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed: nothing listens there after
    with socks_proxy() as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, port))
        assert recv_exactly(sock, 12) == b"\x05\x00" + failure(0x05)
        assert_closed(sock)
        assert proxy.upstream_ports == []


@pytest.mark.parametrize("code", [0x01, 0x05])
def test_reply_setting_answers_every_connect(code: int) -> None:
    with echo_server() as echo, socks_proxy(reply=code) as proxy:
        for _ in range(2):
            with client_of(proxy) as sock:
                sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port))
                assert recv_exactly(sock, 12) == b"\x05\x00" + failure(code)
                assert_closed(sock)
        assert len(proxy.requests) == 2
        assert proxy.upstream_ports == []
        assert echo.peer_ports == []


def test_reply_setting_is_one_octet() -> None:
    with pytest.raises(ValueError, match="one octet"):
        SocksProxy(reply=256)


def test_conversation_in_one_byte_pieces() -> None:
    with echo_server() as echo, socks_proxy(credentials=("bot", "right")) as proxy:
        with client_of(proxy) as sock:
            greeting = b"\x05\x02\x00\x02"
            login = b"\x01\x03bot\x05right"
            request = connect_request(3, b"\x09localhost", echo.port)
            for message, answer in ((greeting, 2), (login, 2), (request, 10)):
                for byte in message:
                    sock.send(bytes([byte]))
                    time.sleep(0.005)
                assert recv_exactly(sock, answer)[:2] in (b"\x05\x02", b"\x01\x00", b"\x05\x00")
            assert_echoes(sock)
        assert proxy.greetings == [greeting]
        assert proxy.requests == [SocksRequest(b"\x00\x02", "bot", 1, 3, "localhost", echo.port)]


@pytest.mark.parametrize(
    ("bound", "on_the_wire"),
    [
        ((4, LOOPBACK_V6), b"\x04" + LOOPBACK_V6),
        ((3, b"\x09localhost"), b"\x03\x09localhost"),
        (None, b"\x01" + LOOPBACK_V4),
    ],
    ids=["ipv6", "domain", "default"],
)
def test_bound_address_in_the_reply(bound: tuple[int, bytes] | None, on_the_wire: bytes) -> None:
    with echo_server() as echo, socks_proxy(bound=bound) as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port))
        assert recv_exactly(sock, 2) == b"\x05\x00"
        reply = recv_exactly(sock, 3 + len(on_the_wire) + 2)
        assert reply[:3] == b"\x05\x00\x00"
        assert reply[3:-2] == on_the_wire
        assert_echoes(sock)  # first: the target has accepted once it has echoed
        assert int.from_bytes(reply[-2:], "big") == proxy.upstream_ports[0] == echo.peer_ports[0]


@pytest.mark.parametrize("answer", [b"\x05\x00\x01garbage", b""])
def test_answer_setting_replaces_the_method_choice(answer: bytes) -> None:
    with socks_proxy(answer=answer) as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert recv_exactly(sock, len(answer)) == answer
        assert_closed(sock)
        assert proxy.greetings == [b"\x05\x01\x00"]


def test_silent_setting_never_answers() -> None:
    with socks_proxy(silent=True) as proxy, client_of(proxy) as sock:
        sock.sendall(b"\x05\x01\x00")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert proxy.greetings == [b"\x05\x01\x00"]


def test_url() -> None:
    with socks_proxy() as proxy:
        assert proxy.url() == f"socks5://127.0.0.1:{proxy.port}"
        assert proxy.url("bot:pw@", "socks5h") == f"socks5h://bot:pw@127.0.0.1:{proxy.port}"


def test_two_tunnels_at_once() -> None:
    with echo_server() as echo, socks_proxy() as proxy:
        with client_of(proxy) as first, client_of(proxy) as second:
            for sock in (first, second):
                sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port))
                assert recv_exactly(sock, 12)[2:4] == b"\x05\x00"
            for sock in (first, second):
                assert_echoes(sock)
        assert proxy.most_open == 2
        assert sorted(proxy.upstream_ports) == sorted(echo.peer_ports)


def test_tunnels_one_after_another() -> None:
    with echo_server() as echo, socks_proxy() as proxy:
        for _ in range(2):
            with client_of(proxy) as sock:
                sock.sendall(b"\x05\x01\x00" + connect_request(1, LOOPBACK_V4, echo.port))
                assert recv_exactly(sock, 12)[2:4] == b"\x05\x00"
                assert_echoes(sock)
                sock.shutdown(socket.SHUT_WR)
                assert_closed(sock)
            deadline = time.monotonic() + 5
            while proxy._open and time.monotonic() < deadline:
                time.sleep(0.01)
        assert (proxy.accepted, proxy.most_open, proxy._open) == (2, 1, 0)
        assert len(proxy.upstream_ports) == 2
