"""Threads on one blocking httpx client while the server retires connections: HTTP/1.1 loses none.

Servers close a connection after a set number of requests (Hypercorn, the test suite's HTTP/2
server, after 1,000 by default; nginx likewise). Over HTTP/1.1 the last answer says
``Connection: close`` and nothing is left waiting on the connection, so no call may fail. Over
HTTP/2 the server sends a GOAWAY frame, and httpcore 1.0.9 fails the requests still waiting on
the connection, those the server took among them, and a request written as the connection
closed (encode/httpcore#730): those failures are counted, for comparison, and never fail the
script. The client has no retries, so every loss shows; once it is closed, no socket of this
process may be connected to the server.

    python fuzz/connection_retire.py --seconds 15
    python fuzz/connection_retire.py --seconds 15 --threads 8 --connections 3

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import hypercorn.config

import kalshi_httpx
from fuzz._stress import Outcome, dropped_sockets, report
from kalshi_proto.errors import KalshiError
from kalshi_proto.rest.retry import RetryPolicy
from tests.adapters.server import ApiServer, running_server
from tests.helpers.sockets import sockets_to


def run(server: ApiServer, seconds: float, threads: int, connections: int, http2: bool) -> Outcome:
    server.reset()
    failures: collections.Counter[str] = collections.Counter()
    calls = [0] * threads
    with dropped_sockets() as dropped:
        client = kalshi_httpx.KalshiClient(
            base_url=server.base_url,
            key_id=server.ed25519.key_id,
            private_key=server.ed25519.pem,
            verify=server.ssl_context(),
            http2=http2,
            limits=httpx.Limits(max_connections=connections),
            retry=RetryPolicy.disabled(),
            timeout=5.0,
        )
        stop = time.monotonic() + seconds

        def work(index: int) -> None:
            while time.monotonic() < stop:
                try:
                    client.portfolio.balance()
                    calls[index] += 1
                except KalshiError as exc:
                    failures[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        client.close()
        still_open = sockets_to(server.port)
    done = (
        f"{sum(calls):,} calls answered, {sum(failures.values())} failed, "
        f"over {server.connections()} connections"
    )
    if failures:
        shown = "; ".join(f"{count} x {what}" for what, count in failures.most_common(3))
        return False, f"{done}: {shown}"
    return report(still_open, done, dropped)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per run")
    parser.add_argument("--threads", type=int, default=8)
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
        for http2 in (False, True):
            ok, line = run(server, args.seconds, args.threads, args.connections, http2)
            verdict = ("ok  " if ok else "FAIL") if not http2 else "(for comparison)"
            print(f"{verdict} {'HTTP/2' if http2 else 'HTTP/1.1'}: {line}", flush=True)
            failed = failed or (not http2 and not ok)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
