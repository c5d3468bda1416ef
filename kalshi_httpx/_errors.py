"""Translate httpx exceptions into the SDK's `TransportError` tree, once, at the boundary."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from kalshi_proto.errors import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    ProxyError,
    ReadError,
    ReadTimeout,
    TransportError,
    WriteError,
)

__all__ = ["library_failure", "map_exceptions"]

# httpcore's refusal of a CONNECT: "407 Proxy Authentication Required".
_REFUSAL = re.compile(r"([1-5][0-9][0-9])(?: |$)")

# The failures other than httpx.ConnectTimeout and httpx.ConnectError (see _translated), in
# order: the first row the exception is an instance of gives its class.
_MAP: tuple[tuple[type[Exception], type[TransportError]], ...] = (
    (httpx.PoolTimeout, ConnectTimeout),
    (httpx.TimeoutException, ReadTimeout),
    (httpx.WriteError, WriteError),
    (httpx.ReadError, ReadError),
    (httpx.RemoteProtocolError, ReadError),
    (httpx.DecodingError, ReadError),
    (httpx.RequestError, ReadError),
)


@contextmanager
def map_exceptions(url: httpx.URL) -> Iterator[None]:
    """Re-raise httpx request failures (transport errors, undecodable bodies) as
    `kalshi_proto.errors.TransportError` subclasses; connection failures name ``url``'s host
    and port."""
    try:
        yield
    except httpx.RequestError as exc:
        raise _translated(exc, url) from exc


def library_failure(exc: Exception) -> ReadError:
    """The `ReadError` for an exception that is neither httpx's nor the SDK's, out of a pool the
    client built: a fault inside httpcore or h2, which leaves the connection unusable.

    httpcore 1.0.9 fails so over HTTP/2: when the first request on a new connection is cancelled
    while the connection starts, the requests queued on it fail with a ValueError ("semaphore
    released too many times") or h2's ProtocolError. Those requests may have gone out, as with
    any `ReadError`: a GET is tried again, an order is not.
    """
    return ReadError(f"the connection failed inside httpx: {type(exc).__name__}: {exc}")


def _translated(exc: httpx.RequestError, url: httpx.URL) -> TransportError:
    # Connection failures say where, in the words kalshi_sync and kalshi_anyio use; a
    # certificate that fails verification is a CertificateError, which is never retried.
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeout(f"connecting to {_where(url)} timed out")
    if isinstance(exc, httpx.ConnectError):
        tls = _ssl_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            return CertificateError(f"TLS handshake with {_where(url)} failed: {tls}")
        if tls is not None:
            return ConnectError(f"TLS handshake with {_where(url)} failed: {tls}")
        return ConnectError(f"cannot connect to {_where(url)}: {exc}")
    if isinstance(exc, httpx.ProxyError):
        # Before the request: the proxy did not open a tunnel (kalshi_sync's words again).
        refusal = _REFUSAL.match(str(exc))
        if refusal is None:
            return ProxyError(
                f"the proxy did not open a tunnel to {_where(url)}: {exc}",
                final=_socks_final(str(exc)),
            )
        return ProxyError(
            f"the proxy refused the tunnel to {_where(url)}: HTTP {exc}".rstrip(),
            status=int(refusal.group(1)),
        )
    target = next(target for source, target in _MAP if isinstance(exc, source))  # last: any
    return target(f"{type(exc).__name__}: {exc}")


def _socks_final(message: str) -> str | None:
    # httpcore's refusals of a SOCKS5 handshake that the proxy would give again: of the
    # credentials, or of the authentication method ("Requested NO_AUTH_REQUIRED from proxy
    # server, but got NO_ACCEPTABLE_METHODS.").
    if message == "Invalid username/password":
        return "the proxy would refuse the same credentials again"
    if message.startswith("Requested ") and "NO_ACCEPTABLE_METHODS" in message:
        return "the proxy would refuse again"
    return None


def _where(url: httpx.URL) -> str:
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    return f"{url.host}:{port}"


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    # httpx.ConnectError <- httpcore.ConnectError <- the ssl module's exception.
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
