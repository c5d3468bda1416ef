"""cProfile of `kalshi_sync.KalshiClient` calls with the socket replaced, to find hot spots.

Run ``python bench/profile_rest.py`` for both calls of ``bench/rest_overhead.py``:
(a) ``client.portfolio.balance()`` (signed GET, small body) and (b)
``client.markets.list(limit=1000)`` (1,000 markets). For each it prints the top functions by
cumulative time and by own ("total") time. Options: ``--call a|b``, ``--key rsa|ed25519`` for
(a) (Ed25519 shows the non-signing overhead more clearly, since RSA signing dominates),
``--top N``, ``--iterations N``, ``--client httpx`` to profile `kalshi_httpx.KalshiClient` over
an `httpx.MockTransport` instead.

cProfile adds a fixed cost to every Python function call, so the shares of small Python
functions are inflated against C code (signing, pydantic-core); read the ranking, not the
absolute times, and confirm a change with ``rest_overhead.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import sysconfig
from collections.abc import Callable, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fixtures as fx

import kalshi_httpx
import kalshi_sync
import kalshi_sync._io

_PREFIXES = sorted(
    {
        sysconfig.get_paths()["purelib"] + os.sep,
        sysconfig.get_paths()["stdlib"] + os.sep,
        str(fx.ROOT) + os.sep,
    },
    key=len,
    reverse=True,
)


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":  # built-in or C function
        return func
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return f"{path}:{line}({func})"


def print_top(profile: cProfile.Profile, calls: int, sort: str, top: int) -> None:
    stats = pstats.Stats(profile)
    rows: list[tuple[tuple[str, int, str], Any]] = list(stats.stats.items())  # type: ignore[attr-defined]
    index = 3 if sort == "cumulative" else 2
    rows.sort(key=lambda item: item[1][index], reverse=True)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"  top {top} by {sort} time (µs per profiled call; {calls} calls, "
        f"{total / calls * 1e6:,.1f} µs per call under the profiler)"
    )
    print(f"  {'ncalls/call':>11} {'tottime':>10} {'cumtime':>10} {'cum %':>6}  function")
    for key, (_cc, nc, tt, ct, _callers) in rows[:top]:
        print(
            f"  {nc / calls:>11.1f} {tt / calls * 1e6:>10.1f} {ct / calls * 1e6:>10.1f} "
            f"{ct / total * 100:>6.1f}  {_where(key)}"
        )


def profile(label: str, fn: Callable[[], Any], iterations: int, top: int) -> None:
    for _ in range(max(3, iterations // 10)):  # warm up caches and imports
        fn()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        fn()
    profiler.disable()
    print()
    print(f"== {label} ==")
    print_top(profiler, iterations, "cumulative", top)
    print()
    print_top(profiler, iterations, "total", top)


@contextlib.contextmanager
def _client(flavour: str, raw: bytes, body: bytes, key: Any) -> Iterator[Any]:
    if flavour == "kalshi_httpx":
        transport, _ = fx.mock_transport(body)
        with kalshi_httpx.KalshiClient(transport=transport, **fx.client_kwargs(key)) as client:
            yield client
        return
    with fx.fake_connect(kalshi_sync._io, fx.FakeStream(raw)):
        with kalshi_sync.KalshiClient(**fx.client_kwargs(key)) as client:
            yield client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--call", choices=("a", "b", "all"), default="all")
    parser.add_argument("--key", choices=("rsa", "ed25519"), default="rsa")
    parser.add_argument("--client", choices=("kalshi_sync", "kalshi_httpx"), default="kalshi_sync")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--iterations", type=int, default=0, help="0: 2000 for (a), 20 for (b)")
    args = parser.parse_args(argv)

    keys = fx.make_keys()
    responses = fx.build_responses(validate_all=False)
    key = keys.rsa if args.key == "rsa" else keys.ed25519

    if args.call in ("a", "all"):
        with _client(args.client, responses.balance_raw, responses.balance, key) as client:
            profile(
                f"(a) {args.client} portfolio.balance(), {args.key} key",
                client.portfolio.balance,
                args.iterations or 2000,
                args.top,
            )
    if args.call in ("b", "all"):
        with _client(args.client, responses.markets_raw, responses.markets, keys.rsa) as client:
            profile(
                f"(b) {args.client} markets.list(limit=1000), {len(responses.markets):,} B body",
                lambda: client.markets.list(limit=1000),
                args.iterations or 20,
                args.top,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
