"""`Call[T]`: a frozen description of one REST exchange, and the parser of its answer.

A builder such as ``calls.get_markets(status="open", limit=100)`` returns a
``Call[Page[Market]]``: the operation, the filled-in path, the encoded query, the JSON body bytes.
Nothing is sent and nothing is signed yet; an adapter hands the call to
`kalshi_proto.rest.client.RestCore`, which turns it into an `HttpRequest` (with the signature
headers for the moment it is sent) and turns the `HttpResponse` back into ``T`` with
`Call.parse`, or raises the mapped `kalshi_proto.errors.ApiError`.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, get_args, overload
from urllib.parse import quote

from pydantic import BaseModel

from kalshi_proto import frames
from kalshi_proto.errors import ApiError, RateLimitError, RemoteProtocolError, api_error_for_status
from kalshi_proto.rest.operation_table import (
    Constraints,
    Operation,
    Param,
    ParamKind,
    ParamLocation,
)
from kalshi_proto.rest.retry import parse_retry_after
from kalshi_proto.types import datetime_to_wire, decimal_to_wire

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = [
    "REQUEST_ID_HEADERS",
    "Call",
    "HttpRequest",
    "HttpResponse",
    "Page",
    "build_call",
    "error_from_response",
    "received_bytes",
]

T = TypeVar("T")
ItemT = TypeVar("ItemT")

#: Response headers read as the request id of an `ApiError`. Kalshi's docs name none; these are
#: the conventional names, read when present.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid")

#: Request headers whose values `HttpRequest`'s repr hides (names in lower case).
_HIDDEN_HEADERS = frozenset({"kalshi-access-signature", "authorization", "proxy-authorization"})


def received_bytes(data: object) -> bytes:
    """Bytes read from a connection, as `bytes`: a ``bytearray`` or a ``memoryview`` of a
    receive buffer is copied, so the caller may reuse its buffer.

    Raises:
        TypeError: ``data`` is not bytes-like (a ``str``, say).
    """
    if type(data) is bytes:
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return bytes(data)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request, ready for any transport.

    ``target`` is the request-target (path and query); ``headers`` excludes ``Host``, which the
    transport adds. Header names are as sent; values are ``str``.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __repr__(self) -> str:
        # The signature stays out of reprs, and so out of tracebacks that show local variables.
        headers = tuple(
            (name, "<hidden>" if name.lower() in _HIDDEN_HEADERS else value)
            for name, value in self.headers
        )
        return (
            f"HttpRequest(method={self.method!r}, target={self.target!r}, "
            f"headers={headers!r}, body={self.body!r})"
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response with its body already decoded from any content encoding.

    Header names are lower-case.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (name matched case-insensitively), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def request_id(self) -> str | None:
        """The request id the server sent back (the first of `REQUEST_ID_HEADERS`), or None."""
        for name in REQUEST_ID_HEADERS:
            value = self.header(name)
            if value is not None:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a cursor-paginated list.

    Iterating a page yields its items. ``cursor`` is the server's cursor for the next page, or
    None on the last page; ``response`` is the whole response model (other lists, such as
    ``event_positions`` beside ``market_positions``, are there).
    """

    items: list[ItemT]
    cursor: str | None
    response: BaseModel

    @property
    def has_next(self) -> bool:
        """True when the server returned a cursor for another page."""
        return self.cursor is not None

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> ItemT: ...

    @overload
    def __getitem__(self, index: slice) -> list[ItemT]: ...

    def __getitem__(self, index: int | slice) -> ItemT | list[ItemT]:
        return self.items[index]

    def __repr__(self) -> str:
        # A summary: a page of 1,000 markets would print megabytes, and every item twice (the
        # response holds the same list).
        kinds = sorted({type(item).__name__ for item in self.items}) or ["items"]
        return (
            f"<Page of {len(self.items)} {' / '.join(kinds)}, cursor={self.cursor!r}, "
            f"response={type(self.response).__name__}>"
        )

    def to_records(self) -> list[dict[str, object]]:
        """The items as one dict per item; see `kalshi_proto.frames.to_records`."""
        return frames.to_records(self._models(), model=self._item_model())

    def to_pandas(self) -> pandas.DataFrame:
        """The items as a pandas ``DataFrame``; see `kalshi_proto.frames.to_pandas`.

        An empty page still has the item model's columns.
        """
        return frames.to_pandas(self._models(), model=self._item_model())

    def to_polars(self) -> polars.DataFrame:
        """The items as a polars ``DataFrame``; see `kalshi_proto.frames.to_polars`.

        An empty page still has the item model's columns.
        """
        return frames.to_polars(self._models(), model=self._item_model())

    def _models(self) -> list[BaseModel]:
        # Parsed pages hold models; `kalshi_proto.frames` raises TypeError for anything else.
        return cast("list[BaseModel]", self.items)

    def _item_model(self) -> type[BaseModel] | None:
        # An empty page has no item to take the class from; the response field that holds the
        # items (the same list object) declares it: ``markets: list[Market]``.
        if self.items:
            return None
        for name, field in type(self.response).model_fields.items():
            if getattr(self.response, name) is self.items:
                for item in get_args(field.annotation):
                    if isinstance(item, type) and issubclass(item, BaseModel):
                        return item
        return None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One REST exchange to make: the operation, the path, the query and the body.

    ``path`` is relative to the base URL (``/markets/KXBTC-25``); ``query`` holds encoded
    ``(name, value)`` pairs in order; ``body`` is the JSON request body or ``b""``. ``items`` is
    the number of orders in a batch, which the client-side rate limiter charges per item.
    ``is_raw`` is set by `raw`: the call's answer is the response itself, not a model.
    """

    operation: Operation
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    items: int = 1
    is_raw: bool = False

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.operation.method

    @property
    def requires_auth(self) -> bool:
        """True when the operation needs signed headers."""
        return self.operation.requires_auth

    @property
    def idempotent(self) -> bool:
        """True when the SDK may resend the request on its own."""
        return self.operation.idempotent

    def target(self, prefix: str = "") -> str:
        """The request-target: ``prefix + path`` plus the encoded query string."""
        if not self.query:
            return prefix + self.path
        encoded = "&".join(f"{_quote_query(k)}={_quote_query(v)}" for k, v in self.query)
        return f"{prefix}{self.path}?{encoded}"

    def raw(self) -> Call[HttpResponse]:
        """The same call, answered with the `HttpResponse` itself (status, headers and the body
        as bytes, decompressed) once its status is 2xx: no model is built, so the body can go
        to a JSON reader of your choice (``orjson.loads``, ``polars.read_json``, ...).

        Everything else is as for the call: signing, retries, rate limits, timeouts, and an
        `ApiError` for any other status. A raw call is sent with ``client.execute``; it cannot
        be walked page by page (`iterate`, ``list_all``), since the SDK would have to read the
        body for the cursor: read ``cursor`` from the body and call again with it.
        """
        return cast("Call[HttpResponse]", replace(self, is_raw=True))

    def with_query(self, name: str, value: str | None) -> Call[T]:
        """A copy with the query parameter ``name`` set to ``value`` (removed when None)."""
        kept = tuple((k, v) for k, v in self.query if k != name)
        if value is not None:
            kept += ((name, value),)
        return replace(self, query=kept)

    def query_value(self, name: str) -> str | None:
        """The encoded value of a query parameter, or None when absent."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    def parse(self, response: HttpResponse, *, wall_ms: int | None = None) -> T:
        """Turn a response into ``T``, or raise the `ApiError` its status maps to.

        ``wall_ms`` (Unix milliseconds now) lets an HTTP-date ``Retry-After`` be read.

        Raises:
            ApiError: a subclass chosen by status (400 `ValidationError`, 404 `NotFoundError`,
                429 `RateLimitError`, 5xx `ServerError`, ...).
            RemoteProtocolError: a 2xx body does not match the response schema.
        """
        if not 200 <= response.status < 300:
            raise error_from_response(response, self.operation.operation_id, wall_ms=wall_ms)
        if self.is_raw:
            return cast(T, response)
        op = self.operation
        model = op.response_model
        if model is None:
            return cast(T, None)
        body = response.body
        if not body:
            # An answer with nothing to say (EmptyResponse) may come with no body at all. For a
            # model with fields an empty body is no answer: read as {}, a list would come out
            # empty and a missing object as None, with no sign that anything was lost.
            if model.model_fields:
                raise RemoteProtocolError(
                    f"{op.operation_id}: HTTP {response.status} has an empty body, not the "
                    f"{model.__name__} the spec promises"
                )
            body = b"{}"
        try:
            parsed = _validate(model, body)
        except ValueError as exc:
            raise RemoteProtocolError(
                f"{op.operation_id}: HTTP {response.status} body does not match "
                f"{model.__name__}: {_first_lines(str(exc))}"
            ) from None
        pagination = op.pagination
        if pagination is None:
            return cast(T, parsed)
        items = getattr(parsed, pagination.items_field)
        cursor = getattr(parsed, pagination.cursor_field, None) or None
        return cast(T, Page(items=items, cursor=cursor, response=parsed))


#: Bodies at least this large are validated with the cyclic garbage collector paused.
LARGE_BODY = 256 * 1024


def _validate(model: type[BaseModel], body: bytes) -> BaseModel:
    # Validating a large page allocates hundreds of thousands of objects, none of them in
    # reference cycles; the collector's young-generation passes over them cost about a tenth of
    # the parse (bench/rest_overhead.py, case b). Pause it for the parse, restore it after.
    if len(body) < LARGE_BODY or not gc.isenabled():
        return model.model_validate_json(body)
    gc.disable()
    try:
        return model.model_validate_json(body)
    finally:
        gc.enable()


def _first_lines(text: str, count: int = 4) -> str:
    return " / ".join(line.strip() for line in text.splitlines()[:count])


def _quote_query(text: str) -> str:
    return quote(text, safe="-_.~:,")


def error_from_response(
    response: HttpResponse, operation_id: str | None = None, *, wall_ms: int | None = None
) -> ApiError:
    """Build the `ApiError` for a non-2xx response.

    Reads the spec's ``ErrorResponse`` body (``code``, ``message``, ``details``; a value that
    is not a string is kept as compact JSON) and the
    ``{"error": "..."}`` body that 429 answers may carry instead; any other body becomes the
    message, cut to 200 characters. ``Retry-After`` fills `RateLimitError.retry_after`
    (delta-seconds always; an HTTP-date only when ``wall_ms`` is given).
    """
    code: str | None = None
    message: str | None = None
    details: str | None = None
    try:
        body = json.loads(response.body) if response.body else None
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        raw_code, raw_message, raw_details = (
            body.get("code"),
            body.get("message"),
            body.get("details"),
        )
        code, message, details = _text(raw_code), _text(raw_message), _text(raw_details)
        if message is None and isinstance(inner, str) and inner:
            message = inner
    elif response.body:
        message = response.body[:200].decode("utf-8", "replace").strip() or None
    if message is None:
        message = _REASONS.get(response.status, "request failed")
    request_id = response.request_id()
    cls = api_error_for_status(response.status)
    if cls is RateLimitError:
        return RateLimitError(
            response.status,
            message,
            retry_after=_retry_after(response.header("retry-after"), wall_ms),
            code=code,
            details=details,
            request_id=request_id,
            operation_id=operation_id,
        )
    return cls(
        response.status,
        message,
        code=code,
        details=details,
        request_id=request_id,
        operation_id=operation_id,
    )


def _text(value: object) -> str | None:
    # A field of ErrorResponse, which the spec types as a string. A server off the spec may
    # send a number or an object (details by field, say): kept as compact JSON, cut to 500
    # characters, rather than dropped. Empty values are None.
    if isinstance(value, str):
        return value or None
    if value is None or value in ({}, []):
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)[:500]
    except RecursionError:  # read back, but nested too deep to write again
        return None


def _retry_after(value: str | None, wall_ms: int | None) -> float | None:
    if value is None or (wall_ms is None and not value.strip()[:1].isdigit()):
        return None
    return parse_retry_after(value, wall_ms=wall_ms or 0)


_REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def _encode_scalar(param: Param, value: object) -> str:
    kind = param.kind
    if kind is ParamKind.STRING:
        if not isinstance(value, str):
            raise TypeError(f"{param.python_name} must be str, not {type(value).__name__}")
        return value
    if kind in (ParamKind.INTEGER, ParamKind.INTEGER_ARRAY):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{param.python_name} must be int, not {type(value).__name__}")
        return str(value)
    if kind is ParamKind.BOOLEAN:
        if not isinstance(value, bool):
            raise TypeError(f"{param.python_name} must be bool, not {type(value).__name__}")
        return "true" if value else "false"
    if kind is ParamKind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise TypeError(
                f"{param.python_name} must be Decimal or int, not {type(value).__name__}"
            )
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{param.python_name} must be a finite number, got {number}")
        return decimal_to_wire(number)
    if kind is ParamKind.DATETIME:
        if not isinstance(value, datetime) or value.utcoffset() is None:
            # (a tzinfo whose utcoffset() is None names no offset: the value is naive)
            raise TypeError(f"{param.python_name} must be a timezone-aware datetime")
        return datetime_to_wire(value)
    # STRING_ARRAY items
    if not isinstance(value, str):
        raise TypeError(f"{param.python_name} items must be str, not {type(value).__name__}")
    return value


def _check_value(name: str, limits: Constraints, value: object) -> None:
    # ``value`` has passed _encode_scalar: an int, a finite Decimal or a str.
    if isinstance(value, str):
        size = len(value)
        if limits.min_length is not None and size < limits.min_length:
            raise ValueError(
                f"{name} must be at least {limits.min_length} characters long, got {size}"
            )
        if limits.max_length is not None and size > limits.max_length:
            raise ValueError(
                f"{name} must be at most {limits.max_length} characters long, got {size}"
            )
        if limits.pattern is not None and re.search(limits.pattern, value) is None:
            raise ValueError(f"{name} must match {limits.pattern!r}, got {value!r}")
        return
    number = cast("int | Decimal", value)
    low, high = limits.minimum, limits.maximum
    too_low = low is not None and (number <= low if limits.exclusive_minimum else number < low)
    too_high = high is not None and (
        number >= high if limits.exclusive_maximum else number > high
    )
    if too_low or too_high:
        raise ValueError(f"{name} must be {limits.describe_range()}, got {number}")


def _check_items(param: Param, limits: Constraints, count: int) -> None:
    if limits.min_items is not None and count < limits.min_items:
        raise ValueError(
            f"{param.python_name} takes at least {limits.min_items} items, got {count}"
        )
    if limits.max_items is not None and count > limits.max_items:
        raise ValueError(f"{param.python_name} takes at most {limits.max_items} items, got {count}")


def _check_enum(param: Param, value: object) -> None:
    if param.enum is not None and value not in param.enum:
        allowed = ", ".join(repr(v) for v in param.enum)
        raise ValueError(f"{param.python_name} must be one of {allowed}; got {value!r}")


def build_call(
    operation: Operation,
    arguments: Mapping[str, Any],
    body: BaseModel | None = None,
    *,
    items: int = 1,
) -> Call[Any]:
    """Check the arguments of an operation and encode them into a `Call`.

    Generated builders call this; so can you, with an `Operation` from the table.

    Args:
        operation: the operation.
        arguments: keyword arguments by Python name; None means "not sent".
        body: the request model, for operations that take a body.
        items: the number of orders in a batch (for client-side rate limiting).

    Raises:
        TypeError: an argument has the wrong type, an argument is unknown, or the body model is
            not the one the operation takes.
        ValueError: a required argument is missing or empty, a value is not in the spec's enum,
            or a value breaks one of the spec's limits (`Constraints`: a range, a length, a
            pattern, a number of items), or a number is NaN or infinite.
    """
    path = operation.path
    query: list[tuple[str, str]] = []
    for name in arguments:
        if name not in operation._by_python_name:
            raise TypeError(f"{operation.operation_id} takes no argument {name!r}")
    for param in operation.params:
        value = arguments.get(param.python_name)
        if value is None:
            if param.required:
                raise ValueError(f"{operation.operation_id} needs {param.python_name}")
            continue
        limits = param.constraints
        if param.location is ParamLocation.PATH:
            text = _encode_scalar(param, value)
            if limits is not None:
                _check_value(param.python_name, limits, value)
            if not text or text in (".", ".."):
                # "." and ".." would be dot segments: the URL would name another resource.
                raise ValueError(
                    f"{param.python_name} must not be empty, '.' or '..'; got {text!r}"
                )
            path = path.replace("{" + param.name + "}", quote(text, safe=""))
        elif param.kind in (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY):
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise TypeError(f"{param.python_name} must be a list, not {type(value).__name__}")
            if param.required and not value:
                raise ValueError(f"{operation.operation_id} needs at least one {param.python_name}")
            if limits is not None:
                _check_items(param, limits, len(value))
            for item in value:
                _check_enum(param, item)
                query.append((param.name, _encode_scalar(param, item)))
                if limits is not None:
                    _check_value(f"{param.python_name} items", limits, item)
        else:
            _check_enum(param, value)
            text = _encode_scalar(param, value)
            if limits is not None:
                _check_value(param.python_name, limits, value)
            if param.required and not text:
                raise ValueError(f"{param.python_name} must not be empty")
            query.append((param.name, text))
    payload = b""
    if operation.request_model is not None:
        if body is None:
            body = operation.request_model()
        if not isinstance(body, operation.request_model):
            raise TypeError(
                f"{operation.operation_id} takes a {operation.request_model.__name__}, "
                f"not {type(body).__name__}"
            )
        payload = body.model_dump_json(exclude_none=True, by_alias=True).encode()
    elif body is not None:
        raise TypeError(f"{operation.operation_id} takes no request body")
    return Call(operation=operation, path=path, query=tuple(query), body=payload, items=items)
