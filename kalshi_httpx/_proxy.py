"""The ``proxy=`` option of the httpx clients, as an `httpx.Proxy` for the transport they build."""

from __future__ import annotations

import importlib.util
from urllib.parse import urlsplit

import httpx

from kalshi_proto.errors import ConfigurationError
from kalshi_proto.proxy import ProxyUrl, check_proxy

__all__ = ["httpx_proxy"]

#: Schemes httpx tunnels through besides those `ProxyUrl.parse` reads.
_OTHER_SCHEMES = ("https",)


def httpx_proxy(value: object) -> httpx.Proxy | None:
    """``proxy=`` as httpx takes it: None, a `ProxyUrl`, or a URL with an ``http``, ``https``,
    ``socks5`` or ``socks5h`` scheme (SOCKS needs the ``socksio`` package, ``httpx[socks]``).

    Raises:
        ConfigurationError: anything else, or a URL that cannot be used; the message never
            quotes the URL, which may hold a password.
    """
    if isinstance(value, str) and "://" in value:
        scheme = value.partition("://")[0].lower()
        if scheme in _OTHER_SCHEMES:
            return _other(value, scheme)
    proxy = check_proxy(value)
    if proxy is None:
        return None
    return _from_proxy_url(proxy)


def _from_proxy_url(proxy: ProxyUrl) -> httpx.Proxy:
    if proxy.is_socks and importlib.util.find_spec("socksio") is None:
        raise ConfigurationError(
            f"a {proxy.scheme}:// proxy needs the socksio package with kalshi_httpx: pip "
            "install 'httpx[socks]' (kalshi_sync and kalshi_anyio need nothing more)"
        )
    auth = (proxy.username, proxy.password) if proxy.username else None
    # httpx gives a SOCKS5 proxy the host name to resolve under either scheme, and httpx 0.27
    # knows only ``socks5``.
    scheme = "socks5" if proxy.is_socks else "http"
    return httpx.Proxy(f"{scheme}://{proxy.address}", auth=auth)


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
