"""Tests for kalshi_proto.sim.exchange: accounts, collateral, fills and fees, order groups,
amend/decrease/cancel, subaccounts, the market lifecycle and settlement.

Unit tests pin each command and each refusal (a refused command leaves the exchange exactly as
it was); Hypothesis runs random place/cancel/amend/decrease sequences by three users on two
markets, then determines and settles both, and checks conservation of money, collateral
bookkeeping, zero-sum positions and determinism.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kalshi_proto.errors import ConfigurationError
from kalshi_proto.sim.exchange import (
    EventState,
    Exchange,
    ExchangeError,
    MarketState,
    PlaceResult,
    PositionState,
    SeriesState,
)
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce

BID, ASK = Side.BID, Side.ASK
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
TAKER, MAKER = StpMode.TAKER_AT_CROSS, StpMode.MAKER

W = 1_767_225_600_000  #: 2026-01-01T00:00:00Z, the exchange's start
CLOSE = W + 10 * 86_400_000
OPEN_LATER = W + 60_000

#: ticker -> (series ticker, fee type, fee multiplier, tick)
MARKETS: dict[str, tuple[str, str, str, str]] = {
    "Q": ("SQ", "quadratic", "1", "0.01"),
    "MF": ("SM", "quadratic_with_maker_fees", "1", "0.01"),
    "COMBO": ("SC", "quadratic_with_combo_maker_fees", "1", "0.01"),
    "FLAT": ("SF", "flat", "0.02", "0.01"),
    "HALF": ("SH", "quadratic", "0.5", "0.01"),
    "CC": ("SCC", "quadratic", "1", "0.0001"),
    "DECI": ("SD", "quadratic", "1", "0.001"),
}


def D(value: str | int) -> Decimal:
    return Decimal(value)


def make_exchange(seed: int = 0, markets: tuple[str, ...] = tuple(MARKETS)) -> Exchange:
    ex = Exchange(seed=seed)
    ex.wall_ms = W
    for ticker in markets:
        series, fee_type, multiplier, tick = MARKETS[ticker]
        ex.add_series(
            SeriesState(
                series, f"Series {series}", "Test", fee_type=fee_type, fee_multiplier=D(multiplier)
            )
        )
        ex.add_event(EventState(f"E-{ticker}", series, f"Event {ticker}"))
        ex.add_market(
            MarketState(
                ticker,
                f"E-{ticker}",
                f"Market {ticker}",
                "Yes",
                "No",
                open_ms=W,
                close_ms=CLOSE,
                created_ms=W,
                tick=D(tick),
            )
        )
    return ex


class Sim:
    """An exchange, a clock and a client-order-id counter, so tests read like order entry."""

    def __init__(self, balances: dict[str, str] | None = None, seed: int = 0) -> None:
        self.ex = make_exchange(seed)
        self.now = W
        self.n = 0
        for user, balance in (balances or {"mm": "1000", "t": "1000"}).items():
            self.ex.add_account(user, D(balance))

    def place(
        self,
        user: str,
        ticker: str,
        side: Side,
        price: str,
        count: str | int,
        tif: TimeInForce = GTC,
        stp: StpMode = TAKER,
        **kwargs: Any,
    ) -> PlaceResult:
        self.n += 1
        kwargs.setdefault("client_order_id", f"c{self.n}")
        kwargs.setdefault("wall_ms", self.now)
        return self.ex.place_order(
            user,
            ticker=ticker,
            side=side,
            price=D(price),
            count=D(count),
            tif=tif,
            stp=stp,
            **kwargs,
        )

    def cash(self, user: str, sub: int = 0) -> Decimal:
        return self.ex.account(user).cash[sub]

    def reserved(self, user: str, sub: int = 0) -> Decimal:
        return self.ex.account(user).reserved[sub]

    def available(self, user: str, sub: int = 0) -> Decimal:
        return self.ex.account(user).available(sub)

    def position(self, user: str, ticker: str, sub: int = 0) -> Decimal:
        return self.ex.position(self.ex.account(user), sub, ticker).position

    def seq(self, order_id: str) -> int:
        """The time-priority stamp of a resting order."""
        resting = self.ex.markets[self.ex.orders[order_id].ticker].book.get(order_id)
        assert resting is not None
        return resting.seq

    def book(self, ticker: str) -> list[str]:
        return [o.order_id for o in self.ex.markets[ticker].book.orders()]


def fingerprint(ex: Exchange) -> Any:
    """Everything a command may change (ids counter and clock excluded)."""
    return (
        {
            u: (
                dict(a.cash),
                dict(a.reserved),
                {k: astuple(p) for k, p in a.positions.items() if p.position or p.fees_paid},
            )
            for u, a in ex.accounts.items()
        },
        [astuple(o) for o in ex.orders.values()],
        {
            t: (
                mk.status,
                mk.result,
                mk.last_price,
                mk.volume,
                mk.open_interest,
                [(o.order_id, o.remaining, o.seq) for o in mk.book.orders()],
            )
            for t, mk in ex.markets.items()
        },
        list(ex.fills),
        list(ex.trades),
        list(ex.settlements),
        list(ex.transfers),
        {g: (s.triggered, s.contracts_limit, tuple(s.window)) for g, s in ex.order_groups.items()},
        ex.fees_collected,
    )


def refused(ex: Exchange, call: Callable[[], object], status: int, code: str) -> ExchangeError:
    """Run a command that must be refused; check the answer and that nothing moved."""
    before = fingerprint(ex)
    with pytest.raises(ExchangeError) as info:
        call()
    assert (info.value.status, info.value.code) == (status, code), info.value.message
    assert fingerprint(ex) == before
    return info.value


def money_total(ex: Exchange) -> Decimal:
    return ex.total_cash() + ex.total_open_interest() + ex.fees_collected


# ---- set-up, ids, lookups -------------------------------------------------------------------


def test_setup_refuses_dangling_references() -> None:
    ex = Exchange()
    with pytest.raises(ValueError, match="unknown series"):
        ex.add_event(EventState("E", "NOPE", "e"))
    ex.add_series(SeriesState("S", "s", "c"))
    with pytest.raises(ValueError, match="unknown event"):
        ex.add_market(MarketState("M", "NOPE", "m", "y", "n", open_ms=0, close_ms=1, created_ms=0))


def test_ids_are_uuids_of_seed_kind_and_counter() -> None:
    assert Exchange(seed=7).new_id(3) == str(uuid.UUID(int=(7 << 96) | (3 << 64) | 1))
    ex = Exchange()
    assert [ex.new_id(1), ex.new_id(2)] == [
        str(uuid.UUID(int=(1 << 64) | 1)),
        str(uuid.UUID(int=(2 << 64) | 2)),
    ]


def test_the_seed_fills_the_top_32_bits_of_an_id_and_must_fit_them() -> None:
    top = (1 << 32) - 1
    assert Exchange(seed=top).new_id(0) == str(uuid.UUID(int=(top << 96) | 1))
    for wrong in (-1, 1 << 32, True, 1.0, "7"):
        with pytest.raises(ConfigurationError, match=r"^seed must be an int from 0 to 2\*\*32 - 1"):
            Exchange(seed=wrong)  # type: ignore[arg-type]


def test_an_account_balance_is_exact_money_of_0_or_more() -> None:
    ex = Exchange()
    assert ex.add_account("a", 5).cash[0] == Decimal(5)  # an int is exact too
    assert type(ex.accounts["a"].cash[0]) is Decimal
    assert ex.add_account("b", Decimal("0")).cash[0] == 0
    with pytest.raises(ConfigurationError, match=r"exact: use Decimal\('100.50'\)\), got 1.5$"):
        ex.add_account("c", 1.5)  # type: ignore[arg-type]
    for wrong in (Decimal("-0.01"), Decimal("NaN"), Decimal("Infinity"), "100", True, None):
        with pytest.raises(ConfigurationError, match=r"^a balance must be a finite Decimal of 0"):
            ex.add_account("c", wrong)  # type: ignore[arg-type]
    assert "c" not in ex.accounts


def test_price_level_structure() -> None:
    ex = make_exchange()
    assert ex.markets["Q"].price_level_structure == "linear_cent"
    assert ex.markets["DECI"].price_level_structure == "deci_cent"
    assert ex.markets["CC"].price_level_structure == "custom"


def test_key_owner_and_account_lookups() -> None:
    ex = make_exchange()
    alice = ex.add_account("alice", D(10), {"k1": b"PEM1"})
    ex.add_account("bob", D(5))
    assert ex.key_owner("k1") == (alice, b"PEM1")
    assert ex.key_owner("k2") is None
    assert ex.account("alice") is alice
    assert alice.available(0) == D(10)
    assert ex.total_cash() == D(15)
    with pytest.raises(ExchangeError) as info:
        ex.market("NOPE")
    assert (info.value.status, info.value.code, info.value.details) == (
        404,
        "market_not_found",
        None,
    )
    assert str(info.value) == "market NOPE not found"
    with pytest.raises(ExchangeError):
        ex.order_of("alice", "missing")
    assert ex.subaccount_number(alice, None) == 0
    with pytest.raises(ExchangeError) as info:
        ex.subaccount_number(alice, 3)
    assert (info.value.status, info.value.code) == (400, "invalid_subaccount")


# ---- placing: refusals ----------------------------------------------------------------------


def test_unknown_market_is_404() -> None:
    s = Sim()
    refused(s.ex, lambda: s.place("t", "NOPE", BID, "0.50", 1), 404, "market_not_found")


def test_market_not_active_is_refused() -> None:
    s = Sim()
    s.ex.add_market(
        MarketState(
            "LATER",
            "E-Q",
            "Later",
            "Yes",
            "No",
            open_ms=OPEN_LATER,
            close_ms=CLOSE,
            created_ms=W,
            status="initialized",
        )
    )
    refused(s.ex, lambda: s.place("t", "LATER", BID, "0.50", 1), 400, "market_closed")
    s.ex.close_market("Q", W)
    refused(s.ex, lambda: s.place("t", "Q", BID, "0.50", 1), 400, "market_closed")


@pytest.mark.parametrize(
    ("ticker", "price"),
    [("Q", "0.505"), ("Q", "0"), ("Q", "1"), ("Q", "-0.10"), ("DECI", "0.5005"), ("CC", "1.0001")],
)
def test_bad_price_is_refused(ticker: str, price: str) -> None:
    s = Sim()
    refused(s.ex, lambda: s.place("t", ticker, BID, price, 1), 400, "invalid_price")


def test_finer_ticks_are_accepted_where_the_market_allows_them() -> None:
    s = Sim()
    assert s.place("t", "DECI", BID, "0.505", 1).order.status == "resting"
    assert s.place("t", "CC", BID, "0.5555", 1).order.status == "resting"


@pytest.mark.parametrize("count", ["0", "-1"])
def test_count_must_be_positive(count: str) -> None:
    s = Sim()
    refused(s.ex, lambda: s.place("t", "Q", BID, "0.50", count), 400, "invalid_count")


def test_unknown_subaccount_is_refused() -> None:
    s = Sim()
    refused(
        s.ex, lambda: s.place("t", "Q", BID, "0.50", 1, subaccount=2), 400, "invalid_subaccount"
    )


def test_insufficient_balance_and_the_exact_boundary() -> None:
    # 10 YES at 0.40 cost 4.00 plus the fee budget: the taker fee at the worst price it may trade
    # at, ceil(0.07 * 10 * 0.4 * 0.6) = 0.1680, plus 0.02 per contract of rounding, 0.20.
    s = Sim({"t": "4.3679", "u": "4.3680", "v": "5.8750"})
    err = refused(s.ex, lambda: s.place("t", "Q", BID, "0.40", 10), 400, "insufficient_balance")
    assert "4.3680" in err.message
    placed = s.place("u", "Q", BID, "0.40", 10).order
    assert placed.reserved == D("4.00")
    assert placed.fee_reserved == D("0.20")  # no maker fees on Q: the rounding budget only
    # An ask (selling YES = buying NO) costs 1 - price per contract; below 0.50 it may trade up
    # to 0.50, so the worst P(1-P) is 0.25: 5.50 + ceil(0.07 * 10 * 0.25) + 0.20 = 5.8750.
    assert s.place("v", "Q", ASK, "0.45", 10).order.reserved == D("5.50")
    # Reserved collateral and fee budget are not available to the next order.
    # u has 0.1680 left; 1 at 0.20 needs 0.20 + 0.0112 + 0.02.
    refused(s.ex, lambda: s.place("u", "Q", BID, "0.20", 1), 400, "insufficient_balance")


def test_duplicate_client_order_id_is_409_per_user() -> None:
    s = Sim()
    s.place("t", "Q", BID, "0.40", 1, client_order_id="same")
    refused(
        s.ex,
        lambda: s.place("t", "MF", ASK, "0.60", 1, client_order_id="same"),
        409,
        "duplicate_client_order_id",
    )
    # Another user may use the same id.
    assert (
        s.place("mm", "Q", BID, "0.40", 1, client_order_id="same").order.client_order_id == "same"
    )


def test_expiration_must_be_in_the_future() -> None:
    s = Sim()
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, expiration_s=W // 1000),
        400,
        "invalid_expiration",
    )
    assert (
        s.place("t", "Q", BID, "0.40", 1, expiration_s=W // 1000 + 1).order.expiration_s
        == W // 1000 + 1
    )


def test_post_only_cross_is_refused_and_a_post_only_that_does_not_cross_rests() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.45", 5)
    refused(s.ex, lambda: s.place("t", "Q", BID, "0.45", 1, post_only=True), 400, "post_only_cross")
    result = s.place("t", "Q", BID, "0.44", 1, post_only=True)
    assert result.fills == () and result.order.status == "resting" and result.order.post_only


def test_reduce_only_without_a_position_is_refused() -> None:
    s = Sim()
    refused(
        s.ex,
        lambda: s.place("t", "Q", ASK, "0.40", 1, IOC, reduce_only=True),
        400,
        "reduce_only_no_position",
    )
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, IOC, reduce_only=True),
        400,
        "reduce_only_no_position",
    )


def test_reduce_only_is_capped_by_the_position() -> None:
    s = Sim({"mm": "1000", "t": "1000", "x": "1000"})
    s.place("mm", "Q", ASK, "0.40", 5)
    s.place("t", "Q", BID, "0.40", 5)
    assert s.position("t", "Q") == 5 and s.position("mm", "Q") == -5
    # t holds 5 YES: a reduce-only bid (buying more YES) has nothing to reduce.
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, IOC, reduce_only=True),
        400,
        "reduce_only_no_position",
    )
    s.place("x", "Q", BID, "0.35", 100)
    result = s.place("t", "Q", ASK, "0.35", 8, IOC, reduce_only=True)
    assert (
        result.order.initial_count == 5
        and result.order.fill_count == 5
        and result.order.reduce_only
    )
    assert s.position("t", "Q") == 0
    # mm holds 5 NO (short YES): a reduce-only bid closes it, capped at the 5 held.
    s.place("x", "Q", ASK, "0.45", 50)
    result = s.place("mm", "Q", BID, "0.45", 50, IOC, reduce_only=True)
    assert result.order.fill_count == 5 and s.position("mm", "Q") == 0


def test_order_group_refusals() -> None:
    s = Sim()
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, order_group_id="nope"),
        404,
        "order_group_not_found",
    )
    group = s.ex.create_order_group("mm", D(5), s.now)
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, order_group_id=group.order_group_id),
        404,
        "order_group_not_found",
    )
    refused(s.ex, lambda: s.ex.create_order_group("t", D(0), s.now), 400, "invalid_contracts_limit")
    refused(s.ex, lambda: s.ex.order_group("t", group.order_group_id), 404, "order_group_not_found")
    refused(
        s.ex,
        lambda: s.ex.update_order_group_limit("mm", group.order_group_id, D(-1), s.now),
        400,
        "invalid_contracts_limit",
    )


def test_an_order_group_lives_in_an_existing_subaccount_and_takes_only_its_orders() -> None:
    s = Sim()
    refused(s.ex, lambda: s.ex.create_order_group("t", D(5), s.now, 9), 400, "invalid_subaccount")
    assert s.ex.order_groups == {}
    sub = s.ex.create_subaccount("t")
    s.ex.transfer("t", 0, sub, D(100), transfer_id="x", wall_ms=s.now)
    group = s.ex.create_order_group("t", D(5), s.now, sub)
    assert group.subaccount == sub
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.40", 1, order_group_id=group.order_group_id),
        400,
        "invalid_subaccount",
    )
    placed = s.place("t", "Q", BID, "0.40", 1, order_group_id=group.order_group_id, subaccount=sub)
    assert placed.order.order_group_id == group.order_group_id
    assert s.ex.create_order_group("t", D(5), s.now).subaccount == 0


# ---- fills, collateral and fees -------------------------------------------------------------


def test_a_fill_moves_cash_collateral_positions_and_market_stats() -> None:
    s = Sim()
    maker = s.place("mm", "Q", ASK, "0.40", 10).order
    assert s.reserved("mm") == D("6.00") and s.cash("mm") == D(1000)
    s.now += 5
    result = s.place("t", "Q", BID, "0.45", 4)
    taker = result.order
    # The trade is at the resting price; the taker pays ceil(0.07 * 4 * 0.4 * 0.6) = 0.0672.
    assert [(f.order_id, f.is_taker, f.price, f.count, f.fee) for f in result.fills] == [
        (taker.order_id, True, D("0.40"), D(4), D("0.0672")),
        (maker.order_id, False, D("0.40"), D(4), D(0)),
    ]
    assert s.cash("t") == D("998.3328") and s.reserved("t") == 0
    assert s.cash("mm") == D("997.60") and s.reserved("mm") == D("3.60")
    assert maker.reserved == D("3.60") and maker.remaining == 6 and maker.status == "resting"
    assert (taker.status, taker.fill_count, taker.remaining) == ("executed", D(4), D(0))
    assert (taker.taker_fill_cost, taker.taker_fees) == (D("1.60"), D("0.0672"))
    assert (maker.maker_fill_cost, maker.maker_fees, maker.fill_count) == (D("2.40"), D(0), D(4))
    assert s.position("t", "Q") == 4 and s.position("mm", "Q") == -4
    market = s.ex.markets["Q"]
    assert (market.last_price, market.volume, market.open_interest) == (D("0.40"), D(4), D(4))
    assert s.ex.total_open_interest() == 4
    assert s.ex.fees_collected == D("0.0672")
    [trade] = s.ex.trades
    assert (trade.price, trade.count, trade.taker_side, trade.created_ms) == (
        D("0.40"),
        D(4),
        BID,
        W + 5,
    )
    assert all(f.trade_id == trade.trade_id for f in result.fills)
    assert list(s.ex.user_fills("t")) == [result.fills[0]]
    assert list(s.ex.user_orders("mm")) == [maker]
    assert money_total(s.ex) == D(2000)
    pos = s.ex.position(s.ex.account("t"), 0, "Q")
    assert (pos.exposure, pos.yes_cost, pos.total_traded, pos.fees_paid) == (
        D("1.60"),
        D("1.60"),
        D("1.60"),
        D("0.0672"),
    )


def test_ioc_and_fok_statuses() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.40", 3)
    partly = s.place("t", "Q", BID, "0.40", 5, IOC).order
    assert (partly.status, partly.fill_count, partly.remaining) == ("executed", D(3), D(0))
    nothing = s.place("t", "Q", BID, "0.40", 5, IOC).order
    assert (nothing.status, nothing.fill_count) == ("canceled", D(0))
    s.place("mm", "Q", ASK, "0.40", 3)
    killed = s.place("t", "Q", BID, "0.40", 5, FOK)
    assert killed.fills == () and killed.order.status == "canceled"
    assert s.reserved("t") == 0


def test_self_trade_prevention_maker_cancels_the_own_order_and_releases_its_collateral() -> None:
    s = Sim({"mm": "1000", "t": "1000", "x": "1000"})
    own = s.place("t", "Q", ASK, "0.40", 5).order
    other = s.place("x", "Q", ASK, "0.41", 5).order
    assert s.reserved("t") == D("3.00")
    result = s.place("t", "Q", BID, "0.41", 3, IOC, MAKER)
    assert own.status == "canceled" and own.reserved == 0 and own.remaining == 0
    assert [(f.order_id, f.count) for f in result.fills] == [
        (result.order.order_id, D(3)),
        (other.order_id, D(3)),
    ]
    assert s.reserved("t") == 0 and s.position("t", "Q") == 3


def test_self_trade_prevention_taker_at_cross_keeps_fills_and_cancels_the_rest() -> None:
    s = Sim({"mm": "1000", "t": "1000", "x": "1000"})
    other = s.place("x", "Q", ASK, "0.40", 2).order
    own = s.place("t", "Q", ASK, "0.41", 5).order
    result = s.place("t", "Q", BID, "0.45", 6, GTC, TAKER)
    assert [f.order_id for f in result.fills] == [result.order.order_id, other.order_id]
    assert (result.order.status, result.order.fill_count, result.order.remaining) == (
        "executed",
        D(2),
        D(0),
    )
    assert own.status == "resting" and s.reserved("t") == own.reserved == D("2.95")
    stopped = s.place("t", "Q", BID, "0.45", 1, GTC, TAKER).order
    assert stopped.status == "canceled" and stopped.fill_count == 0


def test_closing_positions_releases_a_dollar_per_pair() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.40", 5)
    s.place("t", "Q", BID, "0.40", 5)  # t: +5 YES at 0.40; mm: 5 NO at 0.60
    t_cash, mm_cash = s.cash("t"), s.cash("mm")
    s.place("mm", "Q", BID, "0.50", 3)  # mm buys YES while holding NO: closes 3 pairs
    result = s.place("t", "Q", ASK, "0.50", 3)  # t sells YES it holds: closes 3
    taker_fee = result.fills[0].fee
    assert taker_fee == D("0.0525")  # ceil(0.07 * 3 * 0.25)
    # Each side receives what closing pays: t gets 0.50, mm gets 1 - 0.50, per contract.
    assert s.cash("t") == t_cash + D("1.50") - taker_fee
    assert s.cash("mm") == mm_cash + D("1.50")
    assert s.reserved("mm") == 0
    assert s.position("t", "Q") == 2 and s.position("mm", "Q") == -2
    assert s.ex.markets["Q"].open_interest == 2
    t_pos = s.ex.position(s.ex.account("t"), 0, "Q")
    mm_pos = s.ex.position(s.ex.account("mm"), 0, "Q")
    assert (
        t_pos.realized_pnl == D("0.30")
        and t_pos.exposure == D("0.80")
        and t_pos.yes_cost == D("0.80")
    )
    assert (
        mm_pos.realized_pnl == D("-0.30")
        and mm_pos.exposure == D("1.20")
        and mm_pos.no_cost == D("1.20")
    )
    assert money_total(s.ex) == D(2000)


def test_trade_fee_by_series() -> None:
    ex = make_exchange()
    fee = ex.trade_fee
    c, p = D(10), D("0.40")
    assert fee(ex.markets["Q"], c, p, taker=True) == D("0.1680")
    assert fee(ex.markets["Q"], c, p, taker=False) == 0
    assert fee(ex.markets["MF"], c, p, taker=False) == D("0.0420")
    assert fee(ex.markets["COMBO"], c, p, taker=False) == D("0.0420")
    assert fee(ex.markets["HALF"], c, p, taker=True) == D("0.0840")
    assert fee(ex.markets["FLAT"], c, p, taker=True) == D("0.20")
    assert fee(ex.markets["FLAT"], c, p, taker=False) == 0
    # Rounded up to $0.0001: 0.07 * 3 * 0.33 * 0.67 = 0.046431.
    assert fee(ex.markets["Q"], D(3), D("0.33"), taker=True) == D("0.0465")
    assert fee(ex.markets["FLAT"], D("0.01"), p, taker=True) == D("0.0002")


@pytest.mark.parametrize(
    ("ticker", "taker_fee", "maker_fee"),
    [
        ("Q", "0.1680", "0"),
        ("MF", "0.1680", "0.0420"),
        ("COMBO", "0.1680", "0.0420"),
        ("HALF", "0.0840", "0"),
        ("FLAT", "0.20", "0"),
    ],
)
def test_fees_charged_on_fills(ticker: str, taker_fee: str, maker_fee: str) -> None:
    s = Sim()
    s.place("mm", ticker, ASK, "0.40", 10)
    result = s.place("t", ticker, BID, "0.40", 10)
    assert [f.fee for f in result.fills] == [D(taker_fee), D(maker_fee)]
    assert s.cash("t") == D(1000) - D("4.00") - D(taker_fee)
    assert s.cash("mm") == D(1000) - D("6.00") - D(maker_fee)
    assert s.ex.fees_collected == D(taker_fee) + D(maker_fee)
    pos = s.ex.position(s.ex.account("mm"), 0, ticker)
    assert pos.fees_paid == D(maker_fee)
    assert money_total(s.ex) == D(2000)


def test_rounding_fee_accumulates_per_order_and_comes_back_as_a_rebate() -> None:
    # A bid of 0.01 YES at $0.5555 costs $0.005555: the balance change is floored to $0.0001
    # (-0.0056) and the $0.000045 difference is a rounding fee. After 223 fills the order has
    # overpaid $0.010035 and gets $0.01 back.
    s = Sim()
    maker = s.place("mm", "CC", BID, "0.5555", 5).order
    rebate_fill = None
    for n in range(1, 224):
        s.now += 1
        fills = s.place("t", "CC", ASK, "0.5555", "0.01", IOC).fills
        taker_fill, maker_fill = fills
        # The taker (selling YES = buying NO at 0.4445): fee ceil(0.07 * 0.01 * 0.5555 * 0.4445)
        # = 0.0002, change -0.004645 floored to -0.0047.
        assert taker_fill.fee == D("0.000255")
        if n < 223:
            assert maker_fill.fee == D("0.000045"), n
        else:
            rebate_fill = maker_fill
    assert rebate_fill is not None and rebate_fill.fee == D("-0.009955")
    assert maker.rounding_accumulator == D("0.000035")
    assert maker.maker_fees == 223 * D("0.000045") - D("0.01")
    assert s.cash("mm") == D(1000) - 223 * D("0.0056") + D("0.01")
    assert s.cash("t") == D(1000) - 223 * D("0.0047")
    assert s.ex.fees_collected == 223 * D("0.000255") + maker.maker_fees
    assert money_total(s.ex) == D(2000)


# ---- order groups ---------------------------------------------------------------------------


def test_order_group_trips_cancels_its_orders_and_refuses_new_ones_until_reset() -> None:
    s = Sim()
    group = s.ex.create_order_group("mm", D(10), s.now)
    gid = group.order_group_id
    assert s.ex.order_group("mm", gid) is group and group.subaccount == 0
    a = s.place("mm", "Q", ASK, "0.60", 8, order_group_id=gid).order
    b = s.place("mm", "MF", ASK, "0.70", 8, order_group_id=gid).order
    outside = s.place("mm", "Q", ASK, "0.65", 8).order
    s.place("t", "Q", BID, "0.60", 6)
    assert not group.triggered and group.matched_in_window(s.now) == 6
    s.now += 1000
    s.place("t", "Q", BID, "0.60", 2)  # 8 matched: still under 10
    assert not group.triggered
    s.now += 1000
    s.place("t", "MF", BID, "0.70", 2)  # 10 matched in 15 s: trips
    assert group.triggered
    assert (a.status, b.status, outside.status) == ("executed", "canceled", "resting")
    assert s.reserved("mm") == outside.reserved
    refused(
        s.ex,
        lambda: s.place("mm", "Q", ASK, "0.60", 1, order_group_id=gid),
        400,
        "order_group_triggered",
    )
    s.ex.reset_order_group("mm", gid, s.now)
    assert not group.triggered and group.matched_in_window(s.now) == 0
    assert s.place("mm", "Q", ASK, "0.60", 1, order_group_id=gid).order.status == "resting"


def test_order_group_counts_a_rolling_15_second_window() -> None:
    s = Sim()
    gid = s.ex.create_order_group("t", D(10), s.now).order_group_id
    s.place("mm", "Q", ASK, "0.60", 100)
    s.place("t", "Q", BID, "0.60", 6, order_group_id=gid)
    s.now += 15_000  # the first fill has left the window exactly now
    s.place("t", "Q", BID, "0.60", 6, order_group_id=gid)
    assert not s.ex.order_groups[gid].triggered
    s.now += 14_999
    s.place("t", "Q", BID, "0.60", 4, order_group_id=gid)
    assert s.ex.order_groups[gid].triggered


def test_trigger_delete_and_update_limit() -> None:
    s = Sim()
    gid = s.ex.create_order_group("mm", D(100), s.now, subaccount=None).order_group_id
    first = s.place("mm", "Q", ASK, "0.60", 5, order_group_id=gid).order
    s.ex.trigger_order_group("mm", gid, s.now)
    assert first.status == "canceled" and s.ex.order_groups[gid].triggered
    s.ex.reset_order_group("mm", gid, s.now)
    second = s.place("mm", "Q", ASK, "0.60", 5, order_group_id=gid).order
    s.place("t", "Q", BID, "0.60", 3)
    s.ex.update_order_group_limit("mm", gid, D(50), s.now)
    assert not s.ex.order_groups[gid].triggered and second.status == "resting"
    s.ex.update_order_group_limit("mm", gid, D(3), s.now)  # 3 already matched: trips at once
    assert s.ex.order_groups[gid].triggered and second.status == "canceled"
    s.ex.reset_order_group("mm", gid, s.now)
    third = s.place("mm", "Q", ASK, "0.60", 5, order_group_id=gid).order
    s.ex.delete_order_group("mm", gid, s.now)
    assert third.status == "canceled" and gid not in s.ex.order_groups
    assert s.reserved("mm") == 0
    refused(s.ex, lambda: s.ex.reset_order_group("mm", gid, s.now), 404, "order_group_not_found")


# ---- expiry and time ------------------------------------------------------------------------


def test_expiration_cancels_at_the_exact_time() -> None:
    s = Sim()
    expiry_s = W // 1000 + 60
    order = s.place("t", "Q", BID, "0.40", 10, expiration_s=expiry_s).order
    assert s.reserved("t") == D("4.00")
    s.ex.advance(expiry_s * 1000 - 1)
    assert order.status == "resting" and order.order_id in s.ex.markets["Q"].book
    s.ex.advance(expiry_s * 1000)
    assert order.status == "canceled" and order.order_id not in s.ex.markets["Q"].book
    assert order.updated_ms == expiry_s * 1000
    assert s.reserved("t") == 0 and order.reserved == 0


def test_time_never_goes_back_and_markets_open_and_close_on_time() -> None:
    s = Sim()
    s.ex.add_market(
        MarketState(
            "LATER",
            "E-Q",
            "Later",
            "Yes",
            "No",
            open_ms=OPEN_LATER,
            close_ms=OPEN_LATER + 1000,
            created_ms=W,
            status="initialized",
        )
    )
    s.ex.advance(W + 10)
    s.ex.advance(W)  # ignored
    assert s.ex.wall_ms == W + 10
    s.ex.advance(OPEN_LATER - 1)
    assert s.ex.markets["LATER"].status == "initialized"
    s.ex.advance(OPEN_LATER)
    assert (
        s.ex.markets["LATER"].status == "active" and s.ex.markets["LATER"].updated_ms == OPEN_LATER
    )
    s.now = OPEN_LATER
    order = s.place("t", "LATER", BID, "0.40", 1).order
    s.ex.advance(OPEN_LATER + 999)
    assert order.status == "resting"
    s.ex.advance(OPEN_LATER + 1000)
    assert s.ex.markets["LATER"].status == "closed" and order.status == "canceled"


def test_a_market_whose_open_and_close_passed_together_opens_then_closes() -> None:
    s = Sim()
    s.ex.add_market(
        MarketState(
            "BRIEF",
            "E-Q",
            "Brief",
            "Yes",
            "No",
            open_ms=W + 1,
            close_ms=W + 2,
            created_ms=W,
            status="initialized",
        )
    )
    s.ex.advance(W + 5)
    assert s.ex.markets["BRIEF"].status == "closed"


# ---- cancel, cancel_all, decrease -----------------------------------------------------------


def test_cancel_releases_collateral_and_refuses_twice() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 10).order
    s.now += 7
    got, count = s.ex.cancel_order("t", order.order_id, s.now)
    assert got is order and count == 10
    assert (order.status, order.remaining, order.reserved, order.updated_ms) == (
        "canceled",
        D(0),
        D(0),
        W + 7,
    )
    assert s.reserved("t") == 0 and s.book("Q") == []
    refused(s.ex, lambda: s.ex.cancel_order("t", order.order_id, s.now), 404, "order_not_resting")
    refused(s.ex, lambda: s.ex.cancel_order("t", "missing", s.now), 404, "order_not_found")


def test_another_users_order_is_not_found() -> None:
    s = Sim()
    order = s.place("mm", "Q", BID, "0.40", 10).order
    refused(s.ex, lambda: s.ex.cancel_order("t", order.order_id, s.now), 404, "order_not_found")
    refused(
        s.ex,
        lambda: s.ex.decrease_order("t", order.order_id, s.now, reduce_by=D(1), reduce_to=None),
        404,
        "order_not_found",
    )


def test_cancel_all_by_user_and_subaccount() -> None:
    s = Sim()
    sub = s.ex.create_subaccount("t")
    s.ex.transfer("t", 0, sub, D(100), transfer_id="x", wall_ms=s.now)
    a = s.place("t", "Q", BID, "0.40", 1).order
    b = s.place("t", "MF", BID, "0.40", 1, subaccount=sub).order
    other = s.place("mm", "Q", BID, "0.40", 1).order
    done = s.ex.cancel_all("t", s.now, subaccount=sub)
    assert done == [b] and a.status == "resting"
    assert s.ex.cancel_all("t", s.now) == [a]
    assert s.ex.cancel_all("t", s.now) == []
    assert other.status == "resting"


def test_decrease_by_and_to_keep_priority() -> None:
    s = Sim()
    first = s.place("mm", "Q", ASK, "0.60", 10).order
    second = s.place("t", "Q", ASK, "0.60", 10).order
    s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=D(3), reduce_to=None)
    assert first.remaining == 7 and first.reserved == D("2.80") and s.reserved("mm") == D("2.80")
    s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=None, reduce_to=D("2.5"))
    assert (
        first.remaining == D("2.5")
        and first.reserved == D("1.000")
        and s.reserved("mm") == D("1.000")
    )
    assert s.book("Q") == [first.order_id, second.order_id]
    assert s.ex.markets["Q"].book.levels(ASK) == [(D("0.60"), D("12.5"))]
    s.ex.decrease_order(
        "mm", first.order_id, s.now, reduce_by=None, reduce_to=D("2.5")
    )  # no change
    refused(
        s.ex,
        lambda: s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=D(3), reduce_to=None),
        400,
        "invalid_decrease",
    )
    refused(
        s.ex,
        lambda: s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=None, reduce_to=D(3)),
        400,
        "invalid_decrease",
    )
    s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=None, reduce_to=D(0))
    assert first.status == "canceled" and s.reserved("mm") == 0 and s.book("Q") == [second.order_id]
    refused(
        s.ex,
        lambda: s.ex.decrease_order("mm", first.order_id, s.now, reduce_by=D(1), reduce_to=None),
        400,
        "order_not_resting",
    )


# ---- amend ----------------------------------------------------------------------------------


def test_amend_count_decrease_at_the_same_price_keeps_priority() -> None:
    s = Sim()
    first = s.place("mm", "Q", ASK, "0.60", 10).order
    second = s.place("t", "Q", ASK, "0.60", 10).order
    result = s.ex.amend_order(
        "mm",
        first.order_id,
        s.now,
        ticker="Q",
        side=ASK,
        price=D("0.60"),
        count=D(6),
        updated_client_order_id="renamed",
    )
    assert result.fills == () and result.order is first
    assert first.remaining == 6 and first.reserved == D("2.40") and s.reserved("mm") == D("2.40")
    assert first.client_order_id == "renamed"
    assert s.book("Q") == [first.order_id, second.order_id]
    s.ex.add_account("x", D(100))
    got = s.place("x", "Q", BID, "0.60", 7).fills
    assert [(f.order_id, f.count) for f in got if not f.is_taker] == [
        (first.order_id, D(6)),
        (second.order_id, D(1)),
    ]


@pytest.mark.parametrize(("price", "count"), [("0.60", 12), ("0.61", 10), ("0.61", 5)])
def test_amend_loses_priority_on_any_other_change(price: str, count: int) -> None:
    s = Sim()
    first = s.place("mm", "Q", ASK, "0.60", 10).order
    second = s.place("t", "Q", ASK, "0.60", 10).order
    third = s.place("t", "Q", ASK, "0.61", 10).order
    result = s.ex.amend_order(
        "mm", first.order_id, s.now, ticker="Q", side=ASK, price=D(price), count=D(count)
    )
    assert result.fills == ()
    assert (first.price, first.remaining, first.initial_count) == (D(price), D(count), D(count))
    assert first.reserved == D(count) * (1 - D(price)) == s.reserved("mm")
    # Re-entered at the back of its (new) level.
    expected = (
        [second.order_id, first.order_id, third.order_id]
        if price == "0.60"
        else [second.order_id, third.order_id, first.order_id]
    )
    assert s.book("Q") == expected


def test_amend_that_crosses_trades_at_once() -> None:
    s = Sim()
    maker = s.place("mm", "Q", ASK, "0.55", 4).order
    order = s.place("t", "Q", BID, "0.50", 10).order
    result = s.ex.amend_order(
        "t", order.order_id, s.now, ticker="Q", side=BID, price=D("0.55"), count=D(10)
    )
    assert [(f.order_id, f.count) for f in result.fills] == [
        (order.order_id, D(4)),
        (maker.order_id, D(4)),
    ]
    assert order.status == "resting" and order.fill_count == 4 and order.remaining == 6
    assert order.reserved == D("3.30") == s.reserved("t")
    # A later amend counts the filled part: count is the new total.
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t", order.order_id, s.now, ticker="Q", side=BID, price=D("0.55"), count=D(4)
        ),
        400,
        "invalid_amend",
    )
    s.ex.amend_order("t", order.order_id, s.now, ticker="Q", side=BID, price=D("0.55"), count=D(5))
    assert order.remaining == 1 and order.reserved == D("0.55")
    s.place("mm", "Q", ASK, "0.60", 100)
    result = s.ex.amend_order(
        "t", order.order_id, s.now, ticker="Q", side=BID, price=D("0.60"), count=D(5)
    )
    assert (
        order.status == "executed"
        and order.fill_count == 5
        and order.reserved == 0
        and s.reserved("t") == 0
    )


def test_amend_refused_for_insufficient_funds_leaves_the_book_untouched() -> None:
    # 10 at 0.40 needs 4.00 + 0.1680 + 0.20; 11 would need 4.40 + ceil(0.07*11*0.24) + 0.22 =
    # 4.8048; 10 at 0.41 needs 4.10 + 0.1694 + 0.20 = 4.4694.
    s = Sim({"mm": "1000", "t": "4.47"})
    first = s.place("t", "Q", BID, "0.40", 10).order
    second = s.place("mm", "Q", BID, "0.40", 10).order
    seq = s.seq(first.order_id)
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t", first.order_id, s.now, ticker="Q", side=BID, price=D("0.40"), count=D(11)
        ),
        400,
        "insufficient_balance",
    )
    assert s.seq(first.order_id) == seq
    assert s.book("Q") == [first.order_id, second.order_id]
    # The order's own collateral counts towards the amended one.
    s.ex.amend_order("t", first.order_id, s.now, ticker="Q", side=BID, price=D("0.41"), count=D(10))
    assert s.reserved("t") == D("4.10")


def test_amend_refusals() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 10).order

    def amend(**kwargs: Any) -> Callable[[], object]:
        args: dict[str, Any] = {
            "ticker": "Q",
            "side": BID,
            "price": D("0.40"),
            "count": D(10),
        } | kwargs
        return lambda: s.ex.amend_order("t", order.order_id, s.now, **args)

    refused(s.ex, amend(ticker="MF"), 400, "invalid_amend")
    refused(s.ex, amend(side=ASK), 400, "invalid_amend")
    refused(s.ex, amend(price=D("0.405")), 400, "invalid_price")
    refused(s.ex, amend(count=D(0)), 400, "invalid_amend")
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t", "missing", s.now, ticker="Q", side=BID, price=D("0.4"), count=D(1)
        ),
        404,
        "order_not_found",
    )
    s.ex.cancel_order("t", order.order_id, s.now)
    refused(s.ex, amend(), 400, "order_not_resting")


def test_amend_sets_and_removes_the_expiration() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 10).order
    later = W // 1000 + 3600
    s.ex.amend_order(
        "t",
        order.order_id,
        s.now,
        ticker="Q",
        side=BID,
        price=D("0.40"),
        count=D(10),
        expiration_s=later,
    )
    assert order.expiration_s == later
    s.ex.amend_order(
        "t",
        order.order_id,
        s.now,
        ticker="Q",
        side=BID,
        price=D("0.41"),
        count=D(10),
        expiration_s=0,
    )
    assert order.expiration_s is None
    s.ex.amend_order(
        "t",
        order.order_id,
        s.now,
        ticker="Q",
        side=BID,
        price=D("0.41"),
        count=D(9),
        updated_client_order_id="",
    )
    assert order.client_order_id == "c1"  # an empty id keeps the old one


# ---- subaccounts and transfers --------------------------------------------------------------


def test_subaccounts_and_transfers() -> None:
    s = Sim()
    assert s.ex.create_subaccount("t") == 1
    assert s.ex.create_subaccount("t") == 2
    record = s.ex.transfer("t", 0, 2, D("12.34"), transfer_id="tr-1", wall_ms=s.now)
    assert (
        record.user_id,
        record.source,
        record.destination,
        record.amount,
        record.created_ms,
    ) == ("t", 0, 2, D("12.34"), W)
    assert s.ex.transfers == [record]
    assert s.cash("t") == D("987.66") and s.cash("t", 2) == D("12.34")
    order = s.place("t", "Q", BID, "0.40", 10, subaccount=2).order
    assert order.subaccount == 2 and s.reserved("t", 2) == D("4.00") and s.reserved("t") == 0
    refused(
        s.ex,
        lambda: s.ex.transfer("t", 2, 0, D("8.35"), transfer_id="tr-2", wall_ms=s.now),
        400,
        "insufficient_balance",
    )
    refused(
        s.ex,
        lambda: s.ex.transfer("t", 0, 5, D(1), transfer_id="tr-2", wall_ms=s.now),
        400,
        "invalid_subaccount",
    )
    refused(
        s.ex,
        lambda: s.ex.transfer("t", 9, 0, D(1), transfer_id="tr-2", wall_ms=s.now),
        400,
        "invalid_subaccount",
    )
    refused(
        s.ex,
        lambda: s.ex.transfer("t", 0, 1, D(0), transfer_id="tr-2", wall_ms=s.now),
        400,
        "invalid_amount",
    )
    s.place("mm", "Q", ASK, "0.40", 10)
    assert s.position("t", "Q", sub=2) == 10 and s.position("t", "Q") == 0


def test_at_most_63_subaccounts() -> None:
    s = Sim()
    numbers = [s.ex.create_subaccount("t") for _ in range(63)]
    assert numbers == list(range(1, 64))
    refused(s.ex, lambda: s.ex.create_subaccount("t"), 400, "subaccount_limit")


# ---- lifecycle and settlement ---------------------------------------------------------------


def test_close_cancels_resting_orders_and_is_idempotent() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 10).order
    s.ex.close_market("Q", W + 1)
    assert (
        s.ex.markets["Q"].status == "closed" and order.status == "canceled" and s.reserved("t") == 0
    )
    s.ex.close_market("Q", W + 2)
    assert s.ex.markets["Q"].updated_ms == W + 1


def test_determine_and_settle_refusals() -> None:
    s = Sim()
    with pytest.raises(ValueError, match="result must be"):
        s.ex.determine_market("Q", "maybe", W)
    refused(s.ex, lambda: s.ex.settle_market("Q", W), 400, "market_not_determined")
    s.ex.determine_market("Q", "no", W + 1)
    assert (s.ex.markets["Q"].status, s.ex.markets["Q"].result) == ("determined", "no")
    refused(s.ex, lambda: s.ex.determine_market("Q", "yes", W + 2), 400, "market_not_closed")
    s.ex.settle_market("Q", W + 3)
    refused(s.ex, lambda: s.ex.settle_market("Q", W + 4), 400, "market_not_determined")
    refused(s.ex, lambda: s.ex.determine_market("NOPE", "yes", W), 404, "market_not_found")


@pytest.mark.parametrize(
    ("wall_ms", "error", "message"),
    [
        ("now", TypeError, "wall_ms must be an int (Unix milliseconds), got str"),
        (1.5e12, TypeError, "wall_ms must be an int (Unix milliseconds), got float"),
        (True, TypeError, "wall_ms must be an int (Unix milliseconds), got bool"),
        (-1, ValueError, "wall_ms must not be negative, got -1"),
    ],
)
@pytest.mark.parametrize("method", ["advance", "close_market", "determine_market", "settle_market"])
def test_the_lifecycle_methods_refuse_a_time_that_is_not_unix_milliseconds(
    method: str, wall_ms: object, error: type[Exception], message: str
) -> None:
    # A str was stored as the market's updated time, and broke the answers that showed it.
    s = Sim()
    arguments: dict[str, tuple[object, ...]] = {
        "advance": (wall_ms,),
        "close_market": ("Q", wall_ms),
        "determine_market": ("Q", "yes", wall_ms),
        "settle_market": ("Q", wall_ms),
    }
    with pytest.raises(error) as info:
        getattr(s.ex, method)(*arguments[method])
    assert str(info.value) == message
    assert s.ex.markets["Q"].status == "active"


@pytest.mark.parametrize("result", ["yes", "no"])
def test_settlement_pays_a_dollar_per_winning_contract(result: str) -> None:
    s = Sim({"mm": "1000", "t": "1000", "flat": "1000", "idle": "50"})
    s.place("mm", "Q", ASK, "0.40", 7)
    s.place("t", "Q", BID, "0.40", 7)  # t +7 YES, mm 7 NO
    s.place("flat", "MF", BID, "0.30", 2)  # a position in another market
    s.place("mm", "MF", ASK, "0.30", 2)
    s.place("mm", "Q", BID, "0.45", 1)
    s.place("flat", "Q", ASK, "0.45", 1)  # flat: 1 NO on Q...
    s.place("mm", "Q", ASK, "0.45", 1)
    s.place("flat", "Q", BID, "0.45", 1)  # ... closed again: position 0, fees paid
    start = D(3050)
    assert money_total(s.ex) == start
    before = {u: s.cash(u) for u in s.ex.accounts}
    s.ex.determine_market("Q", result, W + 10)
    records = s.ex.settle_market("Q", W + 20)
    by_user = {r.user_id: r for r in records}
    assert set(by_user) == {"t", "mm", "flat"}
    winner, loser = ("t", "mm") if result == "yes" else ("mm", "t")
    assert by_user[winner].revenue == 7 and by_user[loser].revenue == 0
    assert s.cash(winner) == before[winner] + 7 and s.cash(loser) == before[loser]
    assert (by_user["t"].yes_count, by_user["t"].no_count, by_user["t"].yes_cost) == (
        D(7),
        D(0),
        D("2.80"),
    )
    assert (by_user["mm"].yes_count, by_user["mm"].no_count, by_user["mm"].no_cost) == (
        D(0),
        D(7),
        D("4.15"),
    )
    assert by_user["flat"].revenue == 0 and by_user["flat"].fees > 0
    assert all(
        r.result == result and r.settled_ms == W + 20 and r.event_ticker == "E-Q" for r in records
    )
    assert s.ex.settlements == records
    market = s.ex.markets["Q"]
    assert (market.status, market.open_interest, market.settled_ms) == ("finalized", D(0), W + 20)
    assert s.position("t", "Q") == 0 and s.position("mm", "Q") == 0
    t_pos = s.ex.position(s.ex.account("t"), 0, "Q")
    assert t_pos.realized_pnl == (D("4.20") if result == "yes" else D("-2.80"))
    assert s.position("flat", "MF") == 2  # untouched
    assert money_total(s.ex) == start


# ---- bugs -----------------------------------------------------------------------------------


def test_taker_split_across_fills_never_overdraws() -> None:
    # 2 YES at 0.03: fees are rounded up per fill, ceil(0.002037) = 0.0021 twice, 0.0042, more
    # than the single rounding ceil(0.004074) = 0.0041; the 0.02-per-contract rounding budget in
    # the check (0.06 + 0.0041 + 0.04 = 0.1041) covers it.
    s = Sim({"mm": "100", "t": "0.1041"})
    s.place("mm", "Q", ASK, "0.03", 1)
    s.place("mm", "Q", ASK, "0.03", 1)
    s.place("t", "Q", BID, "0.03", 2)
    assert s.available("t") >= 0


def test_maker_fee_never_overdraws() -> None:
    # 1 at 0.50 needs 0.50 + 0.0175 + 0.02; it rests holding 0.50 and a maker fee budget of
    # ceil(0.0175 * 0.25) + 0.02 = 0.0244. 1.5 at 0.01 then needs 0.015 + 0.0011 + 0.03 and
    # rests holding 0.015 + 0.0303: t's available cash is then 0.0383.
    s = Sim({"mm": "100", "t": "0.6080"})
    s.place("t", "MF", BID, "0.50", 1)
    s.place("t", "MF", BID, "0.01", "1.5")
    assert s.available("t") == D("0.0383")
    s.place(
        "mm", "MF", ASK, "0.50", 1
    )  # t's maker fee ceil(0.0175 * 0.25) = 0.0044, from its budget
    assert s.available("t") == D("0.0583")
    assert s.available("t") >= 0


def test_amending_a_post_only_order_to_a_crossing_price_is_refused() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.60", 5)
    order = s.place("t", "Q", BID, "0.50", 5, post_only=True).order
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t", order.order_id, s.now, ticker="Q", side=BID, price=D("0.60"), count=D(5)
        ),
        400,
        "post_only_cross",
    )


def test_amend_with_a_past_expiration_is_refused_and_changes_nothing() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.50", 5).order
    s.now += 10_000
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t",
            order.order_id,
            s.now,
            ticker="Q",
            side=BID,
            price=D("0.50"),
            count=D(4),
            expiration_s=W // 1000,
            updated_client_order_id="new",
        ),
        400,
        "invalid_expiration",
    )


def test_partial_fills_release_the_fee_budget_exactly() -> None:
    # 17 and 3 resting at 0.81 on a maker-fee series, filled one contract at a time: each fill
    # releases its share of a fee budget such as 0.3858 / 17, which is not a finite decimal.
    s = Sim({"t": "100", "mm": "100"})
    first = s.place("t", "MF", BID, "0.81", 17).order
    second = s.place("t", "MF", BID, "0.81", 3).order
    for _ in range(18):
        s.place("mm", "MF", ASK, "0.81", 1, IOC)
        assert first.fee_reserved == first.fee_reserved.quantize(D("0.0001"))
    assert (first.status, second.remaining) == ("executed", D(2))
    s.ex.cancel_order("t", second.order_id, s.now)
    account = s.ex.account("t")
    assert account.fee_reserved[0] == 0 and account.reserved[0] == 0
    assert account.available(0) == account.cash[0]
    assert account.cash[0] == account.cash[0].quantize(D("0.0001"))


# ---- cost basis on partial closes -------------------------------------------------------------


def places(value: Decimal) -> int:
    """How many decimal places a Decimal carries."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def average_cost_release(exposure: Decimal, closing: Decimal, held: Decimal) -> Decimal:
    """The module docstring's rule, in exact fractions: the average cost of the contracts
    closed floored to $0.0001, or all that is left on a full close."""
    if closing == 0:
        return D(0)
    if closing == held:
        return exposure
    return D(math.floor(Fraction(exposure) * Fraction(closing) / Fraction(held) * 10_000)) / 10_000


def released_by(
    pos_before: tuple[Decimal, Decimal, Decimal],
    pos: PositionState,
    side: Side,
    price: Decimal,
    count: Decimal,
) -> tuple[Decimal, Decimal, Decimal]:
    """(closed, held before, released) for one user's fill, read off the realized P&L change."""
    position, _, realized = pos_before
    cost = price if side is BID else 1 - price
    held = max(D(0), -position) if side is BID else max(D(0), position)
    closing = min(count, held)
    return closing, held, closing * (1 - cost) + realized - pos.realized_pnl


@pytest.mark.parametrize(
    ("opens", "closes"),
    [
        # thirds: 0.32 over 3 contracts is not a finite decimal per contract
        ([("0.10", "1"), ("0.11", "2")], [("0.20", "1")] * 3),
        # sevenths, closed at different prices
        ([("0.10", "1"), ("0.11", "6")], [(f"0.{20 + n}", "1") for n in range(7)]),
        # fractional contracts: 0.07 held, closed 0.01 at a time
        ([("0.13", "0.04"), ("0.17", "0.03")], [("0.20", "0.01")] * 7),
        # a count that divides nothing evenly, closed in thirds of unequal size
        ([("0.13", "1"), ("0.17", "0.07")], [("0.21", "0.33"), ("0.19", "0.33"), ("0.20", "0.41")]),
    ],
)
def test_partial_closes_release_the_cost_basis_exactly(
    opens: list[tuple[str, str]], closes: list[tuple[str, str]]
) -> None:
    # t buys YES from mm (mm goes long NO), then both close in parts: t sells YES, mm buys YES.
    s = Sim()
    for price, count in opens:
        s.place("mm", "Q", ASK, price, count)
        s.place("t", "Q", BID, price, count)
    cost = {
        "t": sum((D(c) * D(p) for p, c in opens), D(0)),
        "mm": sum((D(c) * (1 - D(p)) for p, c in opens), D(0)),
    }
    t_pos = s.ex.position(s.ex.account("t"), 0, "Q")
    mm_pos = s.ex.position(s.ex.account("mm"), 0, "Q")
    assert (t_pos.exposure, mm_pos.exposure) == (cost["t"], cost["mm"])
    receipts = {"t": D(0), "mm": D(0)}
    for price, count in closes:
        before = {
            u: (p.position, p.exposure, p.realized_pnl) for u, p in (("t", t_pos), ("mm", mm_pos))
        }
        s.place("mm", "Q", BID, price, count)
        s.place("t", "Q", ASK, price, count, IOC)
        receipts["t"] += D(count) * D(price)
        receipts["mm"] += D(count) * (1 - D(price))
        for user, pos, side in (("t", t_pos, ASK), ("mm", mm_pos, BID)):
            closing, held, released = released_by(before[user], pos, side, D(price), D(count))
            assert released == average_cost_release(before[user][1], closing, held)
            assert places(pos.exposure) <= 4 and places(pos.realized_pnl) <= 4
            # What is realized plus what is still held at cost is what went in and came out.
            assert pos.realized_pnl - pos.exposure == receipts[user] - cost[user]
    for user, pos in (("t", t_pos), ("mm", mm_pos)):
        assert pos.position == 0
        assert pos.exposure == 0 and (pos.yes_cost, pos.no_cost) == (D(0), D(0))
        assert pos.realized_pnl == receipts[user] - cost[user]


def test_a_partial_close_keeps_the_held_sides_cost_basis() -> None:
    s = Sim()
    s.place("mm", "Q", ASK, "0.10", 1)
    s.place("t", "Q", BID, "0.10", 1)
    s.place("mm", "Q", ASK, "0.11", 2)
    s.place("t", "Q", BID, "0.11", 2)  # t: 3 YES for 0.32; mm: 3 NO for 2.68
    s.place("mm", "Q", BID, "0.20", 1)
    s.place("t", "Q", ASK, "0.20", 1)  # closes one of three
    t_pos = s.ex.position(s.ex.account("t"), 0, "Q")
    mm_pos = s.ex.position(s.ex.account("mm"), 0, "Q")
    # floor(0.32 / 3) = 0.1066 and floor(2.68 / 3) = 0.8933 are released.
    assert (t_pos.exposure, t_pos.yes_cost, t_pos.no_cost) == (D("0.2134"), D("0.2134"), D(0))
    assert (t_pos.realized_pnl, mm_pos.realized_pnl) == (D("0.0934"), D("-0.0933"))
    assert (mm_pos.exposure, mm_pos.yes_cost, mm_pos.no_cost) == (D("1.7867"), D(0), D("1.7867"))
    s.ex.determine_market("Q", "no", W + 10)
    records = {r.user_id: r for r in s.ex.settle_market("Q", W + 20)}
    assert (records["t"].yes_cost, records["mm"].no_cost) == (D("0.2134"), D("1.7867"))
    assert (t_pos.realized_pnl, mm_pos.realized_pnl) == (D("-0.1200"), D("0.1200"))


_trade_step = st.tuples(
    st.sampled_from([BID, ASK]),  # t's side
    st.integers(1, 99).map(lambda n: Decimal(n) / 100),
    st.integers(1, 500).map(lambda n: Decimal(n) / 100),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_trade_step, min_size=1, max_size=30), st.sampled_from(["yes", "no"]))
@example(
    steps=[(BID, D("0.10"), D(1)), (BID, D("0.11"), D(2))] + [(ASK, D("0.20"), D(1))] * 3,
    result="yes",
)
def test_cost_basis_stays_exact_through_any_sequence_of_fills(
    steps: list[tuple[Side, Decimal, Decimal]], result: str
) -> None:
    # t takes what mm rests, one trade per step, so both hold opposite positions that grow,
    # shrink and flip; each close must follow the average-cost rule exactly.
    s = Sim({"mm": "1000", "t": "1000"})
    users = (("t", 1), ("mm", -1))
    pos = {u: s.ex.position(s.ex.account(u), 0, "Q") for u, _ in users}
    for side, price, count in steps:
        before = {u: (p.position, p.exposure, p.realized_pnl) for u, p in pos.items()}
        s.place("mm", "Q", ASK if side is BID else BID, str(price), str(count))
        s.place("t", "Q", side, str(price), str(count), IOC)
        for user, sign in users:
            own_side = side if sign == 1 else (ASK if side is BID else BID)
            p = pos[user]
            closing, held, released = released_by(before[user], p, own_side, price, count)
            assert released == average_cost_release(before[user][1], closing, held)
            assert places(p.exposure) <= 4 and places(p.realized_pnl) <= 4
            assert p.exposure >= 0 and (p.exposure == 0) == (p.position == 0)
            # Cash moved by what closing paid, less what opening cost, less fees.
            assert p.realized_pnl - p.exposure - p.fees_paid == s.cash(user) - 1000
    s.ex.determine_market("Q", result, W + 10)
    s.ex.settle_market("Q", W + 20)
    for user, _ in users:
        p = pos[user]
        assert (p.position, p.exposure) == (D(0), D(0))
        assert p.realized_pnl - p.fees_paid == s.cash(user) - 1000


# ---- properties -----------------------------------------------------------------------------

USERS = ("u0", "u1", "u2")
PROPERTY_MARKETS = ("Q", "MF")
BALANCE = D(30)


@dataclass(frozen=True)
class Place:
    user: int
    market: str
    side: Side
    ticks: int
    count: Decimal
    tif: TimeInForce
    stp: StpMode
    post_only: bool = False


@dataclass(frozen=True)
class Cancel:
    user: int
    pick: int


@dataclass(frozen=True)
class Amend:
    user: int
    pick: int
    ticks: int
    more: Decimal  #: the new remaining count (count = filled + more)


@dataclass(frozen=True)
class Decrease:
    user: int
    pick: int
    to: Decimal


Op = Place | Cancel | Amend | Decrease


def _pick(options: list[Any]) -> st.SearchStrategy[Any]:
    # Hypothesis favours small and repeated values; reducing a wide integer spreads the choices
    # (more owners and prices meeting on one book) and still shrinks towards options[0].
    return st.integers(0, 1 << 16).map(lambda n: options[n % len(options)])


_user = _pick(list(range(len(USERS))))
_count = st.integers(1, 5000).map(lambda n: Decimal(n) / 100)
_ticks = _pick(list(range(48, 53)))  # a narrow band, so orders cross often
_place = st.builds(
    Place,
    user=_user,
    market=_pick(list(PROPERTY_MARKETS)),
    side=_pick([Side.BID, Side.ASK]),
    ticks=_ticks,
    count=_count,
    tif=_pick([GTC, GTC, GTC, IOC, FOK]),
    stp=_pick(list(StpMode)),
    post_only=_pick([False, False, False, True]),
)
_others: list[st.SearchStrategy[Any]] = [
    st.builds(Cancel, user=_user, pick=st.integers(0, 30)),
    st.builds(Amend, user=_user, pick=st.integers(0, 30), ticks=_ticks, more=_count),
    st.builds(
        Decrease,
        user=_user,
        pick=st.integers(0, 30),
        to=st.integers(0, 3000).map(lambda n: Decimal(n) / 100),
    ),
]
# Nine places to each cancel, amend or decrease, so books fill up and cross.
_ops: st.SearchStrategy[Op] = _pick([_place] * 9 + _others).flatmap(lambda strategy: strategy)
_op_lists = st.lists(_ops, min_size=15, max_size=50)
_results = st.lists(
    st.sampled_from(["yes", "no"]), min_size=len(PROPERTY_MARKETS), max_size=len(PROPERTY_MARKETS)
)


def fresh_property_exchange() -> Exchange:
    ex = make_exchange(markets=PROPERTY_MARKETS)
    for user in USERS:
        ex.add_account(user, BALANCE)
    return ex


def check_invariants(ex: Exchange, start: Decimal) -> None:
    # (a) conservation of money
    assert money_total(ex) == start
    # (b) collateral bookkeeping
    for user, account in ex.accounts.items():
        for sub, reserved in account.reserved.items():
            resting = [
                o
                for o in ex.orders.values()
                if o.user_id == user and o.subaccount == sub and o.status == "resting"
            ]
            assert reserved == sum((o.reserved for o in resting), Decimal(0))
            assert reserved >= 0
    for order in ex.orders.values():
        in_book = order.order_id in ex.markets[order.ticker].book
        assert in_book == (order.status == "resting")
        if order.status == "resting":
            assert (
                order.remaining > 0 and order.reserved == order.remaining * order.cost_per_contract
            )
        else:
            assert order.remaining == 0 and order.reserved == 0
        assert order.fill_count + order.remaining <= order.initial_count
    # (c) positions sum to zero per market; open interest is the YES side
    for ticker, market in ex.markets.items():
        positions = [
            p.position
            for a in ex.accounts.values()
            for (_, t), p in a.positions.items()
            if t == ticker
        ]
        assert sum(positions, Decimal(0)) == 0
        assert market.open_interest == sum((p for p in positions if p > 0), Decimal(0))
        assert not market.book.is_crossed()


def pick(ex: Exchange, user: str, n: int) -> str | None:
    orders = [o.order_id for o in ex.user_orders(user)]
    return orders[n % len(orders)] if orders else None


def apply(ex: Exchange, op: Op, n: int, wall_ms: int) -> None:
    user = USERS[op.user]
    if isinstance(op, Place):
        ex.place_order(
            user,
            ticker=op.market,
            side=op.side,
            price=Decimal(op.ticks) / 100,
            count=op.count,
            tif=op.tif,
            stp=op.stp,
            client_order_id=f"p{n}",
            wall_ms=wall_ms,
            post_only=op.post_only,
        )
        return
    order_id = pick(ex, user, op.pick)
    if order_id is None:
        return
    if isinstance(op, Cancel):
        ex.cancel_order(user, order_id, wall_ms)
    elif isinstance(op, Amend):
        order = ex.orders[order_id]
        ex.amend_order(
            user,
            order_id,
            wall_ms,
            ticker=order.ticker,
            side=order.side,
            price=Decimal(op.ticks) / 100,
            count=order.fill_count + op.more,
        )
    else:
        ex.decrease_order(user, order_id, wall_ms, reduce_by=None, reduce_to=op.to)


def run(
    ex: Exchange,
    ops: list[Op],
    results: list[str],
    check: Callable[[Exchange, Decimal], None] = check_invariants,
) -> list[str]:
    """Apply ops, then determine and settle every market; return each command's outcome."""
    start = money_total(ex)
    outcomes = []
    wall_ms = W
    for n, op in enumerate(ops):
        wall_ms += 250
        before = fingerprint(ex)
        try:
            apply(ex, op, n, wall_ms)
            outcomes.append("ok")
        except ExchangeError as exc:
            outcomes.append(exc.code)
            assert fingerprint(ex) == before  # a refusal changes nothing
        check(ex, start)
    for ticker, result in zip(PROPERTY_MARKETS, results, strict=True):
        wall_ms += 1000
        ex.determine_market(ticker, result, wall_ms)
        ex.settle_market(ticker, wall_ms)
        check(ex, start)
    assert ex.total_open_interest() == 0
    assert ex.total_cash() + ex.fees_collected == start
    for account in ex.accounts.values():
        assert all(r == 0 for r in account.reserved.values())
        assert all(p.position == 0 for p in account.positions.values())
    return outcomes


@settings(max_examples=120, deadline=None)
@given(_op_lists, _results)
def test_random_sessions_conserve_money_and_keep_the_books(
    ops: list[Op], results: list[str]
) -> None:
    run(fresh_property_exchange(), ops, results)


def snapshot(ex: Exchange) -> Any:
    return (
        [astuple(o) for o in ex.orders.values()],
        list(ex.fills),
        list(ex.trades),
        list(ex.settlements),
        {
            u: (dict(a.cash), dict(a.reserved), {k: astuple(p) for k, p in a.positions.items()})
            for u, a in ex.accounts.items()
        },
        {
            t: (m.status, m.result, [(o.order_id, o.remaining, o.seq) for o in m.book.orders()])
            for t, m in ex.markets.items()
        },
        ex.fees_collected,
    )


@settings(max_examples=60, deadline=None)
@given(_op_lists, _results)
def test_random_sessions_are_deterministic(ops: list[Op], results: list[str]) -> None:
    first, second = fresh_property_exchange(), fresh_property_exchange()
    assert run(first, ops, results) == run(second, ops, results)
    assert snapshot(first) == snapshot(second)
    assert list(first.orders) == list(second.orders)
    assert [f.fill_id for f in first.fills] == [f.fill_id for f in second.fills]


def check_available(ex: Exchange, start: Decimal) -> None:
    for account in ex.accounts.values():
        for sub in account.cash:
            assert account.available(sub) >= 0, (account.user_id, account.available(sub))


@settings(max_examples=60, deadline=None)
@given(_op_lists, _results)
@example(
    ops=[
        Place(
            0, "MF", BID, 60, D(48), GTC, TAKER
        ),  # 28.80 + 0.8064 of u0's 30: 1.20 stays available
        Place(0, "Q", BID, 35, D(3), GTC, TAKER),  # uses 1.05 + 0.0478 of it
        Place(
            1, "MF", ASK, 60, D(48), GTC, TAKER
        ),  # u0's maker fee: ceil(0.0175 * 48 * 0.24) = 0.2016
    ],
    results=["yes", "no"],
)
def test_available_cash_is_never_negative(ops: list[Op], results: list[str]) -> None:
    run(fresh_property_exchange(), ops, results, check_available)


def check_fee_reservations(ex: Exchange, start: Decimal) -> None:
    # Each subaccount's reserved fees are exactly its resting orders' fee budgets: zero, not
    # 6E-29, once nothing rests there.
    for user, account in ex.accounts.items():
        for sub, fee_reserved in account.fee_reserved.items():
            resting = [
                o for o in ex.user_orders(user) if o.subaccount == sub and o.status == "resting"
            ]
            assert fee_reserved == sum((o.fee_reserved for o in resting), Decimal(0))
            if not resting:
                assert fee_reserved == 0, (user, sub, fee_reserved)
    for order in ex.orders.values():
        assert order.fee_reserved == order.fee_reserved.quantize(D("0.0001"))
        assert order.status == "resting" or order.fee_reserved == 0


@settings(max_examples=60, deadline=None)
@given(_op_lists, _results)
@example(
    ops=[
        Place(0, "MF", BID, 51, D(17), GTC, TAKER),
        *[Place(1, "MF", ASK, 51, D(1), IOC, TAKER)] * 3,
        Cancel(0, 0),
    ],
    results=["yes", "no"],
)
def test_reserved_fee_total_is_exactly_zero_when_nothing_rests(
    ops: list[Op], results: list[str]
) -> None:
    run(fresh_property_exchange(), ops, results, check_fee_reservations)


def test_an_amended_expiry_replaces_the_old_one() -> None:
    s = Sim()
    expires = (s.now // 1000) + 60
    order = s.place("t", "Q", BID, "0.40", 10, expiration_s=expires).order
    later = expires + 60
    s.ex.amend_order(
        "t",
        order.order_id,
        s.now,
        ticker="Q",
        side=BID,
        price=D("0.40"),
        count=D(8),
        expiration_s=later,
    )
    s.ex.advance(expires * 1000)  # the first expiry passes: the order stays
    assert order.status == "resting"
    s.ex.advance(later * 1000)
    assert order.status == "canceled"


def test_an_amend_cannot_take_a_client_order_id_already_used() -> None:
    s = Sim()
    first = s.place("t", "Q", BID, "0.40", 1).order
    s.place("t", "Q", BID, "0.41", 1)  # client_order_id "c2"
    refused(
        s.ex,
        lambda: s.ex.amend_order(
            "t",
            first.order_id,
            s.now,
            ticker="Q",
            side=BID,
            price=D("0.42"),
            count=D(1),
            updated_client_order_id="c2",
        ),
        409,
        "duplicate_client_order_id",
    )
    assert first.client_order_id == "c1" and first.price == D("0.40")


def test_a_transfer_id_used_for_another_transfer_is_409() -> None:
    s = Sim()
    sub = s.ex.create_subaccount("t")
    s.ex.transfer("t", 0, sub, D("5"), transfer_id="x-1", wall_ms=s.now)
    refused(
        s.ex,
        lambda: s.ex.transfer("t", 0, sub, D("6"), transfer_id="x-1", wall_ms=s.now),
        409,
        "duplicate_transfer_id",
    )
    assert s.cash("t", sub) == D("5")


def test_a_retried_amend_may_resend_the_orders_own_client_order_id() -> None:
    s = Sim()
    order = s.place("t", "Q", BID, "0.40", 10, client_order_id="mine").order
    for price in ("0.41", "0.41"):  # the same amend twice, as a retry sends it
        s.ex.amend_order(
            "t",
            order.order_id,
            s.now,
            ticker="Q",
            side=BID,
            price=D(price),
            count=D(10),
            updated_client_order_id="mine",
        )
    assert (order.client_order_id, order.price, order.status) == ("mine", D("0.41"), "resting")
    s.ex.amend_order(
        "t",
        order.order_id,
        s.now,
        ticker="Q",
        side=BID,
        price=D("0.41"),
        count=D(8),
        updated_client_order_id="mine",
    )  # a decrease at the same price, keeping the id
    assert order.remaining == D(8) and order.client_order_id == "mine"
    # The id still belongs to this order alone.
    refused(
        s.ex,
        lambda: s.place("t", "Q", BID, "0.30", 1, client_order_id="mine"),
        409,
        "duplicate_client_order_id",
    )
