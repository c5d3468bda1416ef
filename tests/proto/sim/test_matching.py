"""Tests for kalshi_proto.sim.matching: the order book of one market.

Unit tests pin each rule (time in force, self-trade prevention, price-time priority, trades at
the resting price); Hypothesis runs random order sequences by a few owners and checks that the
book never crosses, makers are consumed in priority order, quantity is conserved against a
model of the book, and the mirrored sequence (bid <-> ask, price -> 1 - price) gives the mirrored
book and the same fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.sim.matching import (
    BookOrder,
    Match,
    MatchResult,
    OrderBook,
    Side,
    StpMode,
    TimeInForce,
)

BID, ASK = Side.BID, Side.ASK
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
TAKER, MAKER = StpMode.TAKER_AT_CROSS, StpMode.MAKER


def D(text: str | int) -> Decimal:
    return Decimal(text)


class Book:
    """An `OrderBook` with a counter for order ids, so tests read like order entry."""

    def __init__(self) -> None:
        self.book = OrderBook("KXTEST-26JAN01")
        self.count = 0

    def order(self, owner: str, side: Side, price: str, count: str | int) -> BookOrder:
        self.count += 1
        return BookOrder(f"o{self.count}", owner, side, D(price), D(count))

    def rest(self, owner: str, side: Side, price: str, count: str | int) -> BookOrder:
        order = self.order(owner, side, price, count)
        self.book.rest(order)
        return order

    def match(
        self,
        owner: str,
        side: Side,
        price: str,
        count: str | int,
        tif: TimeInForce = GTC,
        stp: StpMode = TAKER,
    ) -> tuple[BookOrder, MatchResult]:
        order = self.order(owner, side, price, count)
        return order, self.book.match(order, tif, stp)


def fills(result: MatchResult) -> list[tuple[str, Decimal, Decimal]]:
    return [(m.maker.order_id, m.price, m.count) for m in result.matches]


# ---- the empty book and plain resting -------------------------------------------------------


def test_side_opposite() -> None:
    assert BID.opposite is ASK
    assert ASK.opposite is BID


def test_empty_book() -> None:
    book = OrderBook("T")
    assert book.ticker == "T"
    assert len(book) == 0
    assert "o1" not in book
    assert book.get("o1") is None
    assert book.best(BID) is None and book.best(ASK) is None
    assert book.levels(BID) == [] and book.levels(ASK) == []
    assert list(book.orders()) == []
    assert not book.is_crossed()
    assert not book.would_cross(BID, D("0.99"))
    assert not book.would_cross(ASK, D("0.01"))


def test_rest_levels_best_and_orders_in_priority_order() -> None:
    b = Book()
    b1 = b.rest("a", BID, "0.40", 10)
    b2 = b.rest("b", BID, "0.42", 5)
    b3 = b.rest("c", BID, "0.40", 7)
    a1 = b.rest("a", ASK, "0.47", 3)
    a2 = b.rest("b", ASK, "0.45", 4)
    book = b.book
    assert len(book) == 5
    assert "o1" in book and book.get("o1") is b1
    assert book.best(BID) == D("0.42")
    assert book.best(ASK) == D("0.45")
    assert book.levels(BID) == [(D("0.42"), D(5)), (D("0.40"), D(17))]
    assert book.levels(ASK) == [(D("0.45"), D(4)), (D("0.47"), D(3))]
    assert list(book.orders()) == [b2, b1, b3, a2, a1]
    # The book stamps arrival order when an order rests.
    assert [o.seq for o in (b1, b2, b3, a1, a2)] == [1, 2, 3, 4, 5]
    assert not book.is_crossed()


def test_would_cross() -> None:
    b = Book()
    b.rest("a", BID, "0.40", 1)
    b.rest("a", ASK, "0.45", 1)
    assert b.book.would_cross(BID, D("0.45"))
    assert b.book.would_cross(BID, D("0.50"))
    assert not b.book.would_cross(BID, D("0.44"))
    assert b.book.would_cross(ASK, D("0.40"))
    assert b.book.would_cross(ASK, D("0.30"))
    assert not b.book.would_cross(ASK, D("0.41"))


def test_rest_does_not_check_for_a_cross() -> None:
    # `rest` is the raw insert the exchange uses after matching; is_crossed reports the result.
    b = Book()
    b.rest("a", BID, "0.50", 1)
    b.rest("b", ASK, "0.50", 1)
    assert b.book.is_crossed()


def test_remove_from_the_middle_of_a_level_and_the_last_of_a_level() -> None:
    b = Book()
    first = b.rest("a", BID, "0.40", 1)
    middle = b.rest("b", BID, "0.40", 2)
    last = b.rest("c", BID, "0.40", 3)
    alone = b.rest("d", BID, "0.30", 4)
    assert b.book.remove(middle.order_id) is middle
    assert list(b.book.orders()) == [first, last, alone]
    assert b.book.levels(BID) == [(D("0.40"), D(4)), (D("0.30"), D(4))]
    assert b.book.remove(alone.order_id) is alone
    assert b.book.levels(BID) == [(D("0.40"), D(4))]
    assert alone.order_id not in b.book
    with pytest.raises(KeyError):
        b.book.remove(alone.order_id)


def test_reduce_keeps_priority_and_reduce_to_zero_removes() -> None:
    b = Book()
    first = b.rest("a", ASK, "0.60", 10)
    second = b.rest("b", ASK, "0.60", 10)
    b.book.reduce(first.order_id, D(4))
    assert first.remaining == D(4)
    assert list(b.book.orders()) == [first, second]
    assert b.book.levels(ASK) == [(D("0.60"), D(14))]
    _, result = b.match("c", BID, "0.60", 5)
    assert fills(result) == [(first.order_id, D("0.60"), D(4)), (second.order_id, D("0.60"), D(1))]
    b.book.reduce(second.order_id, D(0))
    assert second.remaining == 0
    assert len(b.book) == 0
    assert b.book.levels(ASK) == []
    with pytest.raises(KeyError):
        b.book.reduce("missing", D(1))


# ---- time in force --------------------------------------------------------------------------


def test_gtc_rests_the_remainder_at_its_own_price() -> None:
    b = Book()
    maker = b.rest("m", ASK, "0.45", 3)
    order, result = b.match("t", BID, "0.50", 10)
    assert fills(result) == [(maker.order_id, D("0.45"), D(3))]
    assert result.filled == D(3)
    assert result.rested and result.cancelled == 0
    assert not result.self_trade_stopped and result.maker_cancels == ()
    assert order.remaining == D(7)
    assert b.book.get(order.order_id) is order
    assert b.book.levels(BID) == [(D("0.50"), D(7))]
    assert b.book.levels(ASK) == []


def test_gtc_that_does_not_cross_rests_whole() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    order, result = b.match("t", BID, "0.44", 10)
    assert result == MatchResult(matches=(), rested=True, cancelled=D(0))
    assert result.filled == 0
    assert order.remaining == D(10) and order.order_id in b.book


def test_ioc_cancels_the_remainder() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    b.rest("m", ASK, "0.55", 3)  # beyond the limit
    order, result = b.match("t", BID, "0.50", 10, IOC)
    assert result.filled == D(3)
    assert not result.rested and result.cancelled == D(7)
    assert order.remaining == 0 and order.order_id not in b.book
    assert b.book.levels(BID) == []
    assert b.book.levels(ASK) == [(D("0.55"), D(3))]


def test_ioc_that_fills_completely_cancels_nothing() -> None:
    b = Book()
    b.rest("m", BID, "0.50", 10)
    _, result = b.match("t", ASK, "0.50", 4, IOC)
    assert result.filled == D(4) and result.cancelled == 0 and not result.rested
    assert b.book.levels(BID) == [(D("0.50"), D(6))]


def test_fok_that_cannot_fill_trades_nothing() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    b.rest("n", ASK, "0.46", 3)
    b.rest("n", ASK, "0.60", 30)  # beyond the limit
    order, result = b.match("t", BID, "0.50", 7, FOK)
    assert result == MatchResult(matches=(), rested=False, cancelled=D(7))
    assert order.remaining == 0
    assert b.book.levels(ASK) == [(D("0.45"), D(3)), (D("0.46"), D(3)), (D("0.60"), D(30))]


def test_fok_that_can_fill_fills_completely_across_levels() -> None:
    b = Book()
    m1 = b.rest("m", ASK, "0.45", 3)
    m2 = b.rest("n", ASK, "0.46", 3)
    m3 = b.rest("n", ASK, "0.46", 3)
    _, result = b.match("t", BID, "0.50", 7, FOK)
    assert fills(result) == [
        (m1.order_id, D("0.45"), D(3)),
        (m2.order_id, D("0.46"), D(3)),
        (m3.order_id, D("0.46"), D(1)),
    ]
    assert result.cancelled == 0 and not result.rested
    assert b.book.levels(ASK) == [(D("0.46"), D(2))]


def test_fillable() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    own = b.rest("t", ASK, "0.45", 5)
    b.rest("n", ASK, "0.46", 4)
    b.rest("n", ASK, "0.60", 100)
    probe = b.order("t", BID, "0.50", 100)
    # taker_at_cross stops at the owner's own order; maker skips it.
    assert b.book.fillable(probe, TAKER) == D(3)
    assert b.book.fillable(probe, MAKER) == D(7)
    # Stops counting once the order is covered.
    assert b.book.fillable(b.order("x", BID, "0.99", 2), TAKER) == D(3)
    assert b.book.fillable(b.order("x", BID, "0.99", 200), TAKER) == D(112)
    assert b.book.fillable(b.order("x", BID, "0.44", 1), TAKER) == 0
    assert own.order_id in b.book


def test_fok_with_stp_taker_at_cross_counts_only_up_to_the_own_order() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    b.rest("t", ASK, "0.46", 5)
    b.rest("n", ASK, "0.47", 5)
    _, result = b.match("t", BID, "0.50", 5, FOK, TAKER)
    assert result.matches == () and result.cancelled == D(5)
    assert len(b.book) == 3


def test_fok_with_stp_maker_fills_past_the_own_order_and_cancels_it() -> None:
    b = Book()
    m1 = b.rest("m", ASK, "0.45", 3)
    own = b.rest("t", ASK, "0.46", 5)
    m2 = b.rest("n", ASK, "0.47", 5)
    _, result = b.match("t", BID, "0.50", 5, FOK, MAKER)
    assert fills(result) == [(m1.order_id, D("0.45"), D(3)), (m2.order_id, D("0.47"), D(2))]
    assert result.maker_cancels == (own,)
    assert result.cancelled == 0
    assert own.order_id not in b.book


def test_fok_with_stp_maker_that_cannot_fill_leaves_the_own_order() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    own = b.rest("t", ASK, "0.46", 5)
    _, result = b.match("t", BID, "0.50", 5, FOK, MAKER)
    assert result.matches == () and result.maker_cancels == () and result.cancelled == D(5)
    assert own.order_id in b.book


# ---- self-trade prevention ------------------------------------------------------------------


def test_stp_taker_at_cross_stops_and_keeps_the_fills_already_made() -> None:
    b = Book()
    m1 = b.rest("m", BID, "0.55", 2)
    own = b.rest("t", BID, "0.54", 5)
    b.rest("n", BID, "0.53", 5)
    order, result = b.match("t", ASK, "0.50", 10, GTC, TAKER)
    assert fills(result) == [(m1.order_id, D("0.55"), D(2))]
    assert result.self_trade_stopped
    assert not result.rested and result.cancelled == D(8)
    assert order.remaining == 0 and order.order_id not in b.book
    assert own.order_id in b.book and own.remaining == D(5)
    assert b.book.levels(BID) == [(D("0.54"), D(5)), (D("0.53"), D(5))]


def test_stp_taker_at_cross_at_once_trades_nothing() -> None:
    b = Book()
    b.rest("t", BID, "0.55", 2)
    _, result = b.match("t", ASK, "0.50", 3, IOC, TAKER)
    assert result.matches == () and result.self_trade_stopped and result.cancelled == D(3)


def test_stp_maker_cancels_own_resting_orders_and_goes_on() -> None:
    b = Book()
    own1 = b.rest("t", BID, "0.55", 2)
    m1 = b.rest("m", BID, "0.55", 3)
    own2 = b.rest("t", BID, "0.54", 4)
    m2 = b.rest("n", BID, "0.53", 5)
    order, result = b.match("t", ASK, "0.50", 6, GTC, MAKER)
    assert fills(result) == [(m1.order_id, D("0.55"), D(3)), (m2.order_id, D("0.53"), D(3))]
    assert result.maker_cancels == (own1, own2)
    assert not result.self_trade_stopped
    assert result.cancelled == 0 and not result.rested and order.remaining == 0
    assert own1.order_id not in b.book and own2.order_id not in b.book
    assert b.book.levels(BID) == [(D("0.53"), D(2))]


def test_stp_maker_then_rests_when_the_book_runs_out() -> None:
    b = Book()
    own = b.rest("t", BID, "0.55", 2)
    order, result = b.match("t", ASK, "0.50", 6, GTC, MAKER)
    assert result.matches == () and result.maker_cancels == (own,)
    assert result.rested and order.remaining == D(6)
    assert b.book.levels(ASK) == [(D("0.50"), D(6))]
    assert b.book.levels(BID) == []


# ---- price-time priority --------------------------------------------------------------------


def test_price_time_priority_within_a_level() -> None:
    b = Book()
    first = b.rest("a", ASK, "0.60", 2)
    second = b.rest("b", ASK, "0.60", 2)
    third = b.rest("c", ASK, "0.60", 2)
    _, result = b.match("t", BID, "0.60", 5)
    assert fills(result) == [
        (first.order_id, D("0.60"), D(2)),
        (second.order_id, D("0.60"), D(2)),
        (third.order_id, D("0.60"), D(1)),
    ]
    assert list(b.book.orders()) == [third]
    assert third.remaining == 1


def test_price_priority_across_levels_and_trades_at_the_resting_price() -> None:
    b = Book()
    worse = b.rest("a", BID, "0.40", 5)
    best = b.rest("b", BID, "0.44", 5)
    middle = b.rest("c", BID, "0.42", 5)
    _, result = b.match("t", ASK, "0.41", 20, IOC)
    # The incoming ask trades at each resting bid's price, best (highest) first, and stops at
    # its limit.
    assert fills(result) == [(best.order_id, D("0.44"), D(5)), (middle.order_id, D("0.42"), D(5))]
    assert [m.maker for m in result.matches] == [best, middle]
    assert isinstance(result.matches[0], Match)
    assert list(b.book.orders()) == [worse]


def test_a_partially_filled_maker_keeps_its_place() -> None:
    b = Book()
    first = b.rest("a", ASK, "0.60", 5)
    second = b.rest("b", ASK, "0.60", 5)
    b.match("t", BID, "0.60", 2)
    _, result = b.match("u", BID, "0.60", 4)
    assert fills(result) == [(first.order_id, D("0.60"), D(3)), (second.order_id, D("0.60"), D(1))]


# ---- properties -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One incoming order of a random sequence (or, with ``remove``, a cancel of a resting one)."""

    owner: str
    side: Side
    ticks: int  #: price in cents, 1..99
    count: Decimal
    tif: TimeInForce
    stp: StpMode
    remove: int | None = None  #: cancel the n-th resting order (mod the book size) instead

    def mirrored(self) -> Step:
        return Step(
            self.owner,
            self.side.opposite,
            100 - self.ticks,
            self.count,
            self.tif,
            self.stp,
            self.remove,
        )


def _pick(options: list[Any]) -> st.SearchStrategy[Any]:
    # Hypothesis favours small and repeated values; reducing a wide integer spreads the choices
    # (more owners and prices meeting on one book) and still shrinks towards options[0].
    return st.integers(0, 1 << 16).map(lambda n: options[n % len(options)])


_steps = st.builds(
    Step,
    owner=_pick(["a", "b", "c"]),
    side=_pick([Side.BID, Side.ASK]),
    ticks=_pick(list(range(47, 54))),  # a narrow band, so orders cross often
    count=st.integers(1, 1000).map(lambda n: Decimal(n) / 100),
    tif=_pick([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
    stp=_pick(list(StpMode)),
    remove=st.integers(0, 1 << 16).map(lambda n: n // 10 if n % 10 == 0 else None),  # 1 in 10
)
_sequences = st.lists(_steps, min_size=10, max_size=60)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


def _price(ticks: int) -> Decimal:
    return Decimal(ticks) / 100


def _run(steps: list[Step]) -> tuple[OrderBook, list[list[tuple[str, Decimal, Decimal]]]]:
    """Run steps, checking the per-call invariants; return the book and each call's fills."""
    book = OrderBook("T")
    model: dict[str, Decimal] = {}  # order id -> remaining, what the book should hold
    all_fills: list[list[tuple[str, Decimal, Decimal]]] = []
    for n, step in enumerate(steps):
        if step.remove is not None:
            resting = sorted(book.orders(), key=lambda o: o.order_id)
            if resting:
                gone = book.remove(resting[step.remove % len(resting)].order_id)
                del model[gone.order_id]
            all_fills.append([])
            continue
        priority = [o for o in book.orders() if o.side is step.side.opposite]
        before = {o.order_id: o.remaining for o in priority}
        order = BookOrder(f"o{n:04d}", step.owner, step.side, _price(step.ticks), step.count)
        result = book.match(order, step.tif, step.stp)
        # (a) never crossed between calls
        assert not book.is_crossed()
        # (b) price-time priority: the makers touched (traded or cancelled by STP) are exactly a
        # prefix of the opposite side in priority order, trades go through it in that order, and
        # every trade is at the maker's price.
        index = {o.order_id: i for i, o in enumerate(priority)}
        touched = {m.maker.order_id for m in result.matches} | {
            o.order_id for o in result.maker_cancels
        }
        assert touched == {o.order_id for o in priority[: len(touched)]}
        positions = [index[m.maker.order_id] for m in result.matches]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        for made in result.matches:
            assert made.price == made.maker.price
            assert made.count > 0 and made.count <= before[made.maker.order_id]
            assert made.maker.owner != step.owner
            if step.side is Side.BID:
                assert made.price <= order.price
            else:
                assert made.price >= order.price
        for cancelled in result.maker_cancels:
            assert cancelled.owner == step.owner
        if result.self_trade_stopped:
            assert step.stp is StpMode.TAKER_AT_CROSS
            nxt = priority[len(touched)]
            assert nxt.owner == step.owner
        # (c) conservation: incoming = filled + rested + cancelled
        rested = order.remaining if result.rested else Decimal(0)
        assert step.count == result.filled + rested + result.cancelled
        assert result.rested == (order.order_id in book)
        if result.rested:
            assert step.tif is TimeInForce.GTC and not result.self_trade_stopped
        if step.tif is TimeInForce.FOK:
            assert result.filled in (0, step.count)
        # ... and the book holds exactly what the model says.
        for made in result.matches:
            model[made.maker.order_id] -= made.count
            if model[made.maker.order_id] == 0:
                del model[made.maker.order_id]
        for cancelled in result.maker_cancels:
            del model[cancelled.order_id]
        if result.rested:
            model[order.order_id] = order.remaining
        assert {o.order_id: o.remaining for o in book.orders()} == model
        assert len(book) == len(model)
        all_fills.append(fills(result))
    return book, all_fills


@PROPERTY_SETTINGS
@given(_sequences)
def test_random_sequences_keep_the_book_invariants(steps: list[Step]) -> None:
    _run(steps)


@PROPERTY_SETTINGS
@given(_sequences)
def test_yes_no_symmetry(steps: list[Step]) -> None:
    book, book_fills = _run(steps)
    mirror, mirror_fills = _run([s.mirrored() for s in steps])
    flip = Decimal(1)
    assert mirror.levels(Side.BID) == [(flip - p, c) for p, c in book.levels(Side.ASK)]
    assert mirror.levels(Side.ASK) == [(flip - p, c) for p, c in book.levels(Side.BID)]
    assert mirror_fills == [[(oid, flip - p, c) for oid, p, c in f] for f in book_fills]
    assert [(o.order_id, o.seq) for o in mirror.orders() if o.side is Side.BID] == [
        (o.order_id, o.seq) for o in book.orders() if o.side is Side.ASK
    ]
