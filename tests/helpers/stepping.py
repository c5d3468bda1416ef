"""Run awaitables that never suspend, with no event loop (pure async code under test)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def step(awaitable: Awaitable[T]) -> T:
    """Run an awaitable that never suspends to its result, with no event loop."""
    iterator = awaitable.__await__()
    try:
        iterator.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("the awaitable suspended; it needs an event loop")
