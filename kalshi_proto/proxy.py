"""Tunnels through a proxy: the proxy's URL, and the exchange that opens a tunnel through it.

`kalshi_sync` and `kalshi_anyio` reach the API through a proxy when given ``proxy=``: they
open a TCP connection to the proxy (and a TLS session with it, for an ``https://`` proxy), run
the exchange of a tunnel (`tunnel_for` picks it: an HTTP ``CONNECT`` for an ``http://`` or
``https://`` proxy, the SOCKS5 handshake for a ``socks5://`` or ``socks5h://`` one) until it is
open, and then run TLS to the API host inside it, as they would on a direct connection. The
proxy sees the host and port asked for, never the requests, keys or signatures inside the TLS
session.

```
proxy = ProxyUrl.parse("http://user:secret@proxy.example.com:3128")
tunnel = tunnel_for(proxy, "external-api.kalshi.com", 443)
sock.sendall(tunnel.data_to_send())
while not tunnel.receive_data(sock.recv(4096)):  # b"" at EOF raises ProxyError
    sock.sendall(tunnel.data_to_send())  # SOCKS5 answers in steps; b"" for HTTP
# now wrap ``sock`` in TLS for external-api.kalshi.com
```

The connection to an ``http://`` or ``socks5://`` proxy is not encrypted, as with curl's; the
API's TLS session runs inside it. With an ``https://`` proxy the ``CONNECT`` (and the proxy's
credentials) go inside a TLS session with the proxy, whose certificate is checked as a
server's, and the API's TLS session runs inside that one. A SOCKS5 proxy is given the API's
host name to resolve, with either scheme (as httpx does); no name is looked up on this machine.
`kalshi_httpx` takes ``proxy=`` too, and hands ``http://`` and ``https://`` proxies to httpx.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, cast
from urllib.parse import unquote, urlsplit

import h11

from kalshi_proto.environments import BaseUrl, host_port, host_problem, is_loopback
from kalshi_proto.errors import ConfigurationError, LocalProtocolError, ProxyError
from kalshi_proto.rest.call import received_bytes

__all__ = [
    "TUNNEL_READ_SIZE",
    "ProxyScheme",
    "ProxyTunnel",
    "ProxyUrl",
    "Socks5Tunnel",
    "Tunnel",
    "check_proxy",
    "check_route",
    "tunnel_for",
]

_EXAMPLE = "http://proxy.example.com:3128"

#: The kinds of proxy `ProxyUrl` holds: HTTP (a ``CONNECT`` tunnel; over TLS for ``https``) or
#: SOCKS5.
ProxyScheme: TypeAlias = Literal["http", "https", "socks5", "socks5h"]
#: The port of each scheme when its URL names none.
_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
#: How much to read at a time while a tunnel opens: a proxy's answer to ``CONNECT``, or to a
#: SOCKS5 step, is a few hundred bytes at most, and nothing may follow it.
TUNNEL_READ_SIZE: Final[int] = 4096


def _malformed(why: str) -> ConfigurationError:
    # The URL may hold a password: no message quotes it.
    return ConfigurationError(f"proxy {why}; give a URL such as {_EXAMPLE!r}")


@dataclass(frozen=True, slots=True, repr=False)
class ProxyUrl:
    """A proxy: its kind, host, port and, if it wants them, credentials.

    ``repr`` and ``str`` show the scheme, host and port only, with ``***@`` in front when there
    are credentials: a proxy URL in a log never carries its password.

    Attributes:
        host: lower-case host name or IP address; IPv6 without brackets.
        port: TCP port. Given as 0 (the default), the scheme's: 80 for ``http``, 443 for
            ``https``, 1080 for SOCKS5.
        username: the user name of the URL, percent-decoded ("" for none): Basic credentials
            for an HTTP proxy, RFC 1929 ones for a SOCKS5 proxy.
        password: the password of the URL, percent-decoded ("" for none).
        scheme: ``"http"``; ``"https"`` for an HTTP proxy spoken to over TLS; or ``"socks5"`` /
            ``"socks5h"`` for a SOCKS5 proxy (both give the proxy the API's host name to
            resolve).
    """

    host: str
    port: int = 0
    username: str = ""
    password: str = ""
    scheme: ProxyScheme = "http"

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, str) or self.scheme not in _DEFAULT_PORTS:
            raise ConfigurationError(
                f"proxy scheme must be one of {', '.join(map(repr, _DEFAULT_PORTS))}, got "
                f"{self.scheme!r}"
            )
        if not isinstance(self.host, str):
            raise ConfigurationError(f"proxy host must be a str, got {type(self.host).__name__}")
        problem = host_problem(self.host)
        if problem is not None:
            raise ConfigurationError(f"invalid proxy host: {problem}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigurationError(f"proxy port must be an int, got {type(self.port).__name__}")
        if self.port == 0:
            object.__setattr__(self, "port", _DEFAULT_PORTS[self.scheme])
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"proxy port must be between 1 and 65535, got {self.port}")
        for name in ("username", "password"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"proxy {name} must be a str, got {type(value).__name__}"
                )
            if any(ord(char) < 32 or ord(char) == 127 for char in value):
                raise ConfigurationError(f"proxy {name} holds a control character")
        if self.password and not self.username:
            raise ConfigurationError("proxy password was given without a username")
        if not self.is_socks and ":" in self.username:
            raise ConfigurationError(
                "proxy username holds a ':', which Basic authentication cannot carry"
            )
        if self.is_socks:
            for name in ("username", "password"):
                if len(getattr(self, name).encode()) > 255:
                    raise ConfigurationError(
                        f"proxy {name} is longer than the 255 bytes SOCKS5 can carry"
                    )

    @classmethod
    def parse(cls, url: str) -> ProxyUrl:
        """Read a proxy URL: ``scheme://[user[:password]@]host[:port]``, the scheme ``http``,
        ``https``, ``socks5`` or ``socks5h``.

        The user name and password are percent-decoded (write ``%40`` for an ``@`` in a
        password). A trailing ``/`` is allowed; any other path, a query or a fragment is not.

        Raises:
            ConfigurationError: ``url`` is not a str, or not such a URL: another scheme
                no scheme, no host, a bad port.
                The message never quotes the URL, which may hold a password.
        """
        if not isinstance(url, str):
            raise ConfigurationError(f"proxy must be a str URL, got {type(url).__name__}")
        if any(char.isspace() for char in url):
            raise _malformed("URL holds whitespace")
        if "://" not in url:
            raise _malformed("URL has no scheme (write http:// in front)")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            # urlsplit's messages quote only the port or the netloc's brackets, never userinfo;
            # the port one ("Port out of range 0-65535") is the useful one.
            reason = str(exc) if "Port" in str(exc) else "its host or port cannot be read"
            raise _malformed(f"URL is malformed: {reason}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ConfigurationError(
                f"a {scheme}:// proxy is not supported here, only http://, https://, socks5:// "
                "and socks5h:// proxies (the API's TLS session runs inside the tunnel in each case)"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
            raise _malformed("URL may not have a path, query or fragment")
        if not parts.hostname:
            raise _malformed("URL has no host")
        if port == 0:
            raise _malformed("port must be between 1 and 65535, got 0")
        try:
            username = unquote(parts.username or "", errors="strict")
            password = unquote(parts.password or "", errors="strict")
        except UnicodeDecodeError:
            raise _malformed("user name or password is not UTF-8 once percent-decoded") from None
        if parts.password is not None and not username:
            raise _malformed("URL has a password but no user name")
        return cls(parts.hostname, port or 0, username, password, cast(ProxyScheme, scheme))

    @property
    def address(self) -> str:
        """``host:port``, IPv6 in brackets: where to connect, and how messages name it."""
        return host_port(self.host, self.port)

    def __repr__(self) -> str:
        return f"ProxyUrl({str(self)!r})"

    def __str__(self) -> str:
        credentials = "***@" if self.username else ""
        return f"{self.scheme}://{credentials}{self.address}"

    @property
    def is_socks(self) -> bool:
        """True for a SOCKS5 proxy (``socks5`` or ``socks5h``)."""
        return self.scheme in ("socks5", "socks5h")

    @property
    def is_tls(self) -> bool:
        """True for an ``https://`` proxy: the client speaks TLS with the proxy itself, and the
        API's TLS session runs inside that one."""
        return self.scheme == "https"

    def _authorization(self) -> bytes | None:
        # The Proxy-Authorization value (RFC 7617: UTF-8, user and password joined by ':').
        if not self.username:
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode())
        return b"Basic " + token


def check_proxy(value: object) -> ProxyUrl | None:
    """The ``proxy=`` option of a client: None, a `ProxyUrl`, or a URL `ProxyUrl.parse` reads.

    Raises:
        ConfigurationError: ``value`` is none of those, or a URL `ProxyUrl.parse` refuses.
    """
    if value is None or isinstance(value, ProxyUrl):
        return value
    if isinstance(value, str):
        return ProxyUrl.parse(value)
    raise ConfigurationError(
        f"proxy must be a URL such as {_EXAMPLE!r}, a ProxyUrl or None, got {type(value).__name__}"
    )


def check_route(proxy_host: str, base_url: BaseUrl) -> None:
    """Refuse a route that cannot mean what it says: a loopback API host (the local exchange,
    say) through a proxy on another machine, which would reach the proxy's own loopback.

    Args:
        proxy_host: the proxy's host, as a `ProxyUrl` has it.
        base_url: the client's base URL.

    Raises:
        ConfigurationError: ``base_url`` is on loopback and ``proxy_host`` is not.
    """
    if base_url.is_loopback and not is_loopback(proxy_host):
        raise ConfigurationError(
            f"base_url {base_url.url} is on this machine, but the proxy is not: a tunnel "
            "would reach the proxy's own loopback; leave proxy= out for a loopback base_url"
        )


def _check_tunnel(proxy: object, host: object, port: object, *, socks: bool) -> None:
    if not isinstance(proxy, ProxyUrl):
        raise TypeError(f"proxy must be a ProxyUrl, got {type(proxy).__name__}")
    if proxy.is_socks != socks:
        other = "Socks5Tunnel" if proxy.is_socks else "ProxyTunnel"
        raise ConfigurationError(f"{proxy} takes a {other}; tunnel_for picks the right one")
    problem = host_problem(host) if isinstance(host, str) else "the host is not a str"
    if problem is not None:
        raise ConfigurationError(f"invalid tunnel host: {problem}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"tunnel port must be an int from 1 to 65535, got {port!r}")


def _taken(data: bytes, *, is_open: bool, failed: bool) -> bytes:
    # The proxy's bytes as a tunnel takes them: only while it is opening, and as bytes.
    if is_open:
        raise LocalProtocolError("the tunnel is open: its bytes are the TLS session's now")
    if failed:
        raise LocalProtocolError("the tunnel failed already; close the connection")
    return received_bytes(data)


class ProxyTunnel:
    """The ``CONNECT`` exchange that asks an HTTP proxy for a tunnel to ``host:port``.

    Send `data_to_send` once the connection to the proxy is open (its TLS session too, for an
    ``https://`` proxy), then feed every chunk the proxy sends to `receive_data` until it
    returns True: the tunnel is open, and the connection now carries bytes to and from
    ``host:port`` (start the TLS handshake). Any other answer raises `ProxyError`, after which
    the connection is of no further use: close it.

    Args:
        proxy: the proxy, an ``http://`` or ``https://`` one.
        host: the host to reach through it (lower-case name or IP address, IPv6 without
            brackets), as in `BaseUrl.host`.
        port: the port to reach.
        user_agent: a ``User-Agent`` for the ``CONNECT`` request (some proxies want one), or
            None for none.
    """

    __slots__ = ("_connection", "_failed", "_request", "is_open", "proxy", "target")

    def __init__(
        self, proxy: ProxyUrl, host: str, port: int, *, user_agent: str | None = None
    ) -> None:
        _check_tunnel(proxy, host, port, socks=False)
        #: The proxy.
        self.proxy: ProxyUrl = proxy
        #: ``host:port`` as the ``CONNECT`` request names it (IPv6 in brackets).
        self.target: str = host_port(host, port)
        headers = [(b"Host", self.target.encode())]
        if user_agent is not None:
            headers.append((b"User-Agent", user_agent.encode()))
        authorization = proxy._authorization()
        if authorization is not None:
            headers.append((b"Proxy-Authorization", authorization))
        self._connection = h11.Connection(h11.CLIENT)
        self._request: bytes | None = self._connection.send(
            h11.Request(method=b"CONNECT", target=self.target.encode(), headers=headers)
        ) + (self._connection.send(h11.EndOfMessage()) or b"")
        #: True once the proxy has answered 2xx: the connection is the tunnel now.
        self.is_open: bool = False
        self._failed = False

    def __repr__(self) -> str:
        state = "open" if self.is_open else "opening"
        return f"<ProxyTunnel to {self.target} via {self.proxy} ({state})>"

    def data_to_send(self) -> bytes:
        """The ``CONNECT`` request the first time; ``b""`` after that."""
        data, self._request = self._request or b"", None
        return data

    def receive_data(self, data: bytes) -> bool:
        """Feed bytes the proxy sent; ``b""`` means it closed the connection.

        Returns:
            True when the tunnel is open; False while the answer is incomplete.

        Raises:
            ProxyError: the proxy refused the tunnel (``status`` is its HTTP status), closed
                the connection before answering, sent something that is not an HTTP answer, or
                sent bytes past its answer before the TLS handshake began.
            LocalProtocolError: the tunnel is open already, or a ``ProxyError`` was raised.
            TypeError: ``data`` is not bytes-like.
        """
        data = _taken(data, is_open=self.is_open, failed=self._failed)
        self._failed = True  # until the answer is read, or found incomplete
        where = f"the proxy {self.proxy.address}"
        if not data:
            raise ProxyError(
                f"{where} closed the connection before it answered the CONNECT to {self.target}"
            )
        connection = self._connection
        try:
            connection.receive_data(data)
            event = connection.next_event()
            while isinstance(event, h11.InformationalResponse):
                event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProxyError(f"{where} sent a broken answer to the CONNECT: {exc}") from None
        if event is h11.NEED_DATA:
            self._failed = False
            return False
        assert isinstance(event, h11.Response)  # h11's only other event for a client here
        status = event.status_code
        reason = event.reason.decode("latin-1", "replace")
        if not 200 <= status < 300:
            raise ProxyError(self._refusal(status, reason), status=status)
        leftover, _ = connection.trailing_data
        if leftover:
            raise ProxyError(
                f"{where} sent {len(leftover)} bytes past its answer, before the TLS handshake "
                "began"
            )
        self._failed = False
        self.is_open = True
        return True

    def _refusal(self, status: int, reason: str) -> str:
        message = (
            f"the proxy {self.proxy.address} refused the tunnel to {self.target}: HTTP "
            f"{status} {reason}".rstrip()
        )
        if status == 407:
            if self.proxy.username:
                return f"{message} (it refused the user name and password of the proxy URL)"
            return f"{message} (it wants credentials: http://user:password@host:port)"
        return message


# SOCKS5 (RFC 1928) and its user name and password authentication (RFC 1929).
_SOCKS_VERSION = 5
_NO_AUTHENTICATION = 0x00
_USER_PASSWORD = 0x02
_NO_ACCEPTABLE_METHOD = 0xFF
_CONNECT = 0x01
_IPV4, _DOMAIN_NAME, _IPV6 = 0x01, 0x03, 0x04
#: The reply codes of RFC 1928, section 6.
_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
#: Replies the proxy would give again to the same request: not retried.
_FINAL_REPLIES = frozenset({2, 7, 8})


class Socks5Tunnel:
    """The SOCKS5 handshake (RFC 1928) that asks a proxy for a connection to ``host:port``.

    Used as a `ProxyTunnel` is, except that the handshake takes up to three round trips (the
    method, the user name and password of RFC 1929 when the proxy URL has them, the connect
    request): after each `receive_data` that returns False, send `data_to_send` again. The
    host name goes to the proxy, which resolves it; an IP address goes as one.

    Args:
        proxy: the proxy, a ``socks5://`` or ``socks5h://`` one.
        host: the host to reach through it (lower-case name or IP address, IPv6 without
            brackets), as in `BaseUrl.host`.
        port: the port to reach.
    """

    __slots__ = (
        "_failed",
        "_method",
        "_out",
        "_received",
        "_request",
        "_step",
        "is_open",
        "proxy",
        "target",
    )

    def __init__(self, proxy: ProxyUrl, host: str, port: int) -> None:
        _check_tunnel(proxy, host, port, socks=True)
        #: The proxy.
        self.proxy: ProxyUrl = proxy
        #: ``host:port`` (IPv6 in brackets), for messages.
        self.target: str = host_port(host, port)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            name = host.encode("ascii")
            if len(name) > 255:
                raise ConfigurationError(
                    "invalid tunnel host: longer than the 255 bytes SOCKS5 can carry"
                ) from None
            destination = bytes((_DOMAIN_NAME, len(name))) + name
        else:
            kind = _IPV4 if address.version == 4 else _IPV6
            destination = bytes((kind,)) + address.packed
        self._request = (
            bytes((_SOCKS_VERSION, _CONNECT, 0)) + destination + port.to_bytes(2, "big")
        )
        self._method = _USER_PASSWORD if proxy.username else _NO_AUTHENTICATION
        self._out = bytearray((_SOCKS_VERSION, 1, self._method))
        self._received = bytearray()  # the proxy's bytes not read yet
        # What is awaited: the method chosen, the authentication's status, the reply.
        self._step = "method"
        #: True once the proxy has answered the connect request with success.
        self.is_open: bool = False
        self._failed = False

    def __repr__(self) -> str:
        state = "open" if self.is_open else "opening"
        return f"<Socks5Tunnel to {self.target} via {self.proxy} ({state})>"

    def data_to_send(self) -> bytes:
        """The bytes the next step sends to the proxy; ``b""`` while waiting for its answer."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def receive_data(self, data: bytes) -> bool:
        """Feed bytes the proxy sent; ``b""`` means it closed the connection.

        Returns:
            True when the tunnel is open; False while the handshake goes on (send
            `data_to_send`, then feed the proxy's next bytes).

        Raises:
            ProxyError: the proxy refused the credentials or the connection (``reply`` is its
                SOCKS5 reply code), closed the connection mid-handshake, answered as something
                other than a SOCKS5 proxy, or sent bytes past its reply before the TLS
                handshake began.
            LocalProtocolError: the tunnel is open already, or a ``ProxyError`` was raised.
            TypeError: ``data`` is not bytes-like.
        """
        data = _taken(data, is_open=self.is_open, failed=self._failed)
        self._failed = True  # until the bytes are read, or found incomplete
        if not data:
            raise ProxyError(
                f"the proxy {self.proxy.address} closed the connection during the SOCKS5 "
                f"handshake for {self.target}"
            )
        self._received += data
        while self._advance():
            pass
        self._failed = False
        return self.is_open

    def _advance(self) -> bool:
        # Take one answer off the front of the bytes received; False when it is not all there.
        received = self._received
        if self.is_open or len(received) < 2:
            return False
        if self._step == "method":
            self._check_method(received[0], received[1])
            del received[:2]
            if self._method == _USER_PASSWORD:
                user = self.proxy.username.encode()
                password = self.proxy.password.encode()
                self._out += bytes((1, len(user))) + user + bytes((len(password),)) + password
                self._step = "authentication"
                return True
        elif self._step == "authentication":
            # VER STATUS; only the status is read (some servers answer with version 5, not 1).
            if received[1] != 0:
                raise self._error(
                    "refused the user name and password of the proxy URL",
                    final="the proxy would refuse the same credentials again",
                )
            del received[:2]
        else:
            return self._read_reply()
        self._out += self._request
        self._step = "reply"
        return True

    def _check_method(self, version: int, method: int) -> None:
        if version != _SOCKS_VERSION:
            hint = (
                " (it looks like an HTTP proxy: give its URL as http://)"
                if self._received.startswith(b"HT")
                else ""
            )
            raise self._error(f"did not answer as a SOCKS5 proxy{hint}")
        if method == _NO_ACCEPTABLE_METHOD:
            if self._method == _NO_AUTHENTICATION:
                why = "wants credentials: socks5://user:password@host:port"
            else:
                why = "does not take the user name and password of the proxy URL"
            raise self._error(why, final="the proxy would refuse again")
        if method != self._method:
            raise self._error(f"chose authentication method {method}, which was not offered")

    def _read_reply(self) -> bool:
        # VER REP RSV ATYP BND.ADDR BND.PORT; the reply code decides before the rest arrives.
        received = self._received
        if received[0] != _SOCKS_VERSION:
            raise self._error("sent a reply that is not SOCKS5")
        reply = received[1]
        if reply != 0:
            why = _REPLIES.get(reply, "an unassigned code")
            raise self._error(
                f"refused the connection to {self.target}: SOCKS5 reply {reply} ({why})",
                reply=reply,
                final=(
                    f"the proxy would refuse again (SOCKS5 reply {reply})"
                    if reply in _FINAL_REPLIES
                    else None
                ),
            )
        if len(received) < 5:
            return False
        kind = received[3]
        if kind == _IPV4:
            size = 4 + 4 + 2
        elif kind == _IPV6:
            size = 4 + 16 + 2
        elif kind == _DOMAIN_NAME:
            size = 4 + 1 + received[4] + 2
        else:
            raise self._error(f"sent a reply with an unknown address type {kind}")
        if len(received) < size:
            return False
        if len(received) > size:
            raise self._error(
                f"sent {len(received) - size} bytes past its reply, before the TLS handshake "
                "began"
            )
        received.clear()
        self.is_open = True
        return False

    def _error(
        self, why: str, *, reply: int | None = None, final: str | None = None
    ) -> ProxyError:
        return ProxyError(f"the proxy {self.proxy.address} {why}", reply=reply, final=final)


#: Either kind of tunnel: the exchange that opens a connection through a proxy.
Tunnel: TypeAlias = ProxyTunnel | Socks5Tunnel


def tunnel_for(
    proxy: ProxyUrl, host: str, port: int, *, user_agent: str | None = None
) -> Tunnel:
    """The tunnel ``proxy`` opens to ``host:port``: a `ProxyTunnel` for an ``http://`` or
    ``https://`` proxy (whose ``CONNECT`` carries ``user_agent``), a `Socks5Tunnel` for a SOCKS5
    one.

    Raises:
        TypeError: ``proxy`` is not a `ProxyUrl`.
        ConfigurationError: ``host`` or ``port`` is not one a tunnel can reach.
    """
    if isinstance(proxy, ProxyUrl) and proxy.is_socks:
        return Socks5Tunnel(proxy, host, port)
    return ProxyTunnel(proxy, host, port, user_agent=user_agent)
