"""`AsyncKalshiClient` over `httpx.AsyncClient`: pooling, optional HTTP/2, transport injection.

httpx does the HTTP; the core does everything Kalshi (signing, retries, pages, error mapping).
``scripts/unasync.py`` writes the blocking twin, ``_sync.py``, from this file.
"""

from __future__ import annotations

import http.cookiejar
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
from anyio import sleep as _sleep

from kalshi_httpx._body import aread_body
from kalshi_httpx._errors import map_exceptions
from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.rest._async_base import AsyncClientBase
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.http11 import ACCEPT_ENCODING

__all__ = ["AsyncKalshiClient"]


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: the API authenticates every request by signature, and
    reading ``Set-Cookie`` on every response is measurable overhead."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class AsyncKalshiClient(AsyncClientBase):
    """The Kalshi REST API over an `httpx.AsyncClient`.

    Takes every argument of `kalshi_proto.rest._async_base.AsyncClientBase` (``key_id``,
    ``private_key``, ``demo``, ``base_url``, ``retry``, ...) and:

    Args:
        http2: negotiate HTTP/2 (needs the ``http2`` extra, which installs ``h2``).
        limits: httpx connection-pool limits.
        verify: TLS verification: True, False, or an `ssl.SSLContext`.
        transport: an httpx transport to use instead of the network (tests, proxies).
        http_client: a ready `httpx.AsyncClient`; the other httpx options are then ignored and
            the client is not closed by `aclose`.
    """

    def __init__(
        self,
        *,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if http2 and http_client is None:
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "http2=True needs the h2 package: pip install 'kalshi-sansio[http2]'"
                ) from None
        # Parsed once; each request only swaps in its path and query.
        self._origin = httpx.URL(self.config.base_url.origin)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            http2=http2,
            limits=limits or httpx.Limits(max_connections=10, max_keepalive_connections=10),
            verify=verify,
            transport=transport,
            timeout=None,
            cookies=_NoCookies(),
        )
        self._closed = False

    async def aclose(self) -> None:
        """Close the httpx client (unless it was passed in); the client cannot be used afterwards."""
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    async def _send(self, request: HttpRequest, timeout: float, deadline: float) -> HttpResponse:
        if self._closed:
            raise LocalProtocolError("the client is closed")
        outgoing = self._http.build_request(
            request.method,
            self._origin.copy_with(raw_path=request.target.encode("ascii")),
            headers=(*request.headers, ("Accept-Encoding", ACCEPT_ENCODING)),
            content=request.body or None,
            timeout=timeout,
        )
        with map_exceptions():
            reply = await self._http.send(outgoing, stream=True)
            body = await aread_body(reply, deadline)
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in reply.headers.raw)
        return HttpResponse(status=reply.status_code, headers=headers, body=body)

    async def _sleep(self, seconds: float) -> None:
        await _sleep(seconds)

    def _clocks(self) -> tuple[float, int]:
        return time.monotonic(), time.time_ns() // 1_000_000

    def _default_rng(self) -> Callable[[], float]:
        return random.Random().random
