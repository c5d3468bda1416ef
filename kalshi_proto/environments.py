"""Where the trade API lives: the production and demo base URLs, and the host policy.

The servers are the ones listed under ``servers:`` in ``openapi.yaml`` (REST-NOTES.md section 1),
recommended host first. `resolve_base_url` turns a client's ``demo`` / ``base_url`` options into
a `BaseUrl`, and refuses URLs that would send signed requests somewhere unexpected:

- only ``https`` and ``http`` URLs with a host, and no user info, query or fragment;
- a path on the spec's hosts (``https://external-api.kalshi.com`` alone would make every call
  a 404: the API is under ``/trade-api/v2``);
- only Kalshi hosts (the spec's hosts and any host under ``.kalshi.com`` or ``.kalshi.co``),
  unless you pass ``allow_any_host=True``; loopback hosts are always allowed, for the local
  exchange and tests;
- plain ``http`` only to a loopback host, even with ``allow_any_host``, because the key id and
  signatures would otherwise cross the network in clear text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from kalshi_proto.errors import ConfigurationError

__all__ = [
    "DEMO_SERVERS",
    "PRODUCTION_SERVERS",
    "BaseUrl",
    "host_port",
    "host_problem",
    "is_loopback",
    "resolve_base_url",
]

#: Production trade API base URLs from ``openapi.yaml`` ``servers``; the first is the default.
PRODUCTION_SERVERS: tuple[str, ...] = (
    "https://external-api.kalshi.com/trade-api/v2",
    "https://api.elections.kalshi.com/trade-api/v2",
)

#: Demo trade API base URLs from ``openapi.yaml`` ``servers``; the first is the default.
DEMO_SERVERS: tuple[str, ...] = (
    "https://external-api.demo.kalshi.co/trade-api/v2",
    "https://demo-api.kalshi.co/trade-api/v2",
)

_DEFAULT_PORTS = {"https": 443, "http": 80}

_KALSHI_HOSTS = frozenset(urlsplit(url).hostname for url in PRODUCTION_SERVERS + DEMO_SERVERS)
_KALSHI_SUFFIXES = (".kalshi.com", ".kalshi.co")

# A DNS name in ASCII (IDNs in punycode): dot-separated labels of letters, digits and inner
# hyphens. Host names are kept lower-case.
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

# Characters allowed in a URL path as sent: RFC 3986 pchar plus "/" ("%" for escapes).
_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")

_LOOPBACK_HINT = "localhost, 127.0.0.0/8 or ::1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name, or an IP address without brackets) is ``localhost``, in
    127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL or a ``CONNECT`` request names it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a valid host (a lower-case DNS name, an IPv4 or an IPv6 address
    without brackets), or None when it is."""
    if not host:
        return "the host is empty"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is not a valid IPv6 address"
        return None
    if host.endswith("."):
        return f"{host!r} ends with a dot: remove it"
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return f"{host!r} is not a valid lower-case host name (use punycode for IDNs)"
    return None


def _is_kalshi_host(host: str) -> bool:
    return host in _KALSHI_HOSTS or host.endswith(_KALSHI_SUFFIXES)


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """A parsed API base URL: scheme, host, port and path prefix.

    Build one with `resolve_base_url`, which also applies the Kalshi host policy; the
    constructor checks only the shape and the rule that ``http`` goes to loopback only.

    Attributes:
        scheme: ``"https"``, or ``"http"`` for a loopback host.
        host: lower-case host name or IP address; IPv6 without brackets.
        port: TCP port; 0 (the default) means the scheme's port, 443 or 80.
        prefix: path prefix such as ``"/trade-api/v2"``, or ``""``; no trailing slash.
    """

    scheme: Literal["https", "http"]
    host: str
    port: int = 0
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.scheme not in _DEFAULT_PORTS:
            raise ConfigurationError(f"scheme must be 'https' or 'http', got {self.scheme!r}")
        problem = host_problem(self.host)
        if problem is not None:
            raise ConfigurationError(f"invalid host: {problem}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigurationError(f"port must be an int, got {type(self.port).__name__}")
        if self.port == 0:
            object.__setattr__(self, "port", _DEFAULT_PORTS[self.scheme])
        elif not 0 < self.port < 65536:
            raise ConfigurationError(f"port must be between 1 and 65535, got {self.port}")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ConfigurationError(
                f"prefix must be empty or start with '/' and not end with '/', got {self.prefix!r}"
            )
        if not _PATH.fullmatch(self.prefix):
            raise ConfigurationError(
                "prefix may hold only URL path characters (percent-encode the others)"
            )
        segments = self.prefix.lower().replace("%2e", ".").split("/")[1:]
        if any(segment in ("", ".", "..") for segment in segments):
            # An HTTP client may resolve "." and ".." (httpx does) and send another path than
            # the one signed ("%2e" is a dot too, RFC 3986); "//" is one no server means.
            raise ConfigurationError(
                f"prefix must not have empty, '.' or '..' segments, got {self.prefix!r}"
            )
        if self.scheme == "http" and not self.is_loopback:
            raise ConfigurationError(
                f"plain http is allowed only to a loopback host ({_LOOPBACK_HINT}), not to "
                f"{self.host!r}: the key id and request signatures would travel in clear "
                "text; use https"
            )

    @property
    def is_loopback(self) -> bool:
        """Whether the host is ``localhost``, in 127.0.0.0/8 or ``::1``."""
        return is_loopback(self.host)

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: host, IPv6 in brackets, ``:port`` unless the default."""
        if self.port != _DEFAULT_PORTS[self.scheme]:
            return host_port(self.host, self.port)
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def origin(self) -> str:
        """Scheme, host and port, e.g. ``https://external-api.kalshi.com``."""
        return f"{self.scheme}://{self.host_header}"

    @property
    def url(self) -> str:
        """The whole base URL: origin plus prefix."""
        return self.origin + self.prefix

    def path_for(self, path: str) -> str:
        """The path to request and to sign for an API path.

        Args:
            path: a path relative to the API root, such as ``/portfolio/orders``; a query
                string is kept as given.

        Returns:
            ``prefix + path``, e.g. ``/trade-api/v2/portfolio/orders``.

        Raises:
            ValueError: the path does not start with ``/``.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return self.prefix + path

    def __str__(self) -> str:
        return self.url


def resolve_base_url(
    *, demo: bool = False, base_url: str | None = None, allow_any_host: bool = False
) -> BaseUrl:
    """Pick and check the base URL a client talks to.

    Args:
        demo: use the demo environment's default server instead of production's.
        base_url: an explicit base URL, such as one of `PRODUCTION_SERVERS` or
            ``http://127.0.0.1:8080/trade-api/v2`` for the local exchange. Its path is kept
            as the prefix, minus trailing slashes.
        allow_any_host: accept hosts outside Kalshi's domains (a proxy of your own); plain
            http stays limited to loopback hosts.

    Returns:
        The parsed base URL.

    Raises:
        ConfigurationError: ``demo`` or ``allow_any_host`` is not a bool; ``demo`` and
            ``base_url`` were both given; the URL is not http(s),
            has no host, or has user info, a query or a fragment; the port or host is invalid;
            the host is one of the spec's servers and the URL has no path (as in
            ``https://external-api.kalshi.com``, whose API is under ``/trade-api/v2``);
            the host is not a Kalshi or loopback host and ``allow_any_host`` is false; or the
            URL is plain http to a host that is not loopback.
    """
    for name, flag in (("demo", demo), ("allow_any_host", allow_any_host)):
        # Strictly a bool: a string from a config file ("no", "false") is truthy and would
        # switch the environment, or the host policy, off.
        if not isinstance(flag, bool):
            raise ConfigurationError(f"{name} must be True or False, got {type(flag).__name__}")
    if base_url is None:
        base_url = DEMO_SERVERS[0] if demo else PRODUCTION_SERVERS[0]
    elif demo:
        raise ConfigurationError(
            "demo=True and base_url contradict each other; pass one of them (for demo, "
            f"base_url={DEMO_SERVERS[0]!r})"
        )
    elif not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a str, got {type(base_url).__name__}")
    # The URL itself is not quoted in messages: its user-info part may hold a password.
    text = base_url.strip()
    if not text:
        raise ConfigurationError("base_url is empty")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigurationError("base_url is not a valid URL") from None
    if "@" in parts.netloc:
        raise ConfigurationError(
            "base_url must not contain user info (user:password@); Kalshi authenticates with "
            "signed headers"
        )
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigurationError(
            f"base_url must start with https:// (or http:// to a loopback host), got scheme "
            f"{parts.scheme!r}"
        )
    if "?" in text:
        raise ConfigurationError("base_url must not have a query string")
    if "#" in text:
        raise ConfigurationError("base_url must not have a fragment")
    host = parts.hostname
    if not host:
        raise ConfigurationError("base_url has no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError("base_url has an invalid port") from None
    if port == 0:
        raise ConfigurationError("base_url has an invalid port (0)")
    scheme: Literal["https", "http"] = "https" if parts.scheme == "https" else "http"
    # BaseUrl checks the shape and refuses plain http to a non-loopback host whatever
    # allow_any_host says; the host policy comes after.
    url = BaseUrl(scheme=scheme, host=host, port=port or 0, prefix=parts.path.rstrip("/"))
    if not url.prefix and host in _KALSHI_HOSTS:
        # Nothing is served at the root of the spec's hosts: each call would be a 404.
        server = next(
            server
            for server in PRODUCTION_SERVERS + DEMO_SERVERS
            if urlsplit(server).hostname == host
        )
        raise ConfigurationError(
            f"base_url has no path: the API on {host} is under a path, as in "
            f"base_url={server!r}"
        )
    if not url.is_loopback and not allow_any_host and not _is_kalshi_host(host):
        raise ConfigurationError(
            f"host {host!r} is not a Kalshi host (the spec's servers, *.kalshi.com, "
            f"*.kalshi.co) or a loopback host ({_LOOPBACK_HINT}); pass allow_any_host=True "
            "to send signed requests to it anyway"
        )
    return url
