"""Kalshi SDK adapter for anyio: runs unchanged on asyncio and trio.

`AsyncKalshiClient` is the REST client.
"""

from __future__ import annotations

from kalshi_anyio.rest import AsyncKalshiClient
from kalshi_anyio.serve import Server, serve_rest, serve_rest_in_thread

__all__ = ["AsyncKalshiClient", "Server", "serve_rest", "serve_rest_in_thread"]
