"""Ctrl-C at random moments of blocking calls: no slot, lock or socket may be lost.

A timer (``SIGALRM``) raises KeyboardInterrupt, as Ctrl-C's handler does, at a random moment of
each call of one `kalshi_sync.KalshiClient` (one connection slot, no retries) against the local
exchange on loopback (in a process of its own), thousands of times, on plain TCP or TLS, with or
without client-side rate limiting. After every call, interrupted or not, the client must have its
slot back and no waiter queued, and its locks must be free; at the end, one more call must work
and, once the client is closed, no socket of this process may be connected to the exchange.

Where `tests/adapters/test_interrupt_points.py` interrupts one call at each of its points in
turn, this lands anywhere, loops' backward jumps included, and keeps the client for the whole
run, so what one interrupt leaves wrong shows in the calls after it.

A socket dropped by an interrupt before the code that would close it owns it (just after a
function returns it) is closed by the garbage collector, with a ResourceWarning; the run counts
these, and does not fail on them.

    python fuzz/interrupt_stress.py --calls 3000                # TLS and plain, a random seed
    python fuzz/interrupt_stress.py --calls 500 --seed 7 --rate-limit
    python fuzz/interrupt_stress.py --calls 3000 --http2

``--httpx`` runs a blocking `kalshi_httpx.KalshiClient` (one connection in httpx's pool) the
same way. httpcore's pool cannot be inspected like the SDK's: there the check is that every call
after an interrupt works and none hangs (a watchdog ends a run stuck for 60 s, with the stacks).
``--http2`` runs it over HTTP/2, against the test suite's Hypercorn server over TLS (in this
process: the local exchange speaks HTTP/1.1 only). An interrupt that lands in the garbage
collector's clean-up of an object of the server's is reported as unraisable and lost; the run
counts only those that reach a call.

Unix only (``signal.setitimer``). Exits 1 on a violation and prints the seed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import faulthandler
import gc
import logging
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import hypercorn.config

import kalshi_httpx
import kalshi_sync
from fuzz._stress import (
    Outcome,
    commonest,
    dropped_sockets,
    exchange_apart,
    pick_seed,
    report,
    run_setups,
)
from kalshi_proto.errors import ConnectTimeout, KalshiError
from kalshi_proto.rest.ratelimit import BucketLimit, RateLimiter
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.server import running_server
from tests.helpers.sockets import sockets_to

#: Set while a call runs: the timer's handler raises only then, not in this script's own code.
ARMED = [False]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if ARMED[0]:
        raise KeyboardInterrupt


def problems(
    client: kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient, slots: int = 1
) -> str | None:
    """What the client, of ``slots`` connections, holds that it should not when no call runs;
    None if nothing."""
    if isinstance(client, kalshi_httpx.KalshiClient):
        gate = client._gate
        if gate is not None and (gate._free != slots or gate._waiters):
            return "the rate-limited calls' gate lost a slot or kept a waiter"
        if gate is not None and gate._lock.locked():
            return "the gate's lock is held"
        return None
    limiter = client._limiter
    if limiter._free != slots:
        return f"{slots - limiter._free} connection slot(s) lost"
    if limiter._waiters:
        return f"{len(limiter._waiters)} waiter(s) left in the queue"
    if limiter._lock.locked():
        return "the connection limiter's lock is held"
    if client._pool_lock.locked():
        return "the pool's lock is held"
    return None


Client = kalshi_sync.KalshiClient | kalshi_httpx.KalshiClient


def new_client(options: dict[str, Any], rate_limit: bool, on_httpx: bool, slots: int = 1) -> Client:
    """A client with ``slots`` connections and no retries, of the flavour the run stresses."""
    options = dict(options)
    if rate_limit:
        plenty = BucketLimit(refill_rate=1e9, capacity=1e9)
        options["rate_limit"] = RateLimiter(plenty, plenty)
    if on_httpx:
        return kalshi_httpx.KalshiClient(
            limits=httpx.Limits(max_connections=slots),
            retry=RetryPolicy.disabled(),
            timeout=2.0,
            **options,
        )
    return kalshi_sync.KalshiClient(
        max_connections=slots, retry=RetryPolicy.disabled(), timeout=2.0, **options
    )


def call_times(options: dict[str, Any], rate_limit: bool, on_httpx: bool) -> tuple[float, float]:
    """How long a call takes, in seconds: on a pooled connection, and one that connects first
    (as the call after an interrupt mostly does; over TLS, several times longer)."""
    with new_client(options, rate_limit, on_httpx) as client:
        client.exchange.status()
        started = time.perf_counter()
        for _ in range(50):
            client.exchange.status()
        pooled = (time.perf_counter() - started) / 50
    connecting = 0.0
    for _ in range(10):
        with new_client(options, rate_limit, on_httpx) as client:
            started = time.perf_counter()
            client.exchange.status()
            connecting += (time.perf_counter() - started) / 10
    return pooled, connecting


@contextlib.contextmanager
def http2_server() -> Iterator[tuple[int, dict[str, Any]]]:
    """The test suite's Hypercorn server, HTTP/2 over TLS, in this process; its port and the
    keyword arguments of a `kalshi_httpx` client of it speaking HTTP/2."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # TLS closes cut by an interrupt
    hypercorn.config.Config.keep_alive_max_requests = 2**31  # no GOAWAY: not this run's subject
    with (
        tempfile.TemporaryDirectory() as folder,
        running_server(Path(folder), http2=True) as server,
    ):
        yield (
            server.port,
            {
                "base_url": server.base_url,
                "key_id": server.ed25519.key_id,
                "private_key": server.ed25519.pem,
                "verify": server.ssl_context(),
                "http2": True,
            },
        )


class Alongside:
    """Threads that call on the client over and over while the main thread's calls are
    interrupted (a signal handler runs in the main thread only). Their calls must never hang,
    and a Ctrl-C in the main thread must fail none of them (``failures``), over HTTP/2 too,
    where they share the interrupted calls' connection."""

    def __init__(self, client: Client, threads: int) -> None:
        self.calls = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.crashes: list[str] = []  # what a call raised other than the SDK's errors
        self._client = client
        self._lock = threading.Lock()  # over the counts, which the threads share
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._call, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _call(self) -> None:
        while not self._stop.is_set():
            try:
                self._client.exchange.status()
            except KalshiError as exc:
                with self._lock:
                    self.failures[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
            except BaseException as exc:
                self.crashes.append(repr(exc))
                return
            with self._lock:
                self.calls += 1

    def stop(self) -> str | None:
        """Stop the threads; what went wrong, or None. A thread that has not ended 30 s on
        hangs (its stack is printed); a call that failed is a violation."""
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
            if thread.is_alive():
                faulthandler.dump_traceback(all_threads=True)
                return "a call hangs"
        if self.crashes:
            return f"a call raised {self.crashes[0]}"
        if self.failures:
            return f"calls failed: {commonest(self.failures)}"
        return None

    def __str__(self) -> str:
        kinds = f": {commonest(self.failures)}" if self.failures else ""
        threads, failed = len(self._threads), self.failures.total()
        return f"{self.calls} calls of {threads} thread(s) alongside, {failed} failed{kinds}"


def run(
    calls: int,
    seed: int,
    tls: bool,
    rate_limit: bool,
    on_httpx: bool,
    http2: bool = False,
    threads: int = 0,
) -> Outcome:
    rng = random.Random(seed)
    server = http2_server() if http2 else exchange_apart(tls, httpx=on_httpx)
    slots = 1 + threads
    with dropped_sockets() as dropped, server as (port, options):
        pooled, connecting = call_times(options, rate_limit, on_httpx)
        client = new_client(options, rate_limit, on_httpx, slots)
        previous = signal.signal(signal.SIGALRM, _interrupt)
        others = None
        try:
            client.exchange.status()
            others = Alongside(client, threads) if threads else None
            interrupted = 0
            reconnects = False  # the call before was cut short: this one most likely connects
            for number in range(calls):
                # A moment anywhere in the call, or just after it (the timer is then stopped).
                # Threads alongside share the interpreter's lock: a call takes longer.
                span = (connecting if reconnects else pooled) * 1.5 * (1 + threads)
                try:
                    ARMED[0] = True
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0, span))
                    client.exchange.status()
                    ARMED[0] = False
                    reconnects = False
                except KeyboardInterrupt:
                    interrupted += 1
                    reconnects = True
                except ConnectTimeout as exc:  # loopback answers: a connection slot was lost
                    return False, f"call {number + 1} found no free connection: {exc}"
                except KalshiError:
                    # A connection the server cut as an interrupted one was closed.
                    reconnects = True
                finally:
                    ARMED[0] = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.dump_traceback_later(60, exit=True)  # a call that hangs
                found = problems(client, slots) if others is None else None  # (slots in use)
                if found is not None:
                    return False, f"after call {number + 1}: {found}"
            alongside = ""
            if others is not None:
                found = others.stop() or problems(client, slots)
                if found is not None:
                    return False, f"with {threads} thread(s) calling alongside: {found}"
                alongside = f"; {others}"
            try:
                client.exchange.status()
            except KalshiError as exc:
                return False, f"the call after the last one failed: {exc!r}"
            faulthandler.cancel_dump_traceback_later()
            client.close()
            del client, others
            gc.collect()
            still_open = sockets_to(port)
        finally:
            ARMED[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    took = f"a call takes {pooled * 1e6:.0f} µs, {connecting * 1e6:.0f} µs if it connects"
    done = f"{interrupted} of {calls} calls interrupted ({took}){alongside}"
    return report(still_open, done, dropped)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate-limit", action="store_true", help="only rate-limited clients")
    parser.add_argument("--httpx", action="store_true", help="a blocking kalshi_httpx client")
    parser.add_argument(
        "--http2", action="store_true", help="a blocking kalshi_httpx client over HTTP/2 (TLS)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="threads calling on the client alongside"
    )
    args = parser.parse_args()
    seed = pick_seed(args.seed)
    on_httpx = args.httpx or args.http2
    client = " (kalshi_httpx, HTTP/2)" if args.http2 else " (kalshi_httpx)" if on_httpx else ""
    return run_setups(
        seed,
        (
            (
                f"{'TLS' if tls else 'TCP'}{', rate-limited' if rate_limit else ''}{client}",
                partial(run, args.calls, seed, tls, rate_limit, on_httpx, args.http2, args.threads),
            )
            for tls in ((True,) if args.http2 else (False, True))
            for rate_limit in ((True,) if args.rate_limit else (False, True))
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
