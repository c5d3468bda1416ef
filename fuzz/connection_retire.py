"""Callers sharing one client while the server retires connections: no call may be lost.

Servers close a connection after a set number of requests (Hypercorn, the test suite's HTTP/2
server, after 1,000 by default; nginx likewise). Over HTTP/1.1 the last answer says
``Connection: close`` and nothing is left waiting on the connection, so no call may fail: 8
threads share a `kalshi_sync` client, 8 tasks a `kalshi_anyio` one (on asyncio), 8 threads a
blocking `kalshi_httpx` one.

Over HTTP/2 a server retires a connection with a GOAWAY frame naming the last stream it took,
answers the streams up to it, then closes (RFC 9113, 6.8): the `kalshi_httpx` clients, blocking
and async, run against such a server (`tests.adapters.graceful_h2`, retiring each connection
after 1,000 requests), where no call may fail either: the streams the server took get their
answers, the others are sent again elsewhere. Then the blocking one against Hypercorn, for
comparison: Hypercorn cannot answer after its GOAWAY (its h2 closes), so the calls in flight
then fail, their outcome unknown; those failures are counted and never fail the script. The
clients have no retries, so every loss shows; once a client is closed, no socket of this
process may be connected to the server.

    python fuzz/connection_retire.py --seconds 15
    python fuzz/connection_retire.py --seconds 15 --callers 8 --connections 3

Exits 1 when a call fails but against Hypercorn over HTTP/2.
"""

from __future__ import annotations

import argparse
import collections
import logging
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import httpx
import hypercorn.config
import trustme

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from fuzz._stress import Outcome, dropped_sockets, tally
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.graceful_h2 import GracefulH2Server, Retire
from tests.adapters.server import KeyPair, running_server
from tests.helpers.sockets import sockets_to

#: What a run is made with: a label, the client's kind ("sync", "anyio", "httpx", "httpx-h2",
#: "httpx-async-h2") and the server ("hypercorn", or "graceful": `GracefulH2Server`).
SETUPS = (
    ("kalshi_sync", "sync", "hypercorn"),
    ("kalshi_anyio on asyncio", "anyio", "hypercorn"),
    ("kalshi_httpx, HTTP/1.1", "httpx", "hypercorn"),
    ("kalshi_httpx, HTTP/2, a graceful server", "httpx-h2", "graceful"),
    ("kalshi_httpx async on asyncio, HTTP/2, a graceful server", "httpx-async-h2", "graceful"),
    ("kalshi_httpx, HTTP/2, Hypercorn", "httpx-h2", "hypercorn"),
)

#: How many requests the graceful server takes on a connection before it retires it.
RETIRE_AFTER = 1000

KEY = KeyPair.ed25519("connection-retire-key")


@dataclass(frozen=True)
class Target:
    """The server a run calls: where, how to trust it, and how many connections it took."""

    base_url: str
    port: int
    trust: Callable[[], ssl.SSLContext]
    connections: Callable[[], int]


@contextmanager
def running_target(serving: str, folder: Path) -> Iterator[Target]:
    """Hypercorn (``"hypercorn"``) or a `GracefulH2Server` (``"graceful"``), serving until the
    block ends; certificates in ``folder``."""
    if serving == "hypercorn":
        with running_server(folder, http2=True) as server:
            server.keys[KEY.key_id] = KEY.public_key
            yield Target(server.base_url, server.port, server.ssl_context, server.connections)
        return
    ca = trustme.CA()
    cert_file = folder / "graceful.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    graceful = GracefulH2Server(ca, cert_file, otherwise=Retire(after=RETIRE_AFTER))
    try:
        yield Target(graceful.base_url, graceful.port, graceful.client_context, graceful.count)
    finally:
        graceful.stop()


def new_client(target: Target, kind: str, connections: int) -> Any:
    """A client of ``kind`` with ``connections`` connections and no retries."""
    options: dict[str, Any] = {
        "base_url": target.base_url,
        "key_id": KEY.key_id,
        "private_key": KEY.pem,
        "retry": RetryPolicy.disabled(),
        "timeout": 5.0,
    }
    if kind.startswith("httpx"):
        limits = httpx.Limits(max_connections=connections)
        cls = kalshi_httpx.AsyncKalshiClient if "async" in kind else kalshi_httpx.KalshiClient
        return cls(verify=target.trust(), http2=kind.endswith("h2"), limits=limits, **options)
    context = target.trust()
    context.set_alpn_protocols(["http/1.1"])  # the server offers h2 first
    kinds = {"sync": kalshi_sync.KalshiClient, "anyio": kalshi_anyio.AsyncKalshiClient}
    return kinds[kind](ssl_context=context, max_connections=connections, **options)


def run(target: Target, seconds: float, callers: int, connections: int, kind: str) -> Outcome:
    """``callers`` threads (tasks for the async kinds) call one client of ``kind`` for
    ``seconds``."""
    failures: collections.Counter[str] = collections.Counter()
    calls = [0]

    def failed(exc: KalshiError) -> None:
        failures[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1

    with dropped_sockets() as dropped:
        client = new_client(target, kind, connections)
        stop = time.monotonic() + seconds
        if kind in ("anyio", "httpx-async-h2"):

            async def tasks() -> None:
                async def work() -> None:
                    while time.monotonic() < stop:
                        try:
                            await client.portfolio.balance()
                            calls[0] += 1
                        except KalshiError as exc:
                            failed(exc)

                async with client, anyio.create_task_group() as group:
                    for _ in range(callers):
                        group.start_soon(work)

            anyio.run(tasks)
        else:

            def work() -> None:
                while time.monotonic() < stop:
                    try:
                        client.portfolio.balance()
                        calls[0] += 1  # one thread at a time: the interpreter's lock
                    except KalshiError as exc:
                        failed(exc)

            workers = [threading.Thread(target=work) for _ in range(callers)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            client.close()
        still_open = sockets_to(target.port)
    done = (
        f"{calls[0]:,} calls answered, {sum(failures.values())} failed, "
        f"over {target.connections()} connections"
    )
    return tally(failures, still_open, done, dropped)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per run")
    parser.add_argument("--callers", type=int, default=8, help="threads, or tasks")
    parser.add_argument("--connections", type=int, default=3)
    args = parser.parse_args()
    # The server's event loop logs each TLS close that crosses a request of the client's.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    retire = hypercorn.config.Config().keep_alive_max_requests
    print(f"each server retires each connection after {retire} requests", flush=True)
    assert retire == RETIRE_AFTER
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for label, kind, serving in SETUPS:
            with running_target(serving, Path(folder)) as target:
                ok, line = run(target, args.seconds, args.callers, args.connections, kind)
            compared = serving == "hypercorn" and kind == "httpx-h2"
            verdict = "(for comparison)" if compared else ("ok  " if ok else "FAIL")
            print(f"{verdict} {label}: {line}", flush=True)
            failed = failed or (not compared and not ok)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
