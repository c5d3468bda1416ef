"""The pure protocol core of the Kalshi SDK: no sockets, no clocks, no threads.

Adapters (`kalshi_sync`, `kalshi_anyio`, `kalshi_httpx`) move bytes between this core and the
network. See DESIGN.md for the architecture.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
