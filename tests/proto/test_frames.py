"""`kalshi_proto.frames` and the `Page` methods: rows, pandas and polars frames with exact money."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from kalshi_proto.frames import POLARS_PRECISION, to_pandas, to_polars, to_records
from kalshi_proto.rest.call import HttpResponse, Page
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from tests.helpers.spec import ROOT, example

Converter = Callable[..., Any]
CONVERTERS: list[Converter] = [to_records, to_pandas, to_polars]
MARKET_FIELDS = list(m.Market.model_fields)


def market(**changes: Any) -> m.Market:
    """The spec's example market with some keys replaced or added (added keys are extras)."""
    return m.Market.model_validate({**example("Market"), **changes})


def leg(dollars: str) -> dict[str, Any]:
    return {"event_ticker": "E", "market_ticker": "M", "side": "yes",
            "yes_settlement_value_dollars": dollars}


# --- rows and columns ---------------------------------------------------------------------------


def test_records_hold_the_model_values_with_declared_fields_then_extras_in_first_seen_order() -> None:
    a = market(ticker="A", zeta=1)
    b = market(ticker="B", alpha="x", zeta=2)
    records = to_records(iter([a, b]))  # any iterable, read once
    assert [list(r) for r in records] == [[*MARKET_FIELDS, "zeta", "alpha"]] * 2
    assert [r["ticker"] for r in records] == ["A", "B"]
    assert [r["zeta"] for r in records] == [1, 2]
    assert [r["alpha"] for r in records] == [None, "x"]
    first = records[0]
    assert type(first["yes_bid_dollars"]) is Decimal and first["yes_bid_dollars"] == a.yes_bid_dollars
    created = first["created_time"]
    assert isinstance(created, datetime) and created == a.created_time and created.tzinfo is not None
    assert first["price_ranges"] == [{"start": r.start, "end": r.end, "step": r.step} for r in a.price_ranges]
    legs = first["mve_selected_legs"]
    assert isinstance(legs, list) and type(legs[0]["yes_settlement_value_dollars"]) is Decimal


def test_frames_have_the_same_columns_as_the_records() -> None:
    items = [market(zeta=1), market(alpha="x")]
    expected = [*MARKET_FIELDS, "zeta", "alpha"]
    assert list(to_pandas(items).columns) == expected
    assert to_polars(items).columns == expected


def test_columns_use_the_python_names_not_the_aliases() -> None:
    class Aliased(BaseModel):
        model_config = ConfigDict(extra="allow")
        python_name: int = Field(alias="wireName")

    item = Aliased.model_validate({"wireName": 1, "other": 2})
    assert to_records([item]) == [{"python_name": 1, "other": 2}]
    assert to_polars([item]).columns == ["python_name", "other"]


# --- exact money --------------------------------------------------------------------------------

EXACT = ["0.0100", "0.123456", "98765432109876543210.123456"]


def test_pandas_keeps_every_decimal_as_it_is() -> None:
    items = [market(yes_bid_dollars=text, settlement_value_dollars=None) for text in EXACT]
    frame = to_pandas(items)
    assert frame["yes_bid_dollars"].dtype == object
    values = frame["yes_bid_dollars"].tolist()
    assert values == [item.yes_bid_dollars for item in items]
    assert [str(v) for v in values] == EXACT  # the digits too, not only the value
    assert frame["settlement_value_dollars"].tolist() == [None] * 3


def test_polars_builds_decimal_columns_with_the_largest_scale_and_exact_values() -> None:
    items = [market(yes_bid_dollars=text, volume_fp="12.00") for text in EXACT]
    frame = to_polars(items)
    assert frame.schema["yes_bid_dollars"] == pl.Decimal(POLARS_PRECISION, 6)
    assert frame.schema["volume_fp"] == pl.Decimal(POLARS_PRECISION, 2)
    values = frame["yes_bid_dollars"].to_list()
    assert all(type(v) is Decimal for v in values)
    assert values == [item.yes_bid_dollars for item in items]
    assert values == [Decimal(text) for text in EXACT]


def test_polars_keeps_decimals_exact_in_lists_of_structs_and_lists_of_tuples() -> None:
    unsettled = dict(leg("0"), yes_settlement_value_dollars=None)
    items = [market(mve_selected_legs=[leg("0.0100")]), market(mve_selected_legs=[leg("0.123456"), unsettled, leg("1")])]
    frame = to_polars(items)
    assert frame.schema["mve_selected_legs"] == pl.List(pl.Struct({
        "event_ticker": pl.String, "market_ticker": pl.String, "side": pl.String,
        "yes_settlement_value_dollars": pl.Decimal(POLARS_PRECISION, 6),
    }))
    got = [[row["yes_settlement_value_dollars"] for row in legs] for legs in frame["mve_selected_legs"].to_list()]
    assert got == [[x.yes_settlement_value_dollars for x in item.mve_selected_legs] for item in items]

    book = m.OrderbookCountFp.model_validate({"yes_dollars": [["0.1500", "100.00"], ["0.999999", "1.00"]], "no_dollars": None})
    frame = to_polars([book])
    assert frame.schema["yes_dollars"] == pl.List(pl.List(pl.Decimal(POLARS_PRECISION, 6)))
    assert frame["yes_dollars"].to_list() == [[list(level) for level in book.yes_dollars]]
    assert frame["no_dollars"].to_list() == [[]]


def test_polars_takes_a_decimal_column_of_exactly_38_digits() -> None:
    items = [market(volume_fp="9" * 36 + ".99"), market(volume_fp="0.01")]
    frame = to_polars(items)
    assert frame.schema["volume_fp"] == pl.Decimal(POLARS_PRECISION, 2)
    assert frame["volume_fp"].to_list() == [item.volume_fp for item in items]


def test_polars_sizes_nested_decimals_from_their_values_alone() -> None:
    unsettled = dict(leg("0"), yes_settlement_value_dollars=None)
    frame = to_polars([market(mve_selected_legs=[leg("1"), unsettled])])
    assert frame.schema["mve_selected_legs"] == pl.List(pl.Struct({
        "event_ticker": pl.String, "market_ticker": pl.String, "side": pl.String,
        "yes_settlement_value_dollars": pl.Decimal(POLARS_PRECISION, 0),
    }))
    fraction = Decimal("0." + "1" * 38)  # no digit before the point: 38 digits in all
    frame = to_polars([market(mve_selected_legs=[leg(str(fraction))])])
    assert frame["mve_selected_legs"].to_list()[0][0]["yes_settlement_value_dollars"] == fraction


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([market(volume_fp="1" * 37 + ".00")], "'volume_fp' needs 39 digits (37 before the point, 2 after)"),
        # each value fits alone; one column with one scale cannot hold both
        ([market(yes_bid_dollars="1" * 33), market(yes_bid_dollars="0.123456")],
         "'yes_bid_dollars' needs 39 digits (33 before the point, 6 after)"),
        ([market(mve_selected_legs=[leg("1" * 33 + ".123456")])],
         "'mve_selected_legs[].yes_settlement_value_dollars' needs 39 digits"),
    ],
)
def test_polars_refuses_a_decimal_column_wider_than_38_digits(items: list[m.Market], message: str) -> None:
    with pytest.raises(ValueError, match=r"a polars Decimal holds 38") as caught:
        to_polars(items)
    assert message in str(caught.value)
    assert to_pandas(items)["volume_fp"].tolist() == [item.volume_fp for item in items]  # no limit


@pytest.mark.parametrize("convert", [to_pandas, to_polars])
def test_a_non_finite_decimal_is_refused(convert: Converter) -> None:
    item = market()
    item.yes_bid_dollars = Decimal("NaN")  # only possible by assignment; parsing refuses it
    with pytest.raises(ValueError, match=r"column 'yes_bid_dollars': NaN is not a finite number"):
        convert([item])
    nested = market(mve_selected_legs=[leg("1")])
    nested.mve_selected_legs[0].yes_settlement_value_dollars = Decimal("-Infinity")
    with pytest.raises(ValueError, match=r"column 'mve_selected_legs': -Infinity is not a finite"):
        convert([nested])


# --- datetimes and None -------------------------------------------------------------------------


def test_datetimes_become_utc_columns_and_none_becomes_nat() -> None:
    a = market(created_time="2026-01-02T03:04:05.123456-05:00", settlement_ts=None)
    b = market(created_time="2026-01-02T08:04:05Z", settlement_ts="2026-01-03T00:00:00Z")
    utc = [datetime(2026, 1, 2, 8, 4, 5, 123456, tzinfo=UTC), datetime(2026, 1, 2, 8, 4, 5, tzinfo=UTC)]

    frame = to_pandas([a, b])
    assert frame["created_time"].dtype == pd.DatetimeTZDtype(unit="us", tz="UTC")
    assert frame["created_time"].tolist() == [pd.Timestamp(t) for t in utc]
    assert frame["settlement_ts"].isna().tolist() == [True, False]

    polars_frame = to_polars([a, b])
    assert polars_frame.schema["created_time"] == pl.Datetime("us", "UTC")
    assert polars_frame["created_time"].to_list() == utc
    assert polars_frame["settlement_ts"].to_list() == [None, b.settlement_ts]


def test_int_columns_with_none_stay_integers() -> None:
    items = [market(exchange_index=3), market(exchange_index=None)]
    frame = to_pandas(items)
    assert frame["exchange_index"].dtype == pd.Int64Dtype()
    assert frame["exchange_index"].iloc[0] == 3 and frame["exchange_index"].iloc[1] is pd.NA
    assert frame["settlement_timer_seconds"].dtype == "int64"  # no None: plain int64
    polars_frame = to_polars(items)
    assert polars_frame.schema["exchange_index"] == pl.Int64
    assert polars_frame["exchange_index"].to_list() == [3, None]


def test_a_column_of_none_takes_its_dtype_from_the_annotation() -> None:
    items = [market(exchange_index=None, floor_strike=None, settlement_ts=None, custom_strike=None)]
    frame = to_pandas(items)
    assert frame["exchange_index"].dtype == pd.Int64Dtype()
    assert frame["settlement_ts"].dtype == pd.DatetimeTZDtype(unit="us", tz="UTC")
    assert frame["floor_strike"].dtype == object
    polars_frame = to_polars(items)
    assert polars_frame.schema["exchange_index"] == pl.Int64
    assert polars_frame.schema["settlement_ts"] == pl.Datetime("us", "UTC")
    assert polars_frame.schema["floor_strike"] == pl.Decimal(POLARS_PRECISION, 0)
    assert polars_frame.schema["custom_strike"] == pl.Null  # dict[str, Any]: nothing to go on


def test_a_literal_column_of_none_takes_the_type_of_its_choices() -> None:
    class Quote(BaseModel):
        side: Literal["yes", "no"] | None = None
        level: Literal[1, 2] | None = None

    assert to_polars([Quote()]).schema == pl.Schema({"side": pl.String, "level": pl.Int64})


# --- nested values ------------------------------------------------------------------------------


def test_nested_price_ranges() -> None:
    ranges = [{"start": "0.01", "end": "0.10", "step": "0.01", "note": "extra"}]
    items = [market(price_ranges=ranges), market(price_ranges=None)]
    assert items[1].price_ranges == []

    frame = to_pandas(items)
    assert frame["price_ranges"].dtype == object
    assert frame["price_ranges"].tolist() == [ranges, []]

    polars_frame = to_polars(items)
    assert polars_frame.schema["price_ranges"] == pl.List(pl.Struct(
        {"start": pl.String, "end": pl.String, "step": pl.String, "note": pl.String}
    ))
    assert polars_frame["price_ranges"].to_list() == [ranges, []]


@pytest.mark.parametrize(
    ("column", "first", "second"),
    [
        ("zeta", 1, "one"),  # an extra key: an int, then a str
        ("zeta", [1], ["one"]),  # the same inside a list
        ("custom_strike", {"k": 1}, {"k": "one"}),  # and inside a struct
    ],
)
def test_values_that_disagree_become_an_object_column(column: str, first: Any, second: Any) -> None:
    items = [market(**{column: first}), market(**{column: second})]
    polars_frame = to_polars(items)
    assert polars_frame.schema[column] == pl.Object
    assert polars_frame[column].to_list() == [first, second]
    assert polars_frame.columns == list(to_records(items)[0])  # in its place among the others
    assert polars_frame["ticker"].to_list() == [item.ticker for item in items]
    frame = to_pandas(items)
    assert frame[column].dtype == object
    assert frame[column].tolist() == [first, second]


def test_a_field_typed_as_a_union_of_different_kinds_is_an_object_column() -> None:
    class Part(BaseModel):
        name: str

    class Mixed(BaseModel):
        amount: Decimal | str
        levels: list[int] | str
        part: Part | str

    item = Mixed(amount=Decimal("0.5"), levels=[1], part=Part(name="p"))
    frame = to_polars([item])
    assert frame.schema == pl.Schema({"amount": pl.Object, "levels": pl.Object, "part": pl.Object})
    assert frame.row(0) == (Decimal("0.5"), [1], {"name": "p"})


def test_values_of_other_types_are_kept_as_objects() -> None:
    class Custom(BaseModel):
        day: date
        by_number: dict[int, str]
        levels: tuple[Decimal, ...]

    item = Custom(day=date(2026, 1, 2), by_number={1: "one"}, levels=(Decimal("0.5"), Decimal("0.25")))
    frame = to_polars([item])
    assert list(frame.schema.items()) == [
        ("day", pl.Object), ("by_number", pl.Object), ("levels", pl.List(pl.Decimal(POLARS_PRECISION, 2)))
    ]
    assert frame.row(0) == (item.day, item.by_number, list(item.levels))
    assert to_pandas([item]).iloc[0].tolist() == [item.day, item.by_number, item.levels]


def test_a_frame_of_object_columns_only() -> None:
    class Days(BaseModel):
        first: date
        last: date

    items = [Days(first=date(2026, 1, 1), last=date(2026, 1, 2)), Days(first=date(2026, 2, 1), last=date(2026, 2, 2))]
    frame = to_polars(items)
    assert frame.schema == pl.Schema({"first": pl.Object, "last": pl.Object})
    assert frame.rows() == [(item.first, item.last) for item in items]


# --- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize("convert", CONVERTERS)
def test_items_of_two_classes_are_refused(convert: Converter) -> None:
    price_range = m.PriceRange(start="0.01", end="0.99", step="0.01")
    with pytest.raises(TypeError, match=r"one class, got Market and PriceRange"):
        convert([market(), market(), price_range])


@pytest.mark.parametrize("convert", CONVERTERS)
@pytest.mark.parametrize("item", [{"ticker": "A"}, "A", None])
def test_items_that_are_not_models_are_refused(convert: Converter, item: object) -> None:
    with pytest.raises(TypeError, match=rf"takes pydantic models, got {type(item).__name__}"):
        convert([market(), item])


@pytest.mark.parametrize("convert", CONVERTERS)
def test_one_model_instead_of_an_iterable_of_them_is_refused(convert: Converter) -> None:
    # A pydantic model iterates as its (field, value) pairs: this said "got tuple".
    with pytest.raises(TypeError) as info:
        convert(market())
    assert str(info.value) == (
        f"{convert.__name__} takes an iterable of models (a Page, a list, list_all(...)), got "
        "one Market; for a single row, pass a list of one"
    )


@pytest.mark.parametrize("convert", CONVERTERS)
def test_something_that_is_not_iterable_is_refused_with_a_hint_for_async_iterators(
    convert: Converter,
) -> None:
    async def walk() -> AsyncIterator[m.Market]:
        yield market()

    expected = (
        f"{convert.__name__} takes an iterable of models (a Page, a list, list_all(...)), got"
    )
    with pytest.raises(TypeError) as info:
        convert(None)
    assert str(info.value) == f"{expected} NoneType"
    walking = walk()
    with pytest.raises(TypeError) as info:
        convert(walking)
    assert str(info.value) == (
        f"{expected} async_generator; collect an async iterator first: "
        f"{convert.__name__}([m async for m in ...])"
    )


@pytest.mark.parametrize("convert", CONVERTERS)
def test_model_must_be_the_class_of_the_items(convert: Converter) -> None:
    assert len(convert([market()], model=m.Market)) == 1
    with pytest.raises(TypeError, match=r"model=PriceRange, but the items are Market"):
        convert([market()], model=m.PriceRange)
    with pytest.raises(TypeError, match=r"model must be a pydantic model class, got <class 'dict'>"):
        convert([], model=dict)


# --- empty input --------------------------------------------------------------------------------


def test_a_column_of_none_only_has_the_dtype_of_its_annotation_as_with_no_rows() -> None:
    # subtitle (str), is_provisional (bool), ... were object on a page whose values were all
    # None, and str / bool on an empty page.
    class Row(BaseModel):
        text: str | None = None
        flag: bool | None = None
        ratio: float | None = None

    empty = to_pandas([], model=Row)
    nones = to_pandas([Row(), Row()])
    assert list(nones.dtypes) == list(empty.dtypes)
    assert nones["text"].dtype == pd.Series(["x"]).dtype  # what pandas infers for text
    assert nones["flag"].dtype == pd.BooleanDtype() and nones["flag"].isna().all()
    assert nones["ratio"].dtype == "float64" and nones["ratio"].isna().all()
    mixed = to_pandas([Row(flag=True, ratio=0.5), Row()])
    assert mixed["flag"].tolist() == [True, pd.NA]
    assert to_pandas([Row(flag=False)])["flag"].dtype == bool


def test_empty_input_without_a_model() -> None:
    assert to_records([]) == []
    assert to_records([], model=m.Market) == []
    assert to_pandas([]).shape == (0, 0)
    assert to_polars([]).shape == (0, 0)


def test_empty_input_with_a_model_has_its_columns_and_dtypes() -> None:
    frame = to_pandas([], model=m.Market)
    assert list(frame.columns) == MARKET_FIELDS and len(frame) == 0
    assert frame["yes_bid_dollars"].dtype == object
    assert frame["created_time"].dtype == pd.DatetimeTZDtype(unit="us", tz="UTC")
    assert frame["settlement_timer_seconds"].dtype == pd.Int64Dtype()
    assert frame["can_close_early"].dtype == pd.BooleanDtype()  # nullable, as Int64 is
    assert frame["ticker"].dtype == pd.Series(["x"]).dtype  # what pandas infers for text
    assert frame["price_ranges"].dtype == object

    polars_frame = to_polars([], model=m.Market)
    assert polars_frame.columns == MARKET_FIELDS and polars_frame.height == 0
    schema = polars_frame.schema
    assert schema["yes_bid_dollars"] == pl.Decimal(POLARS_PRECISION, 0)
    assert schema["created_time"] == pl.Datetime("us", "UTC")
    assert schema["settlement_timer_seconds"] == pl.Int64
    assert schema["can_close_early"] == pl.Boolean
    assert schema["ticker"] == pl.String
    assert schema["market_type"] == pl.String  # Literal[...] | str
    assert schema["price_ranges"] == pl.List(pl.Struct({"start": pl.String, "end": pl.String, "step": pl.String}))


def test_a_recursive_model_stops_at_the_repeat() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = []
        price: Decimal | None = None
        ratio: float = 0.5

    frame = to_polars([], model=Node)
    assert frame.schema["children"] == pl.List(pl.Null)
    assert frame.schema["price"] == pl.Decimal(POLARS_PRECISION, 0)
    assert frame.schema["ratio"] == pl.Float64
    assert to_pandas([], model=Node)["ratio"].dtype == "float64"
    tree = Node(name="a", children=[Node(name="b", price=Decimal("0.25"))])
    assert to_polars([tree])["children"].to_list() == [[{"name": "b", "children": [], "price": Decimal("0.25"), "ratio": 0.5}]]


# --- Page ---------------------------------------------------------------------------------------


def markets_page(markets: list[dict[str, Any]]) -> Page[m.Market]:
    body = json.dumps({"markets": markets, "cursor": "next"}).encode()
    page: Page[m.Market] = calls.get_markets().parse(HttpResponse(status=200, headers=(), body=body))
    return page


def test_page_methods_delegate_to_the_frames_functions() -> None:
    page = markets_page([dict(example("Market"), ticker="A", zeta=1), dict(example("Market"), ticker="B", yes_bid_dollars="0.123456")])
    assert page.to_records() == to_records(page.items)
    assert [r["ticker"] for r in page.to_records()] == ["A", "B"]
    pd.testing.assert_frame_equal(page.to_pandas(), to_pandas(page.items))
    via_page, direct = page.to_polars(), to_polars(page.items)
    assert via_page.schema == direct.schema  # custom_strike ({}) is an Object column,
    assert via_page.rows() == direct.rows()  # which DataFrame.equals does not compare
    assert page.to_polars()["yes_bid_dollars"].to_list() == [p.yes_bid_dollars for p in page]


def test_an_empty_page_has_the_item_model_columns() -> None:
    page = markets_page([])
    assert page.to_records() == []
    assert list(page.to_pandas().columns) == MARKET_FIELDS
    assert page.to_polars().columns == MARKET_FIELDS
    assert page.to_polars().schema["yes_bid_dollars"] == pl.Decimal(POLARS_PRECISION, 0)


def test_an_empty_page_whose_items_no_model_field_holds_has_no_columns() -> None:
    unrelated: Page[m.Market] = Page(items=[], cursor=None, response=m.GetMarketsResponse(markets=[], cursor=""))
    assert unrelated.to_pandas().shape == (0, 0)
    blocked = m.GetFCMSubtraderBlockedCategoriesResponse(categories=[])
    of_strings: Page[str] = Page(items=blocked.categories, cursor=None, response=blocked)
    assert of_strings.to_polars().shape == (0, 0)


# --- without the libraries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convert", "library"), [(to_pandas, "pandas"), (to_polars, "polars")]
)
def test_a_missing_library_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, convert: Callable[[Iterable[BaseModel]], Any], library: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)
    with pytest.raises(ModuleNotFoundError) as caught:
        convert([market()])
    assert str(caught.value) == f"{convert.__name__} needs {library}: pip install 'kalshi-sansio[{library}]'"
    assert caught.value.name == library
    assert isinstance(caught.value, ImportError)
    assert to_records([market()])[0]["ticker"] == "x"  # rows need neither library


def test_importing_the_core_needs_neither_library() -> None:
    # None in sys.modules makes any import of the name fail, as if it were not installed.
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['polars'] = None\n"
        "import kalshi_proto.frames, kalshi_proto.rest.call, kalshi_proto.rest.generated.sync_facade\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# --- any exact decimal survives ------------------------------------------------------------------


class _Leg(BaseModel):
    price: Decimal | None


class _Row(BaseModel):
    price: Decimal | None
    legs: list[_Leg]


def _decimal(digits: int, scale: int, negative: bool) -> Decimal:
    # Written out as text: Decimal arithmetic would round to the context's 28 digits.
    text = str(digits).rjust(scale + 1, "0")
    if scale:
        text = f"{text[:-scale]}.{text[-scale:]}"
    return Decimal(f"-{text}" if negative else text)


def _decimals() -> st.SearchStrategy[Decimal]:
    # Finite decimals that fit a 38-digit column together: at most 30 digits in all and 8 after
    # the point, any sign, trailing zeros kept ("1.10" is not "1.1" on the wire).
    return st.builds(
        _decimal,
        st.integers(min_value=0, max_value=10**30 - 1),
        st.integers(min_value=0, max_value=8),
        st.booleans(),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.none() | _decimals(), st.lists(st.none() | _decimals(), max_size=3)), max_size=8))
def test_any_decimals_come_back_equal_from_both_libraries(rows: list[tuple[Decimal | None, list[Decimal | None]]]) -> None:
    items = [_Row(price=price, legs=[_Leg(price=leg) for leg in legs]) for price, legs in rows]
    expected_prices = [item.price for item in items]
    expected_legs = [[{"price": leg.price} for leg in item.legs] for item in items]

    polars_frame = to_polars(items, model=_Row)
    assert polars_frame["price"].to_list() == expected_prices
    assert polars_frame["legs"].to_list() == expected_legs

    frame = to_pandas(items, model=_Row)
    assert frame["price"].tolist() == expected_prices
    assert [str(v) for v in frame["price"].tolist()] == [str(v) for v in expected_prices]  # digits kept
