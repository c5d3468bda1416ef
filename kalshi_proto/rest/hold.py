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

from typing import Any, Protocol

__all__ = ["Hold", "SlotOwner"]


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
