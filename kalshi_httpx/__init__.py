"""Kalshi SDK adapter for httpx (REST only): connection pooling and optional HTTP/2.

`KalshiClient` sends through an `httpx.HTTPTransport` (or the transport you pass), and
`AsyncKalshiClient` through an `httpx.AsyncHTTPTransport`. Pass ``http_client=`` to use your own
`httpx.Client` / `httpx.AsyncClient` with all its settings. ``proxy=`` routes the transport
through a proxy; without it, a proxy named in the environment (``HTTPS_PROXY``, ``ALL_PROXY``)
is honoured through an internal httpx client.
"""

from __future__ import annotations

from kalshi_httpx._async import AsyncKalshiClient
from kalshi_httpx._sync import KalshiClient

__all__ = ["AsyncKalshiClient", "KalshiClient"]
