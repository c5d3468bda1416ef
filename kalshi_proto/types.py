"""Money and count types shared by every generated model.

Kalshi sends prices as fixed-point dollar strings (``FixedPointDollars``, fields ending
``_dollars``; up to 6 decimals in responses, 2-4 in requests) and contract counts as fixed-point
strings (``FixedPointCount``, fields ending ``_fp``; always 2 decimals in responses, 0-2 in
requests). See REST-NOTES section 6 and the ``FixedPointDollars`` / ``FixedPointCount`` schemas in
``openapi.yaml``.

Both are `decimal.Decimal` here, never ``float``:

* Response fields (`Dollars`, `Count`, `Number`) validate from JSON strings or numbers and keep
  every digit the server sent: ``Decimal("0.5600")`` serialises back to ``"0.5600"``.
* Request fields (`DollarsIn`, `CountIn`, `NumberIn`) accept `Decimal`, `int` or `str` and refuse
  ``float`` and ``bool`` (a float cannot say ``0.1`` exactly); they also refuse NaN and infinities
  and more decimal places than the API accepts.

More request-side types: `DatetimeIn` (a ``format: date-time`` field) takes a timezone-aware
`datetime` or an RFC 3339 string with an offset and writes UTC with a ``Z``, as query parameters
are written; `Int32In` and `Int64In` (``format: int32`` / ``int64``) refuse an int the format
cannot hold; `UuidIn` (``format: uuid``) takes a UUID string in its canonical form; `AsTuple`
stores a request list as a tuple, so a built request cannot change.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Annotated, Any, cast, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    Strict,
)
from pydantic_core import core_schema

__all__ = [
    "INT32_RANGE",
    "INT64_RANGE",
    "AsTuple",
    "Count",
    "CountIn",
    "DatetimeIn",
    "Dollars",
    "DollarsIn",
    "Int32In",
    "Int64In",
    "NoneAsEmpty",
    "NotZero",
    "Number",
    "NumberIn",
    "UuidIn",
    "datetime_to_wire",
    "decimal_places",
    "decimal_to_wire",
    "dollars_to_wire",
    "none_as_empty",
    "number_to_wire",
    "parse_decimal",
]


def decimal_places(value: Decimal) -> int:
    """The decimal places of a finite `Decimal`, trailing zeros aside: ``0.5600`` has 2,
    ``1E+2`` and ``5`` have 0. Exact at any size (unlike ``normalize()``, which rounds to the
    context's precision)."""
    _, digits, exponent = value.as_tuple()
    places = -int(exponent)
    end = len(digits)
    while places > 0 and end > 0 and digits[end - 1] == 0:
        end -= 1
        places -= 1
    return max(places, 0) if end else 0  # no digit but zeros: the value is zero


def _exactly(value: Decimal, places: int) -> Decimal:
    # ``value`` written with ``places`` decimals, which drops only zeros (the caller checked
    # `decimal_places`), at any size: quantize in the default context fails past 28 digits. A
    # zero loses its sign ("-0.00" is no amount).
    _, digits, exponent = value.as_tuple()
    context = Context(prec=len(digits) + max(int(exponent), 0) + places + 1)
    result = value.quantize(Decimal(1).scaleb(-places), context=context)
    return result.copy_abs() if result == 0 else result


def decimal_to_wire(value: Decimal) -> str:
    """Format a `Decimal` as a plain fixed-point string, never in exponent form; a zero has no
    sign."""
    return format(value.copy_abs() if value == 0 else value, "f")


def datetime_to_wire(value: datetime) -> str:
    """Write an aware `datetime` in RFC 3339 form, in UTC with a ``Z`` (``2026-01-02T03:04:05Z``)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def number_to_wire(value: Decimal) -> int | float:
    """Write a spec ``type: number`` value as a JSON number: an int when it is whole, otherwise
    the float nearest to it (these fields are doubles in the spec: fee multipliers, strikes)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def dollars_to_wire(value: Decimal) -> str:
    """Format a dollar amount with 2 to 4 decimals where its value allows.

    ``0.5`` -> ``"0.50"``; ``0.5600`` stays ``"0.5600"``; trailing zeros past the fourth place go
    (``0.560000`` -> ``"0.5600"``), as request fields take 2-4 places. Digits that are not zeros
    are kept (``0.12345`` -> ``"0.12345"``; `DollarsIn` refuses such a value before this): the
    value is never rounded. A zero has no sign.
    """
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN and infinities: DollarsIn refuses them before this
        return format(value, "f")
    if -4 <= exponent <= -2:
        return decimal_to_wire(value)  # as given, the common case
    places = 2 if exponent > -2 else max(4, decimal_places(value))
    return format(_exactly(value, places), "f")


def parse_decimal(value: object, *, what: str = "value", max_places: int | None = None) -> Decimal:
    """Turn user input into a finite `Decimal`, refusing floats, bools and excess precision.

    Args:
        value: a `Decimal`, `int` or numeric `str`.
        what: a name for the value in error messages.
        max_places: the most decimal places allowed, trailing zeros aside (``0.5600`` has 2),
            or None for no limit.

    Returns:
        The value as a `Decimal`, with the digits given.

    Raises:
        TypeError: for ``float``, ``bool`` and other types.
        ValueError: for text that is not a number, NaN, infinity, or too many decimal places.
    """
    if isinstance(value, float):
        raise TypeError(
            f"{what} must be a Decimal, int or str, not float "
            "(floats cannot represent money exactly)"
        )
    if isinstance(value, bool):
        raise TypeError(
            f"{what} must be a Decimal, int or str, not bool (True and False are not amounts)"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} must be a decimal number, got {value!r}") from None
    else:
        raise TypeError(f"{what} must be a Decimal, int or str, not {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what} must be finite, got {result}")
    if max_places is not None and decimal_places(result) > max_places:
        raise ValueError(f"{what} takes at most {max_places} decimal places, got {result}")
    return result


def _model_input(value: Any, what: str, max_places: int | None) -> Decimal:
    # pydantic turns ValueError into a ValidationError but lets TypeError escape; keep one type.
    try:
        return parse_decimal(value, what=what, max_places=max_places)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _dollars_in(value: Any) -> Decimal:
    # Requests take 2-4 decimals (REST-NOTES section 6); `dollars_to_wire` drops zeros past
    # the fourth, so "0.560000" is fine and "0.56001" is refused here, not by the server.
    return _model_input(value, "a FixedPointDollars amount", 4)


def _count_in(value: Any) -> Decimal:
    # Requests take 0-2 decimals: zeros past the second go now ("1.000" is sent as "1.00").
    count = _model_input(value, "a FixedPointCount", 2)
    return _exactly(count, 2) if int(count.as_tuple().exponent) < -2 else count


def _number_in(value: Any) -> Decimal:
    return _model_input(value, "a number", None)


_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)


def _uuid_in(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"a UUID must be a str, not {type(value).__name__}; pass str(uuid.uuid4()) for a new one"
        )
    if _UUID.fullmatch(value) is None:
        raise ValueError(
            f"a UUID must be 32 hexadecimal digits in 8-4-4-4-12 groups, got {value!r}"
        )
    return value


# RFC 3339 section 5.6 ``date-time``: a full date, a time, and an offset (``Z`` or ``+hh:mm``).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_AWARE_HINT = "pass a timezone-aware datetime, such as datetime(2026, 1, 2, 15, 0, tzinfo=UTC)"


def _datetime_in(value: Any) -> Any:
    # A naive datetime names no instant: the server would read it in a zone of its choosing.
    # pydantic would also take a bare date, a Unix timestamp or an offset-less string; refuse
    # those here, where the message can say what to pass instead.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if _RFC3339.fullmatch(value) is None:
            raise ValueError(
                f"a date-time must be an RFC 3339 string with an offset, got {value!r}; or "
                + _AWARE_HINT
            )
        return value
    raise ValueError(f"a date-time must be a datetime, not {type(value).__name__}; {_AWARE_HINT}")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"got a naive datetime ({value.isoformat()}); {_AWARE_HINT}")
    return value


class AsTuple:
    """Stores a request list field as a tuple: ``Annotated[Sequence[X], AsTuple()]``.

    The field takes a list or a tuple and holds a tuple, so a frozen request model stays
    unchanged after it is built (``batch.orders.append(...)`` is an error). Type checkers see a
    ``Sequence``, so passing a list type-checks. ``model_dump()`` gives a list, as for any list.
    """

    __slots__ = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        (item,) = get_args(source)
        schema = dict(handler.generate_schema(tuple[item, ...]))  # type: ignore[valid-type]
        # Dumped as a list, as before it was stored as a tuple: model_dump() output is unchanged.
        schema["serialization"] = core_schema.wrap_serializer_function_ser_schema(
            _dumped_as_list, schema=cast(core_schema.CoreSchema, dict(schema))
        )
        return cast(core_schema.CoreSchema, schema)


def _dumped_as_list(value: Any, dump: core_schema.SerializerFunctionWrapHandler) -> Any:
    return list(dump(value))


def none_as_empty(value: Any) -> Any:
    """Read a JSON ``null`` list as an empty list (Kalshi sends ``null`` for empty arrays)."""
    return [] if value is None else value


class NoneAsEmpty:
    """Marks a list field that reads JSON ``null`` as ``[]``: ``Annotated[list[X], NoneAsEmpty()]``.

    The list is validated as ``nullable(list)`` and the ``None`` replaced afterwards, so pydantic
    validates the items straight from the JSON bytes (a before-validator would first build
    Python dicts of every item, which made a 1,000-market page about twice as slow).
    """

    __slots__ = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            none_as_empty, core_schema.nullable_schema(handler(source))
        )


_wire = PlainSerializer(decimal_to_wire, return_type=str, when_used="json")
_number_wire = PlainSerializer(number_to_wire, return_type=int | float, when_used="json")
_dollars_wire = PlainSerializer(dollars_to_wire, return_type=str, when_used="json")

#: A dollar amount in a response (``FixedPointDollars``), exact.
Dollars = Annotated[Decimal, _wire]
#: A contract count in a response (``FixedPointCount``), exact.
Count = Annotated[Decimal, _wire]
#: Any other JSON number in a response (fee multipliers, strikes): read exactly, written back as
#: a JSON number.
Number = Annotated[Decimal, _number_wire]
#: A dollar amount in a request; refuses float and bool, at most 4 decimal places (trailing
#: zeros aside).
DollarsIn = Annotated[Decimal, BeforeValidator(_dollars_in), _dollars_wire]
#: A contract count in a request; refuses float and bool, at most 2 decimal places (trailing
#: zeros aside, and dropped).
CountIn = Annotated[Decimal, BeforeValidator(_count_in), _wire]
#: Any other number in a request; refuses float and bool; written as a JSON number.
NumberIn = Annotated[Decimal, BeforeValidator(_number_in), _number_wire]


def _not_zero(value: Any) -> Any:
    if value == 0:
        raise ValueError("must not be zero")
    return value


#: A request number the server refuses at zero (the spec's ``validate: ne=0``), for use in
#: ``Annotated[Int64In, NotZero]``.
NotZero = AfterValidator(_not_zero)

#: The range of a ``format: int32`` integer (a signed 32-bit integer).
INT32_RANGE = (-(2**31), 2**31 - 1)
#: The range of a ``format: int64`` integer (a signed 64-bit integer).
INT64_RANGE = (-(2**63), 2**63 - 1)
#: A ``format: int32`` integer in a request: an `int` (not a `bool`) in `INT32_RANGE`.
Int32In = Annotated[int, Strict(), Field(ge=INT32_RANGE[0], le=INT32_RANGE[1])]
#: A ``format: int64`` integer in a request: an `int` (not a `bool`) in `INT64_RANGE`.
Int64In = Annotated[int, Strict(), Field(ge=INT64_RANGE[0], le=INT64_RANGE[1])]
#: A ``format: uuid`` string in a request, in the canonical 8-4-4-4-12 hexadecimal form
#: (``str(uuid.uuid4())``); braces, a ``urn:uuid:`` prefix or missing hyphens are refused.
UuidIn = Annotated[str, BeforeValidator(_uuid_in)]
#: A ``format: date-time`` field of a request: an aware `datetime` (or an RFC 3339 string with an
#: offset); naive datetimes, bare dates and numbers are refused. Written in UTC with a ``Z``.
DatetimeIn = Annotated[
    datetime,
    BeforeValidator(_datetime_in),
    AfterValidator(_aware),
    PlainSerializer(datetime_to_wire, return_type=str, when_used="json"),
]
