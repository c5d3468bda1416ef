"""Cursor pagination as a small state machine, and the page walkers the facades use.

`CursorPager` hands out the next page's `Call` (``next_call()``) and learns from each page
(``feed(page)``). It stops on an empty or missing cursor, after ``max_pages`` pages, and refuses
a cursor it has already seen (a server loop would otherwise never end; that is a
`RemoteProtocolError`). The cursor travels in the ``cursor`` query parameter; the response field
that carries it is ``cursor`` except where `kalshi_proto.rest.naming.CURSOR_FIELDS` says
otherwise (``GetIncentivePrograms`` answers ``next_cursor``).

`iterate_pages` / `aiterate_pages` drive a pager with a client's ``execute`` and yield items;
they do no I/O themselves, so every adapter shares them.
"""

from __future__ import annotations

import numbers
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from kalshi_proto.errors import LocalProtocolError, RemoteProtocolError
from kalshi_proto.rest.call import Call, Page

__all__ = ["CursorPager", "aiterate_pages", "iterate_pages"]

T = TypeVar("T")


class CursorPager(Generic[T]):
    """Walks the pages of one list call.

    Args:
        first: the call for the first page (it may already carry a ``cursor`` to resume from).
        max_pages: stop after this many pages; None walks to the end.

    Raises:
        ValueError: ``max_pages`` is less than 1.
        TypeError: ``max_pages`` is not an int or None, ``first`` is not a `Call`, or its
            operation is not cursor-paginated.
    """

    def __init__(self, first: Call[Page[T]], *, max_pages: int | None = None) -> None:
        if max_pages is not None and (
            isinstance(max_pages, bool) or not isinstance(max_pages, numbers.Integral)
        ):
            raise TypeError(f"max_pages must be an int or None, got {type(max_pages).__name__}")
        if max_pages is not None and max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, or None for no limit; got {max_pages}")
        max_pages = None if max_pages is None else int(max_pages)
        if not isinstance(first, Call):
            raise TypeError(
                "expected a Call of a list operation built by kalshi_proto.rest.generated.calls "
                f"(calls.get_markets(limit=100), say), got {type(first).__name__}"
            )
        pagination = first.operation.pagination
        if pagination is None:
            raise TypeError(f"{first.operation.operation_id} is not a paginated operation")
        if first.is_raw:
            raise TypeError(
                f"a raw call of {first.operation.operation_id} cannot be walked page by page: "
                "the SDK reads each page's cursor from its model; walk the call itself, or read "
                "the cursor from each raw body"
            )
        self._param = pagination.cursor_param
        self._next: Call[Page[T]] | None = first
        self._max_pages = max_pages
        self._pages = 0
        start = first.query_value(self._param)
        self._seen: set[str] = {start} if start else set()

    @property
    def pages(self) -> int:
        """How many pages have been fed so far."""
        return self._pages

    def next_call(self) -> Call[Page[T]] | None:
        """The call for the next page, or None when the walk is over."""
        return self._next

    def feed(self, page: Page[T]) -> None:
        """Record a page; then call `next_call` again.

        Raises:
            LocalProtocolError: the walk is already over.
            RemoteProtocolError: the server sent a cursor it had sent before.
            TypeError: ``page`` is not a `Page` (the result of the call `next_call` gave).
        """
        if not isinstance(page, Page):
            raise TypeError(
                f"feed takes the Page the call of next_call() returned, got {type(page).__name__}"
            )
        current = self._next
        if current is None:
            raise LocalProtocolError("the pager is finished; there is no page to feed")
        self._pages += 1
        cursor = page.cursor
        if not cursor or (self._max_pages is not None and self._pages >= self._max_pages):
            self._next = None
            return
        if cursor in self._seen:
            self._next = None
            raise RemoteProtocolError(
                f"{current.operation.operation_id}: the server returned cursor {cursor!r} again "
                f"after {self._pages} pages; stopping instead of looping"
            )
        self._seen.add(cursor)
        self._next = current.with_query(self._param, cursor)


def iterate_pages(
    execute: Callable[[Call[Page[T]]], Page[T]],
    first: Call[Page[T]],
    max_pages: int | None = None,
) -> Iterator[T]:
    """Yield every item of every page, calling ``execute`` once per page, lazily."""
    pager = CursorPager(first, max_pages=max_pages)
    return _Walk(execute, pager)


class _Walk(Iterator[T]):
    # A plain iterator, not a generator: a generator that raised is finished, so a caller who
    # catches a failed page fetch and goes on would see the walk end early, as if that page
    # were the last. Here the next ``next()`` asks for the same page again (as `_AsyncWalk`
    # does). ``close`` ends the walk, for code that closes what it iterates.

    __slots__ = ("_execute", "_fetching", "_items", "_pager")

    def __init__(self, execute: Callable[[Call[Page[T]]], Page[T]], pager: CursorPager[T]) -> None:
        self._execute = execute
        self._pager: CursorPager[T] | None = pager
        self._items: Iterator[T] = iter(())
        self._fetching = False

    def __iter__(self) -> _Walk[T]:
        return self

    def __next__(self) -> T:
        while True:
            for item in self._items:
                return item
            pager = self._pager
            call = None if pager is None else pager.next_call()
            if pager is None or call is None:
                self._pager = None
                raise StopIteration
            if self._fetching:
                # As a generator would say: two threads on one walk would fetch one page twice.
                raise RuntimeError("next(): the walk is already fetching a page in another thread")
            self._fetching = True
            try:
                page = self._execute(call)
            finally:
                self._fetching = False
            pager.feed(page)
            self._items = iter(page.items)

    def close(self) -> None:
        """End the walk: no further page is fetched."""
        self._pager = None
        self._items = iter(())


def aiterate_pages(
    execute: Callable[[Call[Page[T]]], Awaitable[Page[T]]],
    first: Call[Page[T]],
    max_pages: int | None = None,
) -> AsyncIterator[T]:
    """The async twin of `iterate_pages`: an async iterator over every item, fetched lazily."""
    pager = CursorPager(first, max_pages=max_pages)
    return _AsyncWalk(execute, pager)


class _AsyncWalk(AsyncIterator[T]):
    # A plain async iterator, not an async generator: one left unfinished (a loop that breaks
    # early) holds nothing to finalise, so trio warns of nothing and no event loop hook is
    # needed. ``aclose`` ends the walk, for code that closes what it iterates.

    __slots__ = ("_execute", "_fetching", "_items", "_pager")

    def __init__(
        self, execute: Callable[[Call[Page[T]]], Awaitable[Page[T]]], pager: CursorPager[T]
    ) -> None:
        self._execute = execute
        self._pager: CursorPager[T] | None = pager
        self._items: Iterator[T] = iter(())
        self._fetching = False

    def __aiter__(self) -> _AsyncWalk[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            for item in self._items:
                return item
            pager = self._pager
            call = None if pager is None else pager.next_call()
            if pager is None or call is None:
                self._pager = None
                raise StopAsyncIteration
            if self._fetching:
                # As an async generator would say: two tasks on one walk would fetch one page
                # twice.
                raise RuntimeError("anext(): the walk is already fetching a page in another task")
            self._fetching = True
            try:
                page = await self._execute(call)
            finally:
                self._fetching = False
            pager.feed(page)
            self._items = iter(page.items)

    async def aclose(self) -> None:
        """End the walk: no further page is fetched."""
        self._pager = None
        self._items = iter(())
