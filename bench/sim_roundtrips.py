#!/usr/bin/env python3
"""Round trips per second over loopback, per client flavour, against the local exchange.

Starts the exchange in a child process with its command line (``python -m kalshi_anyio.sim``,
plain HTTP on 127.0.0.1, an Ed25519 key), then times sequential calls from each client flavour:
a public GET (``exchange.status()``) and a signed GET (``portfolio.balance()``). Prints round trips
per second (median of several runs). A script that prints figures; nothing here is asserted.

Usage: ``python bench/sim_roundtrips.py [--calls N] [--runs R]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

import kalshi_anyio
import kalshi_httpx
import kalshi_sync


def start_exchange(key_file: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kalshi_anyio.sim", "--port", "0", "--key-type", "ed25519", "--key-file", str(key_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("local Kalshi exchange at "):
        process.kill()
        raise SystemExit(f"the exchange did not start: {first!r}")
    return process, first.removeprefix("local Kalshi exchange at ").strip()


def rate(run_once: Callable[[], float], runs: int) -> float:
    return statistics.median(run_once() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        key_file = Path(folder) / "key.pem"
        process, base_url = start_exchange(key_file)
        try:
            options: dict[str, Any] = {"base_url": base_url, "key_id": "local-trader-key", "private_key_path": key_file}
            print(f"local exchange at {base_url} (child process); {args.calls} sequential calls per run, median of {args.runs} runs")
            print(f"{'client':34} {'backend':8} {'public GET/s':>13} {'signed GET/s':>13}")
            for cls in (kalshi_sync.KalshiClient, kalshi_httpx.KalshiClient):
                with cls(**options) as client:
                    row = []
                    for call in (client.exchange.status, client.portfolio.balance):
                        call()  # warm up: connect

                        def once(call: Callable[[], object] = call) -> float:
                            start = time.perf_counter()
                            for _ in range(args.calls):
                                call()
                            return float(args.calls / (time.perf_counter() - start))

                        row.append(rate(once, args.runs))
                print(f"{cls.__module__ + '.' + cls.__name__:34} {'-':8} {row[0]:13,.0f} {row[1]:13,.0f}")
            for acls in (kalshi_anyio.AsyncKalshiClient, kalshi_httpx.AsyncKalshiClient):
                for backend in ("asyncio", "trio"):

                    async def measure(acls: Any = acls) -> list[float]:
                        async with acls(**options) as client:
                            row = []
                            for call in (client.exchange.status, client.portfolio.balance):
                                await call()
                                samples = []
                                for _ in range(args.runs):
                                    start = time.perf_counter()
                                    for _ in range(args.calls):
                                        await call()
                                    samples.append(args.calls / (time.perf_counter() - start))
                                row.append(statistics.median(samples))
                            return row

                    row = anyio.run(measure, backend=backend)
                    print(f"{acls.__module__ + '.' + acls.__name__:34} {backend:8} {row[0]:13,.0f} {row[1]:13,.0f}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
