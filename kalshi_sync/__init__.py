"""Kalshi SDK adapter over blocking sockets: no event loop, no extra threads.

`KalshiClient` is the REST client.
"""

from __future__ import annotations

from kalshi_sync.rest import KalshiClient

__all__ = ["KalshiClient"]
