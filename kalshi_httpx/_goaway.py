"""HTTP/2 connections that a server retires gracefully lose no call (both flavours).

A server retires an HTTP/2 connection (after a set number of requests, or to restart) with a
GOAWAY frame naming the last stream it took: it answers the streams up to that one, then closes
the connection; the streams above it it did not process, and a client may send them again
elsewhere (RFC 9113, section 6.8). nginx and the cloud load balancers retire connections so.

httpcore 1.0.9 and h2 4 lose calls there (encode/httpcore#730):

* h2 closes its side of the connection as the GOAWAY arrives (python-hyper/h2#1181), so the
  server's answers to the streams it took, which follow the frame, break h2's state: every call
  still waiting on the connection failed, orders among them, which the exchange had taken;
* httpcore fails a waiting stream at once when the GOAWAY names it or a stream above it,
  without reading on; and sends a stream above the one named to another connection, but not
  when the frame names stream 0 (none processed): that stream failed too;
* a request that had picked the connection before the frame came was sent on it regardless.

Here a connection's h2 state stays open after a GOAWAY (`graceful`); a stream the GOAWAY names
or one below it reads on until its answer ends or the server closes the connection (a server
that does neither leaves it to its read timeout); one above it, a request not yet sent, and one
whose write or read failed once the GOAWAY had come (a write to the connection the server
closed, say), go to another connection (`reroute`), where they are sent as if for the first
time: the server did not process them. A request the server turned away so on `MAX_REROUTES`
connections in a row fails with `TurnedAway`, a `httpcore.ConnectError`, rather than opening
connections for good. The connection takes no new request once its GOAWAY arrived.

A stream the server resets with ``REFUSED_STREAM`` before its answer was not processed either
(RFC 9113, section 8.7): it is sent again too, on the same terms.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import httpcore
import httpx

__all__ = [
    "MAX_REROUTES",
    "TurnedAway",
    "graceful",
    "pools_of",
    "refused",
    "reroute",
    "take_events",
    "turned_away",
    "watch_handler",
]

#: How many connections in a row may turn one request away (a GOAWAY) before it fails.
MAX_REROUTES = 4

_turned_away: weakref.WeakKeyDictionary[httpcore.Request, int] = weakref.WeakKeyDictionary()
_turned_away_lock = threading.Lock()
_graceful_classes: dict[type, type] = {}


def graceful(h2_state: Any) -> None:
    """Keep ``h2_state``, an h2 client connection made just now, open when a GOAWAY arrives.

    h2's own handling closes the connection state and drops what is queued to send. Here the
    frame only gives its `h2.events.ConnectionTerminated` event, and the connection goes on:
    the answers to the streams the server took still arrive, the flow-control credit for them
    is still sent. (It closes as httpcore closes the connection, once the streams are done.)
    """
    cls = type(h2_state)
    subclass = _graceful_classes.get(cls)
    if subclass is None:
        subclass = _graceful_classes[cls] = type(
            cls.__name__, (cls,), {"_receive_goaway_frame": _receive_goaway_frame}
        )
    h2_state.__class__ = subclass
    # h2 looks frames up in a table of bound methods, made with the connection.
    import hyperframe.frame

    h2_state._frame_dispatch_table[hyperframe.frame.GoAwayFrame] = h2_state._receive_goaway_frame


def _receive_goaway_frame(self: Any, frame: Any) -> tuple[list[Any], list[Any]]:
    import h2.errors
    import h2.events

    event = h2.events.ConnectionTerminated()
    try:
        event.error_code = h2.errors.ErrorCodes(frame.error_code)
    except ValueError:  # a code h2 does not know: kept as the number
        event.error_code = frame.error_code
    event.last_stream_id = frame.last_stream_id
    event.additional_data = frame.additional_data or None
    return [], [event]


class TurnedAway(httpcore.ConnectError):
    """A request the server turned away on more than `MAX_REROUTES` connections in a row."""


def reroute(connection: Any, request: httpcore.Request) -> None:
    """Send ``request``, which the server will not process on ``connection``, to another
    connection: raises `httpcore.ConnectionNotAvailable`, which httpcore's pool takes so, or
    `TurnedAway` (a `httpcore.ConnectError`) once it was turned away on more than
    `MAX_REROUTES` connections in a row."""
    with _turned_away_lock:
        count = _turned_away[request] = _turned_away.get(request, 0) + 1
    connection._request_count -= 1  # as httpcore counts a request it sends elsewhere
    if count > MAX_REROUTES:
        raise TurnedAway(
            f"the server turned the request away on {count} connections in a row (a GOAWAY, "
            "or a reset refusing its stream, before processing it); it was not processed"
        )
    raise httpcore.ConnectionNotAvailable()


def turned_away(connection: Any, stream_id: int) -> bool:
    """Whether the GOAWAY ``connection`` got says the server did not process ``stream_id``
    (an id above the one it names)."""
    ended = connection._connection_terminated
    return ended is not None and stream_id > ended.last_stream_id


def refused(error: httpcore.RemoteProtocolError) -> bool:
    """Whether ``error``, httpcore's for a stream the server reset before its answer, says the
    server did not process the stream: a reset with ``REFUSED_STREAM`` (RFC 9113, 8.7)."""
    import h2.errors
    import h2.events

    event = error.args[0] if error.args else None
    return (
        isinstance(event, h2.events.StreamReset)
        and event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    )


def take_events(connection: Any, events: list[Any]) -> list[Any]:
    """Hand ``events``, read by ``connection`` (an httpcore HTTP/2 one), to their streams and
    keep a GOAWAY's, as httpcore's own ``_receive_events`` does. Returns the changes of the
    server's settings, for the caller to apply (awaited, in the async flavour)."""
    import h2.events

    settings = []
    for event in events:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            settings.append(event)
        elif isinstance(
            event,
            (
                h2.events.ResponseReceived,
                h2.events.DataReceived,
                h2.events.StreamEnded,
                h2.events.StreamReset,
            ),
        ):
            if event.stream_id in connection._events:
                connection._events[event.stream_id].append(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            connection._connection_terminated = event
    return settings


def pools_of(
    holder: httpx.BaseTransport | httpx.Client | httpx.AsyncBaseTransport | httpx.AsyncClient,
) -> list[Any]:
    """The httpcore pools behind ``holder``: a transport's (an httpx one's, a `SocksTransport`'s),
    or those of an httpx client's transport and of the proxies it mounts (their ``_pool``)."""
    transports: list[object] = [holder]
    if isinstance(holder, httpx.Client | httpx.AsyncClient):
        transports = [holder._transport, *holder._mounts.values()]
    pools = [getattr(transport, "_pool", None) for transport in transports]
    kinds = (httpcore.ConnectionPool, httpcore.AsyncConnectionPool)
    return [pool for pool in pools if isinstance(pool, kinds)]


#: Each connection class httpcore's pools make, with what is done to its handlers as they are
#: stored: its subclass that does it.
_WATCHING: dict[tuple[type, Callable[[Any], None]], type] = {}


def watch_handler(connection: Any, on_store: Callable[[Any], None]) -> None:
    """Have ``on_store`` see each HTTP/2 or HTTP/1.1 handler ``connection`` makes, as it is made.

    httpcore's connections (direct, through a proxy's tunnel, through SOCKS) make their handler
    on their first request, store it in ``_connection`` and use it at once. ``connection`` is
    given a subclass whose ``_connection`` property passes the handler to ``on_store`` as it is
    stored, before its first use (None, stored too, as well). One without ``_connection`` is
    left alone."""
    if "_connection" not in vars(connection):
        return
    cls = type(connection)
    watching = _WATCHING.get((cls, on_store))
    if watching is None:

        def store(owner: Any, handler: Any) -> None:
            on_store(handler)
            owner.__dict__["_connection"] = handler

        attributes = {"_connection": property(_handler, store), "__module__": __name__}
        watching = _WATCHING[cls, on_store] = type(cls.__name__, (cls,), attributes)
    connection.__class__ = watching


def _handler(connection: Any) -> Any:
    return connection.__dict__["_connection"]
