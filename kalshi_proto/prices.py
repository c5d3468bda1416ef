"""The valid order prices of a market, from its ``price_ranges``.

Each `Market` lists its price ranges as ``{start, end, step}`` in dollars (``PriceRange`` in
``openapi.yaml``; Kalshi's subpenny-pricing page names the structures): ``linear_cent`` is one
range from 0 to 1 by $0.01, ``deci_cent`` one by $0.001, and ``tapered_deci_cent`` three, $0.001
below $0.10 and above $0.90 and $0.01 between. The request models only check what holds on every
market (strictly between 0 and 1, at most 4 decimal places); a price off the market's own ticks
is refused by the exchange with HTTP 400. `PriceGrid` checks it before anything is sent, and
rounds a price onto the ticks::

    grid = PriceGrid.from_market(client.markets.get(ticker).market)
    bid = grid.floor(fair - edge)  # the best tick at or below: a bid never crosses up
    ask = grid.ceil(fair + edge)  # the best tick at or above
    grid.check(Decimal("0.555"))  # PriceError: ... the nearest are 0.55 and 0.56

A price is on the grid when some range holds it (``start <= price <= end``) and it is a whole
number of that range's steps above its ``start``. An order price must also lie strictly inside
the grid's outer ends, 0 and 1 on a binary market: those two are never valid order prices.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any

from kalshi_proto.types import parse_decimal

__all__ = ["PriceBand", "PriceError", "PriceGrid"]


class PriceError(ValueError):
    """A price is not one the market accepts; the message names the nearest that are."""


@functools.lru_cache(maxsize=64)
def _exact_context(digits: int) -> Context:
    # A context that works to ``digits`` digits and raises rather than round.
    return Context(prec=digits, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


@dataclass(frozen=True, slots=True)
class PriceBand:
    """One ``PriceRange``: the ticks ``start``, ``start + step``, ... up to ``end``, in dollars."""

    start: Decimal
    end: Decimal
    step: Decimal
    #: the highest tick, ``end`` itself when ``end`` is a whole number of steps from ``start``
    last: Decimal = field(init=False, repr=False, compare=False)
    # For the working precision of `_nearest`: the band's finest decimal place, and the
    # digits above the point plus a margin. Fixed by the band, so found once.
    _finest: int = field(init=False, repr=False, compare=False)
    _above_point: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("start", "end", "step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"a price range's {name} must be a finite Decimal, got {value!r}")
        if self.step <= 0:
            raise ValueError(f"a price range's step must be positive, got {self.step}")
        if self.end < self.start:
            raise ValueError(f"a price range ends before it starts: {self.start} to {self.end}")
        finest = min(int(self.start.as_tuple().exponent), int(self.step.as_tuple().exponent))
        object.__setattr__(self, "_finest", finest)
        object.__setattr__(
            self, "_above_point", max(self.start.adjusted(), self.end.adjusted(), 0) + 4
        )
        object.__setattr__(self, "last", self._nearest(self.end, up=False, strictly=False))

    def _nearest(self, price: Decimal, up: bool, strictly: bool) -> Decimal:
        # The tick at or below (``up``: at or above; ``strictly``: not equal to) a price in
        # [start, last]. Worked to as many digits as it takes to be exact: at the default 28,
        # 0.12999... (30 nines) would round to 0.13 and be called a tick. Inexact is trapped,
        # so a digit lost cannot pass unseen.
        finest = min(int(price.as_tuple().exponent), self._finest)
        with localcontext(_exact_context(max(28, self._above_point - finest))):
            whole, rest = divmod(price - self.start, self.step)
            if up and (rest or strictly):
                whole += 1
            elif not up and not rest and strictly:
                whole -= 1
            return self.start + whole * self.step

    def at_or_below(self, price: Decimal, *, strictly: bool = False) -> Decimal | None:
        """The highest tick of this band at (or, ``strictly``, below) ``price``; None if none."""
        if price < self.start:
            return None
        if price > self.last:  # the common case for a band wholly below the price: no sums
            return self.last
        tick = self._nearest(price, up=False, strictly=strictly)
        return tick if tick >= self.start else None

    def at_or_above(self, price: Decimal, *, strictly: bool = False) -> Decimal | None:
        """The lowest tick of this band at (or, ``strictly``, above) ``price``; None if none."""
        if price > self.last:
            return None
        if price < self.start:  # the common case for a band wholly above the price
            return self.start
        tick = self._nearest(price, up=True, strictly=strictly)
        return tick if tick <= self.last else None


class PriceGrid:
    """The ticks a market accepts as order prices; see the module docstring.

    Prices go in as `Decimal`, `int` or `str` (never `float`) and come out as `Decimal`.
    """

    __slots__ = ("bands", "high", "low")

    bands: tuple[PriceBand, ...]
    low: Decimal  #: the lowest ``start``: not itself a valid order price
    high: Decimal  #: the highest ``end``: not itself a valid order price

    def __init__(self, bands: Iterable[PriceBand]) -> None:
        given = tuple(bands)
        for band in given:
            if not isinstance(band, PriceBand):
                raise TypeError(
                    "a price grid is made of PriceBand items (or use PriceGrid.from_ranges or "
                    f"PriceGrid.from_market), got {type(band).__name__}"
                )
        self.bands = tuple(sorted(given, key=lambda band: (band.start, band.end)))
        if not self.bands:
            raise ValueError("a price grid needs at least one price range; the market lists none")
        self.low = self.bands[0].start
        self.high = max(band.end for band in self.bands)

    @classmethod
    def from_ranges(cls, ranges: Iterable[Any]) -> PriceGrid:
        """A grid from ``PriceRange`` models, or mappings with ``start``, ``end`` and ``step``."""
        bands = []
        for item in ranges:
            values = []
            for name in ("start", "end", "step"):
                value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
                if value is None:
                    raise ValueError(f"a price range needs start, end and step; {name} is missing")
                values.append(parse_decimal(value, what=f"a price range's {name}"))
            bands.append(PriceBand(*values))
        return cls(bands)

    @classmethod
    def from_market(cls, market: Any) -> PriceGrid:
        """The grid of a `Market` (or anything with ``price_ranges``, such as a collection, or
        a market's JSON object as a mapping).

        Raises:
            TypeError: ``market`` has no ``price_ranges``.
            ValueError: a range lacks a bound or a step, or the market lists no range.
        """
        if isinstance(market, Mapping):
            ranges = market.get("price_ranges")
        else:
            ranges = getattr(market, "price_ranges", None)
        if ranges is None:
            raise TypeError(
                "PriceGrid.from_market needs a Market (or another model with price_ranges), got "
                f"{type(market).__name__}"
            )
        return cls.from_ranges(ranges)

    def __repr__(self) -> str:
        bands = ", ".join(f"{b.start}-{b.end} by {b.step}" for b in self.bands)
        return f"PriceGrid({bands})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceGrid) and self.bands == other.bands

    def __hash__(self) -> int:
        return hash(self.bands)

    def __contains__(self, price: object) -> bool:
        return self.is_valid(price)  # type: ignore[arg-type]  # is_valid refuses other types

    def _inside(self, tick: Decimal | None) -> Decimal | None:
        return tick if tick is not None and self.low < tick < self.high else None

    def is_valid(self, price: Decimal | int | str) -> bool:
        """Whether the market accepts ``price`` as an order price."""
        value = parse_decimal(price, what="a price")
        return self.floor(value) == value

    def check(self, price: Decimal | int | str) -> Decimal:
        """Return ``price`` as a `Decimal` if the market accepts it.

        Raises:
            PriceError: naming the nearest valid prices below and above.
        """
        value = parse_decimal(price, what="a price")
        below, above = self.floor(value), self.ceil(value)
        if below == value:
            return value
        ticks = [str(tick) for tick in (below, above) if tick is not None]
        nearest = {
            0: "it has no valid prices at all",
            1: f"the nearest valid price is {''.join(ticks)}",
            2: f"the nearest are {' and '.join(ticks)}",
        }[len(ticks)]
        outside = f" (prices lie strictly between {self.low} and {self.high})"
        where = next(
            (
                f" (steps of {band.step} from {band.start} to {band.end})"
                for band in self.bands
                if band.start <= value <= band.end and self.low < value < self.high
            ),
            outside,
        )
        raise PriceError(f"{value} is not a valid price on this market{where}; {nearest}")

    def floor(self, price: Decimal | int | str) -> Decimal | None:
        """The highest valid price at or below ``price``; None when there is none."""
        return self._below(parse_decimal(price, what="a price"), strictly=False)

    def ceil(self, price: Decimal | int | str) -> Decimal | None:
        """The lowest valid price at or above ``price``; None when there is none."""
        return self._above(parse_decimal(price, what="a price"), strictly=False)

    def below(self, price: Decimal | int | str) -> Decimal | None:
        """The next valid price strictly below ``price`` (one tick down); None when there is none."""
        return self._below(parse_decimal(price, what="a price"), strictly=True)

    def above(self, price: Decimal | int | str) -> Decimal | None:
        """The next valid price strictly above ``price`` (one tick up); None when there is none."""
        return self._above(parse_decimal(price, what="a price"), strictly=True)

    def _below(self, price: Decimal, *, strictly: bool) -> Decimal | None:
        if price >= self.high:  # the outer end is not a valid price: start under it
            price, strictly = self.high, True
        found = [b.at_or_below(price, strictly=strictly) for b in self.bands]
        return self._inside(max((tick for tick in found if tick is not None), default=None))

    def _above(self, price: Decimal, *, strictly: bool) -> Decimal | None:
        if price <= self.low:
            price, strictly = self.low, True
        found = [b.at_or_above(price, strictly=strictly) for b in self.bands]
        return self._inside(min((tick for tick in found if tick is not None), default=None))
