"""`kalshi_proto.rest.pagination`: the cursor state machine and the lazy page walkers."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from kalshi_proto.errors import LocalProtocolError, RemoteProtocolError
from kalshi_proto.rest.call import Call, HttpResponse, Page
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.naming import CURSOR_FIELDS
from kalshi_proto.rest.pagination import CursorPager, aiterate_pages, iterate_pages
from tests.helpers.stepping import step

T = TypeVar("T")

FeeCall = Call[Page[m.EventFeeChange]]


def fee_change(n: int) -> dict[str, Any]:
    return {
        "id": f"fc-{n}",
        "event_ticker": "KXEV-1",
        "series_ticker": "KXEV",
        "fee_type_override": None,
        "fee_multiplier_override": None,
        "scheduled_ts": "2026-01-01T00:00:00Z",
    }


def page_of(call: FeeCall, ids: list[int], cursor: str) -> Page[m.EventFeeChange]:
    """The page the server answers ``call`` with, parsed the way an adapter parses it."""
    body: dict[str, Any] = {"event_fee_changes": [fee_change(n) for n in ids], "cursor": cursor}
    return call.parse(HttpResponse(status=200, headers=(), body=json.dumps(body).encode()))


class Server:
    """Answers each page call from a script keyed by the ``cursor`` it carries."""

    def __init__(self, pages: dict[str | None, tuple[list[int], str]]) -> None:
        self.pages = pages
        self.seen: list[str | None] = []

    def execute(self, call: FeeCall) -> Page[m.EventFeeChange]:
        cursor = call.query_value("cursor")
        self.seen.append(cursor)
        ids, next_cursor = self.pages[cursor]
        return page_of(call, ids, next_cursor)

    async def aexecute(self, call: FeeCall) -> Page[m.EventFeeChange]:
        return self.execute(call)


def anext_item(iterator: AsyncIterator[T]) -> T:
    return step(iterator.__anext__())


def acollect(iterator: AsyncIterator[T]) -> list[T]:
    items: list[T] = []
    while True:
        try:
            items.append(anext_item(iterator))
        except StopAsyncIteration:
            return items


TWO_PAGES: dict[str | None, tuple[list[int], str]] = {
    None: ([1, 2], "c2"),
    "c2": ([3], ""),
}


# ---- CursorPager --------------------------------------------------------------------------


def test_walks_two_pages_and_stops_on_the_empty_cursor() -> None:
    first = calls.get_event_fee_changes(event_ticker="KXEV-1", limit=2)
    pager = CursorPager(first)
    assert pager.pages == 0
    assert pager.next_call() is first

    pager.feed(page_of(first, [1, 2], "c2"))
    assert pager.pages == 1
    second = pager.next_call()
    assert second is not None
    assert second.query == (("event_ticker", "KXEV-1"), ("limit", "2"), ("cursor", "c2"))
    assert second.target("/trade-api/v2") == (
        "/trade-api/v2/events/fee_changes?event_ticker=KXEV-1&limit=2&cursor=c2"
    )
    assert pager.next_call() is second  # asking again changes nothing

    pager.feed(page_of(second, [3], ""))
    assert pager.pages == 2
    assert pager.next_call() is None


def test_a_none_cursor_is_the_last_page() -> None:
    first = calls.get_event_fee_changes()
    pager = CursorPager(first)
    pager.feed(Page(items=[], cursor=None, response=m.EmptyResponse()))
    assert pager.next_call() is None
    assert pager.pages == 1


def test_a_page_carrying_a_new_cursor_replaces_the_old_one() -> None:
    first = calls.get_event_fee_changes(cursor="c1")
    pager = CursorPager(first)
    pager.feed(page_of(first, [1], "c2"))
    second = pager.next_call()
    assert second is not None
    assert second.query == (("cursor", "c2"),)


@pytest.mark.parametrize("max_pages", [1, 2])
def test_max_pages_stops_the_walk(max_pages: int) -> None:
    pager = CursorPager(calls.get_event_fee_changes(), max_pages=max_pages)
    fed = 0
    while (call := pager.next_call()) is not None:
        fed += 1
        pager.feed(page_of(call, [fed], f"c{fed + 1}"))  # the server always has more
    assert fed == max_pages == pager.pages


@pytest.mark.parametrize(
    ("max_pages", "kind"), [(1.5, "float"), ("2", "str"), (True, "bool"), (False, "bool")]
)
def test_max_pages_that_is_not_an_int_is_a_type_error(max_pages: object, kind: str) -> None:
    # 1.5 walked two pages, "2" failed comparing a str with an int, and True read as 1.
    with pytest.raises(TypeError, match=rf"^max_pages must be an int or None, got {kind}$"):
        CursorPager(calls.get_event_fee_changes(), max_pages=max_pages)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_pages", [0, -1])
def test_max_pages_below_one_is_a_value_error(max_pages: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^max_pages must be at least 1, or None for no limit; got {max_pages}$"
    ):
        CursorPager(calls.get_event_fee_changes(), max_pages=max_pages)


def test_a_non_paginated_operation_is_a_type_error() -> None:
    call: Any = calls.get_exchange_status()
    with pytest.raises(TypeError, match=r"^GetExchangeStatus is not a paginated operation$"):
        CursorPager(call)


@pytest.mark.parametrize("given", ["GetMarkets", None, calls.get_markets])
def test_something_other_than_a_call_is_a_type_error(given: Any) -> None:
    # It raised AttributeError 'operation'.
    with pytest.raises(TypeError) as info:
        CursorPager(given)
    assert str(info.value) == (
        "expected a Call of a list operation built by kalshi_proto.rest.generated.calls "
        f"(calls.get_markets(limit=100), say), got {type(given).__name__}"
    )


@pytest.mark.parametrize("given", [None, [], "c2"])
def test_feeding_something_other_than_a_page_is_a_type_error(given: Any) -> None:
    # It raised AttributeError 'cursor', after counting a page.
    pager = CursorPager(calls.get_event_fee_changes())
    with pytest.raises(TypeError) as info:
        pager.feed(given)
    assert str(info.value) == (
        f"feed takes the Page the call of next_call() returned, got {type(given).__name__}"
    )
    assert pager.pages == 0 and pager.next_call() is not None


def test_a_cursor_seen_before_is_a_remote_protocol_error() -> None:
    first = calls.get_event_fee_changes()
    pager = CursorPager(first)
    pager.feed(page_of(first, [1], "c2"))
    second = pager.next_call()
    assert second is not None
    pager.feed(page_of(second, [2], "c3"))
    third = pager.next_call()
    assert third is not None
    with pytest.raises(RemoteProtocolError) as info:
        pager.feed(page_of(third, [3], "c2"))
    assert str(info.value) == (
        "GetEventFeeChanges: the server returned cursor 'c2' again after 3 pages; "
        "stopping instead of looping"
    )
    assert pager.next_call() is None
    assert pager.pages == 3


def test_the_cursor_resumed_from_counts_as_seen() -> None:
    first = calls.get_event_fee_changes(cursor="resume")
    pager = CursorPager(first)
    with pytest.raises(RemoteProtocolError, match=r"cursor 'resume' again after 1 pages"):
        pager.feed(page_of(first, [1], "resume"))
    assert pager.next_call() is None


def test_an_empty_starting_cursor_is_no_cursor() -> None:
    first = calls.get_event_fee_changes(cursor="")
    assert first.query_value("cursor") == ""
    pager = CursorPager(first)
    pager.feed(page_of(first, [1], "c2"))
    second = pager.next_call()
    assert second is not None
    assert second.query_value("cursor") == "c2"


@pytest.mark.parametrize("how", ["end", "max-pages", "loop"])
def test_feed_after_the_walk_is_over_is_local_protocol_error(how: str) -> None:
    first = calls.get_event_fee_changes(cursor="c1")
    pager = CursorPager(first, max_pages=1 if how == "max-pages" else None)
    cursor = {"end": "", "max-pages": "c2", "loop": "c1"}[how]
    try:
        pager.feed(page_of(first, [1], cursor))
    except RemoteProtocolError:
        assert how == "loop"
    with pytest.raises(
        LocalProtocolError, match=r"^the pager is finished; there is no page to feed$"
    ):
        pager.feed(page_of(first, [2], "c9"))
    assert pager.pages == 1


def test_an_irregular_cursor_field_is_followed() -> None:
    assert CURSOR_FIELDS == {"GetIncentivePrograms": "next_cursor"}
    program = {
        "id": "ip-1",
        "market_id": "m-1",
        "market_ticker": "KXM-1",
        "incentive_type": "volume",
        "incentive_description": "d",
        "start_date": "2026-01-01T00:00:00Z",
        "end_date": "2026-02-01T00:00:00Z",
        "period_reward": 1,
        "paid_out": False,
    }
    first = calls.get_incentive_programs(limit=1)
    body = json.dumps({"incentive_programs": [program], "next_cursor": "n2"}).encode()
    pager = CursorPager(first)
    pager.feed(first.parse(HttpResponse(status=200, headers=(), body=body)))
    second = pager.next_call()
    assert second is not None
    assert second.query == (("limit", "1"), ("cursor", "n2"))


# ---- iterate_pages ------------------------------------------------------------------------


def test_iterate_pages_yields_every_item_of_every_page() -> None:
    server = Server(TWO_PAGES)
    items = list(iterate_pages(server.execute, calls.get_event_fee_changes()))
    assert [item.id for item in items] == ["fc-1", "fc-2", "fc-3"]
    assert server.seen == [None, "c2"]


def test_iterate_pages_is_lazy() -> None:
    server = Server(TWO_PAGES)
    iterator = iterate_pages(server.execute, calls.get_event_fee_changes())
    assert server.seen == []  # building the iterator fetches nothing
    assert next(iterator).id == "fc-1"
    assert server.seen == [None]
    assert next(iterator).id == "fc-2"
    assert server.seen == [None]  # the second page waits until the first is used up
    assert next(iterator).id == "fc-3"
    assert server.seen == [None, "c2"]
    with pytest.raises(StopIteration):
        next(iterator)
    assert server.seen == [None, "c2"]


def test_iterate_pages_checks_max_pages_before_any_fetch() -> None:
    server = Server(TWO_PAGES)
    with pytest.raises(ValueError, match="max_pages must be at least 1"):
        iterate_pages(server.execute, calls.get_event_fee_changes(), 0)
    assert server.seen == []


def test_iterate_pages_stops_at_max_pages() -> None:
    server = Server(TWO_PAGES)
    items = list(iterate_pages(server.execute, calls.get_event_fee_changes(), max_pages=1))
    assert [item.id for item in items] == ["fc-1", "fc-2"]
    assert server.seen == [None]


def test_iterate_pages_skips_empty_pages() -> None:
    server = Server({None: ([], "c2"), "c2": ([], "c3"), "c3": ([7], "")})
    assert [i.id for i in iterate_pages(server.execute, calls.get_event_fee_changes())] == ["fc-7"]


def test_iterate_pages_raises_on_a_cursor_loop_before_yielding_the_page() -> None:
    server = Server({None: ([1], "c2"), "c2": ([2], "c2")})
    iterator = iterate_pages(server.execute, calls.get_event_fee_changes())
    assert next(iterator).id == "fc-1"
    with pytest.raises(RemoteProtocolError, match="cursor 'c2' again after 2 pages"):
        next(iterator)


def test_iterate_pages_passes_errors_from_execute() -> None:
    def failing(call: FeeCall) -> Page[m.EventFeeChange]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        next(iterate_pages(failing, calls.get_event_fee_changes()))


# ---- aiterate_pages -----------------------------------------------------------------------


def test_aiterate_pages_yields_every_item_of_every_page() -> None:
    server = Server(TWO_PAGES)
    items = acollect(aiterate_pages(server.aexecute, calls.get_event_fee_changes()))
    assert [item.id for item in items] == ["fc-1", "fc-2", "fc-3"]
    assert server.seen == [None, "c2"]


def test_aiterate_pages_is_lazy() -> None:
    server = Server(TWO_PAGES)
    iterator = aiterate_pages(server.aexecute, calls.get_event_fee_changes())
    assert server.seen == []
    assert anext_item(iterator).id == "fc-1"
    assert server.seen == [None]
    assert anext_item(iterator).id == "fc-2"
    assert server.seen == [None]
    assert anext_item(iterator).id == "fc-3"
    assert server.seen == [None, "c2"]
    with pytest.raises(StopAsyncIteration):
        anext_item(iterator)


def test_aiterate_pages_checks_max_pages_before_any_fetch() -> None:
    server = Server(TWO_PAGES)
    with pytest.raises(ValueError, match="max_pages must be at least 1"):
        aiterate_pages(server.aexecute, calls.get_event_fee_changes(), -1)


def test_aiterate_pages_stops_at_max_pages() -> None:
    server = Server(TWO_PAGES)
    items = acollect(aiterate_pages(server.aexecute, calls.get_event_fee_changes(), 1))
    assert [item.id for item in items] == ["fc-1", "fc-2"]
    assert server.seen == [None]


def test_aiterate_pages_raises_on_a_cursor_loop() -> None:
    server = Server({None: ([1], "c1"), "c1": ([2], "c1")})
    iterator = aiterate_pages(server.aexecute, calls.get_event_fee_changes())
    assert anext_item(iterator).id == "fc-1"
    with pytest.raises(RemoteProtocolError, match="cursor 'c1' again after 2 pages"):
        anext_item(iterator)


@pytest.mark.filterwarnings("error::ResourceWarning")
def test_an_async_walk_left_early_on_trio_leaves_nothing_to_finalise() -> None:
    # A loop that breaks early drops the iterator. Trio warns of an async generator dropped
    # unfinished; the walk is a plain async iterator, so there is nothing to warn of.
    server = Server(TWO_PAGES)

    async def first_only() -> str:
        async for item in aiterate_pages(server.aexecute, calls.get_event_fee_changes()):
            return item.id
        raise AssertionError("no item")

    assert trio.run(first_only) == "fc-1"
    gc.collect()
    assert server.seen == [None]


def test_an_async_walk_closed_early_fetches_nothing_more() -> None:
    server = Server(TWO_PAGES)
    iterator = aiterate_pages(server.aexecute, calls.get_event_fee_changes())
    assert anext_item(iterator).id == "fc-1"
    step(iterator.aclose())  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        anext_item(iterator)
    assert server.seen == [None]


def test_an_async_walk_refuses_a_second_task_while_it_fetches() -> None:
    server = Server(TWO_PAGES)
    release = trio.Event()

    async def slow(call: FeeCall) -> Page[m.EventFeeChange]:
        await release.wait()
        return server.execute(call)

    async def main() -> str:
        walk = aiterate_pages(slow, calls.get_event_fee_changes())
        async with trio.open_nursery() as nursery:
            first: list[str] = []

            async def take() -> None:
                first.append((await walk.__anext__()).id)

            nursery.start_soon(take)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="already fetching a page in another task"):
                await walk.__anext__()
            release.set()
        return first[0]

    assert trio.run(main) == "fc-1"
    assert server.seen == [None]  # the page was fetched once


def test_an_async_walk_fetches_the_same_page_again_after_a_failure() -> None:
    server = Server(TWO_PAGES)
    failures = [RuntimeError("reset")]

    async def flaky(call: FeeCall) -> Page[m.EventFeeChange]:
        if failures:
            raise failures.pop()
        return server.execute(call)

    walk = aiterate_pages(flaky, calls.get_event_fee_changes())
    with pytest.raises(RuntimeError, match="reset"):
        anext_item(walk)
    assert anext_item(walk).id == "fc-1"  # the walk goes on from where it failed
    assert server.seen == [None]


def test_step_refuses_an_awaitable_that_suspends() -> None:
    class Suspends:
        def __await__(self) -> Any:
            yield "suspended"

    with pytest.raises(AssertionError, match="suspended"):
        step(Suspends())


def test_a_blocking_walk_fetches_the_same_page_again_after_a_failure() -> None:
    # A generator would be finished by the exception: the caller who catches it and goes on
    # would see the walk end after the pages before, as if the list were complete.
    server = Server(TWO_PAGES)
    failures = [RuntimeError("reset on page 2")]

    def flaky(call: FeeCall) -> Page[m.EventFeeChange]:
        if call.query_value("cursor") == "c2" and failures:
            raise failures.pop()
        return server.execute(call)

    walk = iterate_pages(flaky, calls.get_event_fee_changes())
    assert [next(walk).id, next(walk).id] == ["fc-1", "fc-2"]
    with pytest.raises(RuntimeError, match="reset on page 2"):
        next(walk)
    assert [item.id for item in walk] == ["fc-3"]  # the walk goes on from where it failed
    assert server.seen == [None, "c2"]


def test_a_blocking_walk_closed_early_fetches_nothing_more() -> None:
    server = Server(TWO_PAGES)
    walk = iterate_pages(server.execute, calls.get_event_fee_changes())
    assert iter(walk) is walk
    assert next(walk).id == "fc-1"
    walk.close()  # type: ignore[attr-defined]
    assert list(walk) == []
    assert server.seen == [None]


def test_a_blocking_walk_refuses_a_second_caller_while_it_fetches() -> None:
    server = Server(TWO_PAGES)
    inner: list[BaseException] = []
    walk: Any = None

    def reentrant(call: FeeCall) -> Page[m.EventFeeChange]:
        # Another thread's next() on the same walk arrives while this page is being fetched.
        try:
            next(walk)
        except RuntimeError as exc:
            inner.append(exc)
        return server.execute(call)

    walk = iterate_pages(reentrant, calls.get_event_fee_changes())
    assert next(walk).id == "fc-1"
    assert [str(exc) for exc in inner] == [
        "next(): the walk is already fetching a page in another thread"
    ]
    assert server.seen == [None]  # the page was fetched once
