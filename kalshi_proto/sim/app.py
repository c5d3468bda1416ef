"""The contract between the local exchange's REST side and whatever serves it.

A `RestApp` turns one `HttpRequest` into a `Reply`: the response, and how to deliver it
(at once, after a delay, or cut off part-way to simulate a dropped connection). The app is pure;
`kalshi_anyio.serve` reads requests off sockets, asks the app, sleeps, writes and drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kalshi_proto.rest.call import HttpRequest, HttpResponse

__all__ = ["Drop", "Reply", "Respond", "RestApp"]


@dataclass(frozen=True, slots=True)
class Respond:
    """Send ``response`` after waiting ``delay`` seconds."""

    response: HttpResponse
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Drop:
    """Wait ``delay`` seconds, send ``response``'s head and the first ``after`` bytes of its body,
    then close the connection (a connection dropped mid-response)."""

    response: HttpResponse
    after: int
    delay: float = 0.0


Reply = Respond | Drop


class RestApp(Protocol):
    """Anything that answers REST requests: the local exchange, or a test double."""

    def handle(self, request: HttpRequest, *, now: float, wall_ms: int) -> Reply:
        """Answer one request. ``now`` is the server's monotonic clock, ``wall_ms`` Unix ms."""
        ...
