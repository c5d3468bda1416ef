"""Tunnels through an HTTP proxy: the proxy's URL, and the ``CONNECT`` exchange that opens one.

`kalshi_sync` and `kalshi_anyio` reach the API through a proxy when given ``proxy=``: they
open a TCP connection to the proxy, send the bytes of a `ProxyTunnel`, feed it the proxy's
answer until the tunnel is open, and then run TLS to the API host inside it, as they would on a
direct connection. The proxy sees the host and port asked for, never the requests, keys or
signatures inside the TLS session.

```
proxy = ProxyUrl.parse("http://user:secret@proxy.example.com:3128")
tunnel = ProxyTunnel(proxy, "external-api.kalshi.com", 443)
sock.sendall(tunnel.data_to_send())
while not tunnel.receive_data(sock.recv(4096)):  # b"" at EOF raises ProxyError
    pass
# now wrap ``sock`` in TLS for external-api.kalshi.com
```

Only ``http://`` proxies are taken (the connection to the proxy itself is not encrypted, as
with curl's ``http://`` proxies; the API's TLS session runs inside it). `kalshi_httpx` takes
``proxy=`` too, where httpx also tunnels through ``https://`` and SOCKS proxies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11

from kalshi_proto.environments import BaseUrl, host_port, host_problem, is_loopback
from kalshi_proto.errors import ConfigurationError, LocalProtocolError, ProxyError
from kalshi_proto.rest.call import received_bytes

__all__ = ["ProxyTunnel", "ProxyUrl", "check_proxy", "check_route"]

_EXAMPLE = "http://proxy.example.com:3128"


def _malformed(why: str) -> ConfigurationError:
    # The URL may hold a password: no message quotes it.
    return ConfigurationError(f"proxy {why}; give a URL such as {_EXAMPLE!r}")


@dataclass(frozen=True, slots=True, repr=False)
class ProxyUrl:
    """An HTTP proxy: host, port and, if it wants them, Basic credentials.

    ``repr`` and ``str`` show the host and port only, with ``***@`` in front when there are
    credentials: a proxy URL in a log never carries its password.

    Attributes:
        host: lower-case host name or IP address; IPv6 without brackets.
        port: TCP port (80 when the URL names none, as for any ``http://`` URL).
        username: the user name of the URL, percent-decoded ("" for none).
        password: the password of the URL, percent-decoded ("" for none).
    """

    host: str
    port: int = 80
    username: str = ""
    password: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise ConfigurationError(f"proxy host must be a str, got {type(self.host).__name__}")
        problem = host_problem(self.host)
        if problem is not None:
            raise ConfigurationError(f"invalid proxy host: {problem}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigurationError(f"proxy port must be an int, got {type(self.port).__name__}")
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
        if ":" in self.username:
            raise ConfigurationError(
                "proxy username holds a ':', which Basic authentication cannot carry"
            )
        if self.password and not self.username:
            raise ConfigurationError("proxy password was given without a username")

    @classmethod
    def parse(cls, url: str) -> ProxyUrl:
        """Read a proxy URL: ``http://[user[:password]@]host[:port]``.

        The user name and password are percent-decoded (write ``%40`` for an ``@`` in a
        password). A trailing ``/`` is allowed; any other path, a query or a fragment is not.

        Raises:
            ConfigurationError: ``url`` is not a str, or not such a URL: another scheme
                (``https://`` and ``socks5://`` proxies are for `kalshi_httpx`), no scheme, no
                host, a bad port. The message never quotes the URL, which may hold a password.
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
        if scheme != "http":
            raise ConfigurationError(
                f"a {scheme}:// proxy is not supported here, only http:// proxies (the API's TLS "
                "session runs inside the tunnel either way); kalshi_httpx's proxy= takes "
                "https:// and SOCKS proxies too"
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
        return cls(parts.hostname, 80 if port is None else port, username, password)

    @property
    def address(self) -> str:
        """``host:port``, IPv6 in brackets: where to connect, and how messages name it."""
        return host_port(self.host, self.port)

    def __repr__(self) -> str:
        return f"ProxyUrl({str(self)!r})"

    def __str__(self) -> str:
        credentials = "***@" if self.username else ""
        return f"http://{credentials}{self.address}"

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


class ProxyTunnel:
    """The ``CONNECT`` exchange that asks an HTTP proxy for a tunnel to ``host:port``.

    Send `data_to_send` once the TCP connection to the proxy is open, then feed every chunk
    the proxy sends to `receive_data` until it returns True: the tunnel is open, and the
    connection now carries bytes to and from ``host:port`` (start the TLS handshake). Any other
    answer raises `ProxyError`, after which the connection is of no further use: close it.

    Args:
        proxy: the proxy.
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
        if not isinstance(proxy, ProxyUrl):
            raise TypeError(f"proxy must be a ProxyUrl, got {type(proxy).__name__}")
        problem = host_problem(host) if isinstance(host, str) else "the host is not a str"
        if problem is not None:
            raise ConfigurationError(f"invalid tunnel host: {problem}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"tunnel port must be an int from 1 to 65535, got {port!r}")
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
        if self.is_open:
            raise LocalProtocolError("the tunnel is open: its bytes are the TLS session's now")
        if self._failed:
            raise LocalProtocolError("the tunnel failed already; close the connection")
        data = received_bytes(data)
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
