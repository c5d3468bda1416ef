"""Events of the HTTP/1.1 client connection (`kalshi_proto.rest.http11.Http11Connection`)."""

from __future__ import annotations

from dataclasses import dataclass

from kalshi_proto.rest.call import HttpResponse

__all__ = ["ConnectionClosed", "HttpEvent", "ResponseReceived"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A whole response arrived; its body is decoded from gzip or deflate."""

    response: HttpResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The server closed the connection with no response in progress."""


HttpEvent = ResponseReceived | ConnectionClosed
