"""Code as a user writes it, type-checked by `.ci/typing` with pyright in strict mode (and by
mypy --strict with the rest of tests/): the public API must give a strict checker nothing to
complain about. Never run.
"""

from __future__ import annotations

from decimal import Decimal

import anyio

from kalshi_anyio import AsyncKalshiClient
from kalshi_httpx import KalshiClient as HttpxClient
from kalshi_proto.errors import ApiError, RateLimitError
from kalshi_proto.prices import PriceGrid
from kalshi_proto.rest.generated.models import CreateOrderV2Request, Market
from kalshi_sync import KalshiClient


def sync_bot() -> Decimal:
    with KalshiClient.from_env() as client:
        page = client.markets.list(status="open", limit=100)
        first: Market | None = next(iter(page), None)
        total = Decimal(0)
        for market in client.markets.list_all(status="open", max_pages=2):
            grid = PriceGrid.from_market(market)
            total += grid.floor(Decimal("0.5")) or Decimal(0)
        try:
            client.portfolio.balance()
        except RateLimitError as exc:
            print(exc.retry_after)
        except ApiError as exc:
            print(exc.status, exc.code)
        if first is not None:
            print(first.ticker, page.cursor, page.has_next)
        return total


async def async_bot() -> None:
    async with AsyncKalshiClient(demo=True) as client:
        async for market in client.markets.list_all(status="open"):
            print(market.yes_bid_dollars)
        status = await client.exchange.status()
        print(status.trading_active)


def httpx_bot(request: CreateOrderV2Request) -> str:
    with HttpxClient(demo=True) as client:
        return client.orders.create_v2(request).order_id


if __name__ == "__main__":  # (only type-checked: never run)
    anyio.run(async_bot)
