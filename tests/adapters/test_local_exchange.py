"""Every client flavour against the local exchange over TLS, for every operation it models.

The exchange (`kalshi_anyio.sim.serve_exchange_in_thread`) runs on its own loop in a thread, with
throwaway TLS certificates; each flavour (two blocking clients without an event loop, two async
clients on asyncio and trio) trades through a whole session with the ready-made account, and the
test checks that the exchange answered every operation it models (`NOT_MODELLED` is the rest).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from kalshi_anyio.sim import LocalExchange, serve_exchange_in_thread
from kalshi_proto.errors import NotFoundError, ValidationError
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import operations
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.rest import NOT_MODELLED
from tests.adapters.conftest import Flavour, backend_of, collect, maybe

pytestmark = pytest.mark.anyio

TICKER = "KXBTCD-26JAN3017-T100000"
HOLD = "KXFED-26JAN-HOLD"


@pytest.fixture
def anyio_backend(flavour: Flavour) -> str | None:
    return backend_of(flavour)


@pytest.fixture
def local() -> Iterator[LocalExchange]:
    with serve_exchange_in_thread(tls=True, key_type="ed25519") as exchange:
        yield exchange


def order(
    client_order_id: str,
    price: str,
    count: str,
    tif: str = "good_till_canceled",
    side: str = "bid",
    **extra: object,
) -> m.CreateOrderV2Request:
    return m.CreateOrderV2Request.model_validate(
        {
            "ticker": TICKER,
            "client_order_id": client_order_id,
            "side": side,
            "price": price,
            "count": count,
            "time_in_force": tif,
            "self_trade_prevention_type": "maker",
            **extra,
        }
    )


async def test_a_whole_session_against_the_local_exchange(
    flavour: Flavour, local: LocalExchange
) -> None:
    options = local.client_options(httpx=flavour.family == "httpx")
    client = flavour.cls(**options, retry=RetryPolicy.disabled())
    try:
        await session(client, local)
    finally:
        await maybe(client.aclose() if flavour.is_async else client.close())  # type: ignore[union-attr]
    answered = {op for op, n in local.app.operation_counts.items() if n}
    modelled = {op.operation_id for op in operations()} - NOT_MODELLED
    assert answered == modelled, f"not exercised: {sorted(modelled - answered)}"


async def session(client: Any, local: LocalExchange) -> None:
    # ``client`` is typed loosely: the four flavours share the facade, half of it awaitable.
    # -- public market data
    status = await maybe(client.exchange.status())
    assert status.trading_active
    await maybe(client.exchange.schedule())
    await maybe(client.exchange.user_data_timestamp())
    series = await maybe(client.series.list())
    assert {s.ticker for s in series.series} == {"KXFED", "KXBTCD", "KXHIGHNY"}
    assert (await maybe(client.series.get("KXFED"))).series.fee_type == "quadratic_with_maker_fees"
    events = await collect(client.events.list_all(limit=2))
    assert len(events) == 3
    event = await maybe(client.events.get("KXFED-26JAN"))
    assert len(event.markets) == 4
    page = await maybe(client.markets.list(status="open", limit=5))
    assert len(page) == 5 and page.has_next
    assert len(await collect(client.markets.list_all(status="open", limit=5))) == 12
    market = (await maybe(client.markets.get(TICKER))).market
    assert (market.yes_bid_dollars, market.yes_ask_dollars) == (
        Decimal("0.5400"),
        Decimal("0.5600"),
    )
    with pytest.raises(NotFoundError):
        await maybe(client.markets.get("NO-SUCH-MARKET"))
    book = (await maybe(client.markets.orderbook(TICKER, depth=1))).orderbook_fp
    assert book.yes_dollars == [(Decimal("0.5400"), Decimal("100.00"))]
    books = await maybe(client.markets.orderbooks(tickers=[TICKER, HOLD]))
    assert [b.ticker for b in books.orderbooks] == [TICKER, HOLD]
    costs = await maybe(client.account.endpoint_costs())
    assert costs.default_cost == 10

    # -- account and orders
    limits = await maybe(client.account.limits())
    assert limits.usage_tier == "basic"
    balance = await maybe(client.portfolio.balance())
    assert balance.balance_dollars == Decimal("10000.0000")
    resting = await maybe(client.orders.create_v2(order("rest-1", "0.50", "10")))
    assert (resting.fill_count, resting.remaining_count) == (Decimal("0.00"), Decimal("10.00"))
    taken = await maybe(client.orders.create_v2(order("ioc-1", "0.57", "5", "immediate_or_cancel")))
    assert taken.fill_count == Decimal("5.00") and taken.average_fill_price == Decimal("0.5600")
    with pytest.raises(ValidationError) as refused:
        await maybe(client.orders.create_v2(order("too-big", "0.50", "100000")))
    assert refused.value.code == "insufficient_balance"
    fetched = (await maybe(client.orders.get(resting.order_id))).order
    assert fetched.status == "resting" and fetched.client_order_id == "rest-1"
    listed = await maybe(client.orders.list(status="resting"))
    assert [o.order_id for o in listed] == [resting.order_id]
    queue = await maybe(client.orders.queue_position(resting.order_id))
    assert queue.queue_position_fp == Decimal("0.00")
    positions = await maybe(client.orders.queue_positions(market_tickers=TICKER))
    assert [p.order_id for p in positions.queue_positions] == [resting.order_id]
    amended = await maybe(
        client.orders.amend_v2(
            resting.order_id,
            m.AmendOrderV2Request(
                ticker=TICKER, side="bid", price=Decimal("0.51"), count=Decimal("12")
            ),
        )
    )
    assert amended.remaining_count == Decimal("12.00")
    decreased = await maybe(
        client.orders.decrease_v2(
            resting.order_id, m.DecreaseOrderV2Request(reduce_by=Decimal("2"))
        )
    )
    assert decreased.remaining_count == Decimal("10.00")
    cancelled = await maybe(client.orders.cancel_v2(resting.order_id))
    assert cancelled.reduced_by == Decimal("10.00")
    batch = await maybe(
        client.orders.batch_create_v2(
            m.BatchCreateOrdersV2Request(
                orders=[
                    order("b-1", "0.40", "1"),
                    order("b-2", "0.41", "1"),
                    order("b-1", "0.42", "1"),
                ]
            )
        )
    )
    assert [o.error is None for o in batch.orders] == [True, True, False]
    assert (
        batch.orders[2].error is not None
        and batch.orders[2].error.code == "duplicate_client_order_id"
    )
    cancel_batch = await maybe(
        client.orders.batch_cancel_v2(
            m.BatchCancelOrdersV2Request(
                orders=[
                    m.BatchCancelOrdersV2RequestOrdersItem(order_id=batch.orders[0].order_id),
                    m.BatchCancelOrdersV2RequestOrdersItem(order_id="no-such-order"),
                ]
            )
        )
    )
    assert [o.error is None for o in cancel_batch.orders] == [True, False]
    await maybe(client.orders.cancel_all())
    assert (await maybe(client.orders.get(batch.orders[1].order_id))).order.status == "canceled"

    # -- order groups
    group = await maybe(
        client.order_groups.create(m.CreateOrderGroupRequest(contracts_limit_fp=Decimal("3")))
    )
    grouped = await maybe(
        client.orders.create_v2(order("g-1", "0.45", "2", order_group_id=group.order_group_id))
    )
    assert [g.id for g in (await maybe(client.order_groups.list())).order_groups] == [
        group.order_group_id
    ]
    assert (await maybe(client.order_groups.get(group.order_group_id))).orders == [grouped.order_id]
    await maybe(
        client.order_groups.update_limit(
            group.order_group_id, m.UpdateOrderGroupLimitRequest(contracts_limit_fp=Decimal("4"))
        )
    )
    await maybe(client.order_groups.trigger(group.order_group_id))
    assert (await maybe(client.orders.get(grouped.order_id))).order.status == "canceled"
    await maybe(client.order_groups.reset(group.order_group_id))
    await maybe(client.order_groups.delete(group.order_group_id))

    # -- subaccounts
    sub = (await maybe(client.subaccounts.create(m.CreateSubaccountRequest()))).subaccount_number
    transfer = m.ApplySubaccountTransferRequest(
        client_transfer_id="00000000-0000-4000-8000-000000000001",
        from_subaccount=0,
        to_subaccount=sub,
        amount_cents=500,
    )
    await maybe(client.subaccounts.transfer(transfer))
    await maybe(client.subaccounts.transfer(transfer))  # the same id again moves nothing
    balances = {
        b.subaccount_number: b.balance
        for b in (await maybe(client.subaccounts.balances())).subaccount_balances
    }
    assert balances[sub] == Decimal("5.0000")
    assert len(await maybe(client.subaccounts.transfers())) == 1  # a Page

    # -- what the session left: fills, positions, trades, candles, settlement
    fills = await maybe(client.portfolio.fills())
    assert [(f.count_fp, f.yes_price_dollars, f.is_taker) for f in fills] == [
        (Decimal("5.00"), Decimal("0.5600"), True)
    ]
    held = await maybe(client.portfolio.positions(ticker=TICKER))
    assert [p.position_fp for p in held] == [Decimal("5.00")]
    trades = await maybe(client.markets.trades(ticker=TICKER))
    assert [t.count_fp for t in trades] == [Decimal("5.00")]
    now_s = local.exchange.wall_ms // 1000
    candles = await maybe(
        client.markets.candlesticks(
            "KXBTCD", TICKER, start_ts=now_s - 3600, end_ts=now_s + 3600, period_interval=60
        )
    )
    assert sum(c.volume_fp for c in candles.candlesticks) == Decimal("5.00")
    window: dict[str, Any] = {
        "start_ts": now_s - 3600,
        "end_ts": now_s + 3600,
        "period_interval": 60,
    }
    batch = await maybe(
        client.markets.batch_candlesticks(market_tickers=f"{TICKER},KXFED-26JAN-HOLD", **window)
    )
    assert [(e.market_ticker, e.candlesticks) for e in batch.markets] == [
        (TICKER, candles.candlesticks),
        ("KXFED-26JAN-HOLD", []),
    ]
    by_event = await maybe(client.events.candlesticks("KXBTCD", "KXBTCD-26JAN3017", **window))
    assert (
        dict(zip(by_event.market_tickers, by_event.market_candlesticks, strict=True))[TICKER]
        == candles.candlesticks
    )
    fee_changes = await maybe(client.series.fee_changes(series_ticker="KXBTCD"))
    assert fee_changes.series_fee_change_arr == []
    event_fee_changes = await maybe(client.events.fee_changes(event_ticker="KXBTCD-26JAN3017"))
    assert list(event_fee_changes) == [] and not event_fee_changes.has_next
    resting_value = await maybe(client.portfolio.resting_order_total_value())
    assert resting_value.total_resting_order_value == 0
    # Settle the market on the exchange's own thread, between two requests.
    exchange = local.exchange
    local.call(exchange.determine_market, TICKER, "yes", exchange.wall_ms)
    local.call(exchange.settle_market, TICKER, exchange.wall_ms)
    settlements = await maybe(client.portfolio.settlements())
    assert [(s.ticker, s.market_result, s.yes_count_fp, s.revenue) for s in settlements] == [
        (TICKER, "yes", Decimal("5.00"), 500)
    ]
