"""The ``proxy=`` option of the httpx clients, as the transport they build takes it: an
`httpx.Proxy` for `httpx.HTTPTransport`, a SOCKS5 `ProxyUrl` for `_async_socks`' transport."""

from __future__ import annotations

import ssl

import httpx

from kalshi_proto.errors import ConfigurationError
from kalshi_proto.proxy import ProxyUrl, check_proxy

__all__ = ["httpx_proxy"]


def httpx_proxy(value: object, ssl_context: object = None) -> httpx.Proxy | ProxyUrl | None:
    """``proxy=`` as the transport takes it: None, a `ProxyUrl`, or a URL with an ``http``,
    ``https``, ``socks5`` or ``socks5h`` scheme. A SOCKS5 proxy comes back as a `ProxyUrl`, for
    `kalshi_httpx._async_socks`; the others as an `httpx.Proxy`, an ``https://`` one with
    ``ssl_context`` for its own TLS session (httpx's default when None).

    Raises:
        ConfigurationError: anything else, or a URL that cannot be used (the message never
            quotes the URL, which may hold a password); ``ssl_context`` not an
            `ssl.SSLContext` or None.
    """
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise ConfigurationError(
            f"proxy_ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
        )
    proxy = check_proxy(value)
    if proxy is None or proxy.is_socks:
        return proxy
    auth = (proxy.username, proxy.password) if proxy.username else None
    context = ssl_context if proxy.is_tls else None
    return httpx.Proxy(f"{proxy.scheme}://{proxy.address}", auth=auth, ssl_context=context)


def proxy_host(proxy: httpx.Proxy | ProxyUrl) -> str:
    """The host name or address of ``proxy``, as `kalshi_proto.proxy.check_route` takes it."""
    return proxy.host if isinstance(proxy, ProxyUrl) else proxy.url.host
