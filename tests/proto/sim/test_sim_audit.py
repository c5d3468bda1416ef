"""Tests from a mutation audit of kalshi_proto.sim: rules the other sim tests ran through but did
not pin.

Each test names the rule it holds (a boundary, a field of a response, a piece of bookkeeping), so
a change that breaks the rule fails here: FOK and `OrderBook.fillable` at an exact fill, the fee
budget and balance boundary of an amend, fee collateral released per fill, queue priority and
expiries across amends, transfer ids per user, settlement rows and the position they leave, and
REST fields (settlement ``value``, average prices of a one-contract fill, orderbook ``depth``,
``exchange_index``) read from the spec.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from kalshi_proto.rest.call import HttpRequest
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.sim.app import Drop, Respond
from kalshi_proto.sim.exchange import ExchangeError
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce
from kalshi_proto.sim.rest import Faults
from kalshi_proto.sim.scenario import build_exchange
from kalshi_proto.sim.scenarios.default import START_MS
from tests.proto.sim import test_rest_app as rest_app
from tests.proto.sim.test_exchange import ASK, BID, CLOSE, FOK, Sim, W, refused
from tests.proto.sim.test_matching import Book, fills
from tests.proto.sim.test_rest_app import (
    C50,
    HOLD,
    PREFIX,
    T100K,
    WALL,
    Harness,
    Keys,
    error,
    order_request,
)

keys = rest_app.keys  # the module fixture: an RSA trader and an Ed25519 trader
D = Decimal
START_S = START_MS // 1000


@pytest.fixture
def h(keys: Keys) -> Harness:
    return Harness(keys)


# ---- matching -------------------------------------------------------------------------------


def test_fok_fills_when_the_book_holds_exactly_its_count() -> None:
    b = Book()
    first = b.rest("m", ASK, "0.45", 3)
    second = b.rest("n", ASK, "0.46", 2)
    order, result = b.match("t", BID, "0.46", 5, FOK)
    assert fills(result) == [
        (first.order_id, D("0.45"), D(3)),
        (second.order_id, D("0.46"), D(2)),
    ]
    assert result.cancelled == 0 and order.remaining == 0 and len(b.book) == 0


def test_fillable_stops_counting_at_a_level_that_covers_the_order_exactly() -> None:
    b = Book()
    b.rest("m", ASK, "0.45", 3)
    b.rest("n", ASK, "0.46", 4)
    assert b.book.fillable(b.order("x", BID, "0.99", 3), StpMode.TAKER_AT_CROSS) == D(3)


# ---- amend ----------------------------------------------------------------------------------


def _amend(s: Sim, order_id: str, price: str, count: int, **kwargs: Any) -> Any:
    return s.ex.amend_order(
        "t", order_id, s.now, ticker="Q", side=BID, price=D(price), count=D(count), **kwargs
    )


@pytest.mark.parametrize(("balance", "accepted"), [("5.375", True), ("5.3749", False)])
def test_an_amend_needs_the_taker_fee_budget_and_exactly_that_is_enough(
    balance: str, accepted: bool
) -> None:
    # 10 at 0.50 costs 5.00; its fee budget is the taker fee at the worst price it may trade at,
    # ceil(0.07 * 10 * 0.50 * 0.50) = 0.175, plus 0.02 per contract of rounding: 5.375 in all.
    s = Sim({"t": balance})
    order = s.place("t", "Q", BID, "0.40", 10).order
    if accepted:
        _amend(s, order.order_id, "0.50", 10)
        assert order.price == D("0.50") and order.status == "resting"
        # Resting, it holds its cost and the maker budget (no maker fee on Q): 5.00 + 0.20.
        assert s.available("t") == D("0.175")
    else:
        refused(s.ex, lambda: _amend(s, order.order_id, "0.50", 10), 400, "insufficient_balance")


def test_an_amend_that_keeps_price_and_count_keeps_the_queue_position() -> None:
    s = Sim()
    first = s.place("t", "Q", BID, "0.40", 5).order
    second = s.place("mm", "Q", BID, "0.40", 5).order
    seq = s.seq(first.order_id)
    later = W // 1000 + 3600
    _amend(s, first.order_id, "0.40", 5, expiration_s=later)
    assert first.expiration_s == later and s.seq(first.order_id) == seq
    assert s.book("Q") == [first.order_id, second.order_id]


def test_an_amend_expiring_at_the_current_time_is_refused() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 5).order
    assert s.now % 1000 == 0
    refused(
        s.ex,
        lambda: _amend(s, order.order_id, "0.41", 5, expiration_s=s.now // 1000),
        400,
        "invalid_expiration",
    )


def test_a_post_only_order_can_be_amended_to_a_price_that_does_not_cross() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.60", 5)
    order = s.place("t", "Q", BID, "0.40", 5, post_only=True).order
    result = _amend(s, order.order_id, "0.45", 5)
    assert result.fills == () and (order.price, order.status) == (D("0.45"), "resting")


# ---- collateral -----------------------------------------------------------------------------


def test_each_fill_of_a_resting_order_releases_its_share_of_the_fee_budget() -> None:
    s = Sim()
    order = s.place("mm", "MF", BID, "0.40", 10).order
    # The maker budget: ceil(0.0175 * 10 * 0.40 * 0.60) = 0.042, plus 0.02 per contract.
    budget = D("0.042") + D("0.20")
    assert order.fee_reserved == budget
    s.place("t", "MF", ASK, "0.40", 4)
    assert order.remaining == 6
    assert order.fee_reserved == s.ex.account("mm").fee_reserved[0] == budget * 6 / 10
    s.ex.cancel_order("mm", order.order_id, s.now)
    assert order.fee_reserved == 0 and s.ex.account("mm").fee_reserved[0] == 0
    assert s.available("mm") == s.cash("mm")


# ---- expiry and time ------------------------------------------------------------------------


def test_an_expiry_passing_an_order_that_no_longer_rests_changes_nothing() -> None:
    s = Sim()
    expiry_s = W // 1000 + 60
    cancelled = s.place("t", "Q", BID, "0.40", 5, expiration_s=expiry_s).order
    executed = s.place("t", "Q", BID, "0.41", 5, expiration_s=expiry_s).order
    s.now += 1
    s.ex.cancel_order("t", cancelled.order_id, s.now)
    s.place("mm", "Q", ASK, "0.41", 5)
    s.ex.advance(expiry_s * 1000)
    assert (cancelled.status, cancelled.updated_ms) == ("canceled", W + 1)
    assert (executed.status, executed.updated_ms) == ("executed", W + 1)
    assert s.reserved("t") == 0


def test_an_expiry_removed_by_amend_no_longer_cancels() -> None:
    s = Sim()
    expiry_s = W // 1000 + 60
    order = s.place("t", "Q", BID, "0.40", 5, expiration_s=expiry_s).order
    _amend(s, order.order_id, "0.40", 5, expiration_s=0)
    s.ex.advance(expiry_s * 1000 + 1)
    assert order.status == "resting" and order.expiration_s is None


def test_cancel_all_lets_time_pass_first() -> None:
    # At the close, the market closes (cancelling its orders) before cancel_all looks.
    s = Sim()
    order = s.place("mm", "Q", ASK, "0.60", 5).order
    assert s.ex.cancel_all("mm", CLOSE) == []
    assert s.ex.markets["Q"].status == "closed"
    assert (order.status, order.updated_ms) == ("canceled", CLOSE)


def test_a_market_closing_at_the_scenario_start_takes_no_orders() -> None:
    scenario = {
        "start_ms": START_MS,
        "series": [{"ticker": "S", "title": "Series", "category": "Test"}],
        "events": [{"event_ticker": "E", "series_ticker": "S", "title": "Event"}],
        "markets": [
            {
                "ticker": ticker,
                "event_ticker": "E",
                "title": ticker,
                "yes_sub_title": "Y",
                "no_sub_title": "N",
                "close_after_ms": close_after_ms,
            }
            for ticker, close_after_ms in (("OPEN", 60_000), ("DONE", 0))
        ],
        "accounts": [{"user_id": "a", "balance": "100"}],
    }
    ex = build_exchange(scenario)
    # With no liquidity to place, nothing has run yet: a market open at the start is active.
    assert ex.markets["OPEN"].status == "active"
    with pytest.raises(ExchangeError) as info:
        ex.place_order(
            "a",
            ticker="DONE",
            side=Side.BID,
            price=D("0.50"),
            count=D(1),
            tif=TimeInForce.GTC,
            stp=StpMode.MAKER,
            client_order_id="late",
            wall_ms=START_MS,
        )
    assert (info.value.status, info.value.code) == (400, "market_closed")
    assert ex.markets["DONE"].status == "closed"


# ---- positions, transfers and settlement ----------------------------------------------------


def test_a_fill_stamps_both_positions_with_its_time() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.40", 5)
    s.now += 5
    s.place("t", "Q", BID, "0.40", 5)
    for user in ("t", "mm"):
        assert s.ex.position(s.ex.account(user), 0, "Q").updated_ms == W + 5


def test_transfer_ids_are_per_user() -> None:
    s = Sim()
    for user, amount in (("t", D(5)), ("mm", D(7))):
        sub = s.ex.create_subaccount(user)
        s.ex.transfer(user, 0, sub, amount, transfer_id="x-1", wall_ms=s.now)
        assert s.cash(user, sub) == amount


def test_everything_available_can_be_transferred() -> None:
    s = Sim()
    sub = s.ex.create_subaccount("t")
    s.ex.transfer("t", 0, sub, D(1000), transfer_id="all", wall_ms=s.now)
    assert (s.cash("t"), s.cash("t", sub)) == (D(0), D(1000))


def test_a_flat_position_that_paid_no_fees_gets_no_settlement() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.40", 5)
    s.place("t", "Q", BID, "0.40", 5)  # mm 5 NO (no maker fee on Q), t 5 YES
    s.place("mm", "Q", BID, "0.50", 5)
    s.place("t", "Q", ASK, "0.50", 5)  # both flat again
    s.ex.determine_market("Q", "yes", W + 10)
    [record] = s.ex.settle_market("Q", W + 20)
    # t paid ceil(0.07 * 5 * 0.40 * 0.60) = 0.084 and ceil(0.07 * 5 * 0.50 * 0.50) = 0.0875.
    assert (record.user_id, record.yes_count, record.no_count, record.revenue, record.fees) == (
        "t",
        D(0),
        D(0),
        D(0),
        D("0.1715"),
    )


def test_settlement_leaves_a_no_position_with_no_cost_basis() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.40", 3)
    s.place("t", "Q", BID, "0.40", 3)  # mm 3 NO at 0.60
    s.ex.determine_market("Q", "no", W + 10)
    records = {r.user_id: r for r in s.ex.settle_market("Q", W + 20)}
    assert (records["mm"].no_count, records["mm"].no_cost, records["mm"].revenue) == (
        D(3),
        D("1.80"),
        D(3),
    )
    pos = s.ex.position(s.ex.account("mm"), 0, "Q")
    assert (pos.position, pos.exposure, pos.yes_cost, pos.no_cost) == (D(0), D(0), D(0), D(0))


# ---- REST -----------------------------------------------------------------------------------


def test_a_one_contract_fill_reports_its_average_price_and_fee(h: Harness) -> None:
    sold = h.ok(
        calls.create_order_v2(
            order_request(side="ask", price="0.54", count="1", client_order_id="one")
        )
    )
    # KXBTCD is quadratic with multiplier 1: ceil(0.07 * 1 * 0.54 * 0.46) = 0.0174.
    assert (sold.fill_count, sold.average_fill_price, sold.average_fee_paid) == (
        D(1),
        D("0.54"),
        D("0.0174"),
    )


def test_settlement_value_is_the_payout_of_one_yes_contract(h: Harness) -> None:
    # The spec's Settlement.value: "Payout of a single yes contract in cents".
    for ticker, price, result in ((C50, "0.03", "yes"), (HOLD, "0.82", "no")):
        h.ex.place_order(
            "trader",
            ticker=ticker,
            side=Side.BID,
            price=D(price),
            count=D(2),
            tif=TimeInForce.IOC,
            stp=StpMode.TAKER_AT_CROSS,
            client_order_id=f"buy-{ticker}",
            wall_ms=START_MS,
        )
        h.ex.determine_market(ticker, result, START_MS)
        h.ex.settle_market(ticker, START_MS)
    settlements = h.ok(calls.get_settlements())
    assert [(s.ticker, s.market_result, s.revenue, s.value) for s in settlements] == [
        (HOLD, "no", 0, 0),
        (C50, "yes", 200, 100),
    ]


def test_candlesticks_for_a_single_instant(h: Harness) -> None:
    rest_app._trade(h, START_MS, "0.56", 1)  # START_S is a whole minute
    candles = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S, end_ts=START_S, period_interval=1
        )
    ).candlesticks
    assert [(c.end_period_ts, c.volume_fp) for c in candles] == [(START_S, D(1))]


def test_order_view_prices_and_exchange_index(h: Harness) -> None:
    placed = h.ok(calls.create_order_v2(order_request(price="0.52", client_order_id="view")))
    order = h.ok(calls.get_order(placed.order_id)).order
    assert (order.yes_price_dollars, order.no_price_dollars) == (D("0.52"), D("0.48"))
    assert order.exchange_index == 0


def test_market_view_of_an_unchanged_market(h: Harness) -> None:
    market = h.ok(calls.get_market(T100K)).market
    assert market.updated_time == market.created_time
    # The local exchange settles when told to, with no timer, on its one shard.
    assert (market.settlement_timer_seconds, market.exchange_index) == (0, 0)


def test_an_order_group_is_on_shard_zero(h: Harness) -> None:
    created = h.ok(calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit_fp=D(5))))
    assert created.exchange_index == 0
    assert h.ok(calls.get_order_group(created.order_group_id)).exchange_index == 0


def test_orderbook_depth_zero_is_every_level_and_over_100_is_refused(h: Harness) -> None:
    # The spec: "0 or negative means all levels, 1-100 for specific depth", with minimum 0 and
    # maximum 100 on the parameter.
    everything = h.ok(calls.get_market_orderbook(T100K, depth=0)).orderbook_fp
    assert len(everything.yes_dollars) == len(everything.no_dollars) == 3
    response = h.raw("GET", PREFIX + f"/markets/{T100K}/orderbook?depth=100")
    assert response.status == 200
    response = h.raw("GET", PREFIX + f"/markets/{T100K}/orderbook?depth=101")
    assert response.status == 400 and error(response)["code"] == "invalid_parameters"


def test_drop_share_picks_responses_with_the_rng(keys: Keys) -> None:
    app = rest_app._app(keys, Faults(drop_share=0.5), random.Random(5).random)
    status = HttpRequest("GET", PREFIX + "/exchange/status", (), b"")
    kinds = [type(app.handle(status, now=0.0, wall_ms=WALL)) for _ in range(100)]
    rng = random.Random(5)
    assert kinds == [Drop if rng.random() < 0.5 else Respond for _ in range(100)]
    assert set(kinds) == {Drop, Respond}
