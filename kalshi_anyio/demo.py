"""The README's main job: start the local exchange and trade on it through the public client.

``python -m kalshi_anyio.demo [--tls] [--backend trio]`` starts the exchange in this process on
loopback, then, with `kalshi_anyio.AsyncKalshiClient`: lists open markets, shows an order book,
places a V2 limit order that rests and one that fills, amends and cancels the resting one, shows
fills, positions and balance, and walks every market page by page with ``list_all``. It prints a
transcript and exits 0; it needs no network.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

import anyio

from kalshi_anyio.rest import AsyncKalshiClient
from kalshi_anyio.sim import serve_exchange
from kalshi_proto.rest.generated.models import (
    AmendOrderV2Request,
    CreateOrderV2Request,
    Market,
)

__all__ = ["main", "run_demo"]

TICKER = "KXBTCD-26JAN3017-T100000"


def _market_line(market: Market) -> str:
    return (
        f"  {market.ticker:<28} bid {market.yes_bid_dollars} / ask {market.yes_ask_dollars}"
        f"  vol {market.volume_fp}  {market.title or ''}"
    )


async def run_demo(*, tls: bool = False, out: list[str] | None = None) -> list[str]:
    """Run the demo; returns (and prints) the transcript lines."""
    lines: list[str] = [] if out is None else out

    def say(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    async with serve_exchange(tls=tls) as local, AsyncKalshiClient(**local.client_options()) as client:
        say(f"Local Kalshi exchange at {local.base_url}")
        status = await client.exchange.status()
        say(f"Exchange active: {status.exchange_active}, trading active: {status.trading_active}")

        say()
        page = await client.markets.list(status="open", limit=5)
        say(f"Open markets, first page ({len(page)} of them; more: {page.has_next}):")
        for market in page:
            say(_market_line(market))

        say()
        book = (await client.markets.orderbook(TICKER)).orderbook_fp
        say(f"Order book of {TICKER} (best price last):")
        say("  YES bids: " + ", ".join(f"{p} x {c}" for p, c in book.yes_dollars))
        say("  NO bids:  " + ", ".join(f"{p} x {c}" for p, c in book.no_dollars))
        balance = await client.portfolio.balance()
        say(f"Balance: ${balance.balance_dollars}")

        say()
        resting = await client.orders.create_v2(
            CreateOrderV2Request(
                ticker=TICKER,
                client_order_id="demo-resting-1",
                side="bid",
                count=Decimal("10"),
                price=Decimal("0.50"),
                time_in_force="good_till_canceled",
                self_trade_prevention_type="maker",
            )
        )
        say(f"Bid 10 @ 0.50 (rests below the ask): filled {resting.fill_count}, resting {resting.remaining_count}")
        taken = await client.orders.create_v2(
            CreateOrderV2Request(
                ticker=TICKER,
                client_order_id="demo-ioc-1",
                side="bid",
                count=Decimal("5"),
                price=Decimal("0.57"),
                time_in_force="immediate_or_cancel",
                self_trade_prevention_type="maker",
            )
        )
        say(
            f"IOC bid 5 @ 0.57 (crosses the ask): filled {taken.fill_count} at {taken.average_fill_price}, "
            f"fee {taken.average_fee_paid} per contract"
        )
        amended = await client.orders.amend_v2(
            resting.order_id,
            AmendOrderV2Request(ticker=TICKER, side="bid", price=Decimal("0.51"), count=Decimal("12")),
        )
        say(f"Amended the resting bid to 12 @ 0.51: resting {amended.remaining_count}")
        cancelled = await client.orders.cancel_v2(resting.order_id)
        say(f"Cancelled it: {cancelled.reduced_by} contracts taken off the book")

        say()
        fills = await client.portfolio.fills()
        say("Fills:")
        for fill in fills:
            role = "taker" if fill.is_taker else "maker"
            say(f"  {fill.ticker} {fill.book_side} {fill.count_fp} @ {fill.yes_price_dollars} ({role}, fee {fill.fee_cost})")
        positions = await client.portfolio.positions()
        say("Positions:")
        for position in positions:
            say(
                f"  {position.ticker}: {position.position_fp} contracts, exposure ${position.market_exposure_dollars}, "
                f"fees ${position.fees_paid_dollars}"
            )
        balance = await client.portfolio.balance()
        say(f"Balance: ${balance.balance_dollars}")

        say()
        tickers = [market.ticker async for market in client.markets.list_all(status="open", limit=5)]
        say(f"Every open market via list_all, 5 per page: {len(tickers)} markets")
    return lines


def main(argv: list[str] | None = None) -> int:
    """The ``python -m kalshi_anyio.demo`` command."""
    parser = argparse.ArgumentParser(prog="python -m kalshi_anyio.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--tls", action="store_true", help="serve TLS with throwaway certificates (needs trustme)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(argv)

    async def run() -> None:
        await run_demo(tls=args.tls)

    anyio.run(run, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
