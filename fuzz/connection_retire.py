"""Callers sharing one client while the server retires connections: HTTP/1.1 loses no call.

Servers close a connection after a set number of requests (Hypercorn, the test suite's HTTP/2
server, after 1,000 by default; nginx likewise). Over HTTP/1.1 the last answer says
``Connection: close`` and nothing is left waiting on the connection, so no call may fail: 8
threads share a `kalshi_sync` client, 8 tasks a `kalshi_anyio` one (on asyncio), 8 threads a
blocking `kalshi_httpx` one. The httpx client then runs over HTTP/2, for comparison: the server
sends a GOAWAY frame, and httpcore 1.0.9 fails the requests still waiting on the connection,
those the server took among them, and a request written as the connection closed
(encode/httpcore#730); those failures are counted and never fail the script. The clients have
no retries, so every loss shows; once a client is closed, no socket of this process may be
connected to the server.

    python fuzz/connection_retire.py --seconds 15
    python fuzz/connection_retire.py --seconds 15 --callers 8 --connections 3

Exits 1 when a call fails over HTTP/1.1.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import httpx
import hypercorn.config

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from fuzz._stress import Outcome, dropped_sockets, tally
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.server import ApiServer, running_server
from tests.helpers.sockets import sockets_to

#: What a run is made with: a label and the client's kind ("sync", "httpx", "httpx-h2", "anyio").
SETUPS = (
    ("kalshi_sync", "sync"),
    ("kalshi_anyio on asyncio", "anyio"),
    ("kalshi_httpx, HTTP/1.1", "httpx"),
    ("kalshi_httpx, HTTP/2", "httpx-h2"),
)


def new_client(server: ApiServer, kind: str, connections: int) -> Any:
    """A client of ``kind`` with ``connections`` connections and no retries."""
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "key_id": server.ed25519.key_id,
        "private_key": server.ed25519.pem,
        "retry": RetryPolicy.disabled(),
        "timeout": 5.0,
    }
    if kind.startswith("httpx"):
        limits = httpx.Limits(max_connections=connections)
        verify = server.ssl_context()
        return kalshi_httpx.KalshiClient(
            verify=verify, http2=kind == "httpx-h2", limits=limits, **options
        )
    context = server.ssl_context()
    context.set_alpn_protocols(["http/1.1"])  # the server offers h2 first
    cls = kalshi_sync.KalshiClient if kind == "sync" else kalshi_anyio.AsyncKalshiClient
    return cls(ssl_context=context, max_connections=connections, **options)


def run(server: ApiServer, seconds: float, callers: int, connections: int, kind: str) -> Outcome:
    """``callers`` threads (tasks for ``anyio``) call one client of ``kind`` for ``seconds``."""
    server.reset()
    failures: collections.Counter[str] = collections.Counter()
    calls = [0]

    def failed(exc: KalshiError) -> None:
        failures[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1

    with dropped_sockets() as dropped:
        client = new_client(server, kind, connections)
        stop = time.monotonic() + seconds
        if kind == "anyio":

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
        still_open = sockets_to(server.port)
    done = (
        f"{calls[0]:,} calls answered, {sum(failures.values())} failed, "
        f"over {server.connections()} connections"
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
    print(f"the server retires each connection after {retire} requests", flush=True)
    failed = False
    with (
        tempfile.TemporaryDirectory() as folder,
        running_server(Path(folder), http2=True) as server,
    ):
        for label, kind in SETUPS:
            ok, line = run(server, args.seconds, args.callers, args.connections, kind)
            compared = kind == "httpx-h2"
            verdict = "(for comparison)" if compared else ("ok  " if ok else "FAIL")
            print(f"{verdict} {label}: {line}", flush=True)
            failed = failed or (not compared and not ok)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
