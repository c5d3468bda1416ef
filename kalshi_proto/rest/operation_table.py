"""The REST operation table: one `Operation` per (method, path) in the Kalshi OpenAPI files.

The table itself is generated (`kalshi_proto/rest/generated/table.py`, written by
``scripts/generate.py`` from ``openapi.yaml`` plus ``openapi-3.34-overlay.yaml``); this module
defines its row types and the public accessors. Other SDK authors and our own checks read it:

>>> import kalshi_proto.rest
>>> op = next(o for o in kalshi_proto.rest.operations() if o.operation_id == "GetMarkets")
>>> (op.method, op.path, op.facade, op.requires_auth, op.idempotent)
('GET', '/markets', 'markets.list', False, True)
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import BaseModel

__all__ = [
    "Constraints",
    "Operation",
    "Pagination",
    "Param",
    "ParamKind",
    "ParamLocation",
    "operation",
    "operations",
]


class ParamLocation(enum.Enum):
    """Where a parameter goes in the request."""

    PATH = "path"  #: substituted into the path template, percent-encoded
    QUERY = "query"  #: appended to the query string


class ParamKind(enum.Enum):
    """How a parameter value is checked and written on the wire."""

    STRING = "string"  #: a str, sent as is
    INTEGER = "integer"  #: an int (not bool), sent in decimal
    BOOLEAN = "boolean"  #: a bool, sent as ``true`` / ``false``
    NUMBER = "number"  #: a Decimal or int, sent in fixed-point form
    DATETIME = "datetime"  #: an aware datetime, sent in RFC 3339 form
    STRING_ARRAY = "string_array"  #: a sequence of str, one ``name=value`` pair per item
    INTEGER_ARRAY = "integer_array"  #: a sequence of int, one ``name=value`` pair per item


@dataclass(frozen=True, slots=True)
class Constraints:
    """The spec's limits on a parameter value (``minimum``, ``maxLength``, ``maxItems``, ...).

    For an array parameter, ``min_items`` and ``max_items`` limit the list and the other fields
    limit each item. ``pattern`` is searched for, unanchored, as JSON Schema does.
    """

    minimum: int | Decimal | None = None
    maximum: int | Decimal | None = None
    exclusive_minimum: bool = False  #: ``minimum`` itself is out of range
    exclusive_maximum: bool = False  #: ``maximum`` itself is out of range
    min_length: int | None = None  #: the fewest characters in a string
    max_length: int | None = None  #: the most characters in a string
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None

    def describe_range(self) -> str:
        """The allowed range in words: ``between 1 and 1000``, ``at least 0``, ``less than 5``."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not (
            self.exclusive_minimum or self.exclusive_maximum
        ):
            return f"between {low} and {high}"
        parts = []
        if low is not None:
            parts.append(f"greater than {low}" if self.exclusive_minimum else f"at least {low}")
        if high is not None:
            parts.append(f"less than {high}" if self.exclusive_maximum else f"at most {high}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Param:
    """One path or query parameter of an operation, as the spec declares it."""

    name: str  #: the wire name (``from``, ``series_ticker``)
    python_name: str  #: the keyword argument name (``from_``, ``series_ticker``)
    location: ParamLocation
    kind: ParamKind
    required: bool
    enum: tuple[str | int, ...] | None = None  #: the allowed values, if the spec lists them
    constraints: Constraints | None = None  #: the spec's limits, if it sets any
    #: the spec's ``default``: the value the server uses when the parameter is left out (the SDK
    #: sends nothing for it then; this is for reading)
    default: str | int | bool | None = None


@dataclass(frozen=True, slots=True)
class Pagination:
    """How a cursor-paginated operation pages: which fields carry the items and the cursor."""

    items_field: str  #: the response list that ``*_all`` walks
    cursor_field: str  #: the response field with the next cursor (empty or null on the last page)
    cursor_param: str  #: the query parameter that takes it
    limit_param: str | None  #: the page-size query parameter, if any


@dataclass(frozen=True, slots=True)
class Operation:
    """One REST operation of a Kalshi API.

    ``facade`` is the dotted attribute path on every client (``"markets.list"``);
    ``idempotent`` is True when the SDK may resend the request on its own (GET, HEAD, OPTIONS);
    POST, PUT and DELETE are never resent.
    """

    operation_id: str
    method: str
    path: str  #: the spec's path template, relative to the base URL (``/markets/{ticker}``)
    facade: str
    tag: str
    summary: str
    requires_auth: bool
    idempotent: bool
    deprecated: bool
    params: tuple[Param, ...]
    request_model: type[BaseModel] | None
    response_model: type[BaseModel] | None
    success_status: int
    pagination: Pagination | None
    api: str = "trade"  #: which spec file the operation comes from
    _by_python_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_python_name", {p.python_name: p for p in self.params})

    @property
    def path_params(self) -> tuple[Param, ...]:
        """The parameters substituted into the path, in template order."""
        return tuple(p for p in self.params if p.location is ParamLocation.PATH)

    @property
    def query_params(self) -> tuple[Param, ...]:
        """The query-string parameters."""
        return tuple(p for p in self.params if p.location is ParamLocation.QUERY)

    def param(self, python_name: str) -> Param:
        """The parameter with this keyword name; `KeyError` if there is none."""
        return self._by_python_name[python_name]


def operations() -> Iterator[Operation]:
    """Yield every operation of the trade API, in spec order."""
    from kalshi_proto.rest.generated.table import OPERATIONS

    return iter(OPERATIONS)


def operation(operation_id: str) -> Operation:
    """The operation with this ``operationId``.

    Raises:
        KeyError: no operation has that id; the message names the nearest one.
    """
    from kalshi_proto.rest.generated.table import BY_ID

    found = BY_ID.get(operation_id) if isinstance(operation_id, str) else None
    if found is None:
        close = difflib.get_close_matches(str(operation_id), BY_ID, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"no operation has the operationId {operation_id!r}{hint}")
    return found
