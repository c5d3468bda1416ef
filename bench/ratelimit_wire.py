#!/usr/bin/env python3
"""Does a rate-limited client keep to its buckets on the wire, with more callers than connections?

Many threads (blocking clients) or tasks (async clients) share one client and one `RateLimiter`
against the local exchange, which notes when each request arrived and answers it after
``--latency`` seconds, except in a slow spell of ``--spell`` seconds every ``--every`` seconds,
when it takes ``--slow-latency``. During a spell the answers hold every connection and callers
queue for one; when it ends, the connections come back together. The script prints, per client flavour, the most Read tokens that arrived
in any window of T seconds, over what the bucket allows in T (``capacity + refill_rate * T``):
1.00 or less keeps to the bucket, and a real exchange counting arrivals would answer the excess
with HTTP 429.

Usage: ``python bench/ratelimit_wire.py [--seconds 10] [--callers 64] [--connections 8]``.
Each flavour runs ``--seconds``; all six take about a minute at the defaults.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_anyio.serve import serve_rest_in_thread
from kalshi_anyio.sim import PREFIX, TRADER_KEY_ID, build_app
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.call import HttpRequest
from kalshi_proto.rest.ratelimit import DEFAULT_COST, BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from kalshi_proto.sim.app import Reply

WINDOWS = (0.05, 0.1, 0.5, 1.0)
FLAVOURS = (
    "kalshi_sync",
    "httpx_sync",
    "kalshi_anyio-asyncio",
    "kalshi_anyio-trio",
    "httpx_async-asyncio",
    "httpx_async-trio",
)


@dataclass
class Arrivals:
    """Wraps the exchange app: notes when each request arrived (`time.monotonic`) and sets
    how long its answer takes."""

    app: Any
    latency: float
    every: float
    spell: float
    slow_latency: float
    started: float = field(default_factory=time.monotonic)
    times: list[float] = field(default_factory=list)

    def handle(self, request: HttpRequest, *, now: float, wall_ms: int) -> Reply:
        arrived = time.monotonic()
        self.times.append(arrived)
        reply: Reply = self.app.handle(request, now=now, wall_ms=wall_ms)
        slow = (arrived - self.started) % self.every >= self.every - self.spell
        return dataclasses.replace(reply, delay=self.slow_latency if slow else self.latency)


def worst_ratio(times: list[float], limit: BucketLimit, window: float) -> float:
    """The most tokens that arrived in any ``window`` seconds, over what the bucket allows."""
    times = sorted(times)
    most = 0
    for i, start in enumerate(times):
        most = max(most, bisect.bisect_right(times, start + window) - i)
    return most * DEFAULT_COST / (limit.capacity + limit.refill_rate * window)


def client_for(flavour: str, options: dict[str, Any], connections: int) -> Any:
    if flavour == "kalshi_sync":
        return kalshi_sync.KalshiClient(max_connections=connections, **options)
    if flavour.startswith("kalshi_anyio"):
        return kalshi_anyio.AsyncKalshiClient(max_connections=connections, **options)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    if flavour == "httpx_sync":
        return kalshi_httpx.KalshiClient(limits=limits, **options)
    return kalshi_httpx.AsyncKalshiClient(limits=limits, **options)


def run_flavour(flavour: str, args: argparse.Namespace) -> tuple[int, Counter[str], list[float]]:
    """Run one flavour; (calls made, outcomes, arrival times)."""
    app, pem = build_app(key_type="ed25519")
    arrivals = Arrivals(app, args.latency, args.every, args.spell, args.slow_latency)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    limit = BucketLimit(refill_rate=args.read_rate, capacity=args.read_capacity)

    def note(outcome: str) -> None:
        with lock:
            outcomes[outcome] += 1

    with serve_rest_in_thread(arrivals) as server:
        options: dict[str, Any] = {
            "base_url": server.origin + PREFIX,
            "key_id": TRADER_KEY_ID,
            "private_key": pem,
            "rate_limit": RateLimiter(limit, limit),
            "retry": RetryPolicy(total_timeout=60),
            "timeout": 5.0,
        }
        client = client_for(flavour, options, args.connections)
        stop_at = time.monotonic() + args.seconds
        if "-" not in flavour:  # a blocking client: threads

            def caller() -> None:
                while time.monotonic() < stop_at:
                    try:
                        client.portfolio.balance()
                        note("ok")
                    except KalshiError as exc:
                        note(type(exc).__name__)

            threads = [threading.Thread(target=caller) for _ in range(args.callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            client.close()
        else:

            async def main() -> None:
                async def caller() -> None:
                    while time.monotonic() < stop_at:
                        try:
                            await client.portfolio.balance()
                            note("ok")
                        except KalshiError as exc:
                            note(type(exc).__name__)

                async with client, anyio.create_task_group() as group:
                    for _ in range(args.callers):
                        group.start_soon(caller)

            anyio.run(main, backend=flavour.rsplit("-", 1)[1])
    return sum(outcomes.values()), outcomes, arrivals.times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per flavour")
    parser.add_argument("--callers", type=int, default=64, help="threads or tasks")
    parser.add_argument("--connections", type=int, default=8, help="the client's pool size")
    parser.add_argument("--latency", type=float, default=0.02, help="the exchange's, seconds")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between slow spells")
    parser.add_argument("--spell", type=float, default=0.3, help="a slow spell's length")
    parser.add_argument("--slow-latency", type=float, default=0.5, help="in a spell, seconds")
    parser.add_argument("--read-rate", type=float, default=1000.0, help="tokens a second")
    parser.add_argument("--read-capacity", type=float, default=20.0, help="tokens")
    parser.add_argument("--flavours", nargs="*", choices=FLAVOURS, default=list(FLAVOURS))
    args = parser.parse_args(argv)
    limit = BucketLimit(refill_rate=args.read_rate, capacity=args.read_capacity)
    print(
        f"Python {sys.version.split()[0]}; {args.callers} callers share one client with "
        f"{args.connections} connections; the exchange answers after {args.latency * 1000:g} ms "
        f"({args.slow_latency * 1000:g} ms in a {args.spell:g} s spell every {args.every:g} s); "
        f"Read bucket {limit.capacity:g} tokens refilled at {limit.refill_rate:g}/s "
        f"({limit.refill_rate / DEFAULT_COST:g} GetBalance calls a second); {args.seconds:g} s each"
    )
    header = " ".join(f"{f'{w:g} s':>7}" for w in WINDOWS)
    print(f"\n{'client':22} {'calls':>6} {'calls/s':>8}  worst tokens in a window / allowed")
    print(f"{'':22} {'':>6} {'':>8}  {header}  errors")
    worst_overall = 0.0
    for flavour in args.flavours:
        started = time.monotonic()
        calls, outcomes, times = run_flavour(flavour, args)
        elapsed = time.monotonic() - started
        ratios = [worst_ratio(times, limit, window) for window in WINDOWS]
        worst_overall = max(worst_overall, *ratios)
        errors = {name: count for name, count in outcomes.items() if name != "ok"}
        cells = " ".join(f"{ratio:7.2f}" for ratio in ratios)
        print(f"{flavour:22} {calls:6d} {calls / elapsed:8.1f}  {cells}  {errors or 'none'}")
    verdict = "keeps to the bucket" if worst_overall <= 1.0 else "goes over the bucket"
    print(f"\nWorst: {worst_overall:.2f} of the budget ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
