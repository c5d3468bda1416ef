"""Translate httpx exceptions into the SDK's `TransportError` tree, once, at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from kalshi_proto.errors import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportError,
    WriteError,
)

__all__ = ["map_exceptions"]

_MAP: tuple[tuple[type[Exception], type[TransportError]], ...] = (
    (httpx.ConnectTimeout, ConnectTimeout),
    (httpx.PoolTimeout, ConnectTimeout),
    (httpx.TimeoutException, ReadTimeout),
    (httpx.ConnectError, ConnectError),
    (httpx.WriteError, WriteError),
    (httpx.ReadError, ReadError),
    (httpx.RemoteProtocolError, ReadError),
    (httpx.DecodingError, ReadError),
    (httpx.RequestError, ReadError),
)


@contextmanager
def map_exceptions() -> Iterator[None]:
    """Re-raise httpx request failures (transport errors, undecodable bodies) as
    `kalshi_proto.errors.TransportError` subclasses."""
    try:
        yield
    except httpx.RequestError as exc:
        for source, target in _MAP:  # pragma: no branch - the last row catches every RequestError
            if isinstance(exc, source):
                raise target(f"{type(exc).__name__}: {exc}") from exc
