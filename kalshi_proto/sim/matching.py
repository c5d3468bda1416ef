"""One order book per market and its matching rules, with price-time priority.

How the book works. A binary market has one book with two sides on the YES leg (the spec's
``BookSide``): bids buy YES, asks sell YES. Buying NO at ``q`` is the same order as an ask
(selling YES) at ``1 - q``, so the book quotes everything in YES prices; the REST layer shows the
NO side of a level as ``1 - price`` (``GetMarketOrderbook`` lists YES bids and NO bids).

An incoming order matches against the opposite side while the prices cross (a bid at ``p``
against asks at ``<= p``, best price first, oldest order first within a price), trading at the
resting order's price. Whatever is left rests at its own limit price, at the back of its level,
unless the time in force says otherwise:

* ``good_till_canceled`` -- rests.
* ``immediate_or_cancel`` -- the rest is cancelled.
* ``fill_or_kill`` -- if the whole order cannot fill at once, nothing trades.

Post-only orders that would cross are refused before anything trades. Self-trade prevention
(``SelfTradePreventionType``) applies when an incoming order would trade against a resting
order of the same owner: ``taker_at_cross`` stops the incoming order there (fills already made
stand; the rest is cancelled), ``maker`` cancels the resting order and goes on matching.

The book knows nothing of balances or fees; `kalshi_proto.sim.exchange` checks and applies them
around `OrderBook.match`.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "BookOrder",
    "Match",
    "MatchResult",
    "OrderBook",
    "Side",
    "StpMode",
    "TimeInForce",
]


class Side(enum.Enum):
    """The side of the YES book an order is on."""

    BID = "bid"  #: buys YES (the same as selling NO)
    ASK = "ask"  #: sells YES (the same as buying NO at 1 - price)

    @property
    def opposite(self) -> Side:
        return Side.ASK if self is Side.BID else Side.BID


class TimeInForce(enum.Enum):
    """What happens to the part of an order that does not fill at once."""

    GTC = "good_till_canceled"  #: rests on the book
    IOC = "immediate_or_cancel"  #: is cancelled
    FOK = "fill_or_kill"  #: the whole order fills at once or not at all


class StpMode(enum.Enum):
    """Self-trade prevention: which order gives way when an owner would trade with itself."""

    TAKER_AT_CROSS = "taker_at_cross"  #: the incoming order stops
    MAKER = "maker"  #: the resting order is cancelled


@dataclass(slots=True, eq=False)
class BookOrder:
    """An order on (or entering) the book. ``remaining`` shrinks as it fills."""

    order_id: str
    owner: str
    side: Side
    price: Decimal
    remaining: Decimal
    seq: int = 0  #: arrival order, for time priority; set by the book when the order rests


@dataclass(frozen=True, slots=True)
class Match:
    """One trade between the incoming order and a resting one, at the resting order's price."""

    maker: BookOrder
    price: Decimal
    count: Decimal


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What `OrderBook.match` did to an incoming order.

    ``rested`` is True when the remainder now rests on the book; ``cancelled`` is what was
    cancelled of the incoming order (IOC remainder, FOK that could not fill, a self-trade stop);
    ``maker_cancels`` are resting orders removed by ``maker`` self-trade prevention.
    """

    matches: tuple[Match, ...]
    rested: bool
    cancelled: Decimal
    maker_cancels: tuple[BookOrder, ...] = ()
    self_trade_stopped: bool = False

    @property
    def filled(self) -> Decimal:
        return sum((m.count for m in self.matches), Decimal(0))


@dataclass(slots=True)
class _Side:
    """One side of the book: price levels, each a FIFO queue."""

    side: Side
    prices: list[Decimal] = field(default_factory=list)  # ascending
    levels: dict[Decimal, deque[BookOrder]] = field(default_factory=dict)

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.side is Side.BID else self.prices[0]

    def prices_best_first(self) -> list[Decimal]:
        return list(reversed(self.prices)) if self.side is Side.BID else list(self.prices)

    def add(self, order: BookOrder) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = self.levels[order.price] = deque()
            bisect.insort(self.prices, order.price)
        level.append(order)

    def remove(self, order: BookOrder) -> None:
        level = self.levels[order.price]
        level.remove(order)
        if not level:
            self._drop_level(order.price)

    def _drop_level(self, price: Decimal) -> None:
        del self.levels[price]
        index = bisect.bisect_left(self.prices, price)
        del self.prices[index]

    def pop_front(self, price: Decimal) -> None:
        level = self.levels[price]
        level.popleft()
        if not level:
            self._drop_level(price)


def _crosses(side: Side, limit: Decimal, resting_price: Decimal) -> bool:
    return resting_price <= limit if side is Side.BID else resting_price >= limit


class OrderBook:
    """The book of one market.

    Args:
        ticker: the market ticker, for messages.
    """

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self._sides = {Side.BID: _Side(Side.BID), Side.ASK: _Side(Side.ASK)}
        self._by_id: dict[str, BookOrder] = {}
        self._seq = 0

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, order_id: str) -> BookOrder | None:
        """The resting order with this id, or None."""
        return self._by_id.get(order_id)

    def best(self, side: Side) -> Decimal | None:
        """The best price on a side (highest bid, lowest ask), or None when it is empty."""
        return self._sides[side].best()

    def levels(self, side: Side) -> list[tuple[Decimal, Decimal]]:
        """(price, total remaining) per level, best price first."""
        book = self._sides[side]
        return [
            (price, sum((o.remaining for o in book.levels[price]), Decimal(0)))
            for price in book.prices_best_first()
        ]

    def orders(self) -> Iterator[BookOrder]:
        """Every resting order, bids then asks, in priority order."""
        for side in (Side.BID, Side.ASK):
            book = self._sides[side]
            for price in book.prices_best_first():
                yield from book.levels[price]

    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (never true between calls)."""
        bid, ask = self.best(Side.BID), self.best(Side.ASK)
        return bid is not None and ask is not None and bid >= ask

    def would_cross(self, side: Side, price: Decimal) -> bool:
        """True if an order at ``price`` on ``side`` would trade at once."""
        best = self.best(side.opposite)
        return best is not None and _crosses(side, price, best)

    def fillable(self, order: BookOrder, stp: StpMode) -> Decimal:
        """How much of ``order`` would fill now, self-trade prevention included."""
        available = Decimal(0)
        book = self._sides[order.side.opposite]
        for price in book.prices_best_first():
            if not _crosses(order.side, order.price, price):
                break
            for resting in book.levels[price]:
                if resting.owner == order.owner:
                    if stp is StpMode.TAKER_AT_CROSS:
                        return available
                    continue
                available += resting.remaining
                if available >= order.remaining:
                    return available
        return available

    def match(self, order: BookOrder, tif: TimeInForce, stp: StpMode) -> MatchResult:
        """Match an incoming order, then rest or cancel its remainder per ``tif``.

        The caller has already refused post-only orders that cross (see `would_cross`).
        ``order.remaining`` is reduced by what fills; resting orders that fill completely leave
        the book.
        """
        if tif is TimeInForce.FOK and self.fillable(order, stp) < order.remaining:
            cancelled = order.remaining
            order.remaining = Decimal(0)
            return MatchResult(matches=(), rested=False, cancelled=cancelled)
        matches: list[Match] = []
        maker_cancels: list[BookOrder] = []
        stopped = False
        opposite = self._sides[order.side.opposite]
        while order.remaining > 0:
            best = opposite.best()
            if best is None or not _crosses(order.side, order.price, best):
                break
            resting = opposite.levels[best][0]
            if resting.owner == order.owner:
                if stp is StpMode.TAKER_AT_CROSS:
                    stopped = True
                    break
                opposite.pop_front(best)
                del self._by_id[resting.order_id]
                maker_cancels.append(resting)
                continue
            count = min(order.remaining, resting.remaining)
            order.remaining -= count
            resting.remaining -= count
            matches.append(Match(maker=resting, price=best, count=count))
            if resting.remaining == 0:
                opposite.pop_front(best)
                del self._by_id[resting.order_id]
        rested = False
        cancelled = Decimal(0)
        if order.remaining > 0:
            if stopped or tif is not TimeInForce.GTC:
                cancelled = order.remaining
                order.remaining = Decimal(0)
            else:
                self.rest(order)
                rested = True
        return MatchResult(
            matches=tuple(matches),
            rested=rested,
            cancelled=cancelled,
            maker_cancels=tuple(maker_cancels),
            self_trade_stopped=stopped,
        )

    def rest(self, order: BookOrder) -> None:
        """Put an order on the book at the back of its price level."""
        self._seq += 1
        order.seq = self._seq
        self._sides[order.side].add(order)
        self._by_id[order.order_id] = order

    def remove(self, order_id: str) -> BookOrder:
        """Take a resting order off the book.

        Raises:
            KeyError: no resting order has this id.
        """
        order = self._by_id.pop(order_id)
        self._sides[order.side].remove(order)
        return order

    def reduce(self, order_id: str, new_remaining: Decimal) -> None:
        """Lower a resting order's remaining count in place, keeping its priority."""
        order = self._by_id[order_id]
        if new_remaining <= 0:
            self.remove(order_id)
            order.remaining = Decimal(0)
        else:
            order.remaining = new_remaining
