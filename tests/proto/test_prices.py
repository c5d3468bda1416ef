"""`kalshi_proto.prices.PriceGrid`: a market's valid order prices, checked against brute force.

Every price with up to 4 decimals from -0.01 to 1.01 (and a few finer ones) is asked of the
grid and of a plain list of every valid tick, for the three price-level structures Kalshi names
and for grids with gaps, overlaps and unaligned ends. The local exchange accepts exactly the
prices the grid of its own market calls valid.
"""

from __future__ import annotations

import bisect
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kalshi_proto.prices import PriceBand, PriceError, PriceGrid
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.sim.exchange import PRICE_LEVEL_STRUCTURES
from tests.proto.sim import test_rest_app as rest_app
from tests.proto.sim.test_rest_app import T100K, Harness, order_request

keys = rest_app.keys  # the module fixture the local-exchange harness needs
h = rest_app.h

D = Decimal


def _ranges(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"start": start, "end": end, "step": step} for start, end, step in rows]


LINEAR_CENT = _ranges(("0.0000", "1.0000", "0.0100"))
DECI_CENT = _ranges(("0.0000", "1.0000", "0.0010"))
TAPERED_DECI_CENT = _ranges(
    ("0.0000", "0.1000", "0.0010"), ("0.1000", "0.9000", "0.0100"), ("0.9000", "1.0000", "0.0010")
)
ODD = _ranges(  # a gap (0.30-0.40), an overlap (0.60-0.65), ends off the step, given out of order
    ("0.6000", "1.0000", "0.0500"),
    ("0.0000", "0.3000", "0.0700"),
    ("0.4000", "0.6500", "0.0300"),
)
GRIDS = {
    "linear_cent": LINEAR_CENT,
    "deci_cent": DECI_CENT,
    "tapered_deci_cent": TAPERED_DECI_CENT,
    "odd": ODD,
}


def _all_ticks(ranges: list[dict[str, str]]) -> list[Decimal]:
    """Every valid order price, by walking each range from its start."""
    ticks: set[Decimal] = set()
    low = min(D(r["start"]) for r in ranges)
    high = max(D(r["end"]) for r in ranges)
    for r in ranges:
        tick, end, step = D(r["start"]), D(r["end"]), D(r["step"])
        while tick <= end:
            if low < tick < high:
                ticks.add(tick)
            tick += step
    return sorted(ticks)


PRICES = [D(n).scaleb(-4) for n in range(-100, 10_101)] + [D("0.05505"), D("0.123456")]


@pytest.mark.parametrize("name", GRIDS)
def test_the_grid_agrees_with_a_list_of_every_tick(name: str) -> None:
    ranges = GRIDS[name]
    grid = PriceGrid.from_ranges(ranges)
    ticks = _all_ticks(ranges)
    valid = set(ticks)
    for price in PRICES:
        at = bisect.bisect_right(ticks, price)  # ticks[:at] are <= price
        before = bisect.bisect_left(ticks, price)  # ticks[:before] are < price
        floor = ticks[at - 1] if at else None
        ceil = ticks[before] if before < len(ticks) else None
        below = ticks[before - 1] if before else None
        above = ticks[at] if at < len(ticks) else None
        assert grid.is_valid(price) is (price in valid), price
        assert (price in grid) is (price in valid), price
        assert (grid.floor(price), grid.ceil(price)) == (floor, ceil), price
        assert (grid.below(price), grid.above(price)) == (below, above), price


def test_the_tapered_structure_in_words() -> None:
    grid = PriceGrid.from_ranges(TAPERED_DECI_CENT)
    assert grid.is_valid("0.055") and grid.is_valid("0.955") and grid.is_valid(D("0.56"))
    assert not grid.is_valid("0.555") and not grid.is_valid("0.105")
    assert not grid.is_valid(0) and not grid.is_valid(1)  # the outer ends are never prices
    assert grid.above("0.099") == D("0.1") and grid.above("0.1") == D("0.11")
    assert grid.below("0.901") == D("0.9") and grid.below("0.9") == D("0.89")
    assert grid.below("0.91") == D("0.909")  # 0.001 steps from 0.90 up
    assert grid.above("0.999") is None and grid.below("0.001") is None
    assert (grid.low, grid.high) == (D(0), D(1))


@pytest.mark.parametrize("name", GRIDS)
def test_prices_with_many_digits_or_far_away_are_answered_exactly(name: str) -> None:
    # 0.1299... with 30 nines would round to 0.13 at the default 28 digits and count as a tick.
    grid = PriceGrid.from_ranges(GRIDS[name])
    ticks = _all_ticks(GRIDS[name])
    for tick in ticks[1:-1]:
        with localcontext(prec=60):  # the test's own sums must not round either
            just_under, just_over = tick - D("1E-32"), tick + D("1E-32")
        assert grid.floor(just_under) == grid.below(tick) and grid.ceil(just_under) == tick
        assert grid.ceil(just_over) == grid.above(tick) and grid.floor(just_over) == tick
        assert not grid.is_valid(just_under) and not grid.is_valid(just_over)
    for far in (D("1E+30"), D("-1E+30"), D("1E-100"), D("-1E-100")):
        below, above = [t for t in ticks if t <= far], [t for t in ticks if t >= far]
        assert grid.floor(far) == (below[-1] if below else None)
        assert grid.ceil(far) == (above[0] if above else None)


def test_check_returns_a_valid_price_as_given() -> None:
    grid = PriceGrid.from_ranges(LINEAR_CENT)
    assert grid.check("0.56") == D("0.56")
    assert str(grid.check(D("0.5600"))) == "0.5600"


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (
            "0.555",
            "0.555 is not a valid price on this market (steps of 0.0100 from 0.1000 to 0.9000); "
            "the nearest are 0.5500 and 0.5600",
        ),
        (
            "0.9995",
            "0.9995 is not a valid price on this market (steps of 0.0010 from 0.9000 to 1.0000); "
            "the nearest valid price is 0.9990",
        ),
        (
            "1",
            "1 is not a valid price on this market (prices lie strictly between 0.0000 and 1.0000); "
            "the nearest valid price is 0.9990",
        ),
        (
            "-0.5",
            "-0.5 is not a valid price on this market (prices lie strictly between 0.0000 and "
            "1.0000); the nearest valid price is 0.0010",
        ),
    ],
)
def test_check_names_the_nearest_valid_prices(price: str, message: str) -> None:
    grid = PriceGrid.from_ranges(TAPERED_DECI_CENT)
    with pytest.raises(PriceError) as caught:
        grid.check(price)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_a_grid_without_a_valid_price_says_so() -> None:
    grid = PriceGrid.from_ranges(_ranges(("0", "1", "1")))  # only the outer ends
    with pytest.raises(PriceError, match="it has no valid prices at all"):
        grid.check("0.5")


@pytest.mark.parametrize("price", [0.5, True, None, [D("0.5")]])
def test_prices_must_be_decimal_int_or_str(price: Any) -> None:
    grid = PriceGrid.from_ranges(LINEAR_CENT)
    with pytest.raises(TypeError, match="must be a Decimal, int or str"):
        grid.floor(price)
    with pytest.raises(TypeError, match="must be a Decimal, int or str"):
        price in grid  # noqa: B015


@pytest.mark.parametrize("price", ["NaN", "Infinity", "half"])
def test_prices_must_be_finite_numbers(price: str) -> None:
    with pytest.raises(ValueError, match="a price must"):
        PriceGrid.from_ranges(LINEAR_CENT).check(price)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([], "needs at least one price range"),
        ([{"start": "0", "end": "1"}], "step is missing"),
        (_ranges(("0", "1", "0")), "step must be positive"),
        (_ranges(("0", "1", "-0.01")), "step must be positive"),
        (_ranges(("0.5", "0.4", "0.01")), "ends before it starts"),
        (_ranges(("0", "1", "NaN")), "must be finite"),
        ([{"start": 0.0, "end": "1", "step": "0.01"}], "must be a Decimal, int or str"),
    ],
)
def test_bad_ranges_are_refused(ranges: list[dict[str, Any]], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        PriceGrid.from_ranges(ranges)


def test_a_band_refuses_what_is_not_a_decimal() -> None:
    with pytest.raises(ValueError, match="start must be a finite Decimal"):
        PriceBand(0.1, D(1), D("0.01"))  # type: ignore[arg-type]


def test_grids_compare_by_their_bands() -> None:
    one = PriceGrid.from_ranges(TAPERED_DECI_CENT)
    again = PriceGrid.from_ranges(list(reversed(TAPERED_DECI_CENT)))
    assert one == again and hash(one) == hash(again)
    assert one != PriceGrid.from_ranges(DECI_CENT) and one != "tapered"
    assert repr(PriceGrid.from_ranges(LINEAR_CENT)) == "PriceGrid(0.0000-1.0000 by 0.0100)"


def test_a_market_model_gives_its_grid() -> None:
    ranges = [m.PriceRange(**row) for row in TAPERED_DECI_CENT]
    assert PriceGrid.from_ranges(ranges) == PriceGrid.from_ranges(TAPERED_DECI_CENT)

    class Collection:  # anything with price_ranges, such as a multivariate collection
        price_ranges = ranges

    assert PriceGrid.from_market(Collection()) == PriceGrid.from_ranges(TAPERED_DECI_CENT)


@given(
    st.sampled_from(sorted(GRIDS)),
    st.decimals(min_value=-2, max_value=2, places=8, allow_nan=False, allow_infinity=False),
)
def test_rounding_lands_on_the_grid_and_goes_the_right_way(name: str, price: Decimal) -> None:
    grid = PriceGrid.from_ranges(GRIDS[name])
    floor, ceil = grid.floor(price), grid.ceil(price)
    if floor is not None:
        assert floor <= price and grid.is_valid(floor)
        assert grid.above(floor) is None or grid.above(floor) > price  # type: ignore[operator]
    if ceil is not None:
        assert ceil >= price and grid.is_valid(ceil)
        assert grid.below(ceil) is None or grid.below(ceil) < price  # type: ignore[operator]
    assert (floor == ceil == price) is grid.is_valid(price)


@pytest.mark.parametrize("structure", sorted(PRICE_LEVEL_STRUCTURES))
def test_the_local_exchange_accepts_exactly_the_prices_its_grid_allows(
    h: Harness, structure: str
) -> None:
    h.ex.markets[T100K].price_level_structure = structure
    h.ex.markets[T100K].grid = PRICE_LEVEL_STRUCTURES[structure]
    market = h.ok(calls.get_market(T100K)).market
    assert market.price_level_structure == structure
    grid = PriceGrid.from_market(market)  # from the JSON the exchange sent
    assert grid == PriceGrid.from_ranges(GRIDS[structure])
    prices = ["0.0005", "0.001", "0.005", "0.01", "0.055", "0.095", "0.105", "0.5", "0.555"]
    for n, price in enumerate([*prices, "0.91", "0.905", "0.999", "0.9995"]):
        request = order_request(price=price, count="1", client_order_id=f"grid-{structure}-{n}")
        response = h.call(calls.create_order_v2(request))
        assert (response.status == 201) is grid.is_valid(price), (price, response.body)
        if response.status != 201:
            assert b"invalid_price" in response.body and b"not a valid price" in response.body


def test_a_grid_from_a_market_model_or_its_json_object() -> None:
    grid = PriceGrid.from_ranges(LINEAR_CENT)
    assert PriceGrid.from_market({"ticker": "M", "price_ranges": LINEAR_CENT}) == grid
    ranges = [m.PriceRange.model_validate(row) for row in LINEAR_CENT]
    assert PriceGrid.from_market(_HasRanges(ranges)) == grid


class _HasRanges:
    def __init__(self, ranges: list[Any]) -> None:
        self.price_ranges = ranges


@pytest.mark.parametrize("wrong", [None, "KX-1", 5, {"ticker": "M"}])
def test_a_grid_from_what_is_not_a_market_is_a_type_error(wrong: object) -> None:
    with pytest.raises(
        TypeError, match=r"^PriceGrid.from_market needs a Market \(or another model with price_r"
    ):
        PriceGrid.from_market(wrong)


@pytest.mark.parametrize("wrong", ["0.01-0.99", {"start": "0"}, 1])
def test_a_grid_is_made_of_price_bands(wrong: object) -> None:
    band = PriceBand(D("0"), D("1"), D("0.01"))
    with pytest.raises(TypeError, match=r"^a price grid is made of PriceBand items .*got "):
        PriceGrid([band, wrong])  # type: ignore[list-item]
