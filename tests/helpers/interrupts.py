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

__all__ = ["CHECKPOINTS", "count_checkpoints", "interrupt_at"]

CHECKPOINTS = ("call", "return", "c_return")


def count_checkpoints(action: Callable[[], object]) -> int:
    """How many points ``action`` passes where a signal handler could run."""
    seen = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal seen
        if event in CHECKPOINTS:
            seen += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return seen


def interrupt_at(point: int, action: Callable[[], object]) -> str:
    """Run ``action`` with a KeyboardInterrupt raised at its ``point``-th checkpoint; where
    that was (or "" if the call passed fewer checkpoints this time)."""
    seen = 0
    where = ""

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal seen, where
        if event in CHECKPOINTS:
            seen += 1
            if seen == point:
                sys.setprofile(None)
                called = getattr(arg, "__qualname__", "") if event == "c_return" else ""
                where = f"{event} {frame.f_code.co_qualname}:{frame.f_lineno} {called}"
                raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sys.setprofile(profile)
        try:
            action()
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        gc.collect()  # what the interrupt left to the garbage collector, closed here
    return where
