"""Fake anyio byte streams for the adapters' error paths."""

from __future__ import annotations

import anyio
import anyio.abc

__all__ = ["EndedInMidWrite"]


class EndedInMidWrite(anyio.abc.ByteStream):
    """A stream whose peer has gone: what an anyio TLS stream (``standard_compatible=False``)
    raises when the peer closed the connection while this side was writing."""

    async def send(self, item: bytes) -> None:
        raise anyio.EndOfStream

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
