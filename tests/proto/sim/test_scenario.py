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
from kalshi_proto.sim.scenario import build_exchange, liquidity_client_order_id, run_actions
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
    assert ex.markets["KXHIGHNY-26JAN30-B31"].tick == Decimal("0.001")
    assert ex.markets["KXFED-26JAN-HOLD"].tick == Decimal("0.01")
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
    assert (market.tick, market.rules_primary, market.status, market.created_ms) == (
        Decimal("0.01"),
        "",
        "active",
        1_000_000,
    )
    late = ex.markets["LATE"]
    assert (late.status, late.open_ms, late.tick) == ("initialized", 1_005_000, Decimal("0.001"))
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
        ({"markets": [{**_MARKET, "tick": "a cent"}]}, "scenario markets[0]: a number is malformed"),
        ({"markets": [{**_MARKET, "close_after_ms": None}]}, "scenario markets[0]: int() argument"),
        ({"markets": {"M": _MARKET}}, "scenario markets: must be a list of objects"),
        ({"accounts": ["a"]}, "scenario accounts: must be a list of objects"),
        ({"actions": "none"}, "scenario actions: must be a list of objects"),
        ({"liquidity": [{**_ORDER, "side": "up"}]}, "scenario liquidity[0]: 'up' is not a valid"),
        ({"liquidity": [{**_ORDER, "ticker": "NOPE"}]}, "scenario liquidity[0]: refused by"),
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
    assert run_actions(ex, actions, start, start + 999) == 0
    assert ex.trades == []
    done = run_actions(ex, actions, start, start + 1_000)
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
    done = run_actions(ex, actions, start, start + 2_500, done)
    assert done == 2
    mine = next(o for o in ex.orders.values() if o.client_order_id == "mine")
    assert mine.status == "resting" and mine.stp.value == "taker_at_cross"
    done = run_actions(ex, actions, start, start + 3_000, done)
    assert done == 3 and mine.status == "canceled" and mine.updated_ms == start + 3_000
    done = run_actions(ex, actions, start, start + 4_000, done)
    assert done == 4 and ex.markets["M"].status == "closed"
    done = run_actions(ex, actions, start, start + 5_500, done)
    assert done == 5 and ex.markets["M"].status == "determined" and ex.markets["M"].result == "yes"
    # Time passing by itself opened LATE on the way.
    assert ex.markets["LATE"].status == "active"
    cash_before = ex.account("b").cash[0]
    done = run_actions(ex, actions, start, start + 10_000, done)
    assert done == 6 and ex.markets["M"].status == "finalized"
    assert ex.account("b").cash[0] == cash_before + 4
    assert run_actions(ex, actions, start, start + 20_000, done) == 6


def test_run_actions_applies_everything_due_in_one_call() -> None:
    actions: list[dict[str, Any]] = [
        {"at_ms": 10, "do": "close", "ticker": "M"},
        {"at_ms": 20, "do": "determine", "ticker": "M", "result": "no"},
        {"at_ms": 30, "do": "settle", "ticker": "M"},
    ]
    ex = build_exchange(_small())
    assert run_actions(ex, actions, 1_000_000, 1_000_030) == 3
    assert ex.markets["M"].status == "finalized" and ex.markets["M"].settled_ms == 1_000_030


def test_an_unknown_action_raises_value_error() -> None:
    ex = build_exchange(_small())
    with pytest.raises(ValueError, match="unknown scenario action 'explode'"):
        run_actions(ex, [{"at_ms": 0, "do": "explode"}], 1_000_000, 1_000_000)


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
