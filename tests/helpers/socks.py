"""A SOCKS5 proxy on loopback, for the tests of clients that tunnel through one.

Written from RFC 1928 (SOCKS version 5) and RFC 1929 (its username/password authentication)
and the sockets, not against the SDK's SOCKS code: it is the independent peer that code is
tested with. It reads the client's greeting, picks an authentication method, checks the
username and password when it demands them, reads the request and, when it grants a CONNECT,
copies bytes both ways between the client and the target until either side closes. Only
loopback targets are reached (an IPv4 or IPv6 loopback address, or the name ``localhost``), so
no test can tunnel anywhere else.

It is a `TunnelProxy` that speaks SOCKS5 instead of HTTP: the accepting, the threads, the
socket bookkeeping, the relaying and `stop` are the ``CONNECT`` proxy's.
"""

from __future__ import annotations

import ipaddress
import socket
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from tests.helpers.proxy import TunnelProxy, running

__all__ = ["SocksProxy", "SocksRequest", "socks_proxy"]

# Method numbers (RFC 1928 section 3).
_NO_AUTHENTICATION = 0x00
_USERNAME_PASSWORD = 0x02
_NO_ACCEPTABLE_METHODS = 0xFF

# Reply codes (RFC 1928 section 6).
_SUCCEEDED = 0x00
_NOT_ALLOWED = 0x02
_REFUSED = 0x05
_COMMAND_NOT_SUPPORTED = 0x07
_ADDRESS_TYPE_NOT_SUPPORTED = 0x08

_CONNECT = 0x01
_IPV4, _DOMAIN_NAME, _IPV6 = 0x01, 0x03, 0x04


@dataclass(frozen=True)
class SocksRequest:
    """One request the proxy read, with what came before it on the same connection.

    Attributes:
        methods: the authentication methods the greeting offered, in order.
        username: the username the RFC 1929 sub-negotiation sent, or None without one.
        command: CMD: 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE.
        address_type: ATYP: 1 IPv4, 3 domain name, 4 IPv6.
        host: DST.ADDR: a dotted IPv4 address, a compressed IPv6 address, or the domain name
            (decoded as Latin-1); ``""`` for an address type the proxy does not know.
        port: DST.PORT; 0 for an address type the proxy does not know.
    """

    methods: bytes
    username: str | None
    command: int
    address_type: int
    host: str
    port: int


@dataclass
class SocksProxy(TunnelProxy):
    """The SOCKS5 proxy's settings and what it saw.

    Attributes:
        answer: bytes to send right after the greeting instead of the method choice (garbage,
            a version-4 answer), then close; ``b""`` closes without answering; None answers.
        silent: accept connections and read the greeting, but never answer.
        credentials: ``(user, password)`` the proxy demands: it then accepts only the
            username/password method, and only these (compared as UTF-8). None: it accepts
            only "no authentication".
        reply: when non-zero, the reply code every CONNECT gets instead of a tunnel.
        bound: ATYP and BND.ADDR of the success reply, BND.ADDR as on the wire (for a domain
            name, its length octet first); None is 127.0.0.1. BND.PORT is always the local
            port of the proxy's connection to the target.
        greetings: each greeting received (VER, NMETHODS, METHODS), in order; only the VER
            octet of one whose version is not 5, which the proxy closes without answering.
        requests: each request received, in order (see `SocksRequest`), refused or not.
        accepted, most_open, upstream_ports: as for `TunnelProxy`; ``heads`` stays empty.
    """

    reply: int = 0
    bound: tuple[int, bytes] | None = None
    greetings: list[bytes] = field(default_factory=list)
    requests: list[SocksRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.reply <= 255:
            raise ValueError(f"a reply code is one octet, not {self.reply}")
        super().__post_init__()

    def url(self, userinfo: str = "", scheme: str = "socks5") -> str:
        """The proxy's URL, with ``userinfo`` (``"user:password@"``) if given; ``scheme``
        ``"socks5h"`` asks a client to leave name resolution to the proxy."""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def _read_exactly(self, client: socket.socket, size: int) -> bytes | None:
        # The bytes may come in pieces; None once the proxy stops or the client leaves first.
        data = b""
        while len(data) < size:
            chunk = self._recv(client, size - len(data))
            if chunk is None:
                return None
            data += chunk
        return data

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(0.05)
        methods = self._greet(client)
        if methods is None or self._scripted(client):
            return
        wanted = _NO_AUTHENTICATION if self.credentials is None else _USERNAME_PASSWORD
        if wanted not in methods:
            client.sendall(bytes([5, _NO_ACCEPTABLE_METHODS]))
            client.shutdown(socket.SHUT_RDWR)
            return
        client.sendall(bytes([5, wanted]))
        username = None
        if self.credentials is not None:
            username = self._authenticate(client, self.credentials)
            if username is None:
                return
        self._request(client, methods, username)

    def _greet(self, client: socket.socket) -> bytes | None:
        # The methods the greeting offers; None when there is no answering it.
        version = self._read_exactly(client, 1)
        if version is None:
            return None
        if version != b"\x05":
            with self._lock:
                self.greetings.append(version)
            client.shutdown(socket.SHUT_RDWR)
            return None
        count = self._read_exactly(client, 1)
        methods = None if count is None else self._read_exactly(client, count[0])
        if count is None or methods is None:
            return None
        with self._lock:
            self.greetings.append(version + count + methods)
        return methods

    def _authenticate(self, client: socket.socket, credentials: tuple[str, str]) -> str | None:
        # RFC 1929: the username when it and the password match, else None (answered, closed).
        version = self._read_exactly(client, 1)
        if version is None:
            return None
        if version != b"\x01":
            client.sendall(b"\x01\x01")
            client.shutdown(socket.SHUT_RDWR)
            return None
        sent = []
        for _ in range(2):  # the username, then the password, each after its length octet
            length = self._read_exactly(client, 1)
            value = None if length is None else self._read_exactly(client, length[0])
            if length is None or value is None:
                return None
            sent.append(value)
        if sent != [part.encode() for part in credentials]:
            client.sendall(b"\x01\x01")
            client.shutdown(socket.SHUT_RDWR)
            return None
        client.sendall(b"\x01\x00")
        return sent[0].decode("utf-8", "replace")

    def _request(self, client: socket.socket, methods: bytes, username: str | None) -> None:
        head = self._read_exactly(client, 4)
        if head is None:
            return
        version, command, _, address_type = head
        if version != 5:
            client.shutdown(socket.SHUT_RDWR)
            return
        if address_type not in (_IPV4, _DOMAIN_NAME, _IPV6):
            with self._lock:
                self.requests.append(SocksRequest(methods, username, command, address_type, "", 0))
            self._refuse(client, _ADDRESS_TYPE_NOT_SUPPORTED)
            return
        target = self._read_target(client, address_type)
        if target is None:
            return
        host, port = target
        with self._lock:
            self.requests.append(SocksRequest(methods, username, command, address_type, host, port))
        if command != _CONNECT:
            self._refuse(client, _COMMAND_NOT_SUPPORTED)
            return
        if self.reply:
            self._refuse(client, self.reply)
            return
        if address_type == _DOMAIN_NAME:
            if host.lower() != "localhost":
                self._refuse(client, _NOT_ALLOWED)
                return
            host = "127.0.0.1"
        elif not ipaddress.ip_address(host).is_loopback:
            self._refuse(client, _NOT_ALLOWED)
            return
        self._connect(client, host, port)

    def _read_target(self, client: socket.socket, address_type: int) -> tuple[str, int] | None:
        # DST.ADDR and DST.PORT, the address as text.
        if address_type == _DOMAIN_NAME:
            length = self._read_exactly(client, 1)
            name = None if length is None else self._read_exactly(client, length[0])
            if name is None:
                return None
            host = name.decode("latin-1")
        else:
            packed = self._read_exactly(client, 4 if address_type == _IPV4 else 16)
            if packed is None:
                return None
            host = str(ipaddress.ip_address(packed))
        port = self._read_exactly(client, 2)
        if port is None:
            return None
        return host, int.from_bytes(port, "big")

    def _connect(self, client: socket.socket, host: str, port: int) -> None:
        try:
            upstream = self._keep(socket.create_connection((host, port), 5))
        except OSError:
            self._refuse(client, _REFUSED)
            return
        bound_port = upstream.getsockname()[1]
        self._tunnel_opened(client, upstream)
        try:
            address_type, address = self.bound or (_IPV4, b"\x7f\x00\x00\x01")
            client.sendall(
                bytes([5, _SUCCEEDED, 0, address_type]) + address + bound_port.to_bytes(2, "big")
            )
            self._pipe(client, upstream)
        finally:
            self._tunnel_closed(client)

    @staticmethod
    def _refuse(client: socket.socket, code: int) -> None:
        # A failure reply carries an all-zero IPv4 address and port (RFC 1928 section 6).
        client.sendall(bytes([5, code, 0, _IPV4]) + bytes(6))
        client.shutdown(socket.SHUT_RDWR)


def socks_proxy(**settings: object) -> AbstractContextManager[SocksProxy]:
    """A running `SocksProxy` with ``settings``; stopped, every socket closed, after."""
    return running(SocksProxy(**settings))  # type: ignore[arg-type]
