"""Events of the server side of an HTTP/1.1 connection (`kalshi_proto.sim.http.HttpServerConnection`)."""

from __future__ import annotations

from dataclasses import dataclass

from kalshi_proto.rest.call import HttpRequest

__all__ = ["ConnectionClosed", "HttpServerEvent", "RequestReceived"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A whole request arrived, body included; answer it with
    `~kalshi_proto.sim.http.HttpServerConnection.send_response`.

    Header names in ``request.headers`` are lower-case (``host`` included); ``target`` is the
    request-target exactly as sent.
    """

    request: HttpRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The client closed the connection between requests; close the socket."""


HttpServerEvent = RequestReceived | ConnectionClosed
