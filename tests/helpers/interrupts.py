"""Interrupting a piece of code at each point where Python could run a signal handler.

Python runs a signal handler (Ctrl-C's, which raises KeyboardInterrupt) as a Python function
starts, after a call returns, and on a loop's backward jump. `sys.setprofile` reports the first
two: a Python function's start (``call``), its return to the caller (``return``: the caller's
next point) and a C function's return (``c_return``). `interrupt_at` raises a KeyboardInterrupt
at the n-th of them; a loop's backward jumps are not covered.
"""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["CHECKPOINTS", "Checkpoints", "count_checkpoints", "interrupt_at"]

CHECKPOINTS = ("call", "return", "c_return")


class Checkpoints:
    """A profile function (`sys.setprofile`) that counts the checkpoints its thread passes and
    raises a KeyboardInterrupt at the ``point``-th (none when ``point`` is 0). With ``counting``,
    only the checkpoints for whose frame it returns True count. ``seen`` is the count so far,
    ``where`` the point interrupted ("" until then)."""

    def __init__(self, point: int = 0, counting: Callable[[FrameType], bool] | None = None) -> None:
        self.point = point
        self.seen = 0
        self.where = ""
        self._counting = counting

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in CHECKPOINTS or (self._counting is not None and not self._counting(frame)):
            return
        self.seen += 1
        if self.seen == self.point:
            sys.setprofile(None)
            called = getattr(arg, "__qualname__", "") if event == "c_return" else ""
            self.where = f"{event} {frame.f_code.co_qualname}:{frame.f_lineno} {called}"
            raise KeyboardInterrupt


def count_checkpoints(action: Callable[[], object]) -> int:
    """How many points ``action`` passes where a signal handler could run."""
    checkpoints = Checkpoints()
    sys.setprofile(checkpoints)
    try:
        action()
    finally:
        sys.setprofile(None)
    return checkpoints.seen


def interrupt_at(point: int, action: Callable[[], object]) -> str:
    """Run ``action`` with a KeyboardInterrupt raised at its ``point``-th checkpoint; where
    that was (or "" if the call passed fewer checkpoints this time)."""
    checkpoints = Checkpoints(point)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sys.setprofile(checkpoints)
        try:
            action()
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        gc.collect()  # what the interrupt left to the garbage collector, closed here
    return checkpoints.where
