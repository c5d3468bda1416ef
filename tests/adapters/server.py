"""A scriptable Kalshi trade-API server on loopback, for the adapter integration tests.

`ApiServer` runs uvicorn (HTTP/1.1 parsed by ``httptools``, not h11, so the clients' HTTP code
is checked against an independent implementation) over TLS on ``127.0.0.1`` with an ephemeral
port, in a background thread. Its ASGI app answers every operation of the trade API:

* a request is routed by method and path template under ``/trade-api/v2`` (literal segments win
  over ``{params}``, so ``/markets/trades`` is not ``/markets/{ticker}``);
* the answer is spec-shaped JSON built by ``tests.helpers.spec.example`` for the operation's
  response schema, with the path parameters echoed into fields of the same name;
* a cursor-paginated operation serves three pages (cursors ``"p2"``, ``"p3"``, then ``""``) of
  two distinct items each;
* an operation that needs auth checks the ``KALSHI-ACCESS-*`` headers against the registered
  public keys (RSA-PSS SHA-256 with a 32-byte salt, or Ed25519, over ``timestamp + METHOD +
  path`` without the query) and a timestamp within 30 s; anything else is a 401 with an
  ``ErrorResponse`` body.

Tests script faults per path (`ApiServer.script`): an error status, a delay, a connection
dropped after the headers, gzip (good or corrupt), a chunked, trickled or padded body, or
``Connection: close``. Every request is recorded (`Received`), with the client's source port, so
tests can count TCP connections.

`Http2ApiServer` serves the same app with Hypercorn, which also speaks HTTP/2 (uvicorn does
not), for the httpx clients' ``http2=True``.

`RawServer` is a few lines of blocking TLS for what uvicorn will not send: bytes that are not
HTTP at all, or no answer before the close.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import gzip
import importlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import hypercorn.asyncio
import hypercorn.config
import hypercorn.typing
import trustme
import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from kalshi_proto.rest.operation_table import Operation, operations

__all__ = [
    "PREFIX",
    "ApiServer",
    "AuthFailure",
    "Fault",
    "Http2ApiServer",
    "KeyPair",
    "PublicKey",
    "RawServer",
    "Received",
    "error_body",
    "response_body",
    "route",
    "running_server",
    "verify_signature",
]

#: The path prefix of the trade API on this server, as on Kalshi's.
PREFIX = "/trade-api/v2"
#: How far a KALSHI-ACCESS-TIMESTAMP may be from the server's clock.
MAX_SKEW_MS = 30_000
#: Items per page of a paginated operation, and the pages served.
PAGE_SIZE = 2
PAGES = 3

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


# ---- keys and signatures --------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """An API key as a test holds it: the id, the private PEM the client gets, the public half."""

    key_id: str
    pem: str
    public_key: PublicKey

    @classmethod
    def rsa(cls, key_id: str) -> KeyPair:
        """A fresh RSA 2048 key, PKCS#1 PEM (the form Kalshi's key generator returns)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return cls(key_id, pem.decode(), key.public_key())

    @classmethod
    def ed25519(cls, key_id: str) -> KeyPair:
        """A fresh Ed25519 key, PKCS#8 PEM."""
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(key_id, pem.decode(), key.public_key())


class AuthFailure(Exception):
    """Why a request's signature headers were refused; becomes a 401 ``ErrorResponse``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verify_signature(
    keys: Mapping[str, PublicKey],
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    now_ms: int,
) -> str:
    """Check the three ``KALSHI-ACCESS-*`` headers the way Kalshi does.

    Args:
        keys: the registered public keys by key id.
        method: the request method.
        raw_path: the path as sent, from ``/trade-api/v2``, without the query.
        headers: the request headers, names in lower case.
        now_ms: the server's Unix time in milliseconds.

    Returns:
        The key id whose key verified the signature.

    Raises:
        AuthFailure: a header is missing, the key id is unknown, the timestamp is not an
            integer within `MAX_SKEW_MS`, or the signature does not verify.
    """
    key_id = headers.get("kalshi-access-key")
    stamp = headers.get("kalshi-access-timestamp")
    signature = headers.get("kalshi-access-signature")
    if key_id is None or stamp is None or signature is None:
        raise AuthFailure("missing_auth_headers", "KALSHI-ACCESS-* headers are missing")
    public_key = keys.get(key_id)
    if public_key is None:
        raise AuthFailure("unknown_api_key", "the API key id is not registered")
    if not stamp.isdigit():
        raise AuthFailure("invalid_timestamp", "KALSHI-ACCESS-TIMESTAMP is not milliseconds")
    if abs(int(stamp) - now_ms) > MAX_SKEW_MS:
        raise AuthFailure("timestamp_skew", "KALSHI-ACCESS-TIMESTAMP is more than 30 s off")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except ValueError:
        raise AuthFailure("invalid_signature", "the signature is not base64") from None
    message = f"{stamp}{method.upper()}{raw_path.split('?', 1)[0]}".encode()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                raw_signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        else:
            public_key.verify(raw_signature, message)
    except InvalidSignature:
        raise AuthFailure("invalid_signature", "the signature does not verify") from None
    return key_id


# ---- the operation table as routes ----------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    operation: Operation
    pattern: re.Pattern[str]
    params: tuple[str, ...]


def _route_for(op: Operation) -> _Route:
    regex, params = "", list[str]()
    for part in re.split(r"(\{[^}]+\})", op.path):
        if part.startswith("{") and part.endswith("}"):
            regex += f"(?P<p{len(params)}>[^/]+)"
            params.append(part[1:-1])
        else:
            regex += re.escape(part)
    return _Route(op, re.compile(regex), tuple(params))


@functools.cache
def _routes() -> tuple[_Route, ...]:
    # Fewer parameters first, so a literal segment wins over a template.
    return tuple(sorted((_route_for(op) for op in operations()), key=lambda r: len(r.params)))


def route(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation a request is for and its (decoded) path parameters, or None."""
    for route in _routes():
        if route.operation.method != method:
            continue
        found = route.pattern.fullmatch(path)
        if found is not None:
            values = {name: unquote(found.group(f"p{i}")) for i, name in enumerate(route.params)}
            return route.operation, values
    return None


@functools.cache
def _spec_example(schema_name: str) -> Any:
    # tests/helpers/spec.py imports scripts/generate.py by path, which mypy cannot follow;
    # importing it by name keeps `mypy --strict tests/adapters` about this package only.
    spec = importlib.import_module("tests.helpers.spec")
    return spec.example(schema_name)


def _echo(node: Any, values: Mapping[str, str], depth: int = 0) -> None:
    # Writes path parameters into same-named string fields, so each answer names what was asked.
    if not isinstance(node, dict) or depth > 1:
        return
    for key, value in node.items():
        if key in values and isinstance(value, str):
            node[key] = values[key]
        else:
            _echo(value, values, depth + 1)


_ID_FIELDS = ("ticker", "order_id", "trade_id", "fill_id", "event_ticker", "id", "quote_id")


def _distinct(item: Any, page: int, index: int) -> Any:
    if isinstance(item, dict):
        for key in _ID_FIELDS:
            if isinstance(item.get(key), str):
                item[key] = f"{item[key]}-P{page}-{index}"
    return item


def _page_number(query: str) -> int:
    cursor = next(
        (v for k, _, v in (pair.partition("=") for pair in query.split("&")) if k == "cursor"), ""
    )
    return {"": 1, "p2": 2, "p3": 3}.get(cursor, 1)


def response_body(op: Operation, path_values: Mapping[str, str], query: str) -> bytes:
    """The JSON body the server sends for a successful call of ``op``; ``b""`` if none."""
    if op.response_model is None:
        return b""
    body = copy.deepcopy(_spec_example(op.response_model.__name__))
    _echo(body, path_values)
    pagination = op.pagination
    if pagination is not None and isinstance(body, dict):
        page = _page_number(query)
        template = (body.get(pagination.items_field) or [{}])[0]
        body[pagination.items_field] = [
            _distinct(copy.deepcopy(template), page, i) for i in range(PAGE_SIZE)
        ]
        body[pagination.cursor_field] = f"p{page + 1}" if page < PAGES else ""
    return json.dumps(body).encode()


def error_body(code: str, message: str, details: str = "") -> bytes:
    """A spec ``ErrorResponse`` body."""
    return json.dumps({"code": code, "message": message, "details": details}).encode()


# ---- faults and records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or on top of) the normal answer.

    Attributes:
        status: answer with this status; a 4xx/5xx gets an ``ErrorResponse`` body unless
            ``body`` is given.
        code, message, details: the ``ErrorResponse`` fields for an error status.
        body: the exact body to send.
        headers: extra response headers.
        delay: seconds to wait before answering (cut short if the client goes away).
        drop: send the headers with the full Content-Length and half the body, then close.
        gzip: send the body gzip-encoded (``Content-Encoding: gzip``).
        corrupt_gzip: claim ``Content-Encoding: gzip`` and send bytes that are not gzip.
        chunked: send the body in three chunks (``Transfer-Encoding: chunked``).
        trickle: send the body in eight chunks, this many seconds apart.
        close: add ``Connection: close``.
        pad: add a ``"padding"`` field of this many bytes to a JSON object answer (response
            models keep unknown fields), for bodies that span many reads.
    """

    status: int | None = None
    code: str = "test_fault"
    message: str = "scripted by the test"
    details: str = ""
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False
    gzip: bool = False
    corrupt_gzip: bool = False
    chunked: bool = False
    trickle: float = 0.0
    close: bool = False
    pad: int = 0


@dataclass
class _Rule:
    method: str | None
    path: str
    fault: Fault
    remaining: int


@dataclass(frozen=True)
class Received:
    """One request as the server saw it.

    ``path`` is the raw path from ``/trade-api/v2`` without the query; ``api_path`` is the part
    after the prefix. ``auth`` is the key id that verified the signature, or None. ``arrived``
    is when the whole request was in, on the `time.monotonic` clock.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    client_port: int
    operation_id: str | None
    auth: str | None
    status: int
    http_version: str = "1.1"  #: as the ASGI scope says: "1.1" or "2"
    arrived: float = 0.0

    @property
    def api_path(self) -> str:
        return self.path.removeprefix(PREFIX)


# ---- the ASGI app ---------------------------------------------------------------------------


class _App:
    def __init__(self, owner: ApiServer) -> None:
        self._owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - lifespan is off
            return
        owner = self._owner
        owner.loop = asyncio.get_running_loop()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        arrived = time.monotonic()
        method: str = scope["method"]
        raw_path = bytes(scope["raw_path"]).decode("latin-1").split("?", 1)[0]
        query = bytes(scope["query_string"]).decode("latin-1")
        headers = {
            bytes(k).decode("latin-1"): bytes(v).decode("latin-1") for k, v in scope["headers"]
        }
        api_path = raw_path.removeprefix(PREFIX) if raw_path.startswith(PREFIX + "/") else None
        matched = route(method, api_path) if api_path is not None else None
        fault = owner._take_fault(method, api_path or raw_path)

        status, payload, auth = 404, error_body("not_found", "no such route"), None
        operation_id = None
        if matched is not None:
            op, values = matched
            operation_id = op.operation_id
            status, payload = op.success_status, b""
            if op.requires_auth:
                try:
                    auth = verify_signature(
                        owner.keys, method, raw_path, headers, time.time_ns() // 1_000_000
                    )
                except AuthFailure as exc:
                    status, payload = 401, error_body(exc.code, exc.message, "signature check")
            if status != 401:
                payload = response_body(op, values, query)
        if fault is not None and fault.status is not None:
            status = fault.status
            payload = (
                fault.body
                if fault.body is not None
                else error_body(fault.code, fault.message, fault.details)
                if status >= 400
                else payload
            )
        elif fault is not None and fault.body is not None:
            payload = fault.body
        client = scope.get("client") or ("", 0)
        owner._record(
            Received(
                method,
                raw_path,
                query,
                headers,
                body,
                int(client[1]),
                operation_id,
                auth,
                status,
                str(scope.get("http_version", "1.1")),
                arrived,
            )
        )
        if fault is not None and fault.delay > 0 and await _client_left(receive, fault.delay):
            return
        await _respond(send, status, payload, fault or Fault(), owner._next_request_id())


async def _client_left(receive: Receive, seconds: float) -> bool:
    # After the body has been read, receive() returns only when the client disconnects.
    waiter = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({waiter}, timeout=seconds)
    if done:
        return True
    waiter.cancel()
    return False


async def _respond(send: Send, status: int, payload: bytes, fault: Fault, request_id: str) -> None:
    headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
    if fault.pad and payload.startswith(b"{"):
        payload = json.dumps({"padding": "p" * fault.pad, **json.loads(payload)}).encode()
    if payload or status not in (204, 304):
        headers.append((b"content-type", b"application/json"))
    if fault.gzip:
        payload = gzip.compress(payload)
        headers.append((b"content-encoding", b"gzip"))
    elif fault.corrupt_gzip:
        payload = b"this is not a gzip stream at all"
        headers.append((b"content-encoding", b"gzip"))
    if fault.close:
        headers.append((b"connection", b"close"))
    headers += [(k.lower().encode(), v.encode()) for k, v in fault.headers]
    pieces = 8 if fault.trickle else 3 if fault.chunked else 1
    if pieces == 1 and status not in (204, 304):
        headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if fault.drop:
        # The headers promised the whole body; send half of it, then return without finishing,
        # which makes uvicorn close the connection.
        await send(
            {"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True}
        )
        return
    if status in (204, 304):
        await send({"type": "http.response.body", "body": b""})
        return
    step = -(-len(payload) // pieces) or 1
    chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        await send({"type": "http.response.body", "body": chunk, "more_body": not last})
        if fault.trickle and not last:
            await asyncio.sleep(fault.trickle)


# ---- the server -----------------------------------------------------------------------------


class ApiServer:
    """The uvicorn server in its thread, plus the test-facing controls.

    Build it with `running_server`, which starts and stops it.
    """

    def __init__(self, ca: trustme.CA, cert_file: Path) -> None:
        self.ca = ca
        self.rsa = KeyPair.rsa("11111111-2222-3333-4444-rsa000000001")
        self.ed25519 = KeyPair.ed25519("11111111-2222-3333-4444-ed2551900001")
        self.keys: dict[str, PublicKey] = {
            self.rsa.key_id: self.rsa.public_key,
            self.ed25519.key_id: self.ed25519.public_key,
        }
        self.loop: asyncio.AbstractEventLoop | None = None
        self._client_context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._received: list[Received] = []
        self._request_ids = 0
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and without it every answer written in two pieces (headers, then body) waits
        # ~40 ms for the client's delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._cert_file = cert_file
        self._thread = threading.Thread(target=self._serve, name="api-server", daemon=True)
        self._server = uvicorn.Server(
            uvicorn.Config(
                _App(self),
                http="httptools",
                lifespan="off",
                ws="none",
                loop="asyncio",
                ssl_certfile=str(cert_file),
                log_config=None,
                log_level="critical",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )

    def _serve(self) -> None:
        # The server thread's body; returns when the server has stopped.
        self._server.run(sockets=[self._socket])

    def _started(self) -> bool:
        return bool(self._server.started)

    def _request_exit(self) -> None:
        self._server.should_exit = True

    @property
    def base_url(self) -> str:
        """The base URL a client is given."""
        return f"https://127.0.0.1:{self.port}{PREFIX}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's test CA and nothing else.

        One context serves every client (contexts are safe to share); building one with
        ``ssl.create_default_context()`` would load the system's CA bundle every time.
        """
        if self._client_context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.ca.configure_trust(context)
            self._client_context = context
        return self._client_context

    def start(self) -> None:
        # Build every answer once now, so the first request of a test is not slowed down by
        # loading the spec (and a broken example fails here, not in a client test).
        for op in operations():
            response_body(op, {}, "")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._started():
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._request_exit()
        self._thread.join(10)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError("the test API server did not stop within 10 s")

    # ---- test controls ----

    def reset(self) -> None:
        """Forget the recorded requests and every scripted fault."""
        with self._lock:
            self._rules.clear()
            self._received.clear()

    def script(self, path: str, fault: Fault, *, times: int = 1, method: str | None = None) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``path`` (relative to the prefix)."""
        with self._lock:
            self._rules.append(_Rule(method, path, fault, times))

    def fail(self, path: str, status: int, *, times: int = 1, **fields: Any) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status``; see `Fault`."""
        self.script(path, Fault(status=status, **fields), times=times)

    def pending_faults(self) -> int:
        """How many scripted answers have not been used yet."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)

    def requests(self, path: str | None = None) -> list[Received]:
        """The requests received since the last reset, optionally only those to ``path``."""
        with self._lock:
            return [r for r in self._received if path is None or r.api_path == path]

    def connections(self) -> int:
        """How many TCP connections carried the requests since the last reset."""
        with self._lock:
            return len({r.client_port for r in self._received})

    def open_connections(self) -> int:
        """How many connections uvicorn holds open right now."""
        return len(self._server.server_state.connections)

    def close_idle_connections(self) -> int:
        """Close every idle keep-alive connection from the server side.

        Returns once uvicorn has started closing them (TLS close_notify sent); the connections
        leave `open_connections` only when the client answers or goes away.

        Returns:
            How many connections were closed.
        """
        loop = self.loop
        assert loop is not None, "no request has been served yet"

        async def close_all() -> int:
            connections = list(self._server.server_state.connections)
            for connection in connections:
                connection.shutdown()
            return len(connections)

        return asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)

    # ---- called from the app ----

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.path == path and rule.method in (None, method):
                    rule.remaining -= 1
                    return rule.fault
        return None

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"req-{self._request_ids}"


def _issue_cert(ca: trustme.CA, directory: Path) -> Path:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    path = directory / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


class Http2ApiServer(ApiServer):
    """The same app and controls, served by Hypercorn, which offers HTTP/2 (ALPN ``h2``) as well
    as HTTP/1.1: uvicorn speaks only HTTP/1.1. For the httpx clients' ``http2=True``.

    Faults that only HTTP/1.1 can carry (``close``, ``drop``) are not for this server, nor are
    `open_connections` and `close_idle_connections`, which read uvicorn's state.
    """

    def __init__(self, ca: trustme.CA, cert_file: Path) -> None:
        super().__init__(ca, cert_file)
        self._thread.name = "api-server-h2"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None
        # Listening before the thread starts: a client that connects early waits in the backlog.
        self._socket.listen()

    def _serve(self) -> None:
        asyncio.run(self._serve_async())

    async def _serve_async(self) -> None:
        config = hypercorn.config.Config()
        config.certfile = config.keyfile = str(self._cert_file)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.graceful_timeout = 2
        config.accesslog = config.errorlog = None
        # Hypercorn takes ownership of the descriptor it is given: give it a duplicate of ours.
        duplicate = self._socket.dup()
        config.bind = [f"fd://{duplicate.detach()}"]
        self._exit = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # _App types its ASGI messages loosely (mappings); Hypercorn's types are TypedDicts.
        app = cast(hypercorn.typing.ASGIFramework, _App(self))
        await hypercorn.asyncio.serve(app, config, shutdown_trigger=self._exit.wait)

    def _started(self) -> bool:
        return self._loop is not None

    def _request_exit(self) -> None:
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)

    def open_connections(self) -> int:
        raise NotImplementedError("open_connections reads uvicorn's state: use ApiServer")

    def close_idle_connections(self) -> int:
        raise NotImplementedError("close_idle_connections reads uvicorn's state: use ApiServer")


@contextmanager
def running_server(directory: Path, *, http2: bool = False) -> Iterator[ApiServer]:
    """Start an `ApiServer` (an `Http2ApiServer` with ``http2``) with a fresh CA and
    certificate in ``directory``; stop it after."""
    ca = trustme.CA()
    server = (Http2ApiServer if http2 else ApiServer)(ca, _issue_cert(ca, directory))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- a raw TLS server for bytes uvicorn will not send ---------------------------------------


@dataclass
class RawServer:
    """Accepts TLS connections on loopback and answers each request with scripted raw bytes.

    ``answer`` is written after the request head (and its Content-Length body) has been read;
    ``b""`` closes without answering. With ``drip``, it is written one byte at a time, ``drip``
    seconds apart (until the server stops). With ``keep_open``, the connection stays open for
    the client's next request, until the client closes it. ``accepted`` counts connections.

    With ``records``, the first request on each connection is answered by these byte strings
    instead, each in a TLS record of its own, all in one TCP write (so a client reads them in
    one go); later requests get ``answer``. The connection stays open.
    """

    ca: trustme.CA
    cert_file: Path
    answer: bytes = b"HTTP/1.1 200 OK\r\n"
    drip: float = 0.0
    keep_open: bool = False
    alpn: tuple[str, ...] = ()
    records: tuple[bytes, ...] = ()
    accepted: int = 0
    _listener: socket.socket = field(init=False)
    _context: ssl.SSLContext = field(init=False)
    _thread: threading.Thread = field(init=False)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(self.cert_file))
        if self.alpn:
            self._context.set_alpn_protocols(list(self.alpn))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}{PREFIX}"

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        self._listener.close()
        if self._thread.is_alive():
            raise RuntimeError("the raw server did not stop within 10 s")

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            raw.settimeout(2)
            if self.records:
                with raw:
                    self._serve_records(raw)
                continue
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    while self._answer(conn) and self.keep_open:
                        pass
            except OSError:
                raw.close()

    def _serve_records(self, raw: socket.socket) -> None:
        # TLS over memory buffers, so that several records go out in one write.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._context.wrap_bio(incoming, outgoing, server_side=True)

        def pull() -> bool:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            incoming.write(data)
            return bool(data)

        def call(method: Callable[[], bytes | None]) -> bytes | None:
            while True:
                try:
                    return method()
                except ssl.SSLWantReadError:
                    if not pull():
                        return None

        try:
            call(tls.do_handshake)
            raw.sendall(outgoing.read())
            answers = [self.records, (self.answer,)]
            while not self._stopping.is_set():
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = call(lambda: tls.read(65536))
                    if not chunk:
                        return
                    data += chunk
                for record in answers[0] if len(answers) > 1 else answers[-1]:
                    tls.write(record)
                if len(answers) > 1:
                    answers.pop(0)
                raw.sendall(outgoing.read())
        except OSError:
            return

    def _answer(self, conn: ssl.SSLSocket) -> bool:
        # True when a request was read and answered.
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        remaining = int(length.group(1)) - len(rest) if length else 0
        while remaining > 0:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            remaining -= len(chunk)
        if not self.drip:
            conn.sendall(self.answer)
            return True
        for i in range(len(self.answer)):
            if self._stopping.wait(self.drip):
                return False
            conn.sendall(self.answer[i : i + 1])
        return True
