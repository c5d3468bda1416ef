"""Cancel async calls at random moments: no connection, slot or socket may be lost.

Each call of one async client (one connection, no retries) against the local exchange on
loopback is cancelled at a random moment, thousands of times: by asyncio's own ``task.cancel()``
(``asyncio.timeout``, which an anyio shield does not hold off), by an anyio cancel scope on
asyncio, or by a trio cancel scope; for `kalshi_anyio.AsyncKalshiClient` and
`kalshi_httpx.AsyncKalshiClient`, on plain TCP or TLS. Every call must end within a watchdog's
time, none may find no free connection (a `ConnectTimeout` on loopback means one was lost), the
SDK's connection limiter must have its slot back, and at the end one more call must work and,
once the client is closed, no socket of this process may be connected to the exchange.

`fuzz/interrupt_stress.py` does the same with Ctrl-C in blocking calls. A socket that a
cancellation leaves to the garbage collector is a violation too.

    python fuzz/cancel_stress.py --calls 2000                    # every setup, a random seed
    python fuzz/cancel_stress.py --calls 500 --seed 7 --only httpx

Exits 1 on a violation and prints the seed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import httpx

import kalshi_anyio
import kalshi_httpx
from fuzz._stress import Outcome, dropped_sockets, pick_seed, report, run_setups
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import ConnectTimeout, KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.sockets import sockets_to

Client = kalshi_anyio.AsyncKalshiClient | kalshi_httpx.AsyncKalshiClient

#: (name, backend): how a call is cancelled, and the event loop it runs on.
CANCELLERS = (
    ("asyncio task.cancel", "asyncio"),
    ("anyio scope", "asyncio"),
    ("trio scope", "trio"),
)
WATCHDOG = 30.0  # seconds: a call or a close that takes longer has hung


def problems(client: Client) -> str | None:
    """What the client holds that it should not, between calls; None if nothing."""
    limiter = client._limiter if isinstance(client, kalshi_anyio.AsyncKalshiClient) else None
    if limiter is not None and (limiter._free != 1 or limiter._waiters):
        waiting = len(limiter._waiters)
        return f"the connection limiter has {limiter._free} free slot(s), {waiting} waiter(s)"
    return None


async def cancelled_after(
    delay: float, canceller: str, call: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``call``, cancelled ``delay`` seconds in; whether the cancellation cut it short."""
    if canceller == "asyncio task.cancel":
        try:
            async with asyncio.timeout(delay):
                await call()
        except TimeoutError:
            return True
        return False
    with anyio.move_on_after(delay) as scope:
        await call()
    return scope.cancelled_caught


async def drive(
    client: Client, calls: int, rng: random.Random, canceller: str
) -> tuple[str | None, int, float]:
    """The calls; (a violation or None, how many were cut short, seconds per call)."""
    started = time.perf_counter()
    for _ in range(50):
        await client.exchange.status()
    per_call = (time.perf_counter() - started) / 50
    cut = 0
    for number in range(calls):
        try:
            with anyio.fail_after(WATCHDOG):
                cut += await cancelled_after(
                    rng.uniform(0.0, per_call * 3.0), canceller, client.exchange.status
                )
        except ConnectTimeout as exc:  # loopback answers: a connection was lost
            return f"call {number + 1} found no free connection: {exc}", cut, per_call
        except TimeoutError:
            return f"call {number + 1} hung for {WATCHDOG} s", cut, per_call
        except KalshiError:
            pass  # a connection cut by the server as a cancelled one was closed
        found = problems(client)
        if found is not None:
            return f"after call {number + 1}: {found}", cut, per_call
    try:
        with anyio.fail_after(WATCHDOG):
            await client.exchange.status()
            await client.aclose()
    except (KalshiError, TimeoutError) as exc:
        return f"the call after the last one, or the close, failed: {exc!r}", cut, per_call
    return None, cut, per_call


def run(calls: int, seed: int, family: str, canceller: str, backend: str, tls: bool) -> Outcome:
    rng = random.Random(seed)
    with (
        dropped_sockets() as dropped,
        serve_exchange_in_thread(tls=tls, key_type="ed25519") as local,
    ):
        port = local.server.port
        options = local.client_options(httpx=family == "httpx")
        common = {"retry": RetryPolicy.disabled(), "timeout": 2.0, **options}

        async def main() -> tuple[str | None, int, float]:
            client: Client
            if family == "httpx":
                client = kalshi_httpx.AsyncKalshiClient(
                    limits=httpx.Limits(max_connections=1), **common
                )
            else:
                client = kalshi_anyio.AsyncKalshiClient(max_connections=1, **common)
            return await drive(client, calls, rng, canceller)

        violation, cut, per_call = anyio.run(main, backend=backend)
        gc.collect()
        still_open = sockets_to(port)
    if violation is not None:
        return False, violation
    return report(
        still_open,
        f"{cut} of {calls} calls cut short (a call takes {per_call * 1e6:.0f} µs)",
        dropped,
        strict=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", choices=("kalshi_anyio", "httpx"), help="one client family")
    args = parser.parse_args()
    seed = pick_seed(args.seed)
    return run_setups(
        seed,
        (
            (
                f"{family}, {canceller}, {'TLS' if tls else 'TCP'}",
                partial(run, args.calls, seed, family, canceller, backend, tls),
            )
            for family in ((args.only,) if args.only else ("kalshi_anyio", "httpx"))
            for canceller, backend in CANCELLERS
            for tls in (False, True)
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
