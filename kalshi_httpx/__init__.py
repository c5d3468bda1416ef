"""Kalshi SDK adapter for httpx (REST only): connection pooling and optional HTTP/2.

`KalshiClient` wraps `httpx.Client`; `AsyncKalshiClient` wraps `httpx.AsyncClient`.
"""

from __future__ import annotations

from kalshi_httpx._async import AsyncKalshiClient
from kalshi_httpx._sync import KalshiClient

__all__ = ["AsyncKalshiClient", "KalshiClient"]
