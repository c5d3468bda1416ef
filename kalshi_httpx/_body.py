"""Finish an httpx exchange within the attempt's deadline, and decode the body with the core.

httpx's own timeouts bound each connect, write and read, each to the attempt's whole timeout,
not the attempt: a server that sends a byte now and then never trips them. Both flavours hold
the response body to the deadline: the async one with a cancel scope around reading it, the
blocking one by checking the clock between chunks (it gives up when a chunk comes after the
deadline and the body is not complete by its Content-Length, and keeps a body that is).
On a pool it built, the async one's scope bounds the whole exchange: the wait for a connection,
the connect, the request and the response head too. Cancelling httpcore 1.0.9 there could leave
its pool's connection slot taken for good, which the REST soak found
(``fuzz/soak_rest.py --seed 1871146910``, a one-connection pool); those pools are mended for it
(`kalshi_httpx._async_http2`). A pool passed in is not cut short before the body.

The body is read raw and decoded by `kalshi_proto.rest.http11.decode_body`, so a corrupt
``gzip`` body is reported like on every other adapter and no httpx stream is left half-iterated.

A failed close is reported to the client (the ``lost`` callback), then raised. httpcore 1.0.9
closes a response in steps: it marks the response closed, hands the connection back (under a
lock, which on asyncio is a turn of the event loop), then its pool forgets the request. An
exception between the first step and the last leaves the connection taken for good: asyncio's
own ``task.cancel()`` (what ``asyncio.timeout``, ``wait_for`` and task groups use), which
httpcore's anyio shield does not hold off; an error closing the socket; a KeyboardInterrupt,
which the client handles itself, wherever in httpx it lands.
With ``max_connections=1``, every later call would wait for that connection until it timed out.
Closing again cannot help, as the response is marked closed already, so the client replaces the
pool. (Closing in a shielded task of its own would cost each call about 25 µs, three turns of
the event loop.)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import anyio
import httpx

from kalshi_httpx._async_http2 import SENDING
from kalshi_proto.errors import ConnectTimeout, ReadTimeout, RemoteProtocolError
from kalshi_proto.rest.http11 import body_too_large, decode_body, read_error

__all__ = ["aread_reply", "read_reply"]

P = TypeVar("P")


def _decoded(reply: httpx.Response, raw: bytes) -> bytes:
    try:
        return decode_body(reply.headers.get("content-encoding", ""), raw)
    except RemoteProtocolError as exc:
        raise read_error(exc, "bad response body") from exc


def _check_size(encoding: str, received: int) -> None:
    # Stop reading where the other adapters' connections stop: a body over the limit is not
    # read whole first.
    error = body_too_large(encoding, received)
    if error is not None:
        raise read_error(error, "bad response body") from error


async def aread_reply(
    sending: Awaitable[httpx.Response],
    deadline: float,
    lost: Callable[[P], None],
    pool: P,
    *,
    extensions: Mapping[str, Any] | None = None,
) -> tuple[httpx.Response, bytes]:
    """The response ``sending`` gets and its decoded body, read by ``deadline``
    (``time.monotonic()`` clock). ``lost(pool)`` is called if closing the response fails (see
    the module docstring); ``pool`` is the one the response came from.

    ``extensions``, the request's, are given for a pool the client built: the deadline then
    bounds ``sending`` too (the wait for a connection, the connect, the request and the response
    head), one cancel scope for all. A cancellation inside httpx leaves each connection of such
    a pool usable, or closed (see `kalshi_httpx._async_http2`), and its connections mark a
    request as they start to send it (`SENDING`).

    Raises:
        ConnectTimeout: (``extensions``) no connection took the request in time; nothing was sent.
        ReadTimeout: the response did not finish in time.
        ReadError: the body is corrupt or over the size limit.
    """
    reply = None if extensions is not None else await sending
    if reply is not None and reply.is_stream_consumed:
        return reply, reply.content  # read and decoded already: an httpx.MockTransport's
    # The response's stream itself, not ``aiter_raw()``: its re-chunking and byte counting are
    # not needed here and cost more than the rest of the read (the transport's stream already
    # turns httpcore's errors into httpx's).
    chunks: list[bytes] = []
    received = 0
    pieces = None
    try:
        remaining = deadline - time.monotonic()
        with anyio.CancelScope(deadline=anyio.current_time() + remaining) as scope:
            if reply is None:
                reply = await sending
            encoding = reply.headers.get("content-encoding", "")
            pieces = aiter(cast(httpx.AsyncByteStream, reply.stream))
            async for chunk in pieces:
                chunks.append(chunk)
                received += len(chunk)
                _check_size(encoding, received)
    finally:
        try:
            # A body left part-read (over the limit): the stream's async generator is closed
            # now, not by the garbage collector, which trio warns of.
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()
            if reply is not None:
                await reply.aclose()
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):  # the client's to handle (anywhere)
                lost(pool)  # the pool may have lost the connection (see the module docstring)
            raise
    if scope.cancelled_caught:
        if reply is None and extensions is not None and not extensions.get(SENDING):
            raise ConnectTimeout("no connection took the request before the timeout")
        if reply is None:
            raise ReadTimeout("no response came before the timeout")
        raise ReadTimeout("the response did not finish before the timeout")
    assert reply is not None
    return reply, _decoded(reply, b"".join(chunks))


def read_reply(
    reply: httpx.Response, deadline: float, lost: Callable[[P], None], pool: P
) -> tuple[httpx.Response, bytes]:
    """``reply`` and its decoded body, read by ``deadline`` (``time.monotonic()`` clock).
    ``lost(pool)`` is called if closing the response fails (see the module docstring);
    ``pool`` is the one the response came from.

    Raises:
        ReadTimeout: a chunk came after the deadline and the body was not complete (by its
            Content-Length; without one, any chunk after the deadline).
        ReadError: the body is corrupt or over the size limit.
    """
    if reply.is_stream_consumed:
        return reply, reply.content  # read and decoded already: an httpx.MockTransport's
    stream = cast(httpx.SyncByteStream, reply.stream)  # as in aread_reply: the stream itself
    # The stream gives the body as sent, so Content-Length tells when it is all in. A chunk
    # that comes after the deadline ends the read, unless it completed the body.
    length = reply.headers.get("content-length")
    expected = int(length) if length is not None and length.isdigit() else None
    encoding = reply.headers.get("content-encoding", "")
    chunks = []
    received = 0
    try:
        for chunk in stream:
            chunks.append(chunk)
            received += len(chunk)
            _check_size(encoding, received)
            if time.monotonic() > deadline and (expected is None or received < expected):
                raise ReadTimeout("the response did not finish before the timeout")
    finally:
        try:
            reply.close()
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):  # the client's to handle (anywhere)
                lost(pool)  # the pool may have lost the connection (see the module docstring)
            raise
    return reply, _decoded(reply, b"".join(chunks))
