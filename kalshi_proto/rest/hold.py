"""`Hold`: the connection slot one call holds or waits for, recorded so no interrupt loses it.

A call makes its `Hold` before it asks a limiter for a slot, and gives it back in a ``finally``
(`Hold.release`). The limiter writes the slot into the hold as it takes it from its count, with
no call in between; Python runs a signal handler (Ctrl-C's KeyboardInterrupt) only as a Python
function starts, after a call returns, or on a loop's backward jump, so an interrupt lands
either before the slot is taken or after it is recorded, never between. The ``finally`` then
knows whether there is a slot to give back, or a place in a queue to leave. Giving back twice
does nothing the second time, so a ``finally`` interrupted as its give-back begins can simply
give back again::

    hold = Hold()
    try:
        limiter.acquire(deadline, hold)
        ...
    finally:
        try:
            hold.release()
        except BaseException:
            hold.release()  # interrupted as it began: this does what is left
            raise

A slot returned by a function instead would be lost to an interrupt between the return and the
caller's ``try``.
"""

from __future__ import annotations

import abc
from collections import deque
from typing import Any, Protocol

__all__ = ["Hold", "SlotOwner", "SlotQueue"]


class SlotOwner(Protocol):
    """A limiter of connection slots that records them in `Hold` objects."""

    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds, or take it out of the queue it waits in; nothing
        if ``hold`` is not this limiter's any more."""


class Hold:
    """The connection slot one call holds or waits for (see the module docstring).

    Only the limiter named in `owner` changes a hold, under its own lock where it has one.
    """

    __slots__ = ("held", "owner", "wake")

    def __init__(self) -> None:
        #: The limiter this hold holds a slot of, or waits in the queue of; None when neither.
        self.owner: SlotOwner | None = None
        #: True while a slot of `owner` is held; False while queued (or with no owner).
        self.held = False
        #: What wakes the waiting call when a slot is handed to it (the limiter's own kind).
        self.wake: Any = None

    def release(self) -> None:
        """Give the slot back to its limiter, or leave the queue; nothing when neither."""
        owner = self.owner
        if owner is not None:
            owner.release(self)

    def __repr__(self) -> str:
        state = "held" if self.held else "waiting" if self.owner is not None else "empty"
        return f"<Hold {state}>"


class SlotQueue(abc.ABC):
    """The count and the queue of a connection limiter: every change of its state and of the
    holds, without the lock or the waiting, which are the adapter's.

    An adapter's limiter subclasses it, calls these methods under its lock (if it has one) and
    wakes the hold `_give_back` hands a slot to. Each method changes the count, the queue and
    the hold with no call in between, so an interrupt (see the module docstring) lands before
    or after a change, never inside one. Waiters are served in arrival order: a slot given back
    goes straight to the first waiter, so a caller arriving meanwhile cannot take it first.
    """

    def __init__(self, total: int) -> None:
        self._free = total if total > 0 else -1  # -1: no limit
        self._waiters: deque[Hold] = deque()  # never non-empty while _free > 0

    @abc.abstractmethod
    def release(self, hold: Hold | None = None) -> None:
        """Give back the slot ``hold`` holds, or take it out of the queue (`SlotOwner`)."""

    def _take(self, hold: Hold) -> bool:
        """Take a free slot into ``hold``; False if none is free (then the caller queues)."""
        if self._free > 0:
            self._free -= 1
            hold.owner = self
            hold.held = True
            return True
        return False

    def _queue(self, hold: Hold, wake: Any) -> None:
        """Put ``hold`` last in the queue, to be woken with ``wake`` when handed a slot."""
        hold.wake = wake
        hold.owner = self
        self._waiters.append(hold)

    def _give_back(self, hold: Hold | None) -> Hold | None:
        """Give back the slot ``hold`` holds, to the first waiter (returned, for the caller to
        wake) or to the free ones; or take ``hold`` out of the queue. Nothing if ``hold`` is not
        this limiter's any more. Without ``hold``, give back a slot taken by the caller."""
        if hold is not None:
            if hold.owner is not self:
                return None
            hold.owner = None
            if not hold.held:
                self._waiters.remove(hold)
                return None
            hold.held = False
        if self._waiters:
            first = self._waiters[0]
            first.held = True
            self._waiters.popleft()
            return first
        self._free += 1
        return None

    def _kept_after_wait(self, hold: Hold) -> bool:
        """After a wait that timed out: True if ``hold`` was handed a slot as it ended (it is
        the caller's); otherwise take it out of the queue."""
        if hold.held:
            return True
        hold.owner = None
        self._waiters.remove(hold)
        return False
