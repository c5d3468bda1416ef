"""The server side of one HTTP/1.1 connection, bytes in and bytes out, over h11.

How it works: the adapter feeds what it reads to `receive_data` (and the peer's close to
`receive_eof`); these only buffer. `next_event` parses: it returns `RequestReceived` once a whole
request, body included, is in, `ConnectionClosed` when the client closed the connection between
requests, or None when it needs more bytes. The adapter answers each request with
`send_response`, writes ``data_to_send()``, and then reads `closing`: when it is True, no more
requests come on this connection and the adapter closes the socket; otherwise it goes back to
`next_event`.

States:

- READING: no request is outstanding; `next_event` parses the buffered bytes.
- RESPONDING: a request was handed out; `send_response` is expected. Bytes that arrive meanwhile
  (a pipelined request) stay buffered and are parsed only after the answer, so pipelined requests
  are answered one at a time, in order.
- CLOSED: no more requests: the last response ended the connection (``Connection: close`` from
  either side, or an HTTP/1.0 client), the client closed it, or its bytes were refused.

Refused requests: `next_event` raises `RemoteProtocolError` whose ``hint`` is the status to
answer: 400 for bytes that are not an HTTP/1.1 request, 413 for a body over ``max_body_size``
(decided from ``Content-Length`` before the body is read, or as chunks arrive), 431 for a request
head over ``max_header_size``, 501 for ``CONNECT`` or a transfer-coding other than chunked, 505
for an HTTP major version other than 1. The connection is then CLOSED; `send_error_response`
queues that answer (with ``Connection: close``) for the adapter to write before closing the
socket; `next_event`, `receive_data` and `send_response` raise `LocalProtocolError` from then on.

Responses carry exactly the headers given plus the framing: ``Content-Length`` is computed here
(any ``Content-Length`` or ``Transfer-Encoding`` given is replaced) and ``Connection: close`` is
added when the connection ends; the reason phrase is the stdlib's `http.HTTPStatus` one (empty for
a status it does not know). Nothing is read from a clock (no ``Date``), so the same inputs give the
same bytes. An ``Expect: 100-continue`` request gets its ``100 Continue`` automatically, in
``data_to_send()``, once its head is accepted. No timers run here (`next_deadline` is None).
"""

from __future__ import annotations

import enum
import json
from http import HTTPStatus
from typing import NoReturn

import h11

from kalshi_proto.errors import ConfigurationError, LocalProtocolError, RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse, received_bytes
from kalshi_proto.rest.retry import check_number
from kalshi_proto.sim.events import ConnectionClosed, HttpServerEvent, RequestReceived

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "HttpServerConnection",
    "error_response",
]

#: The largest request body accepted by default, in bytes. Kalshi's largest requests (batches of
#: orders) are a few kilobytes.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: The largest request head (request line and headers) accepted by default, in bytes.
DEFAULT_MAX_HEADER_SIZE = 64 * 1024

# The ``code`` of the error body for each status a refused request is answered with.
_ERROR_CODES = {
    400: "bad_request",
    413: "request_too_large",
    431: "headers_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}


class _State(enum.Enum):
    READING = "reading"  #: no request is outstanding; next_event parses buffered bytes
    RESPONDING = "responding"  #: a request was handed out; send_response is expected
    CLOSED = "closed"  #: the connection takes no more requests


def error_response(status: int, code: str, message: str) -> HttpResponse:
    """A JSON error response in the shape of the spec's ``ErrorResponse``.

    The body is ``{"code": code, "message": message}`` with no spaces, so it is deterministic.
    """
    body = json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    return HttpResponse(status=status, headers=(("content-type", "application/json"),), body=body)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class HttpServerConnection:
    """One HTTP/1.1 server connection, driven by bytes.

    Args:
        max_body_size: the largest request body accepted, in bytes; a larger one is refused with
            `RemoteProtocolError` (hint 413).
        max_header_size: the largest request head accepted, in bytes (hint 431 beyond).

    Raises:
        ConfigurationError: a limit is not an int, or is negative (``max_body_size``) or not
            positive (``max_header_size``).
    """

    def __init__(
        self,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        check_number("max_body_size", max_body_size, int)
        check_number("max_header_size", max_header_size, int)
        max_body_size, max_header_size = int(max_body_size), int(max_header_size)
        if max_body_size < 0:
            raise ConfigurationError(f"max_body_size must be >= 0, got {max_body_size}")
        if max_header_size <= 0:
            raise ConfigurationError(f"max_header_size must be > 0, got {max_header_size}")
        self._max_body = max_body_size
        self._max_header = max_header_size
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self._state = _State.READING
        self._out = bytearray()
        self._eof = False
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._head = False
        self._error: str | None = None
        self._hint = 400
        self._error_sent = False

    @property
    def closing(self) -> bool:
        """True when no more requests come on this connection: flush ``data_to_send()``, then
        close the socket."""
        return self._state is _State.CLOSED

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Buffer bytes read from the socket; then drain `next_event`.

        Bytes that arrive once the connection is closing are discarded.

        Raises:
            LocalProtocolError: ``data`` is empty (report EOF with `receive_eof`), EOF was
                already reported, or the connection failed earlier.
            TypeError: ``data`` is not bytes-like (a ``str``, say).
        """
        del now
        data = received_bytes(data)
        if not data:
            raise LocalProtocolError("receive_data() needs bytes; report EOF with receive_eof()")
        self._guard()
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof()")
        if self._state is not _State.CLOSED:
            self._h11.receive_data(data)

    def receive_eof(self, now: float) -> None:
        """Report that the client closed the connection; then drain `next_event`.

        A request already handed out can still be answered (the client may have closed only its
        sending side). Reporting EOF again does nothing.
        """
        del now
        if not self._eof:
            self._eof = True
            self._h11.receive_data(b"")

    def next_event(self) -> HttpServerEvent | None:
        """Parse buffered bytes: the next event, or None when more bytes (or an answer) are needed.

        Raises:
            RemoteProtocolError: the bytes are not an acceptable request; ``hint`` is the status
                to answer with `send_error_response`. The connection is closing.
            LocalProtocolError: the connection failed earlier.
        """
        self._guard()
        if self._state is not _State.READING:
            return None
        while True:
            # h11 limits only a head that is still incomplete; a whole head that arrived in one
            # read is measured here, so the limit holds however the bytes were split.
            buffered = len(self._h11.trailing_data[0]) if self._h11.their_state is h11.IDLE else -1
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431:
                    self._fail(self._too_long(), 431)
                self._fail(f"invalid HTTP/1.1 request: {exc}", exc.error_status_hint)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                self._start_request(event, buffered - len(self._h11.trailing_data[0]))
            elif isinstance(event, h11.Data):
                self._add_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return self._complete()
            else:
                # A server receives nothing else from h11: the client closed between requests.
                self._state = _State.CLOSED
                return ConnectionClosed()

    def send_response(self, response: HttpResponse) -> None:
        """Queue the answer to the request last handed out; then write ``data_to_send()`` and
        read `closing`.

        ``Content-Length`` is set from the body; a response to ``HEAD`` carries the header but
        not the body.

        Raises:
            LocalProtocolError: no request is waiting for an answer, the status is not a final
                status (200-599), a 204 or 304 response has a body, or a header cannot be sent
                (not latin-1, or containing a line break), or the body is not bytes. The
                connection is unchanged.
            TypeError: ``response`` is not an `HttpResponse`.
        """
        if not isinstance(response, HttpResponse):
            raise TypeError(f"response must be an HttpResponse, got {type(response).__name__}")
        self._guard()
        if self._state is not _State.RESPONDING:
            why = "closed" if self._state is _State.CLOSED else "waiting for a request"
            raise LocalProtocolError(f"cannot send a response: the connection is {why}")
        head = self._encode(response, close=False)
        self._write(head, response.body)
        if self._h11.our_state is h11.MUST_CLOSE:
            self._state = _State.CLOSED
        else:
            self._h11.start_next_cycle()
            self._head = False
            self._state = _State.READING

    def send_error_response(self) -> None:
        """Queue the answer to a refused request; then write ``data_to_send()`` and close.

        The status is the ``hint`` of the `RemoteProtocolError` that `next_event` raised; the body
        is ``{"code": ..., "message": ...}`` and the connection header says ``close``.

        Raises:
            LocalProtocolError: no request was refused, or the answer was already queued.
        """
        if self._error is None:
            raise LocalProtocolError("no request was refused; answer requests with send_response()")
        if self._error_sent:
            raise LocalProtocolError("the error response was already queued")
        self._error_sent = True
        response = error_response(self._hint, _ERROR_CODES.get(self._hint, "bad_request"), self._error)
        self._write(self._encode(response, close=True), response.body)

    def data_to_send(self) -> bytes:
        """Every byte queued for the client; ``b""`` if none."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """Always None: this connection runs no timers."""
        return None

    def _guard(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(f"the connection failed earlier: {self._error}")

    def _too_long(self) -> str:
        return f"the request head is over {self._max_header} bytes"

    def _fail(self, message: str, hint: int) -> NoReturn:
        self._state = _State.CLOSED
        self._error = message
        self._hint = hint
        raise RemoteProtocolError(message, hint=hint)

    def _start_request(self, event: h11.Request, head_size: int) -> None:
        # First of all: h11 now answers this request, and sends no body to a HEAD, refusal or not.
        self._head = event.method == b"HEAD"
        if head_size > self._max_header:
            self._fail(self._too_long(), 431)
        self._request = event
        self._body = bytearray()
        if not event.http_version.startswith(b"1."):
            version = event.http_version.decode("ascii")
            self._fail(f"expected HTTP/1.x, got HTTP/{version}", 505)
        if event.method == b"CONNECT":
            self._fail("CONNECT is not supported: this server does not tunnel", 501)
        for name, value in event.headers:
            # h11 has checked that Content-Length is one decimal number.
            if name == b"content-length" and int(value) > self._max_body:
                self._fail(
                    f"the request body of {int(value)} bytes exceeds {self._max_body} bytes", 413
                )
        if self._h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))

    def _add_body(self, data: bytes) -> None:
        self._body += data
        if len(self._body) > self._max_body:
            self._fail(f"the request body exceeds {self._max_body} bytes", 413)

    def _complete(self) -> RequestReceived:
        event = self._request
        assert event is not None
        request = HttpRequest(
            method=event.method.decode("latin-1"),
            target=event.target.decode("latin-1"),
            headers=tuple(
                (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                for name, value in event.headers
            ),
            body=bytes(self._body),
        )
        self._request = None
        self._body = bytearray()
        self._state = _State.RESPONDING
        return RequestReceived(request=request)

    def _encode(self, response: HttpResponse, *, close: bool) -> h11.Response:
        # Everything that can go wrong is checked here, before h11's state moves.
        status = response.status
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise LocalProtocolError(f"cannot send status {status!r}: expected 200 to 599")
        if not isinstance(response.body, bytes):
            raise LocalProtocolError(
                f"cannot send a body of {type(response.body).__name__}: expected bytes"
            )
        bodiless = status in (204, 304)
        if bodiless and response.body:
            raise LocalProtocolError(
                f"a {status} response has no body, got {len(response.body)} bytes"
            )
        headers: list[tuple[bytes, bytes]] = []
        for header in response.headers:
            if not (
                isinstance(header, tuple)
                and len(header) == 2
                and isinstance(header[0], str)
                and isinstance(header[1], str)
            ):
                raise LocalProtocolError(
                    f"cannot send the header {header!r}: expected a (name, value) pair of str"
                )
            name, value = header
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            try:
                headers.append((name.encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError:
                raise LocalProtocolError(f"the header {name!r} is not latin-1 text") from None
        if not bodiless:
            headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        if close:
            headers.append((b"connection", b"close"))
        try:
            return h11.Response(status_code=status, headers=headers, reason=_reason(status))
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot encode the response: {exc}") from None

    def _write(self, head: h11.Response, body: bytes) -> None:
        self._send(head)
        if body and not self._head:
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        assert data is not None
        self._out += data
