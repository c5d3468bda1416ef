"""Feeding bytes to a core object three ways, and draining its events.

Every parser test runs whole, one byte at a time, and in random splits; the helpers take the
object's ``receive_data(data, now)`` method, never pass it an empty chunk, and return nothing:
read what happened with `drain`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

__all__ = [
    "ReceiveData",
    "chunks_bytewise",
    "chunks_random",
    "drain",
    "feed_bytewise",
    "feed_random_splits",
    "feed_whole",
]

E_co = TypeVar("E_co", covariant=True)
E = TypeVar("E")

#: The ``receive_data(data, now)`` method of a core object.
ReceiveData = Callable[[bytes, float], None]


class HasEvents(Protocol[E_co]):
    def next_event(self) -> E_co | None: ...


def feed_whole(receive_data: ReceiveData, data: bytes, now: float = 0.0) -> None:
    """Feed ``data`` in one call (nothing when it is empty)."""
    if data:
        receive_data(data, now)


def chunks_bytewise(data: bytes) -> Iterator[bytes]:
    """``data`` one byte at a time."""
    for i in range(len(data)):
        yield data[i : i + 1]


def feed_bytewise(receive_data: ReceiveData, data: bytes, now: float = 0.0) -> None:
    """Feed ``data`` one byte per call."""
    for chunk in chunks_bytewise(data):
        receive_data(chunk, now)


def chunks_random(data: bytes, rng: random.Random) -> Iterator[bytes]:
    """``data`` cut at random points into non-empty chunks."""
    start = 0
    while start < len(data):
        end = start + rng.randint(1, max(1, len(data) - start))
        yield data[start:end]
        start = end


def feed_random_splits(
    receive_data: ReceiveData, data: bytes, rng: random.Random, now: float = 0.0
) -> None:
    """Feed ``data`` in non-empty chunks cut at points drawn from ``rng``."""
    for chunk in chunks_random(data, rng):
        receive_data(chunk, now)


def drain(obj: HasEvents[E]) -> list[E]:
    """Every event ``obj.next_event()`` returns until it returns None."""
    events: list[E] = []
    while (event := obj.next_event()) is not None:
        events.append(event)
    return events
