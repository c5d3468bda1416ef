"""Ctrl-C at random moments of blocking calls: no slot, lock or socket may be lost.

A timer (``SIGALRM``) raises KeyboardInterrupt, as Ctrl-C's handler does, at a random moment of
each call of one `kalshi_sync.KalshiClient` (one connection slot, no retries) against the local
exchange on loopback, thousands of times, on plain TCP or TLS, with or without client-side rate
limiting. After every call, interrupted or not, the client must have its slot back and no
waiter queued, and its locks must be free; at the end, one more call must work and, once the
client is closed, no socket of this process may be connected to the exchange.

Where `tests/adapters/test_interrupt_points.py` interrupts one call at each of its points in
turn, this lands anywhere, loops' backward jumps included, and keeps the client for the whole
run, so what one interrupt leaves wrong shows in the calls after it.

A socket dropped by an interrupt before the code that would close it owns it (just after a
function returns it) is closed by the garbage collector, with a ResourceWarning; the run counts
these, and does not fail on them.

    python fuzz/interrupt_stress.py --calls 3000                # TLS and plain, a random seed
    python fuzz/interrupt_stress.py --calls 500 --seed 7 --rate-limit

``--httpx`` runs a blocking `kalshi_httpx.KalshiClient` (one connection in httpx's pool) the
same way. httpcore's pool cannot be inspected like the SDK's: there the check is that every call
after an interrupt works and none hangs (a watchdog ends a run stuck for 60 s, with the stacks).

Unix only (``signal.setitimer``). Exits 1 on a violation and prints the seed.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import random
import signal
import sys
import time
from functools import partial
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

import kalshi_httpx
import kalshi_sync
from fuzz._stress import Outcome, dropped_sockets, pick_seed, report, run_setups
from kalshi_anyio.sim import serve_exchange_in_thread
from kalshi_proto.errors import ConnectTimeout, KalshiError
from kalshi_proto.rest.ratelimit import BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.helpers.sockets import sockets_to

#: Set while a call runs: the timer's handler raises only then, not in this script's own code.
ARMED = [False]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if ARMED[0]:
        raise KeyboardInterrupt


def problems(client: kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient) -> str | None:
    """What the client holds that it should not, between calls; None if nothing."""
    if isinstance(client, kalshi_httpx.KalshiClient):
        gate = client._gate
        if gate is not None and (gate._free != 1 or gate._waiters):
            return "the rate-limited calls' gate lost a slot or kept a waiter"
        if gate is not None and gate._lock.locked():
            return "the gate's lock is held"
        return None
    limiter = client._limiter
    if limiter._free != 1:
        return f"{1 - limiter._free} connection slot(s) lost"
    if limiter._waiters:
        return f"{len(limiter._waiters)} waiter(s) left in the queue"
    if limiter._lock.locked():
        return "the connection limiter's lock is held"
    if client._pool_lock.locked():
        return "the pool's lock is held"
    return None


def run(calls: int, seed: int, tls: bool, rate_limit: bool, on_httpx: bool) -> Outcome:
    rng = random.Random(seed)
    with (
        dropped_sockets() as dropped,
        serve_exchange_in_thread(tls=tls, key_type="ed25519") as local,
    ):
        port = local.server.port
        options = local.client_options(httpx=on_httpx)
        if rate_limit:
            plenty = BucketLimit(refill_rate=1e9, capacity=1e9)
            options["rate_limit"] = RateLimiter(plenty, plenty)
        client: kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient
        if on_httpx:
            client = kalshi_httpx.KalshiClient(
                limits=httpx.Limits(max_connections=1),
                retry=RetryPolicy.disabled(),
                timeout=2.0,
                **options,
            )
        else:
            client = kalshi_sync.KalshiClient(
                max_connections=1, retry=RetryPolicy.disabled(), timeout=2.0, **options
            )
        previous = signal.signal(signal.SIGALRM, _interrupt)
        try:
            started = time.perf_counter()
            for _ in range(50):
                client.exchange.status()
            per_call = (time.perf_counter() - started) / 50
            interrupted = 0
            for number in range(calls):
                try:
                    ARMED[0] = True
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0, per_call * 3.0))
                    client.exchange.status()
                    ARMED[0] = False
                except KeyboardInterrupt:
                    interrupted += 1
                except ConnectTimeout as exc:  # loopback answers: a connection slot was lost
                    return False, f"call {number + 1} found no free connection: {exc}"
                except KalshiError:
                    pass  # a connection cut by the server as an interrupted one was closed
                finally:
                    ARMED[0] = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.dump_traceback_later(60, exit=True)  # a call that hangs
                found = problems(client)
                if found is not None:
                    return False, f"after call {number + 1}: {found}"
            try:
                client.exchange.status()
            except KalshiError as exc:
                return False, f"the call after the last one failed: {exc!r}"
            faulthandler.cancel_dump_traceback_later()
            client.close()
            del client
            gc.collect()
            still_open = sockets_to(port)
        finally:
            ARMED[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return report(
        still_open,
        f"{interrupted} of {calls} calls interrupted (a call takes {per_call * 1e6:.0f} µs)",
        dropped,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate-limit", action="store_true", help="only rate-limited clients")
    parser.add_argument("--httpx", action="store_true", help="a blocking kalshi_httpx client")
    args = parser.parse_args()
    seed = pick_seed(args.seed)
    return run_setups(
        seed,
        (
            (
                f"{'TLS' if tls else 'TCP'}{', rate-limited' if rate_limit else ''}"
                + (" (kalshi_httpx)" if args.httpx else ""),
                partial(run, args.calls, seed, tls, rate_limit, args.httpx),
            )
            for tls in (False, True)
            for rate_limit in ((True,) if args.rate_limit else (False, True))
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
