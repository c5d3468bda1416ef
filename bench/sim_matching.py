"""How many orders per second the local exchange matches in-process.

Run ``python bench/sim_matching.py``. Three workloads of random limit orders on the default
scenario's markets (the 0.01-tick ones), placed by a few users with large balances:

* ``resting``  -- GTC bids at or below each market's best bid and asks at or above its best ask,
  so nothing trades and every order rests;
* ``crossing`` -- IOC orders that cross one to three levels into deep resting liquidity (placed
  beforehand, untimed), so every order trades;
* ``mixed``    -- GTC orders a few ticks either side of each market's mid: some trade, some rest.

Each workload is timed twice: through `Exchange.place_order` (checks, collateral, fills, fees,
order groups) and through `OrderBook.match` alone (the matching engine without the exchange's
bookkeeping). The exchange figure is printed per fifth of the run, because the cost of one
order grows with the number of orders the exchange has seen (``place_order`` scans every order
for a duplicate client order id and for expiries), so 100,000 orders through the exchange take
minutes. Options: ``--orders`` (exchange runs, default 20,000), ``--book-orders`` (book-only
runs, default 100,000), ``--users``, ``--seed``, ``--workload`` (repeatable; all three by
default). The script prints figures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from kalshi_proto.sim.exchange import Exchange
from kalshi_proto.sim.matching import BookOrder, OrderBook, Side, StpMode, TimeInForce
from kalshi_proto.sim.scenario import build_exchange
from kalshi_proto.sim.scenarios import default_scenario

CENT = Decimal("0.01")
BALANCE = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class Order:
    user: str
    ticker: str
    side: Side
    price: Decimal
    count: Decimal
    tif: TimeInForce


def _exchange(users: int) -> Exchange:
    ex = build_exchange(default_scenario())
    for n in range(users):
        ex.add_account(f"u{n}", BALANCE)
    ex.add_account("maker", BALANCE)
    return ex


def _cent_markets(ex: Exchange) -> list[str]:
    return sorted(t for t, m in ex.markets.items() if m.price_level_structure == "linear_cent")


def _quotes(ex: Exchange, ticker: str) -> tuple[int, int]:
    book = ex.markets[ticker].book
    bid, ask = book.best(Side.BID), book.best(Side.ASK)
    assert bid is not None and ask is not None
    return int(bid * 100), int(ask * 100)


def _resting(ex: Exchange, rng: random.Random, n: int, users: int) -> list[Order]:
    tickers = _cent_markets(ex)
    quotes = {t: _quotes(ex, t) for t in tickers}
    out = []
    for i in range(n):
        ticker = rng.choice(tickers)
        bid, ask = quotes[ticker]
        side = rng.choice((Side.BID, Side.ASK))
        ticks = rng.randint(1, bid) if side is Side.BID else rng.randint(ask, 99)
        out.append(
            Order(
                f"u{i % users}",
                ticker,
                side,
                Decimal(ticks) / 100,
                Decimal(rng.randint(1, 100)),
                TimeInForce.GTC,
            )
        )
    return out


def _crossing(ex: Exchange, rng: random.Random, n: int, users: int) -> list[Order]:
    tickers = _cent_markets(ex)
    quotes = {t: _quotes(ex, t) for t in tickers}
    out = []
    for i in range(n):
        ticker = rng.choice(tickers)
        bid, ask = quotes[ticker]
        side = rng.choice((Side.BID, Side.ASK))
        depth = rng.randint(0, 2)
        ticks = min(99, ask + depth) if side is Side.BID else max(1, bid - depth)
        out.append(
            Order(
                f"u{i % users}",
                ticker,
                side,
                Decimal(ticks) / 100,
                Decimal(rng.randint(1, 50)),
                TimeInForce.IOC,
            )
        )
    return out


def _deep_liquidity(ex: Exchange) -> list[Order]:
    # Huge maker orders on the three levels each side of every market, so crossing takers never
    # run the book dry (they fill the scenario's own small orders first).
    out = []
    for ticker in _cent_markets(ex):
        bid, ask = _quotes(ex, ticker)
        for level in range(3):
            if bid - level >= 1:
                out.append(
                    Order(
                        "maker",
                        ticker,
                        Side.BID,
                        Decimal(bid - level) / 100,
                        Decimal(10) ** 9,
                        TimeInForce.GTC,
                    )
                )
            if ask + level <= 99:
                out.append(
                    Order(
                        "maker",
                        ticker,
                        Side.ASK,
                        Decimal(ask + level) / 100,
                        Decimal(10) ** 9,
                        TimeInForce.GTC,
                    )
                )
    return out


def _mixed(ex: Exchange, rng: random.Random, n: int, users: int) -> list[Order]:
    tickers = _cent_markets(ex)
    quotes = {t: _quotes(ex, t) for t in tickers}
    out = []
    for i in range(n):
        ticker = rng.choice(tickers)
        bid, ask = quotes[ticker]
        mid = (bid + ask) // 2
        ticks = min(99, max(1, mid + rng.randint(-4, 4)))
        side = rng.choice((Side.BID, Side.ASK))
        out.append(
            Order(
                f"u{i % users}",
                ticker,
                side,
                Decimal(ticks) / 100,
                Decimal(rng.randint(1, 100)),
                TimeInForce.GTC,
            )
        )
    return out


def _place_all(ex: Exchange, orders: list[Order], prefix: str) -> None:
    wall_ms = ex.wall_ms
    for i, o in enumerate(orders):
        ex.place_order(
            o.user,
            ticker=o.ticker,
            side=o.side,
            price=o.price,
            count=o.count,
            tif=o.tif,
            stp=StpMode.MAKER,
            client_order_id=f"{prefix}{i}",
            wall_ms=wall_ms,
        )


def _time_exchange(ex: Exchange, orders: list[Order]) -> tuple[float, list[float]]:
    chunks = 5
    size = max(1, len(orders) // chunks)
    rates = []
    total = 0.0
    for start in range(0, len(orders), size):
        chunk = orders[start : start + size]
        began = time.perf_counter()
        _place_all(ex, chunk, f"b{start}-")
        spent = time.perf_counter() - began
        total += spent
        rates.append(len(chunk) / spent)
    return len(orders) / total, rates


def _time_books(ex: Exchange, orders: list[Order], preload: list[Order]) -> tuple[float, int]:
    # The same stream against fresh books holding the scenario's and the preloaded liquidity.
    books: dict[str, OrderBook] = {}
    counter = 0
    for ticker, market in ex.markets.items():
        book = books[ticker] = OrderBook(ticker)
        for resting in market.book.orders():
            counter += 1
            book.rest(
                BookOrder(
                    f"s{counter}", resting.owner, resting.side, resting.price, resting.remaining
                )
            )
    for o in preload:
        counter += 1
        books[o.ticker].match(
            BookOrder(f"p{counter}", o.user, o.side, o.price, o.count), o.tif, StpMode.MAKER
        )
    incoming = [BookOrder(f"o{i}", o.user, o.side, o.price, o.count) for i, o in enumerate(orders)]
    fills = 0
    began = time.perf_counter()
    for book_order, o in zip(incoming, orders, strict=True):
        fills += len(books[o.ticker].match(book_order, o.tif, StpMode.MAKER).matches)
    return len(orders) / (time.perf_counter() - began), fills


Workload = Callable[[Exchange, random.Random, int, int], list[Order]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000, help="orders per exchange run")
    parser.add_argument("--book-orders", type=int, default=100_000, help="orders per book-only run")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workload",
        choices=["resting", "crossing", "mixed"],
        action="append",
        help="run only these (repeatable)",
    )
    args = parser.parse_args()
    workloads: list[tuple[str, Workload, bool]] = [
        ("resting", _resting, False),
        ("crossing", _crossing, True),
        ("mixed", _mixed, False),
    ]
    print(
        f"default scenario, {args.users} users; exchange runs of {args.orders:,} orders, book-only runs of {args.book_orders:,}"
    )
    print()
    header = f"{'workload':<10} {'exchange orders/s':>18} {'per fifth of the run (orders/s)':>44} {'trades':>8} {'book-only orders/s':>19}"
    print(header)
    print("-" * len(header))
    for name, make, deep in workloads:
        if args.workload and name not in args.workload:
            continue
        ex = _exchange(args.users)
        preload = _deep_liquidity(ex) if deep else []
        _place_all(ex, preload, "pre")
        orders = make(ex, random.Random(args.seed), args.orders, args.users)
        fills_before = len(ex.fills)
        rate, rates = _time_exchange(ex, orders)
        trades = (len(ex.fills) - fills_before) // 2
        book_ex = _exchange(args.users)
        book_preload = _deep_liquidity(book_ex) if deep else []
        book_orders = make(book_ex, random.Random(args.seed), args.book_orders, args.users)
        book_rate, _ = _time_books(book_ex, book_orders, book_preload)
        fifths = " ".join(f"{r:>8,.0f}" for r in rates)
        print(f"{name:<10} {rate:>18,.0f} {fifths:>44} {trades:>8,} {book_rate:>19,.0f}")
    print()
    print(
        "trades: trades made during the timed exchange run (each gives one taker and one maker fill)."
    )


if __name__ == "__main__":
    main()
