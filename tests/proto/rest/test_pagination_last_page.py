"""A list response whose cursor is null or missing is the last page, for every paginated operation.

REST-NOTES 4: "an empty or null cursor means the last page". The spec lists ``cursor`` as
required in some list responses (``GetMarketsResponse``, ``GetTradesResponse``, ...), and servers
still answer ``null`` or leave it out; the generator makes the cursor field of every list response
``str | None = None`` so such a page ends a walk instead of failing it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar, cast

import pytest

from kalshi_proto.rest.call import Call, HttpResponse, Page
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.generated.async_facade import AsyncMarketsApi
from kalshi_proto.rest.generated.sync_facade import MarketsApi
from kalshi_proto.rest.operation_table import Operation, operations
from kalshi_proto.rest.pagination import aiterate_pages, iterate_pages
from tests.helpers.spec import example
from tests.helpers.stepping import step

T = TypeVar("T")

PAGINATED = sorted(
    (op for op in operations() if op.pagination is not None), key=lambda op: op.operation_id
)
#: The operations whose spec lists the cursor as required (the ones that used to fail).
SPEC_REQUIRES_CURSOR = {
    "GetEventFeeChanges",
    "GetEvents",
    "GetFCMFills",
    "GetFCMOrders",
    "GetFills",
    "GetFillsHistorical",
    "GetHistoricalMarkets",
    "GetHistoricalOrders",
    "GetMarkets",
    "GetMultivariateEvents",
    "GetOrders",
    "GetTrades",
    "GetTradesHistorical",
}
#: How the last page ends: ``"null"`` sends ``"cursor": null``, ``"missing"`` leaves it out.
ENDINGS = ["null", "missing"]


def _op_id(op: Operation) -> str:
    return op.operation_id


def _body(op: Operation, cursor: str | None, ending: str = "null") -> bytes:
    """The spec's example response for ``op`` with ``cursor`` as its next-page cursor."""
    assert op.pagination is not None and op.response_model is not None
    body: dict[str, Any] = example(op.response_model.__name__)
    field = op.pagination.cursor_field
    if cursor is None and ending == "missing":
        body.pop(field, None)
    else:
        body[field] = cursor
    return json.dumps(body).encode()


def _answer(op: Operation, body: bytes) -> HttpResponse:
    return HttpResponse(op.success_status, (("content-type", "application/json"),), body)


def _first_call(op: Operation) -> Call[Page[object]]:
    return Call(operation=op, path=op.path)


def test_the_operations_the_spec_gives_a_required_cursor_are_paginated() -> None:
    assert SPEC_REQUIRES_CURSOR <= {op.operation_id for op in PAGINATED}


@pytest.mark.parametrize("op", PAGINATED, ids=_op_id)
def test_the_cursor_field_is_optional_and_nullable(op: Operation) -> None:
    assert op.pagination is not None and op.response_model is not None
    info = op.response_model.model_fields[op.pagination.cursor_field]
    assert not info.is_required()
    assert info.default is None


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("op", PAGINATED, ids=_op_id)
def test_a_null_or_missing_cursor_is_the_last_page(op: Operation, ending: str) -> None:
    assert op.pagination is not None
    page = _first_call(op).parse(_answer(op, _body(op, None, ending)))
    assert isinstance(page, Page)
    assert page.cursor is None
    assert not page.has_next
    assert len(page) == 1
    assert getattr(page.response, op.pagination.cursor_field) is None


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("op", PAGINATED, ids=_op_id)
def test_a_walk_stops_cleanly_on_a_null_or_missing_cursor(op: Operation, ending: str) -> None:
    answers = {None: _body(op, "c2"), "c2": _body(op, None, ending)}
    seen: list[str | None] = []

    def execute(call: Call[Page[object]]) -> Page[object]:
        cursor = call.query_value("cursor")
        seen.append(cursor)
        return call.parse(_answer(op, answers[cursor]))

    walked = list(iterate_pages(execute, _first_call(op)))
    assert len(walked) == 2
    assert seen == [None, "c2"]


# ---- list_all through the generated facades -----------------------------------------------


def _market_page(ticker: str, cursor: str | None, ending: str) -> HttpResponse:
    market = example("Market")
    market["ticker"] = ticker
    body: dict[str, Any] = {"markets": [market]}
    if cursor is not None or ending == "null":
        body["cursor"] = cursor
    return HttpResponse(200, (), json.dumps(body).encode())


class FakeExecutor:
    """A blocking client that answers each page call by the cursor it carries."""

    def __init__(self, ending: str) -> None:
        self.answers = {
            None: _market_page("KXM-1", "c2", ending),
            "c2": _market_page("KXM-2", None, ending),
        }
        self.seen: list[str | None] = []

    def execute(self, call: Call[T]) -> T:
        cursor = call.query_value("cursor")
        self.seen.append(cursor)
        return call.parse(self.answers[cursor])

    def iterate(self, call: Call[Page[T]], max_pages: int | None = None) -> Iterator[T]:
        return iterate_pages(self.execute, call, max_pages)


class FakeAsyncExecutor:
    """The async flavour of `FakeExecutor`; its ``execute`` never suspends."""

    def __init__(self, ending: str) -> None:
        self.sync = FakeExecutor(ending)

    async def execute(self, call: Call[T]) -> T:
        return self.sync.execute(call)

    def iterate(self, call: Call[Page[T]], max_pages: int | None = None) -> AsyncIterator[T]:
        return aiterate_pages(self.execute, call, max_pages)


def _acollect(iterator: AsyncIterator[T]) -> list[T]:
    out: list[T] = []
    while True:
        try:
            out.append(step(iterator.__anext__()))
        except StopAsyncIteration:
            return out


@pytest.mark.parametrize("ending", ENDINGS)
def test_markets_list_all_stops_on_a_null_or_missing_cursor(ending: str) -> None:
    fake = FakeExecutor(ending)
    markets: list[m.Market] = list(MarketsApi(fake).list_all(limit=1))
    assert [market.ticker for market in markets] == ["KXM-1", "KXM-2"]
    assert fake.seen == [None, "c2"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_async_markets_list_all_stops_on_a_null_or_missing_cursor(ending: str) -> None:
    fake = FakeAsyncExecutor(ending)
    markets = _acollect(AsyncMarketsApi(fake).list_all(limit=1))
    assert [market.ticker for market in markets] == ["KXM-1", "KXM-2"]
    assert fake.sync.seen == [None, "c2"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_markets_list_reads_the_last_page(ending: str) -> None:
    fake = FakeExecutor(ending)
    page = MarketsApi(fake).list(cursor="c2")
    assert page.cursor is None and not page.has_next
    assert cast(m.GetMarketsResponse, page.response).cursor is None
    assert [market.ticker for market in page] == ["KXM-2"]
