"""Connection slots for rate-limited calls on the httpx clients.

httpx's pool takes a connection inside ``send``, so a call cannot hold one while it waits for
the rate limiter. A gate with as many slots as the pool has connections stands in for it: a
rate-limited call takes a slot, then reserves its tokens, and its request finds a connection
free in the pool when the wait is over. Calls that queued for a connection then go out at the
pace the tokens allow, not together.
"""

from __future__ import annotations

import math
import threading
import time

import anyio

from kalshi_proto.errors import ConnectTimeout

__all__ = ["AsyncGate", "Gate"]

_NONE_FREE = "no connection became free before the timeout"


class AsyncGate:
    """``total`` slots shared by the tasks of one event loop, served in arrival order."""

    def __init__(self, total: int) -> None:
        self._slots = anyio.Semaphore(total)

    async def acquire(self, deadline: float) -> AsyncGate:
        """Take a slot, waiting until ``deadline`` (`time.monotonic` clock) at most.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            # The same moment on the event loop's clock, which trio starts at its own origin.
            when = anyio.current_time() + (deadline - time.monotonic())
            with anyio.CancelScope(deadline=when):
                await self._slots.acquire()
                return self
            raise ConnectTimeout(_NONE_FREE) from None
        return self

    def release(self) -> None:
        """Give back a slot taken with `acquire`."""
        self._slots.release()


class Gate:
    """``total`` slots shared by threads."""

    def __init__(self, total: int) -> None:
        self._slots = threading.Semaphore(total)

    def acquire(self, deadline: float) -> Gate:
        """Take a slot, waiting until ``deadline`` (`time.monotonic` clock) at most.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        wait = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
        if not self._slots.acquire(timeout=wait):
            raise ConnectTimeout(_NONE_FREE)
        return self

    def release(self) -> None:
        """Give back a slot taken with `acquire`."""
        self._slots.release()
