"""Every exception the SDK raises, shared by the core and all adapters.

```
KalshiError
  ConfigurationError        bad configuration: base URL, host policy, options
    CredentialsError        a key could not be loaded (bad PEM, wrong type, missing file)
  AuthRequiredError         a private operation was called without credentials (before any I/O)
  ProtocolError
    LocalProtocolError      you asked for something the current state forbids
    RemoteProtocolError     the peer's bytes break the protocol; carries a hint
      ResponseTooLargeError a response body over the client's limit (.limit)
  ApiError                  REST non-2xx: .status, .code, .message, .details, .request_id
    ValidationError 400, AuthenticationError 401, PermissionDeniedError 403,
    NotFoundError 404, ConflictError 409, RateLimitError 429 (.retry_after), ServerError 5xx
  TransportError            ConnectError, ReadError, WriteError, ConnectTimeout, ReadTimeout,
                            CallTimeout (the three timeouts also subclass TimeoutError),
                            CertificateError (a ConnectError that is never retried),
                            ProxyError (a ConnectError: a proxy refused a tunnel; .status)
  SequenceGapError, BackpressureError, SubscriptionError, FixRejectError, FixLogoutError
```

No message or ``repr`` here ever carries a key, a signature or a passphrase.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthRequiredError",
    "AuthenticationError",
    "BackpressureError",
    "CallTimeout",
    "CertificateError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "ConnectTimeout",
    "CredentialsError",
    "FixLogoutError",
    "FixRejectError",
    "KalshiError",
    "LocalProtocolError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProxyError",
    "RateLimitError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "ResponseTooLargeError",
    "SequenceGapError",
    "ServerError",
    "SubscriptionError",
    "TransportError",
    "ValidationError",
    "WriteError",
    "api_error_for_status",
]


class KalshiError(Exception):
    """Base class of every error this SDK raises.

    Every one pickles and copies with its attributes and notes, so it crosses a process pool
    (`concurrent.futures.ProcessPoolExecutor`, `multiprocessing`) as it was raised.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # An exception pickles as ``type(self)(*self.args)`` by default, which does not fit an
        # ``__init__`` with other parameters (ApiError's status and message): unpickling, and
        # copy.copy, raised TypeError. Rebuild it without calling ``__init__`` instead.
        return (_rebuild, (type(self), self.args), self.__dict__ or None)


def _rebuild(cls: type[KalshiError], args: tuple[object, ...]) -> KalshiError:
    # Unpickles a KalshiError; pickle then restores its __dict__ (attributes and __notes__).
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class ConfigurationError(KalshiError, ValueError):
    """A client was configured with values that cannot work (bad URL, refused host, bad option)."""


class CredentialsError(ConfigurationError):
    """A private key or key id could not be loaded; the message says what was wrong."""


class AuthRequiredError(KalshiError):
    """A private operation was called on a client that has no credentials; nothing was sent."""


class ProtocolError(KalshiError):
    """A protocol rule was broken, by us (`LocalProtocolError`) or the peer (`RemoteProtocolError`)."""


class LocalProtocolError(ProtocolError):
    """You asked for something the current state of a core object forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol.

    ``hint`` carries a wire code for the reply where one exists (a WebSocket close code, a FIX
    SessionRejectReason(373)); it is ``None`` otherwise.
    """

    def __init__(self, message: str, *, hint: int | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ResponseTooLargeError(RemoteProtocolError):
    """A response body is larger than the connection accepts: over ``limit`` bytes once
    decoded, or so large as sent that it would be (a ``Content-Length`` over the limit, or an
    encoded body over the limit plus a small slack)."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class ApiError(KalshiError):
    """The REST API answered with a non-2xx status.

    Attributes:
        status: the HTTP status code.
        code: the ``code`` of the spec's ``ErrorResponse`` body, if any.
        message: the ``message`` of the body, or a short description of the status.
        details: the ``details`` of the body, if any.
        request_id: the request id the server sent back in a response header, if any.
        operation_id: the OpenAPI ``operationId`` of the call, if known.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: str | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        self.operation_id = operation_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.operation_id:
            parts.append(f"from {self.operation_id}")
        text = " ".join(parts) + ": "
        if self.code:
            text += f"[{self.code}] "
        text += self.message
        if self.details:
            text += f" ({self.details})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text


class ValidationError(ApiError):
    """HTTP 400: the server rejected the request; ``details`` has its explanation."""


class AuthenticationError(ApiError):
    """HTTP 401: the signature, key id or timestamp was not accepted."""


class PermissionDeniedError(ApiError):
    """HTTP 403: the key is valid but lacks the scope or access for this operation."""


class NotFoundError(ApiError):
    """HTTP 404: the ticker, order or other resource does not exist."""


class ConflictError(ApiError):
    """HTTP 409: the request conflicts with current state (a duplicate client order id, say)."""


class RateLimitError(ApiError):
    """HTTP 429: too many requests. ``retry_after`` is the server's hint in seconds, if it sent one."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        details: str | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            status,
            message,
            code=code,
            details=details,
            request_id=request_id,
            operation_id=operation_id,
        )


class ServerError(ApiError):
    """HTTP 5xx: the server failed; idempotent calls are retried before this is raised."""


_STATUS_CLASSES: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def api_error_for_status(status: int) -> type[ApiError]:
    """The `ApiError` subclass for an HTTP status (5xx -> `ServerError`, others -> `ApiError`)."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, ApiError)


class TransportError(KalshiError):
    """The connection failed; no HTTP response (or no complete one) was received.

    ``final`` (`final_reason`) says why another attempt would fail the same way, when the
    code that raises the error knows it (a response body over the client's limit, say).
    """

    def __init__(self, message: str, *, final: str | None = None) -> None:
        super().__init__(message)
        self._final = final

    @property
    def final_reason(self) -> str | None:
        """Why another attempt would fail the same way, so the call is not retried; None when
        one may succeed (most failures: a refused connection, a timeout, a reset)."""
        return self._final


class ConnectError(TransportError):
    """The connection could not be opened (refused, DNS failure, TLS handshake failure)."""


class CertificateError(ConnectError):
    """The server's TLS certificate failed verification (not trusted, expired, or for another
    host). It fails the same way on every attempt, so it is never retried."""

    @property
    def final_reason(self) -> str | None:
        """Always set: verification fails the same way on every attempt."""
        return "the server's certificate failed verification"


class ProxyError(ConnectError):
    """A proxy did not open a tunnel to the API host.

    Attributes:
        status: an HTTP proxy's status (407 when it wants credentials, 403 when it forbids
            the host, 502 when it could not reach it), or None. A refusal with a 4xx status
            other than 408 and 429 is never retried: the proxy would refuse the same tunnel
            again.
        reply: a SOCKS5 proxy's reply code (RFC 1928: 2 "not allowed by ruleset", 4 "host
            unreachable", 5 "connection refused", ...), or None. Replies 2, 7 and 8 are never
            retried, nor is a refusal of the credentials.

    Both are None when the proxy closed the connection or sent no valid answer.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reply: int | None = None,
        final: str | None = None,
    ) -> None:
        super().__init__(message, final=final)
        self.status = status
        self.reply = reply

    @property
    def final_reason(self) -> str | None:
        """Set when the proxy would refuse again: an HTTP 4xx other than 408 and 429, a refusal
        of the credentials, a SOCKS5 reply that the same request gets again."""
        if self._final is not None:
            return self._final
        status = self.status
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            return f"the proxy would refuse again (HTTP {status})"
        return None


class ReadError(TransportError):
    """Reading from an open connection failed, or the peer closed it mid-response, or sent
    bytes that are not a valid response (final when the body is over the client's limit)."""


class WriteError(TransportError):
    """Writing to an open connection failed."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The connection was not open before the connect timeout."""


class ReadTimeout(ReadError, TimeoutError):
    """No bytes arrived before the read timeout."""


class CallTimeout(TransportError, TimeoutError):
    """The whole call, retries included, did not finish before ``total_timeout``."""


class SequenceGapError(KalshiError):
    """A feed skipped sequence numbers and automatic recovery is turned off."""


class BackpressureError(KalshiError):
    """A bounded queue overflowed and the overflow policy is to raise."""


class SubscriptionError(KalshiError):
    """The server refused a WebSocket subscription command."""


class FixRejectError(KalshiError):
    """A FIX message was rejected by the counterparty (Reject(3) or BusinessMessageReject(j))."""


class FixLogoutError(KalshiError):
    """The FIX session ended with a Logout(5) from the counterparty."""
