"""The ``proxy=`` option of the httpx clients, as the transport they build takes it: an
`httpx.Proxy` for `httpx.HTTPTransport`, a SOCKS5 `ProxyUrl` for `_async_socks`' transport."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from kalshi_proto.errors import ConfigurationError
from kalshi_proto.proxy import ProxyUrl, check_proxy

__all__ = ["httpx_proxy"]

#: Schemes httpx tunnels through besides those `ProxyUrl.parse` reads.
_OTHER_SCHEMES = ("https",)


def httpx_proxy(value: object) -> httpx.Proxy | ProxyUrl | None:
    """``proxy=`` as the transport takes it: None, a `ProxyUrl`, or a URL with an ``http``,
    ``https``, ``socks5`` or ``socks5h`` scheme. A SOCKS5 proxy comes back as a `ProxyUrl`, for
    `kalshi_httpx._async_socks`; the others as an `httpx.Proxy`.

    Raises:
        ConfigurationError: anything else, or a URL that cannot be used; the message never
            quotes the URL, which may hold a password.
    """
    if isinstance(value, str) and "://" in value:
        scheme = value.partition("://")[0].lower()
        if scheme in _OTHER_SCHEMES:
            return _other(value, scheme)
    proxy = check_proxy(value)
    if proxy is None or proxy.is_socks:
        return proxy
    auth = (proxy.username, proxy.password) if proxy.username else None
    return httpx.Proxy(f"http://{proxy.address}", auth=auth)


def proxy_host(proxy: httpx.Proxy | ProxyUrl) -> str:
    """The host name or address of ``proxy``, as `kalshi_proto.proxy.check_route` takes it."""
    return proxy.host if isinstance(proxy, ProxyUrl) else proxy.url.host


def _other(url: str, scheme: str) -> httpx.Proxy:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it)
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError
        return httpx.Proxy(url)
    except ValueError:
        raise ConfigurationError(
            f"proxy is not a usable {scheme}:// URL; give one such as "
            f"'{scheme}://proxy.example.com:1080'"
        ) from None
