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

import anyio

from kalshi_proto.errors import ConnectTimeout
from kalshi_proto.rest.hold import Hold, SlotQueue

__all__ = ["AsyncGate", "Gate"]

_NONE_FREE = "no connection became free before the timeout"


class AsyncGate:
    """``total`` slots shared by the tasks of one event loop, served in arrival order.

    ``await gate.acquire(deadline, hold)`` takes a slot into ``hold`` (a
    `kalshi_proto.rest.hold.Hold`); ``gate.release(hold)`` gives it back, once.
    """

    def __init__(self, total: int) -> None:
        self._slots = anyio.Semaphore(total)

    async def acquire(self, deadline: float, hold: Hold | None = None) -> bool:
        """Take a slot, waiting until ``deadline`` (`time.monotonic` clock) at most; True if
        this waited.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        hold = Hold() if hold is None else hold
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            # The same moment on the event loop's clock, which trio starts at its own origin.
            when = anyio.current_time() + (deadline - time.monotonic())
            with anyio.CancelScope(deadline=when):
                await self._slots.acquire()
                hold.owner = self
                hold.held = True
                return True
            raise ConnectTimeout(_NONE_FREE) from None
        hold.owner = self
        hold.held = True
        return False

    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds; nothing if it holds none of this gate's. Without
        ``hold``, give back a slot taken by the caller."""
        if hold is not None:
            if hold.owner is not self:
                return
            hold.owner = None
            hold.held = False
        self._slots.release()


class Gate(SlotQueue):
    """``total`` slots shared by threads, served in arrival order.

    `release` hands a slot straight to the first waiter (`SlotQueue`), so a thread arriving
    meanwhile (the one that gave it back, on its next call) cannot take it first: with a
    semaphore's free-for-all, a busy thread could take slot after slot while another waited
    past its timeout. The waiting is that of ``kalshi_sync._io.Limiter`` (see there how a Ctrl-C
    cannot lose a slot or leave the lock held), which this package may not import.
    """

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self._lock = threading.Lock()

    def acquire(self, deadline: float, hold: Hold | None = None) -> bool:
        """Take a slot, waiting until ``deadline`` (`time.monotonic` clock) at most; True if
        this waited.

        Raises:
            ConnectTimeout: no slot became free before ``deadline``.
        """
        hold = Hold() if hold is None else hold
        with self._lock:
            if self._take(hold):
                return False
            wake = threading.Lock()  # released to hand this thread a slot
            wake.acquire()
            self._queue(hold, wake)
        try:
            wait = deadline - time.monotonic()
            if wait > 0 and wake.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
                return True
        except BaseException:  # interrupted (KeyboardInterrupt, say): its turn passes on
            self.release(hold)
            raise
        with self._lock:
            if self._kept_after_wait(hold):
                return True
        raise ConnectTimeout(_NONE_FREE)

    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds (to the first waiter, or to the free ones), or take
        ``hold`` out of the queue; nothing if it has neither. Without ``hold``, give back a
        slot taken by the caller."""
        with self._lock:
            handed = self._give_back(hold)
        if handed is not None:
            handed.wake.release()
