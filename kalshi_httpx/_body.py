"""Read an httpx response body within the attempt's deadline, and decode it with the core.

httpx's own timeout bounds each read, not the whole body; a body that trickles in must still end
by the deadline of the attempt. The body is read raw and decoded by
`kalshi_proto.rest.http11.decode_body`, so a corrupt ``gzip`` body is reported like on every
other adapter and no httpx stream is left half-iterated. One function per flavour: the async one
bounds the read with a cancel scope, the blocking one checks the clock between chunks.
"""

from __future__ import annotations

import time
from typing import cast

import anyio
import httpx

from kalshi_proto.errors import ReadError, ReadTimeout, RemoteProtocolError
from kalshi_proto.rest.http11 import decode_body

__all__ = ["aread_body", "read_body"]


def _decoded(reply: httpx.Response, raw: bytes) -> bytes:
    try:
        return decode_body(reply.headers.get("content-encoding", ""), raw)
    except RemoteProtocolError as exc:
        raise ReadError(f"bad response body: {exc}") from exc


async def aread_body(reply: httpx.Response, deadline: float) -> bytes:
    """The decoded body of ``reply``, read by ``deadline`` (``time.monotonic()`` clock)."""
    if reply.is_stream_consumed:
        return reply.content  # read (and decoded) already, e.g. built by an httpx.MockTransport
    # The response's stream itself, not ``aiter_raw()``: its re-chunking and byte counting are
    # not needed here and cost more than the rest of the read (the transport's stream already
    # turns httpcore's errors into httpx's). One cancel scope bounds the whole body.
    stream = cast(httpx.AsyncByteStream, reply.stream)
    chunks: list[bytes] = []
    try:
        remaining = deadline - time.monotonic()
        with anyio.CancelScope(deadline=anyio.current_time() + remaining) as scope:
            async for chunk in stream:
                chunks.append(chunk)
    finally:
        await reply.aclose()
    if scope.cancelled_caught:
        raise ReadTimeout("the response did not finish before the timeout")
    return _decoded(reply, b"".join(chunks))


def read_body(reply: httpx.Response, deadline: float) -> bytes:
    """The decoded body of ``reply``, read by ``deadline`` (``time.monotonic()`` clock)."""
    if reply.is_stream_consumed:
        return reply.content  # read (and decoded) already, e.g. built by an httpx.MockTransport
    stream = cast(httpx.SyncByteStream, reply.stream)  # as in aread_body: the stream itself
    chunks = []
    try:
        for chunk in stream:
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise ReadTimeout("the response did not finish before the timeout")
    finally:
        reply.close()
    return _decoded(reply, b"".join(chunks))
