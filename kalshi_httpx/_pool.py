"""When an httpx-backed client's pool can no longer be used: after a fork, on a new event loop.

httpx's pools know nothing of ``os.fork()``: a child would reuse the parent's connections and mix
its bytes with the parent's. `FORKS` counts the forks that made this process; a client that sees
it change since it built its pool forgets that pool (`forget`) and builds another.

Nor do they know of event loops: an async pool's connections work only on the asyncio loop that
opened them, and a second ``asyncio.run`` would find them on a closed loop. A client that sees
`current_loop` change builds another pool too, and leaves the old one (`abandon`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import httpx

from kalshi_httpx._goaway import pools_of

__all__ = ["FORKS", "abandon", "current_loop", "forget"]

#: How many ``os.fork()`` calls made this process, counted in the child.
FORKS = 0

# Async pools inherited through os.fork(), kept from use and from the garbage collector.
_INHERITED: list[object] = []


def _count_fork() -> None:
    global FORKS
    FORKS += 1


os.register_at_fork(after_in_child=_count_fork)


def current_loop() -> object | None:
    """The asyncio event loop running the caller, or None on trio (whose connections carry on
    from one ``trio.run`` to the next)."""
    return asyncio._get_running_loop()


def forget(
    pool: httpx.BaseTransport | httpx.Client | httpx.AsyncBaseTransport | httpx.AsyncClient,
) -> None:
    """Put a pool inherited through ``os.fork()`` out of use for good.

    A blocking pool is closed: that closes this process's descriptors and sends nothing (httpcore
    closes the sockets without a TLS goodbye or an HTTP/2 GOAWAY), so the parent's connections
    stay intact. An async pool is not closed: it would close through the event loop it was made
    on, whose copy here shares the parent's epoll instance. It is kept referenced instead, so the
    garbage collector does not close it either.
    """
    if isinstance(pool, httpx.BaseTransport | httpx.Client):
        pool.close()
    else:
        _INHERITED.append(pool)


def abandon(pool: httpx.AsyncBaseTransport | httpx.AsyncClient) -> None:
    """Put out of use an async pool whose connections an asyncio event loop no longer running
    opened (``asyncio.run`` has closed it): they cannot be closed through it.

    The socket of each idle connection is shut down instead, so the server sees the connection
    end at once, and the garbage collector frees its descriptor; asyncio then warns
    ``ResourceWarning: unclosed transport``, which Python shows only in development mode and
    under test runners. (A connection still in use belongs to a call on another loop, which
    goes on: one client used from loops in several threads at once.)
    """
    for each in pools_of(pool):
        for connection in each.connections:
            if connection.is_idle():
                _shut_down(connection)


def _shut_down(connection: Any) -> None:
    # The socket under a connection: that of its HTTP/1.1 or HTTP/2 handler, through a proxy's
    # tunnel or not (httpcore stores each inner one in ``_connection``).
    handler = connection
    while getattr(handler, "_network_stream", None) is None:
        handler = getattr(handler, "_connection", None)
        if handler is None:
            return
    raw = handler._network_stream.get_extra_info("socket")
    if raw is None:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already ended by the peer
