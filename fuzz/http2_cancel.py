"""Async callers sharing one httpx client, half their calls cancelled: no other call fails.

8 tasks share one async `kalshi_httpx` client (3 connections, no retries) against the test
suite's Hypercorn server, told not to retire connections. Each call is cancelled, with an
even chance, by an anyio cancel scope at a random moment up to three times the length of a
call. A cancellation must cost only the call cancelled, over HTTP/1.1 and over HTTP/2, where
httpcore 1.0.9 alone broke a connection whose first request was cancelled as the connection
started, or whose write a cancellation cut short, and failed the calls on it (docs/rest.md,
"Clients and adapters"): no other call may fail, and every error must be a `KalshiError`. On
both, once the client is closed and the garbage collector has run, no socket of this process
may be connected to the server, and the garbage collector may have had to close none. Over
HTTP/2, where a cancelled call's stream ends alone, a cancellation may cost no connection: no
more may carry calls than the pool's 3 (the client used to replace its pool on each
cancellation; see docs/rest.md, "Retries and timeouts").

    python fuzz/http2_cancel.py --seconds 15
    python fuzz/http2_cancel.py --seconds 15 --backend trio --seed 7

Exits 1 when a call fails, or raises anything but a `KalshiError`, or a socket is left open or
to the garbage collector, or (HTTP/2) more connections carry calls than the pool has.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import httpx
import hypercorn.config

import kalshi_httpx
from fuzz._stress import Outcome, commonest, dropped_sockets, pick_seed, tally
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.server import ApiServer, running_server
from tests.helpers.sockets import sockets_to

#: The client's pool size.
CONNECTIONS = 3


def run(
    server: ApiServer, seconds: float, rng: random.Random, http2: bool, backend: str
) -> Outcome:
    """8 tasks call one client for ``seconds``, half the calls cancelled; ``Outcome`` as
    `fuzz._stress.tally` gives it."""
    server.reset()
    failures: collections.Counter[str] = collections.Counter()
    foreign: collections.Counter[str] = collections.Counter()
    counts = collections.Counter[str]()

    async def main() -> None:
        client = kalshi_httpx.AsyncKalshiClient(
            base_url=server.base_url,
            key_id=server.ed25519.key_id,
            private_key=server.ed25519.pem,
            retry=RetryPolicy.disabled(),
            timeout=5.0,
            verify=server.ssl_context(),
            http2=http2,
            limits=httpx.Limits(max_connections=CONNECTIONS),
        )
        async with client:
            began = time.monotonic()
            for _ in range(20):
                await client.portfolio.balance()
            span = (time.monotonic() - began) / 20
            stop = time.monotonic() + seconds

            async def work() -> None:
                while time.monotonic() < stop:
                    limit = rng.uniform(0, 3 * span) if rng.random() < 0.5 else None
                    try:
                        with anyio.CancelScope() as scope:
                            if limit is not None:
                                scope.deadline = anyio.current_time() + limit
                            await client.portfolio.balance()
                        counts["cancelled" if scope.cancelled_caught else "answered"] += 1
                    except KalshiError as exc:
                        failures[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1
                    except Exception as exc:  # what this script looks for
                        foreign[f"{type(exc).__module__}.{type(exc).__name__}: {exc}"] += 1

            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(work)
            with anyio.fail_after(10):
                await client.portfolio.balance()  # the client still works

    with dropped_sockets() as dropped:
        anyio.run(main, backend=backend)
        gc.collect()  # httpcore leaves sockets to the collector (see fuzz/README.md)
        still_open = sockets_to(server.port)
    done = (
        f"{counts['answered']:,} answered, {counts['cancelled']:,} cancelled, "
        f"{sum(failures.values())} failed, over {server.connections():,} connections"
    )
    if foreign:
        return False, f"{done}; not a KalshiError: {commonest(foreign)}"
    if http2 and server.connections() > CONNECTIONS:
        return False, f"{done}: more than the pool's {CONNECTIONS}, cancellations cost them"
    return tally(failures, still_open, done, dropped, strict=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per run")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = pick_seed(args.seed)
    rng = random.Random(seed)
    # The server's event loop logs each TLS close that crosses a request of the client's.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # Not retiring connections keeps out the calls Hypercorn takes and cannot answer after its
    # GOAWAY (fuzz/connection_retire.py).
    hypercorn.config.Config.keep_alive_max_requests = 2**31
    failed = False
    with (
        tempfile.TemporaryDirectory() as folder,
        running_server(Path(folder), http2=True) as server,
    ):
        for label, http2 in (("HTTP/1.1", False), ("HTTP/2", True)):
            ok, line = run(server, args.seconds, rng, http2, args.backend)
            verdict = "ok  " if ok else "FAIL"
            print(f"{verdict} async kalshi_httpx on {args.backend}, {label}: {line}", flush=True)
            failed = failed or not ok
    if failed:
        print(f"violation; run again with --seed {seed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
