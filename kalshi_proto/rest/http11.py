"""The client side of one HTTP/1.1 connection, bytes in and bytes out, over h11.

How it works: `send_request` queues the bytes of one request (``data_to_send()`` hands them
out); the adapter writes them and feeds what it reads to `receive_data`. When the whole response
is in, `next_event` returns `ResponseReceived` with the body already decoded from ``gzip`` or
``deflate``. If both sides may keep the connection open (no ``Connection: close``, the body was
fully framed), the connection is ready for the next request (``reusable``); otherwise the adapter
closes the socket and opens a new one.

States: IDLE (no request out; `send_request` accepted), AWAITING (a request is out; bytes are
parsed), CLOSED (the connection cannot carry another request). A server that closes the
connection in IDLE gives `ConnectionClosed`; an early close in AWAITING, or bytes h11 refuses,
raise `RemoteProtocolError` and close the connection. No timers run here: the adapter bounds each
read with the timeout of the `kalshi_proto.rest.client.SendRequest` it is serving.
"""

from __future__ import annotations

import enum
import zlib
from collections import deque

import h11

from kalshi_proto.errors import LocalProtocolError, RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.events import ConnectionClosed, HttpEvent, ResponseReceived

__all__ = ["ACCEPT_ENCODING", "Http11Connection"]

#: The ``Accept-Encoding`` header this connection sends; it decodes both.
ACCEPT_ENCODING = "gzip, deflate"
_DEFAULT_MAX_BODY = 64 * 1024 * 1024


class _State(enum.Enum):
    IDLE = "idle"  #: no request out; send_request is accepted
    AWAITING = "awaiting"  #: a request is out; response bytes are parsed
    CLOSED = "closed"  #: the connection cannot carry another request


class _Decoder:
    """Streams a gzip or deflate body, refusing to grow past ``limit`` bytes.

    ``deflate`` should be zlib-wrapped (RFC 9110); some servers send raw RFC 1951 data instead.
    Until the first byte decodes, the input is kept so that a raw stream can be re-read from its
    start, however it was split.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        self._may_be_raw = encoding == "deflate"
        self._head = bytearray()
        self._limit = limit
        self._size = 0

    def feed(self, data: bytes) -> bytes:
        if self._may_be_raw:
            self._head += data
        try:
            out = self._obj.decompress(data, self._limit - self._size + 1)
        except zlib.error:
            if not self._may_be_raw:
                raise RemoteProtocolError(f"the {self._encoding} response body is corrupt") from None
            self._may_be_raw = False
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            head = bytes(self._head)
            self._head.clear()
            return self.feed(head)
        if out:
            self._may_be_raw = False
            self._head.clear()
        self._size += len(out)
        if self._size > self._limit:
            raise RemoteProtocolError(f"the decoded response body exceeds {self._limit} bytes")
        return out

    def flush(self) -> bytes:
        out = self._obj.flush()
        if not self._obj.eof:
            raise RemoteProtocolError(f"the {self._encoding} response body is truncated")
        if self._obj.unused_data:
            raise RemoteProtocolError(f"the {self._encoding} response body has bytes after its end")
        return out


class Http11Connection:
    """One HTTP/1.1 client connection, driven by bytes.

    Args:
        host: the ``Host`` header value (``host`` or ``host:port``).
        max_body_size: the largest decoded response body accepted, in bytes.
    """

    def __init__(self, host: str, *, max_body_size: int = _DEFAULT_MAX_BODY) -> None:
        self._host = host.encode("ascii")
        self._max_body = max_body_size
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self._state = _State.IDLE
        self._out = bytearray()
        self._events: deque[HttpEvent] = deque()
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body: list[bytes] = []
        self._size = 0
        self._decoder: _Decoder | None = None
        self._error: str | None = None
        self._eof = False

    @property
    def reusable(self) -> bool:
        """True when another request may be sent on this connection now."""
        return self._state is _State.IDLE

    @property
    def closed(self) -> bool:
        """True when this connection can carry no more requests; open a new one."""
        return self._state is _State.CLOSED

    def send_request(self, request: HttpRequest) -> None:
        """Queue one request; then write ``data_to_send()`` and feed the response bytes.

        Raises:
            LocalProtocolError: a request is already out, or the connection is closed.
        """
        self._guard()
        if self._state is not _State.IDLE:
            why = "a request is already in flight" if self._state is _State.AWAITING else "the connection is closed"
            raise LocalProtocolError(f"cannot send a request: {why}")
        headers = [(b"Host", self._host), (b"Accept-Encoding", ACCEPT_ENCODING.encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            headers.append((b"Content-Length", str(len(request.body)).encode()))
        try:
            out = self._h11.send(
                h11.Request(method=request.method, target=request.target, headers=headers)
            )
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot encode the request: {exc}") from None
        assert out is not None
        self._out += out
        if request.body:
            self._out += self._h11.send(h11.Data(data=request.body)) or b""
        self._out += self._h11.send(h11.EndOfMessage()) or b""
        self._state = _State.AWAITING
        self._status = 0
        self._headers = ()
        self._body = []
        self._size = 0
        self._decoder = None

    def data_to_send(self) -> bytes:
        """Every byte queued for the server; ``b""`` if none."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """Always None: read timeouts belong to the `SendRequest` being served."""
        return None

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the socket; then drain `next_event`.

        Raises:
            RemoteProtocolError: the bytes are not valid HTTP/1.1, or the body is corrupt or too
                large; the connection is closed.
        """
        del now
        if not data:
            raise LocalProtocolError("receive_data() needs bytes; report EOF with receive_eof()")
        self._guard()
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof(): the connection is closed")
        if self._state is _State.CLOSED:
            self._fail("the server sent bytes after the last response of a closing connection")
        if self._state is _State.IDLE:
            self._fail("the server sent bytes with no request outstanding")
        self._h11.receive_data(data)
        self._pump()

    def receive_eof(self, now: float) -> None:
        """Report that the server closed the connection; then drain `next_event`.

        Raises:
            RemoteProtocolError: the response was not complete.
        """
        del now
        self._guard()
        self._eof = True
        if self._state is _State.CLOSED:
            return
        if self._state is _State.IDLE:
            self._state = _State.CLOSED
            self._events.append(ConnectionClosed())
            return
        self._h11.receive_data(b"")
        self._pump()
        # h11 raises (and _pump fails the connection) when EOF cuts a response short, so the
        # response is complete here: its body was delimited by the close. The socket is gone.
        assert self._state is not _State.AWAITING
        self._state = _State.CLOSED

    def next_event(self) -> HttpEvent | None:
        """The next event, or None when there is none."""
        return self._events.popleft() if self._events else None

    def _guard(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(f"the connection failed earlier: {self._error}")

    def _fail(self, message: str) -> None:
        self._state = _State.CLOSED
        self._error = message
        raise RemoteProtocolError(message)

    def _pump(self) -> None:
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(f"invalid HTTP/1.1 response: {exc}")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._start_response(event)
            elif isinstance(event, h11.Data):
                self._add_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._complete()
                return
            elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                self._fail("the server switched protocols (101), which was not asked for")
            # Other 1xx responses carry nothing for us; the final response follows.

    def _start_response(self, event: h11.Response) -> None:
        self._status = event.status_code
        headers = tuple(
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in event.headers
        )
        self._headers = headers
        encoding = next((v.strip().lower() for k, v in headers if k == "content-encoding"), "")
        if encoding in ("gzip", "deflate"):
            self._decoder = _Decoder(encoding, self._max_body)
        elif encoding not in ("", "identity"):
            self._fail(f"the response uses content-encoding {encoding!r}, which was not asked for")

    def _add_body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.feed(data)
            except RemoteProtocolError as exc:
                self._fail(str(exc))
        self._size += len(data)
        if self._size > self._max_body:
            self._fail(f"the response body exceeds {self._max_body} bytes")
        self._body.append(data)

    def _complete(self) -> None:
        if self._decoder is not None:
            try:
                self._body.append(self._decoder.flush())
            except RemoteProtocolError as exc:
                self._fail(str(exc))
        body = b"".join(self._body)
        self._body = []
        response = HttpResponse(status=self._status, headers=self._headers, body=body)
        self._events.append(ResponseReceived(response=response))
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._state = _State.IDLE
        else:
            self._state = _State.CLOSED
