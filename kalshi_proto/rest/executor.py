"""What the generated facades need from a client: ``execute`` a call and ``iterate`` pages.

Every client class implements one of these protocols; the resource classes in
``generated/sync_facade.py`` and ``generated/async_facade.py`` call nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol, TypeVar

from kalshi_proto.rest.call import Call, Page

__all__ = ["AsyncExecutor", "SyncExecutor"]

T = TypeVar("T")


class SyncExecutor(Protocol):
    """A blocking client: runs one call, or walks the pages of a list call."""

    def execute(self, call: Call[T]) -> T:
        """Send the call (with retries) and return its parsed result."""
        ...

    def iterate(self, call: Call[Page[T]], max_pages: int | None = None) -> Iterator[T]:
        """Yield every item of every page, fetching pages lazily."""
        ...


class AsyncExecutor(Protocol):
    """An async client: the same two verbs, awaitable."""

    async def execute(self, call: Call[T]) -> T:
        """Send the call (with retries) and return its parsed result."""
        ...

    def iterate(self, call: Call[Page[T]], max_pages: int | None = None) -> AsyncIterator[T]:
        """Yield every item of every page, fetching pages lazily."""
        ...
