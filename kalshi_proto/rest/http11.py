"""The client side of one HTTP/1.1 connection, bytes in and bytes out, over h11.

How it works: `send_request` queues the bytes of one request (``data_to_send()`` hands them
out); the adapter writes them and feeds what it reads to `receive_data`. When the whole response
is in, `next_event` returns `ResponseReceived` with the body already decoded from ``gzip`` or
``deflate``. If both sides may keep the connection open (no ``Connection: close``, the body was
fully framed) and no byte came after the response, the connection is ready for the next request
(``reusable``); otherwise the adapter closes the socket and opens a new one.

States: IDLE (no request out; `send_request` accepted), AWAITING (a request is out; bytes are
parsed), CLOSED (the connection cannot carry another request). A server that closes the
connection before the first byte of an answer, in IDLE or with a request out, gives
`ConnectionClosed`; a close that cuts an answer short, or bytes h11 refuses, raise
`RemoteProtocolError` and close the connection. Bytes after a complete response, in the same
read or while IDLE, are dropped and close the connection: this client never pipelines, so they
answer nothing it asked, and RFC 9112, section 6.3 forbids reading them as a response (read as
one, they would answer the next request). No timers run here: the adapter bounds each
read with the timeout of the `kalshi_proto.rest.client.SendRequest` it is serving.

Two parsers, one behaviour. h11 parses every response that is not the plain common case. The
plain case -- ``HTTP/1.1``, a final status other than 204 and 304, exactly one
``Content-Length``, no ``Transfer-Encoding``, every header well formed -- is parsed here in a few
string operations, because h11's general machinery costs more per call than the whole budget of
a small signed GET (bench/rest_overhead.py). Anything the fast path does not recognise goes to a
fresh h11 connection, byte for byte, so h11 decides (and words the error). Tests feed the same
bytes through both and require the same responses. Requests are written here directly: every
header comes from the SDK and has been checked before (key id, base64 signature, user agent,
constants), and each value is checked again for CR, LF and NUL.
"""

from __future__ import annotations

import enum
import re
import sys
import zlib
from collections import deque

import h11

from kalshi_proto.errors import (
    ConfigurationError,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    ResponseTooLargeError,
)
from kalshi_proto.rest.call import HttpRequest, HttpResponse, received_bytes
from kalshi_proto.rest.events import ConnectionClosed, HttpEvent, ResponseReceived
from kalshi_proto.rest.retry import check_number

__all__ = [
    "ACCEPT_ENCODING",
    "Http11Connection",
    "body_too_large",
    "decode_body",
    "http11_only",
    "read_error",
]

#: The ``Accept-Encoding`` header this connection sends; it decodes both.
ACCEPT_ENCODING = "gzip, deflate"
_DEFAULT_MAX_BODY = 64 * 1024 * 1024
_MAX_HEAD = 64 * 1024
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
# Header lines as RFC 9110 has them: a token, a colon, then a field value with optional spaces or
# tabs around it, CRLF. "Optional whitespace, visible characters with spaces and tabs only inside,
# optional whitespace" is exactly "spaces, tabs and visible characters", written so that no
# character can match two ways (no backtracking on a hostile line).
_HEADER_BLOCK = re.compile(rb"(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_REQUEST_TARGET = re.compile(r"/[\x21-\x7e]*")
# A Host header value (RFC 9110, section 7.2): a host name or address, an IPv6 address in
# brackets, and an optional port.
_HOST_HEADER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{1,5})?")
# The response headers the fast path acts on; the others it only keeps.
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding"}
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", *_BODY_METHODS})
_VALID_NAMES: set[str] = set()  # header names already checked against _TOKEN
_MEMBER_PIECE = 16 * 1024  # the bytes a second or later gzip member gets at a time
# How far the encoded bytes of a body may exceed the decoded limit: headers and trailers of
# gzip members, and data that does not compress, make the encoded form a little larger.
_ENCODING_SLACK = 64 * 1024


def _is_token(text: str) -> bool:
    try:
        return _TOKEN.fullmatch(text.encode("ascii")) is not None
    except UnicodeEncodeError:
        return False


def _valid_name(name: str) -> bool:
    # The same few names go out on every request: check each once.
    if name in _VALID_NAMES:
        return True
    if not _is_token(name):
        return False
    if len(_VALID_NAMES) < 256:
        _VALID_NAMES.add(name)
    return True


class _State(enum.Enum):
    IDLE = "idle"  #: no request out; send_request is accepted
    AWAITING = "awaiting"  #: a request is out; response bytes are parsed
    CLOSED = "closed"  #: the connection cannot carry another request


class _Decoder:
    """Streams a gzip or deflate body, refusing to grow past ``limit`` bytes.

    ``deflate`` should be zlib-wrapped (RFC 9110); some servers send raw RFC 1951 data instead.
    Until the first byte decodes, the input is kept so that a raw stream can be re-read from its
    start, however it was split. A ``gzip`` body may hold several members one after another
    (RFC 1952, section 2.2), as ``gzip.decompress`` accepts; ``limit`` applies to all of them
    together. A body with no bytes at all decodes to no bytes: servers label empty bodies too.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._gzip = encoding == "gzip"
        wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        self._may_be_raw = encoding == "deflate"
        self._head = bytearray()
        self._limit = limit
        self._size = 0
        # The encoded bytes count too (with `_ENCODING_SLACK`): gzip members that decode to
        # nothing would otherwise let a body go on without end.
        self._encoded = 0
        self._fed = False  # whether any body byte arrived
        self._after = b""  # gzip: one byte after a member's end, too few to tell what follows

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._fed = True
        self._encoded += len(data)
        too_large = _over_limit(self._encoded, self._limit, encoded=True)
        if too_large is not None:
            raise too_large
        if self._gzip and self._obj.eof:  # the last read ended at or just after a member's end
            return self._next_members(self._after + data)
        out = self._decompress(data)
        if self._gzip and self._obj.eof and self._obj.unused_data:
            out += self._next_members(self._obj.unused_data)
        return out

    def _decompress(self, data: bytes) -> bytes:
        if self._may_be_raw:
            self._head += data
        try:
            out = self._obj.decompress(data, self._limit - self._size + 1)
        except zlib.error:
            if not self._may_be_raw:
                raise RemoteProtocolError(
                    f"the {self._encoding} response body is corrupt"
                ) from None
            self._may_be_raw = False
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            head = bytes(self._head)
            self._head.clear()
            return self._decompress(head)
        if out:
            self._may_be_raw = False
            self._head.clear()
        self._size += len(out)
        if self._size > self._limit:
            raise ResponseTooLargeError(
                f"the decoded response body exceeds {self._limit} bytes", limit=self._limit
            )
        return out

    def _next_members(self, data: bytes) -> bytes:
        # ``data`` follows the end of a gzip member: more members, each starting with the magic
        # bytes 1f 8b, or junk. zlib copies whatever follows the end of a stream into
        # ``unused_data``, so a member gets its bytes a piece at a time: a body of many tiny
        # members is then copied once, not once per member.
        out: list[bytes] = []
        start = 0
        while len(data) - start >= 2:
            if data[start : start + 2] != b"\x1f\x8b":
                raise RemoteProtocolError("the gzip response body has bytes after its end")
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while start < len(data) and not self._obj.eof:
                piece = data[start : start + _MEMBER_PIECE]
                out.append(self._decompress(piece))
                start += len(piece) - len(self._obj.unused_data)
        self._after = data[start:]
        return b"".join(out)

    def flush(self) -> bytes:
        if not self._fed:
            return b""  # a HEAD answer, a 204, a 304, a Content-Length of 0: nothing to decode
        out = self._obj.flush()
        if not self._obj.eof:
            raise RemoteProtocolError(f"the {self._encoding} response body is truncated")
        if self._obj.unused_data or self._after:
            raise RemoteProtocolError(f"the {self._encoding} response body has bytes after its end")
        return out


def _body_limit(value: int) -> int:
    # A body size limit: an int from 1 to what zlib takes as a length (with room for the +1
    # that tells "exactly the limit" from "more").
    check_number("max_body_size", value, int)
    limit = int(value)
    if not 1 <= limit < sys.maxsize:
        raise ConfigurationError(
            f"max_body_size must be from 1 to {sys.maxsize - 1}, got {limit}"
        )
    return limit


def _decoder_for(encoding: str, max_body_size: int) -> _Decoder | None:
    # The decoder a Content-Encoding value needs: None for an unencoded body; an encoding this
    # client did not offer in Accept-Encoding is refused.
    # ``identity`` is no encoding at all, wherever it stands in the list.
    if not encoding:
        return None
    listed = (coding.strip().lower() for coding in encoding.split(","))
    codings = [coding for coding in listed if coding not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1:
        raise RemoteProtocolError(
            f"the response body is encoded more than once (content-encoding {encoding!r}), "
            "which was not asked for"
        )
    if codings[0] not in ("gzip", "deflate"):
        raise RemoteProtocolError(
            f"the response uses content-encoding {codings[0]!r}, which was not asked for"
        )
    return _Decoder(codings[0], max_body_size)


def decode_body(encoding: str, data: bytes, *, max_body_size: int = _DEFAULT_MAX_BODY) -> bytes:
    """Decode a whole ``gzip``, ``deflate`` or ``identity`` body (for transports that hand over
    raw bytes).

    Raises:
        ConfigurationError: ``max_body_size`` is not an int from 1 to ``sys.maxsize - 1``.
        RemoteProtocolError: the body is corrupt, truncated, too large once decoded, or uses
            another content-encoding.
    """
    decoder = _decoder_for(encoding, _body_limit(max_body_size))
    if decoder is None:
        return data
    return decoder.feed(data) + decoder.flush()


def http11_only(host: str, port: int, chosen: str) -> str:
    """Why a TLS connection cannot be used: the server chose ``chosen`` (``"h2"``, say) from
    the protocols the client's `ssl.SSLContext` offered by ALPN, and this connection speaks
    HTTP/1.1 only."""
    return (
        f"the server at {host}:{port} chose {chosen!r} from the protocols the ssl_context offers "
        "by ALPN, and this client speaks HTTP/1.1 only: offer just 'http/1.1' "
        "(context.set_alpn_protocols(['http/1.1'])), or use kalshi_httpx with http2=True"
    )


def _over_limit(size: int, limit: int, *, encoded: bool) -> ResponseTooLargeError | None:
    # The error for a body of ``size`` bytes as sent, or None while it may still fit: a plain
    # body may be ``limit`` bytes, an encoded one that much and `_ENCODING_SLACK` (gzip headers,
    # data that does not compress), since it is limited again as it decodes.
    if not encoded:
        if size <= limit:
            return None
        return ResponseTooLargeError(f"the response body exceeds {limit} bytes", limit=limit)
    most = limit + _ENCODING_SLACK
    if size <= most:
        return None
    return ResponseTooLargeError(f"the encoded response body exceeds {most} bytes", limit=limit)


def body_too_large(
    encoding: str, size: int, *, max_body_size: int = _DEFAULT_MAX_BODY
) -> ResponseTooLargeError | None:
    """The error for a body of which ``size`` bytes have arrived as sent, or None while they
    may still decode to no more than ``max_body_size`` (for transports that read the raw body
    before `decode_body` sees it, so that they stop reading where this connection would).

    A plain body may be ``max_body_size`` bytes; an encoded one that much plus a small slack
    (gzip headers, data that does not compress).
    """
    if size <= max_body_size:
        return None
    try:
        encoded = _decoder_for(encoding, max_body_size) is not None
    except RemoteProtocolError:  # an encoding decode_body refuses anyway: count it as one
        encoded = True
    return _over_limit(size, max_body_size, encoded=encoded)


def read_error(
    error: RemoteProtocolError, prefix: str = "bad response from the server"
) -> ReadError:
    """The `ReadError` an adapter raises for a response its connection refused.

    A body over the limit (`ResponseTooLargeError`) would come again on another attempt: the
    error's ``final_reason`` says so and the call is not retried. Other broken responses may be
    the connection's fault and are retried as any read error is.
    """
    final = None
    if isinstance(error, ResponseTooLargeError):
        final = f"the response body is over the limit of {error.limit} bytes, and would be again"
    return ReadError(f"{prefix}: {error}", final=final)


class _RequestBytes(bytes):
    """Bytes of a request, which carry its signature: their ``repr`` shows only their length."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes of HTTP request, not shown>"


class Http11Connection:
    """One HTTP/1.1 client connection, driven by bytes.

    Args:
        host: the ``Host`` header value (``host`` or ``host:port``), as
            `kalshi_proto.environments.BaseUrl.host_header` gives it.
        max_body_size: the largest decoded response body accepted, in bytes.

    Raises:
        ConfigurationError: ``host`` is not a valid ``Host`` header value, or
            ``max_body_size`` is not an int from 1 to ``sys.maxsize - 1``.
    """

    def __init__(self, host: str, *, max_body_size: int = _DEFAULT_MAX_BODY) -> None:
        if not isinstance(host, str) or not _HOST_HEADER.fullmatch(host):
            shown = repr(host) if isinstance(host, str) else type(host).__name__
            raise ConfigurationError(
                f"host must be a Host header value (host or host:port), got {shown}"
            )
        max_body_size = _body_limit(max_body_size)
        self._host = host.encode("ascii")
        self._prelude = f"\r\nHost: {host}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n"
        self._max_body = max_body_size
        self._state = _State.IDLE
        self._out = bytearray()
        self._in = bytearray()  # unparsed response bytes (fast path)
        self._h11: h11.Connection | None = None  # set while a response goes the h11 way
        self._method = "GET"
        self._events: deque[HttpEvent] = deque()
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body: list[bytes] = []
        self._size = 0
        self._decoder: _Decoder | None = None
        self._closing = False
        self._head: bytes | None = None  # fast path: the parsed head, while its body arrives
        self._need = 0  # fast path: the body's length (Content-Length)
        self._parts: list[bytes] = []  # fast path: the body as it arrived
        self._got = 0  # fast path: bytes in _parts
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
            LocalProtocolError: a request is already out, the connection is closed, or the
                request cannot be written (a bad method, target or header, a body that is not
                bytes).
            TypeError: ``request`` is not an `HttpRequest`.
        """
        if not isinstance(request, HttpRequest):
            raise TypeError(f"request must be an HttpRequest, got {type(request).__name__}")
        self._guard()
        if self._state is not _State.IDLE:
            why = (
                "a request is already in flight"
                if self._state is _State.AWAITING
                else "the connection is closed"
            )
            raise LocalProtocolError(f"cannot send a request: {why}")
        method = request.method
        if method not in _KNOWN_METHODS and not _is_token(method):
            raise LocalProtocolError(f"cannot encode the request: bad method {method!r}")
        if not _REQUEST_TARGET.fullmatch(request.target):
            raise LocalProtocolError(f"cannot encode the request: bad target {request.target!r}")
        parts = [method, " ", request.target, " HTTP/1.1", self._prelude]
        for name, value in request.headers:
            if "\r" in value or "\n" in value or "\0" in value or not _valid_name(name):
                raise LocalProtocolError(f"cannot encode the request: bad header {name!r}")
            parts += (name, ": ", value, "\r\n")
        if not isinstance(request.body, bytes):
            raise LocalProtocolError(
                f"cannot encode the request: the body must be bytes, got "
                f"{type(request.body).__name__}"
            )
        if request.body or method in _BODY_METHODS:
            parts.append(f"Content-Length: {len(request.body)}\r\n")
        parts.append("\r\n")
        try:
            self._out += "".join(parts).encode("latin-1")
        except UnicodeEncodeError:
            raise LocalProtocolError(
                "cannot encode the request: a header value is not Latin-1"
            ) from None
        self._out += request.body
        self._method = method
        self._state = _State.AWAITING
        self._status = 0
        self._headers = ()
        self._body = []
        self._size = 0
        self._decoder = None
        self._closing = False
        self._head = None
        self._need = 0
        self._parts = []
        self._got = 0

    def data_to_send(self) -> bytes:
        """Every byte queued for the server; ``b""`` if none.

        The bytes carry the request's signature, so their ``repr`` shows only their length: a
        traceback that prints the locals of the adapter's write shows no signature.
        """
        out = _RequestBytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """Always None: read timeouts belong to the `SendRequest` being served."""
        return None

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Feed bytes read from the socket; then drain `next_event`.

        Bytes that come while no request is out, or after the end of a response in the same
        read, are dropped and close the connection (``closed``): open a new one.

        ``data`` may be any bytes-like object (a ``bytearray``, a ``memoryview`` of a receive
        buffer); it is copied.

        Raises:
            RemoteProtocolError: the bytes are not valid HTTP/1.1, or the body is corrupt or too
                large; the connection is closed.
            TypeError: ``data`` is not bytes-like (a ``str``, say).
        """
        del now
        data = received_bytes(data)
        if not data:
            raise LocalProtocolError("receive_data() needs bytes; report EOF with receive_eof()")
        self._guard()
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof(): the connection is closed")
        if self._state is _State.CLOSED:
            return  # after a response that closed the connection: nothing more is read
        if self._state is _State.IDLE:
            # No request is out, so these bytes answer nothing; read as a response, they would
            # answer the next request (RFC 9112, section 6.3). They are dropped, and the
            # connection with them.
            self._state = _State.CLOSED
            return
        if self._h11 is not None:
            self._h11.receive_data(data)
            self._pump()
        elif self._head is not None:
            self._add_part(data)
        else:
            self._parse(data)

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
        if self._state is _State.IDLE or (
            self._h11 is None and self._head is None and not self._in
        ):
            # Closed with no answer started: not a broken answer, no answer at all.
            self._state = _State.CLOSED
            self._events.append(ConnectionClosed())
            return
        if self._h11 is None:
            self._to_h11()  # the response is incomplete: h11 decides what the close means
        assert self._h11 is not None
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
        self._fail_with(RemoteProtocolError(message))

    def _fail_with(self, error: RemoteProtocolError) -> None:
        # ``error`` ends the connection (a decoder's, a body over the limit, ...).
        self._state = _State.CLOSED
        self._error = str(error)
        raise error

    # ---- the fast path ---------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        # Look for the head in the bytes kept so far and then ``data``. A response that arrives
        # whole in one read is sliced out of ``data`` without passing through the buffer: the
        # body is copied once, which matters for megabyte pages.
        # The kept bytes were searched already: only their last three can start a match, so a
        # head that comes a few bytes at a time is not searched again from its start each time.
        start = max(len(self._in) - 3, 0)
        if self._in:
            self._in += data
            buffer: bytes | bytearray = self._in
        else:
            buffer = data
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if buffer is data:
                self._in += data
            if (
                len(self._in) > _MAX_HEAD
                or self._in.find(b"\n\n", start) >= 0
                or self._in.find(b"\n\r\n", start) >= 0
            ):
                self._to_h11()  # too long, or bare LF line endings: h11's business
            return
        head = bytes(buffer[: end + 4])
        if not self._fast_head(head[:end]):
            if buffer is data:
                self._in += data
            self._to_h11()
            return
        rest = bytes(memoryview(buffer)[end + 4 :])
        self._in.clear()
        self._head = head
        self._add_part(rest)

    def _add_part(self, data: bytes) -> None:
        # Body bytes after a fast-parsed head. Bytes past the body answer nothing: they are
        # dropped and the connection closes (RFC 9112, section 6.3).
        missing = self._need - self._got
        extra = len(data) > missing
        if extra:
            data = data[:missing]
        if data:
            self._parts.append(data)
            self._got += len(data)
        if self._got < self._need:
            return
        parts = self._parts
        body = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        self._head = None
        self._parts = []
        self._got = 0
        self._add_body(body)
        self._complete(reusable=not (self._closing or extra))

    def _fast_head(self, head: bytes) -> bool:
        # Parse a plain response head; False sends the response to h11 instead.
        line_end = head.find(b"\r\n")
        status_line = head if line_end < 0 else head[:line_end]
        if status_line.startswith(b"HTTP/1.1 101"):
            self._fail("the server switched protocols (101), which was not asked for")
        status = _STATUS_LINE.fullmatch(status_line)
        if status is None:
            return False
        code = int(status.group(1))
        if code in (204, 304) or self._method == "HEAD":
            return False
        block = b"" if line_end < 0 else head[line_end + 2 :] + b"\r\n"
        if not _HEADER_BLOCK.fullmatch(block):
            return False
        headers = []
        encodings = []
        length = -1
        for line in block.decode("latin-1").split("\r\n")[:-1]:
            name, _, value = line.partition(":")
            key = name.lower()
            value = value.strip(" \t")
            headers.append((key, value))
            if key not in _FRAMING_HEADERS:
                continue
            if key == "content-length":
                # h11 refuses a length of more than 20 digits (and int() one of over 4,300).
                if length >= 0 or len(value) > 20 or not (value.isascii() and value.isdigit()):
                    return False
                length = int(value)
            elif key == "transfer-encoding":
                return False
            elif key == "connection":
                tokens = value.lower()
                if "close" in tokens and "close" in [t.strip() for t in tokens.split(",")]:
                    self._closing = True
            else:  # content-encoding: several lines make one list (RFC 9110, section 5.3)
                encodings.append(value)
        if length < 0:
            return False
        self._status = code
        self._set_headers(tuple(headers), ", ".join(encodings))
        # A plain body is refused before it arrives. An encoded one is limited as it decodes,
        # but it is kept whole until its last byte: its encoded size is refused here too.
        too_large = _over_limit(length, self._max_body, encoded=self._decoder is not None)
        if too_large is not None:
            self._fail_with(too_large)
        self._need = length
        return True

    def _to_h11(self) -> None:
        # Hand the response, from its first byte, to a fresh h11 connection that has "sent" a
        # request with the same method (framing of the answer depends on it, nothing else does).
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        conn.send(
            h11.Request(
                method=self._method,
                target="/",
                headers=[(b"Host", self._host), (b"Content-Length", b"0")],
            )
        )
        conn.send(h11.EndOfMessage())
        pending = bytes(self._in)
        if self._head is not None:  # cut short after a fast-parsed head: h11 reads it all again
            pending = self._head + b"".join(self._parts) + pending
        conn.receive_data(pending)
        self._in.clear()
        self._h11 = conn
        self._closing = False
        self._head = None
        self._need = 0
        self._parts = []
        self._got = 0
        self._decoder = None
        self._pump()

    # ---- the h11 path ----------------------------------------------------------------------

    def _pump(self) -> None:
        conn = self._h11
        assert conn is not None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(f"invalid HTTP/1.1 response: {exc}")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
                headers = tuple(
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in event.headers
                )
                encoding = ", ".join(v for k, v in headers if k == "content-encoding")
                self._set_headers(headers, encoding)
            elif isinstance(event, h11.Data):
                self._add_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                leftover, _ = conn.trailing_data
                reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                self._h11 = None
                self._complete(reusable=reusable and not leftover)
                return
            # h11.InformationalResponse (1xx) carries nothing for us; the final response follows.
            # (A 101 is refused by h11 itself: the request it was given asked for no upgrade.)

    # ---- shared ----------------------------------------------------------------------------

    def _set_headers(self, headers: tuple[tuple[str, str], ...], encoding: str) -> None:
        # ``encoding``: the Content-Encoding lines joined into one list (RFC 9110, section 5.3).
        self._headers = headers
        try:
            self._decoder = _decoder_for(encoding, self._max_body)
        except RemoteProtocolError as exc:
            self._fail_with(exc)

    def _add_body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.feed(data)
            except RemoteProtocolError as exc:
                self._fail_with(exc)
        self._size += len(data)
        too_large = _over_limit(self._size, self._max_body, encoded=False)
        if too_large is not None:
            self._fail_with(too_large)
        self._body.append(data)

    def _complete(self, *, reusable: bool) -> None:
        if self._decoder is not None:
            try:
                self._body.append(self._decoder.flush())
            except RemoteProtocolError as exc:
                self._fail_with(exc)
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        response = HttpResponse(status=self._status, headers=self._headers, body=body)
        self._events.append(ResponseReceived(response=response))
        self._state = _State.IDLE if reusable else _State.CLOSED
