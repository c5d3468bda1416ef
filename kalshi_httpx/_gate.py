"""Connection slots for rate-limited calls on the httpx clients.

httpx's pool takes a connection inside ``send``, so a call cannot hold one while the rate
limiter paces its request. A gate with as many slots as the pool has connections stands in for
it: once its turn has come, a rate-limited call takes a slot, its request is paced, and it finds
a connection free in the pool when it goes. Calls that queued for a connection then go out at
the pace the budget allows, not together.
"""

from __future__ import annotations

import threading
import time
from collections import deque

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
    """``total`` slots shared by threads, served in arrival order.

    `release` hands a slot straight to the first waiter, so a thread arriving meanwhile (the one
    that gave it back, on its next call) cannot take it first: with a semaphore's free-for-all,
    a busy thread could take slot after slot while another waited past its timeout. This is
    the algorithm of ``kalshi_sync._io.Limiter``, which this package may not import.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        # One locked lock per waiting thread, oldest first; released to hand it a slot.
        self._waiters: deque[threading.Lock] = deque()  # never non-empty while _free > 0
        self._lock = threading.Lock()

    def acquire(self, deadline: float) -> Gate:
        """Take a slot, waiting until ``deadline`` (`time.monotonic` clock) at most.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return self
            granted = threading.Lock()
            granted.acquire()
            self._waiters.append(granted)
        wait = deadline - time.monotonic()
        try:
            if wait > 0 and granted.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
                return self
        except BaseException:  # interrupted (KeyboardInterrupt, say): its turn passes on
            if not self._withdraw(granted):
                self.release()
            raise
        if not self._withdraw(granted):
            return self  # handed a slot as the wait ended: it is this caller's
        raise ConnectTimeout(_NONE_FREE)

    def _withdraw(self, granted: threading.Lock) -> bool:
        # Take a waiter out of the queue; False if it was handed a slot already.
        with self._lock:
            try:
                self._waiters.remove(granted)
            except ValueError:
                return False
        return True

    def release(self) -> None:
        """Give back a slot taken with `acquire`: to the first waiter, or to the free ones."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1
