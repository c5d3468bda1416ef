"""Kalshi SDK adapter for anyio: runs unchanged on asyncio and trio.

`AsyncKalshiClient` is the REST client.
"""

from __future__ import annotations

from kalshi_anyio.rest import AsyncKalshiClient

__all__ = ["AsyncKalshiClient"]
