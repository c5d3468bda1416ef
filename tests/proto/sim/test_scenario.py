"""Tests for kalshi_proto.sim.scenario and the default scenario: what `build_exchange` creates,
how `run_actions` applies scripted actions on time, and that two builds are identical."""

from __future__ import annotations

import json
from dataclasses import astuple
from decimal import Decimal
from typing import Any

import pytest

from kalshi_proto.sim.exchange import Exchange
from kalshi_proto.sim.matching import Side
from kalshi_proto.sim.scenario import (
    ActionRefused,
    build_exchange,
    liquidity_client_order_id,
    run_actions,
)
from kalshi_proto.sim.scenarios import SCENARIOS, default_scenario
from kalshi_proto.sim.scenarios.default import START_MS

DAY_MS = 86_400_000


def test_the_registry_names_the_default_scenario() -> None:
    assert SCENARIOS == {"default": default_scenario}
    first, second = default_scenario(), default_scenario()
    assert first == second and first is not second
    first["markets"].clear()
    assert default_scenario()["markets"]  # a fresh copy each time


def test_default_scenario_shape() -> None:
    ex = build_exchange(default_scenario())
    assert ex.wall_ms == START_MS == 1_767_225_600_000
    assert len(ex.series) == 3 and len(ex.events) == 3 and len(ex.markets) == 12
    assert {s.fee_type for s in ex.series.values()} == {"quadratic", "quadratic_with_maker_fees"}
    assert ex.series["KXHIGHNY"].fee_multiplier == Decimal("0.5")
    assert ex.series["KXFED"].tags == ("Fed", "Rates")
    assert (
        ex.events["KXFED-26JAN"].mutually_exclusive
        and not ex.events["KXBTCD-26JAN3017"].mutually_exclusive
    )
    for market in ex.markets.values():
        assert market.status == "active"
        assert market.open_ms == START_MS and market.close_ms == START_MS + 29 * DAY_MS
        assert market.event_ticker in ex.events
        assert market.no_sub_title.startswith("Not ")
        bid, ask = market.book.best(Side.BID), market.book.best(Side.ASK)
        assert bid is not None and ask is not None and bid < ask, market.ticker
        assert market.volume == 0 and market.open_interest == 0
    assert ex.markets["KXHIGHNY-26JAN30-B31"].price_level_structure == "deci_cent"
    assert ex.markets["KXFED-26JAN-HOLD"].price_level_structure == "linear_cent"
    assert set(ex.accounts) == {"mm"}


def test_every_liquidity_order_rests() -> None:
    scenario = default_scenario()
    ex = build_exchange(scenario)
    orders = list(ex.orders.values())
    assert len(orders) == len(scenario["liquidity"])
    assert all(o.status == "resting" and o.fill_count == 0 for o in orders)
    assert [o.client_order_id for o in orders] == [
        liquidity_client_order_id(i) for i in range(len(orders))
    ]
    assert liquidity_client_order_id(7) == "scenario-0007"
    for order, spec in zip(orders, scenario["liquidity"], strict=True):
        assert (order.ticker, order.side.value, order.price, order.remaining) == (
            spec["ticker"],
            spec["side"],
            Decimal(spec["price"]),
            Decimal(spec["count"]),
        )
    assert ex.fills == [] and ex.trades == []
    mm = ex.account("mm")
    assert mm.reserved[0] == sum((o.reserved for o in orders), Decimal(0)) > 0
    assert mm.available(0) > 0


def _small(**extra: Any) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "name": "small",
        "start_ms": 1_000_000,
        "series": [{"ticker": "S", "title": "Series", "category": "Test"}],
        "events": [{"event_ticker": "E", "series_ticker": "S", "title": "Event"}],
        "markets": [
            {
                "ticker": "M",
                "event_ticker": "E",
                "title": "M",
                "yes_sub_title": "Y",
                "no_sub_title": "N",
                "close_after_ms": 100_000,
            },
            {
                "ticker": "LATE",
                "event_ticker": "E",
                "title": "Late",
                "yes_sub_title": "Y",
                "no_sub_title": "N",
                "open_after_ms": 5_000,
                "close_after_ms": 100_000,
                "tick": "0.001",
            },
        ],
        "accounts": [{"user_id": "a", "balance": "100"}, {"user_id": "b", "balance": 100}],
        "liquidity": [
            {"user_id": "a", "ticker": "M", "side": "ask", "price": "0.60", "count": "10"}
        ],
        "actions": [],
    }
    scenario.update(extra)
    return scenario


def test_defaults_of_a_minimal_scenario() -> None:
    ex = build_exchange(_small(), seed=3)
    assert ex.seed == 3
    series = ex.series["S"]
    assert (series.frequency, series.fee_type, series.fee_multiplier, series.tags) == (
        "daily",
        "quadratic",
        Decimal(1),
        (),
    )
    event = ex.events["E"]
    assert (event.sub_title, event.mutually_exclusive) == ("", False)
    market = ex.markets["M"]
    assert (market.price_level_structure, market.rules_primary, market.status, market.created_ms) == (
        "linear_cent",
        "",
        "active",
        1_000_000,
    )
    late = ex.markets["LATE"]
    assert (late.status, late.open_ms, late.price_level_structure) == ("initialized", 1_005_000, "deci_cent")
    assert ex.account("b").cash[0] == 100
    [order] = ex.orders.values()
    assert order.tif.value == "good_till_canceled" and order.stp.value == "maker"


def test_an_empty_scenario() -> None:
    ex = build_exchange({"start_ms": 5})
    assert (ex.wall_ms, ex.series, ex.markets, ex.accounts) == (5, {}, {}, {})


def test_dangling_references_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"^scenario events\[0\]: .*unknown series"):
        build_exchange(
            _small(events=[{"event_ticker": "E", "series_ticker": "NOPE", "title": "x"}])
        )


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


_MARKET = _small()["markets"][1]
_ORDER = _small()["liquidity"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_ms": "soon"}, "scenario: invalid literal for int()"),
        ({"markets": [_without(_MARKET, "title")]}, "scenario markets[0]: missing 'title'"),
        (
            {"markets": [{**_MARKET, "tick": "a cent"}]},
            "scenario markets[0]: a number is malformed",
        ),
        ({"markets": [{**_MARKET, "close_after_ms": None}]}, "scenario markets[0]: int() argument"),
        ({"markets": {"M": _MARKET}}, "scenario markets: must be a list of objects"),
        ({"accounts": ["a"]}, "scenario accounts: must be a list of objects"),
        ({"actions": "none"}, "scenario actions: must be a list of objects"),
        ({"liquidity": [{**_ORDER, "side": "up"}]}, "scenario liquidity[0]: 'up' is not a valid"),
        ({"liquidity": [{**_ORDER, "ticker": "NOPE"}]}, "scenario liquidity[0]: refused by"),
        (
            {"markets": [{**_MARKET, "tick": "0"}]},
            "scenario markets[0]: a price range's step must be positive",
        ),
        (
            {"markets": [{**_without(_MARKET, "tick"), "price_level_structure": "quarter"}]},
            "scenario markets[0]: price_level_structure must be one of deci_cent, linear_cent, "
            "tapered_deci_cent, not 'quarter'",
        ),
        (
            {"markets": [{**_MARKET, "price_level_structure": "deci_cent"}]},
            "scenario markets[0]: give tick or price_level_structure, not both",
        ),
    ],
    ids=[
        "start",
        "missing",
        "number",
        "kind",
        "section-dict",
        "section-items",
        "actions",
        "enum",
        "refused",
        "tick-zero",
        "structure-unknown",
        "tick-and-structure",
    ],
)
def test_a_malformed_scenario_is_a_value_error_naming_the_entry(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        build_exchange(_small(**change))
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.__cause__ is None


def test_a_scenario_must_be_an_object() -> None:
    with pytest.raises(ValueError, match=r"^a scenario must be an object, not list$"):
        build_exchange([{"start_ms": 1}])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^scenario: missing 'start_ms'$"):
        build_exchange({})


def test_run_actions_applies_each_action_at_its_time() -> None:
    actions: list[dict[str, Any]] = [
        {
            "at_ms": 1_000,
            "do": "place",
            "user_id": "b",
            "ticker": "M",
            "side": "bid",
            "price": "0.60",
            "count": "4",
            "time_in_force": "immediate_or_cancel",
        },
        {
            "at_ms": 2_000,
            "do": "place",
            "user_id": "b",
            "ticker": "M",
            "side": "bid",
            "price": "0.50",
            "count": "3",
            "client_order_id": "mine",
            "self_trade_prevention_type": "taker_at_cross",
        },
        {"at_ms": 3_000, "do": "cancel_all", "user_id": "b"},
        {"at_ms": 4_000, "do": "close", "ticker": "M"},
        {"at_ms": 5_000, "do": "determine", "ticker": "M", "result": "yes"},
        {"at_ms": 6_000, "do": "settle", "ticker": "M"},
    ]
    scenario = _small(actions=actions)
    ex = build_exchange(scenario)
    start = scenario["start_ms"]
    assert run_actions(ex, actions, start, start + 999) == (0, ())
    assert ex.trades == []
    done, _ = run_actions(ex, actions, start, start + 1_000)
    assert done == 1
    [trade] = ex.trades
    assert (trade.price, trade.count, trade.created_ms) == (
        Decimal("0.60"),
        Decimal(4),
        start + 1_000,
    )
    assert ex.wall_ms == start + 1_000
    taker = next(o for o in ex.orders.values() if o.user_id == "b")
    assert taker.client_order_id == "action-0000"
    done, _ = run_actions(ex, actions, start, start + 2_500, done)
    assert done == 2
    mine = next(o for o in ex.orders.values() if o.client_order_id == "mine")
    assert mine.status == "resting" and mine.stp.value == "taker_at_cross"
    done, _ = run_actions(ex, actions, start, start + 3_000, done)
    assert done == 3 and mine.status == "canceled" and mine.updated_ms == start + 3_000
    done, _ = run_actions(ex, actions, start, start + 4_000, done)
    assert done == 4 and ex.markets["M"].status == "closed"
    done, _ = run_actions(ex, actions, start, start + 5_500, done)
    assert done == 5 and ex.markets["M"].status == "determined" and ex.markets["M"].result == "yes"
    # Time passing by itself opened LATE on the way.
    assert ex.markets["LATE"].status == "active"
    cash_before = ex.account("b").cash[0]
    done, _ = run_actions(ex, actions, start, start + 10_000, done)
    assert done == 6 and ex.markets["M"].status == "finalized"
    assert ex.account("b").cash[0] == cash_before + 4
    assert run_actions(ex, actions, start, start + 20_000, done) == (6, ())


def test_run_actions_applies_everything_due_in_one_call() -> None:
    actions: list[dict[str, Any]] = [
        {"at_ms": 10, "do": "close", "ticker": "M"},
        {"at_ms": 20, "do": "determine", "ticker": "M", "result": "no"},
        {"at_ms": 30, "do": "settle", "ticker": "M"},
    ]
    ex = build_exchange(_small())
    assert run_actions(ex, actions, 1_000_000, 1_000_030) == (3, ())
    assert ex.markets["M"].status == "finalized" and ex.markets["M"].settled_ms == 1_000_030


_PLACE = {
    "at_ms": 0,
    "do": "place",
    "user_id": "b",
    "ticker": "M",
    "side": "bid",
    "price": "0.5",
    "count": "1",
}


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([{"at_ms": 0, "do": "explode"}], "scenario actions[0]: unknown scenario action 'explode'"),
        ([{"do": "close", "ticker": "M"}], "scenario actions[0]: missing 'at_ms'"),
        (
            [{"at_ms": "later", "do": "close", "ticker": "M"}],
            "scenario actions[0]: invalid literal",
        ),
        ([{"at_ms": 0, "ticker": "M"}], "scenario actions[0]: missing 'do'"),
        ([{"at_ms": 0, "do": "close"}], "scenario actions[0]: missing 'ticker'"),
        ([{"at_ms": 0, "do": "settle", "ticker": "NOPE"}], "scenario actions[0]: refused by"),
        (
            [{"at_ms": 0, "do": "cancel_all", "user_id": "nobody"}],
            "scenario actions[0]: unknown user",
        ),
        (
            [{"at_ms": 0, "do": "determine", "ticker": "M", "result": "maybe"}],
            "scenario actions[0]: result must be 'yes' or 'no', not 'maybe'",
        ),
        ([{**_PLACE, "side": "up"}], "scenario actions[0]: 'up' is not a valid"),
        ([{**_PLACE, "count": "lots"}], "scenario actions[0]: a number is malformed"),
        ([_without(_PLACE, "price")], "scenario actions[0]: missing 'price'"),
        (
            [
                {"at_ms": 5, "do": "close", "ticker": "M"},
                {"at_ms": 4, "do": "settle", "ticker": "M"},
            ],
            "scenario actions[1]: at_ms 4 is before the previous action's 5",
        ),
    ],
    ids=[
        "kind",
        "no-time",
        "time",
        "no-kind",
        "key",
        "market",
        "user",
        "result",
        "enum",
        "number",
        "price",
        "order",
    ],
)
def test_a_malformed_action_is_refused_when_the_scenario_is_built(
    actions: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        build_exchange(_small(actions=actions))
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.__cause__ is None


def test_an_action_the_exchange_refuses_is_reported_once_and_the_script_goes_on() -> None:
    actions: list[dict[str, Any]] = [
        {**_PLACE, "at_ms": 10, "price": "0.40"},
        {"at_ms": 10, "do": "settle", "ticker": "M"},  # refused: nobody determined M
        {**_PLACE, "at_ms": 10, "price": "0.405"},  # refused: off M's tick
        {"at_ms": 20, "do": "close", "ticker": "M"},
    ]
    ex = build_exchange(_small(actions=actions))
    done, refused = run_actions(ex, actions, 1_000_000, 1_000_010)
    assert done == 3
    assert refused == (
        ActionRefused(
            index=1,
            action=actions[1],
            at_ms=1_000_010,
            status=400,
            code="market_not_determined",
            message="market M is active",
        ),
        ActionRefused(
            index=2,
            action=actions[2],
            at_ms=1_000_010,
            status=400,
            code="invalid_price",
            message="0.405 is not a valid price on this market (steps of 0.01 from 0 to 1); "
            "the nearest are 0.40 and 0.41",
        ),
    )
    assert str(refused[0]) == (
        "scenario actions[1] (settle): refused by the exchange: market_not_determined: "
        "market M is active"
    )
    # The place before the refusal ran once, and is not run again.
    assert [o.price for o in ex.orders.values() if o.user_id == "b"] == [Decimal("0.40")]
    assert run_actions(ex, actions, 1_000_000, 1_000_020, done) == (4, ())
    assert [o.price for o in ex.orders.values() if o.user_id == "b"] == [Decimal("0.40")]
    assert ex.markets["M"].status == "closed"


def _state(ex: Exchange) -> Any:
    return (
        ex.wall_ms,
        [astuple(o) for o in ex.orders.values()],
        {
            t: (
                m.status,
                m.book.levels(Side.BID),
                m.book.levels(Side.ASK),
                [o.order_id for o in m.book.orders()],
            )
            for t, m in ex.markets.items()
        },
        {u: (dict(a.cash), dict(a.reserved)) for u, a in ex.accounts.items()},
        {t: astuple(s) for t, s in ex.series.items()},
        {t: astuple(e) for t, e in ex.events.items()},
    )


def test_two_builds_are_identical() -> None:
    first, second = build_exchange(default_scenario()), build_exchange(default_scenario())
    assert _state(first) == _state(second)
    assert list(first.orders) == list(second.orders)
    # The seed changes the ids and nothing else.
    seeded = build_exchange(default_scenario(), seed=1)
    assert set(seeded.orders).isdisjoint(first.orders)
    assert [astuple(o)[1:] for o in seeded.orders.values()] == [
        astuple(o)[1:] for o in first.orders.values()
    ]


def test_a_served_exchange_runs_the_scripted_actions_as_its_clock_reaches_them() -> None:
    from kalshi_proto.rest.call import HttpRequest
    from kalshi_proto.sim.rest import ExchangeApp

    scenario = default_scenario()
    ticker = "KXFED-26JAN-HOLD"
    scenario["actions"] = [
        {"at_ms": 60_000, "do": "determine", "ticker": ticker, "result": "yes"},
        {"at_ms": 120_000, "do": "settle", "ticker": ticker},
    ]
    exchange = build_exchange(scenario)
    app = ExchangeApp(exchange, epoch_ms=1_000_000, actions=scenario["actions"])
    get = HttpRequest(method="GET", target=f"/trade-api/v2/markets/{ticker}", headers=(), body=b"")

    def status(wall_ms: int) -> str:
        reply = app.handle(get, now=0.0, wall_ms=wall_ms)
        return str(json.loads(reply.response.body)["market"]["status"])

    assert status(1_000_000 + 59_999) == "active"
    assert status(1_000_000 + 60_000) == "determined"
    assert status(1_000_000 + 120_000) == "finalized"


def test_a_served_exchange_reports_a_refused_action_and_keeps_serving() -> None:
    from kalshi_proto.rest.call import HttpRequest
    from kalshi_proto.sim.rest import ExchangeApp

    scenario = default_scenario()
    ticker = "KXFED-26JAN-HOLD"
    scenario["actions"] = [
        {
            "at_ms": 1_000,
            "do": "place",
            "user_id": "mm",
            "ticker": ticker,
            "side": "bid",
            "price": "0.10",
            "count": "1",
        },
        {"at_ms": 1_000, "do": "close", "ticker": ticker},
        {"at_ms": 1_000, "do": "settle", "ticker": ticker},  # closed, not determined
        {"at_ms": 2_000, "do": "determine", "ticker": ticker, "result": "no"},
    ]
    app = ExchangeApp(build_exchange(scenario), epoch_ms=0, actions=scenario["actions"])
    status = HttpRequest(method="GET", target="/trade-api/v2/exchange/status", headers=(), body=b"")
    for wall_ms in (1_500, 1_600, 1_700):
        assert app.handle(status, now=0.0, wall_ms=wall_ms).response.status == 200
    [refusal] = app.action_refusals
    assert (refusal.index, refusal.code) == (2, "market_not_determined")
    placed = [o for o in app.exchange.orders.values() if o.client_order_id == "action-0000"]
    assert len(placed) == 1
    assert app.handle(status, now=0.0, wall_ms=2_000).response.status == 200
    assert app.exchange.markets[ticker].status == "determined"
    assert len(app.action_refusals) == 1


def test_a_served_exchange_checks_its_actions_when_made() -> None:
    from kalshi_proto.sim.rest import ExchangeApp

    exchange = build_exchange(default_scenario())
    with pytest.raises(ValueError, match=r"^scenario actions\[0\]: must be an object, not str$"):
        ExchangeApp(exchange, actions=["settle"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"^scenario actions\[0\]: result must be"):
        ExchangeApp(
            exchange,
            actions=[
                {"at_ms": 0, "do": "determine", "ticker": "KXFED-26JAN-HOLD", "result": "maybe"}
            ],
        )


def test_a_market_takes_a_tapered_price_structure_by_name() -> None:
    tapered = {**_without(_MARKET, "tick"), "price_level_structure": "tapered_deci_cent"}
    ex = build_exchange(_small(markets=[_small()["markets"][0], tapered]))
    market = ex.markets["LATE"]
    assert market.price_level_structure == "tapered_deci_cent"
    assert [(b.start, b.end, b.step) for b in market.grid.bands] == [
        (Decimal(0), Decimal("0.1"), Decimal("0.001")),
        (Decimal("0.1"), Decimal("0.9"), Decimal("0.01")),
        (Decimal("0.9"), Decimal(1), Decimal("0.001")),
    ]
    assert ex.markets["M"].price_level_structure == "linear_cent"  # neither key: cents
