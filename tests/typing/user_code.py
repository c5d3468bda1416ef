"""Code as a user writes it, type-checked by `.ci/typing` with pyright in strict mode (and by
mypy --strict with the rest of tests/): the public API must give a strict checker nothing to
complain about. Never run.
"""

from __future__ import annotations

import random
from decimal import Decimal

import anyio

from kalshi_anyio import AsyncKalshiClient
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_httpx import KalshiClient as HttpxClient
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ApiError, ProxyError, RateLimitError
from kalshi_proto.prices import PriceGrid
from kalshi_proto.proxy import ProxyTunnel, ProxyUrl, Socks5Tunnel, Tunnel, tunnel_for
from kalshi_proto.rest import operation
from kalshi_proto.rest.client import CallOptions, RestConfig, RestCore, SendRequest
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated.models import CreateOrderV2Request, Market
from kalshi_proto.rest.http11 import Http11Connection
from kalshi_proto.rest.retry import RetryPolicy
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
    async with AsyncKalshiClient(demo=True, proxy="http://proxy.example.com:3128") as client:
        async for market in client.markets.list_all(status="open"):
            print(market.yes_bid_dollars)
        status = await client.exchange.status()
        print(status.trading_active)


def tunnel_by_hand(data: bytes) -> bool:
    proxy = ProxyUrl.parse("http://bot:secret@proxy.example.com:3128")
    tunnel = ProxyTunnel(proxy, "external-api.kalshi.com", 443, user_agent="my-bot/1")
    print(len(tunnel.data_to_send()), tunnel.target)
    try:
        return tunnel.receive_data(data)
    except ProxyError as exc:
        print(exc.status)
        return False


def socks_by_hand(answers: list[bytes]) -> bool:
    proxy = ProxyUrl("127.0.0.1", username="bot", password="secret", scheme="socks5h")
    tunnel: Tunnel = tunnel_for(proxy, "external-api.kalshi.com", 443)
    outgoing = [tunnel.data_to_send()]
    try:
        for answer in answers:
            if tunnel.receive_data(answer):
                return True
            outgoing.append(tunnel.data_to_send())
    except ProxyError as exc:
        print(exc.reply, exc.final_reason)
    return isinstance(tunnel, Socks5Tunnel) and bool(outgoing)


def httpx_bot(request: CreateOrderV2Request) -> str:
    with HttpxClient(demo=True) as client:
        quick = client.with_options(timeout=1.0, retry=RetryPolicy.disabled())
        status = client.execute(calls.get_exchange_status(), CallOptions(timeout=5.0))
        print(status.trading_active, quick.options.timeout)
        raw = client.execute(calls.get_markets(limit=1000).raw())
        print(raw.status, len(raw.body), raw.header("content-type"))
        return quick.orders.create_v2(request).order_id


def check_against_the_local_exchange() -> str:
    with serve_exchange_in_thread() as local, KalshiClient(**local.client_options()) as client:
        exchange = local.exchange
        local.call(exchange.determine_market, "KXFED-26JAN-HOLD", "no", exchange.wall_ms)
        result: str | None = local.call(lambda: exchange.market("KXFED-26JAN-HOLD").result)
        return client.markets.get("KXFED-26JAN-HOLD").market.ticker + (result or "")


def drive_the_core_by_hand() -> None:
    core = RestCore(RestConfig(base_url=resolve_base_url(demo=True)), rng=random.random)
    run = core.start(calls.get_exchange_status(), now=0.0)
    step = run.next_step(0.0, 1_767_225_600_000)
    if isinstance(step, SendRequest):
        connection = Http11Connection(core.config.base_url.host_header)
        connection.send_request(step.request)
        print(len(connection.data_to_send()), operation("GetExchangeStatus").path)


if __name__ == "__main__":  # (only type-checked: never run)
    anyio.run(async_bot)
