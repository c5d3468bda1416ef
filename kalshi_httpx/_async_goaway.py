"""The HTTP/2 handler of a connection the server may retire with a GOAWAY (see `_goaway`).

``scripts/unasync.py`` writes the blocking twin, ``_sync_goaway.py``, from this async source;
the blocking pools' handler (``_guard._SafeHTTP2Connection``) builds on that twin.
"""

from __future__ import annotations

from typing import Any

import httpcore
import httpx

from kalshi_httpx import _goaway

__all__ = ["GracefulHTTP2Connection"]


class GracefulHTTP2Connection(httpcore.AsyncHTTP2Connection):
    """httpcore's HTTP/2 handler, given a connection the server retires (a GOAWAY) the way
    `_goaway` describes: the streams the server took read on, the others are sent elsewhere.
    A handler becomes one with `adopt`, made and not used yet."""

    _sent: dict[httpcore.Request, int]  # the stream of each request sent, until its answer

    @classmethod
    def adopt(cls, handler: httpcore.AsyncHTTP2Connection) -> None:
        """Make ``handler``, made just now and not used yet, one of this class."""
        handler.__class__ = cls
        assert isinstance(handler, cls)
        handler._sent = {}
        _goaway.graceful(handler._h2_state)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            response: httpcore.Response = await super().handle_async_request(request)
            return response
        except (httpcore.ConnectionNotAvailable, _goaway.TurnedAway):
            raise
        except Exception:
            # A write to the connection the server closed, say: a GOAWAY read meanwhile may
            # say it did not process the stream.
            stream_id = self._sent.get(request)
            if stream_id is not None and _goaway.turned_away(self, stream_id):
                _goaway.reroute(self, request)
            raise
        finally:
            self._sent.pop(request, None)

    async def _send_request_headers(self, request: httpcore.Request, stream_id: int) -> None:
        if self._connection_terminated is not None:  # it picked the connection before the GOAWAY
            _goaway.reroute(self, request)
        self._sent[request] = stream_id
        await super()._send_request_headers(request, stream_id)

    async def _receive_response(
        self, request: httpcore.Request, stream_id: int
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        try:
            return await super()._receive_response(request, stream_id)
        except httpcore.RemoteProtocolError as exc:
            if _goaway.refused(exc):
                _goaway.reroute(self, request)
            raise

    async def _receive_events(
        self, request: httpcore.Request, stream_id: int | None = None
    ) -> None:
        # httpcore's own, but after a GOAWAY a stream the server took reads on.
        async with self._read_lock:
            if stream_id is not None and _goaway.turned_away(self, stream_id):
                _goaway.reroute(self, request)
            if stream_id is None or not self._events.get(stream_id):
                events = await self._read_incoming_data(request)
                for change in _goaway.take_events(self, events):
                    await self._receive_remote_settings_change(change)
        await self._write_outgoing_data(request)

    def is_available(self) -> bool:
        return self._connection_terminated is None and super().is_available()


# unasync: async only
def graceful_pools(holder: httpx.AsyncBaseTransport | httpx.AsyncClient) -> None:
    """Make the HTTP/2 handlers of every httpcore pool behind ``holder`` (a transport or an
    `httpx.AsyncClient` an `AsyncKalshiClient` built) `GracefulHTTP2Connection`s. (The
    blocking pools' guard does so for the blocking ones.) Call it before the first request."""
    for pool in _goaway.pools_of(holder):
        create = pool.create_connection

        def create_watched(
            origin: httpcore.Origin, create: Any = create
        ) -> httpcore.AsyncConnectionInterface:
            connection: httpcore.AsyncConnectionInterface = create(origin)
            _goaway.watch_handler(connection, _adopt)
            return connection

        # The pool calls self.create_connection(origin) for each connection it opens.
        pool.create_connection = create_watched


def _adopt(handler: Any) -> None:
    if type(handler) is httpcore.AsyncHTTP2Connection:
        GracefulHTTP2Connection.adopt(handler)


# unasync: end
