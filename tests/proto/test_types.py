"""`kalshi_proto.types`: exact money in responses, strict money in requests."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from kalshi_proto.rest.base import RequestModel, ResponseModel
from kalshi_proto.rest.generated import models as m
from kalshi_proto.types import (
    Count,
    CountIn,
    Dollars,
    DollarsIn,
    Int32In,
    Int64In,
    Number,
    NumberIn,
    UuidIn,
    decimal_to_wire,
    dollars_to_wire,
    none_as_empty,
    parse_decimal,
)


class Quote(ResponseModel):
    price: Dollars
    size: Count
    strike: Number | None = None


class Ticket(RequestModel):
    price: DollarsIn | None = None
    count: CountIn | None = None
    strike: NumberIn | None = None


# ---- parse_decimal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.5600"), "0.5600"),
        (7, "7"),
        (-3, "-3"),
        ("0.56", "0.56"),
        (" 1.50 \n", "1.50"),
        ("1E+2", "1E+2"),
        ("-0.00", "-0.00"),
    ],
)
def test_parse_decimal_keeps_the_digits_given(value: object, expected: str) -> None:
    result = parse_decimal(value)
    assert isinstance(result, Decimal)
    assert str(result) == expected


def test_parse_decimal_returns_the_same_decimal() -> None:
    value = Decimal("0.25")
    assert parse_decimal(value) is value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0.5, "float (floats cannot represent money exactly)"),
        (1.0, "float (floats cannot represent money exactly)"),
        (True, "bool (True and False are not amounts)"),
        (False, "bool (True and False are not amounts)"),
    ],
)
def test_parse_decimal_refuses_float_and_bool(value: object, reason: str) -> None:
    with pytest.raises(TypeError) as info:
        parse_decimal(value, what="price")
    assert str(info.value) == f"price must be a Decimal, int or str, not {reason}"


@pytest.mark.parametrize(("value", "kind"), [(None, "NoneType"), (b"1", "bytes"), ([1], "list")])
def test_parse_decimal_refuses_other_types(value: object, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"^value must be a Decimal, int or str, not {kind}$"):
        parse_decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "1,5", "0.5.6", "$1", "1 2"])
def test_parse_decimal_refuses_text_that_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match=r"^count must be a decimal number, got ") as info:
        parse_decimal(text, what="count")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "value", ["NaN", "-nan", "sNaN", "Infinity", "-inf", Decimal("NaN"), Decimal("-Infinity")]
)
def test_parse_decimal_refuses_nan_and_infinity(value: object) -> None:
    with pytest.raises(ValueError, match=r"^value must be finite, got "):
        parse_decimal(value)


@pytest.mark.parametrize(
    ("value", "places", "ok"),
    [
        ("0.12", 2, True),
        ("0.123", 2, False),
        ("0.120", 2, True),  # trailing zeros aside: the server is sent at most two places
        ("0.1230", 2, False),
        ("5", 0, True),
        ("5.0", 0, True),
        ("5.01", 0, False),
        ("0E-9", 0, True),
        ("1E+2", 0, True),
        (Decimal("0.123456"), 6, True),
        (Decimal("0.1234567"), 6, False),
        (12, 0, True),
    ],
)
def test_parse_decimal_places_limit(value: object, places: int, ok: bool) -> None:
    if ok:
        assert parse_decimal(value, max_places=places) == Decimal(str(value))
    else:
        with pytest.raises(ValueError, match=rf"^value takes at most {places} decimal places, got"):
            parse_decimal(value, max_places=places)


def test_parse_decimal_without_a_limit_takes_any_places() -> None:
    assert parse_decimal("0.000000000001") == Decimal("1E-12")


# ---- wire forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.5600"), "0.5600"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("-2.5"), "-2.5"),
        (Decimal("0"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("-0.00"), "0.00"),
    ],
)
def test_decimal_to_wire_never_uses_exponents(value: Decimal, wire: str) -> None:
    assert decimal_to_wire(value) == wire


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("0.5"), "0.50"),
        (Decimal("1"), "1.00"),
        (Decimal("1E+2"), "100.00"),
        (Decimal("0.56"), "0.56"),
        (Decimal("0.5600"), "0.5600"),
        (Decimal("0.123456"), "0.123456"),
        (Decimal("0.560000"), "0.5600"),  # zeros past the fourth place go
        (Decimal("0.123450"), "0.12345"),
        (Decimal("0.1234560"), "0.123456"),
        (Decimal("100.000000"), "100.0000"),
        (Decimal("0E-6"), "0.0000"),
        (Decimal("-0E-6"), "0.0000"),
        (Decimal("-0"), "0.00"),
        (Decimal("1E+30"), "1000000000000000000000000000000.00"),
        (Decimal("123456789012345678901234567890.123400"), "123456789012345678901234567890.1234"),
        (Decimal("-0.100000"), "-0.1000"),
        (Decimal("0.00001"), "0.00001"),  # never rounded
    ],
)
def test_dollars_to_wire_writes_two_to_four_decimals_where_the_value_allows(
    value: Decimal, wire: str
) -> None:
    assert dollars_to_wire(value) == wire
    assert Decimal(wire) == value


def test_none_as_empty() -> None:
    assert none_as_empty(None) == []
    items = [1]
    assert none_as_empty(items) is items
    assert none_as_empty("") == ""


# ---- response fields ----------------------------------------------------------------------


def test_dollars_round_trip_exactly() -> None:
    quote = Quote.model_validate_json(b'{"price": "0.5600", "size": "10.00"}')
    assert quote.price == Decimal("0.5600")
    assert str(quote.price) == "0.5600"
    assert json.loads(quote.model_dump_json()) == {
        "price": "0.5600",
        "size": "10.00",
        "strike": None,
    }


def test_response_numbers_keep_their_digits() -> None:
    quote = Quote.model_validate_json(b'{"price": 0.1, "size": 3, "strike": 1e2}')
    assert quote.price == Decimal("0.1")
    # Money stays a fixed-point string; a spec ``type: number`` goes back out as a JSON number.
    assert quote.model_dump_json() == '{"price":"0.1","size":"3","strike":100}'


def test_a_generated_response_model_round_trips_money() -> None:
    body = '{"balance": 1, "balance_dollars": "0.5600", "portfolio_value": 2, "updated_ts": 3}'
    balance = m.GetBalanceResponse.model_validate_json(body)
    assert json.loads(balance.model_dump_json())["balance_dollars"] == "0.5600"


def test_response_models_keep_unknown_keys() -> None:
    quote = Quote.model_validate_json(b'{"price": "0.5", "size": "1", "venue": "x"}')
    assert quote.model_extra == {"venue": "x"}


# ---- request fields -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["price", "count", "strike"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [(0.5, "floats cannot represent money exactly"), (True, "True and False are not amounts")],
)
def test_request_fields_refuse_float_and_bool_with_a_validation_error(
    field: str, value: object, reason: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Ticket.model_validate({field: value})
    error = info.value
    assert isinstance(error, ValueError)
    assert not isinstance(error, TypeError)
    assert reason in str(error)
    assert error.errors()[0]["type"] == "value_error"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # Requests take 2-4 decimals: a fifth was sent and refused by the server.
        ("price", "0.12345", "a FixedPointDollars amount takes at most 4 decimal places"),
        ("price", "0.1234567", "a FixedPointDollars amount takes at most 4 decimal places"),
        ("count", "1.001", "a FixedPointCount takes at most 2 decimal places"),
        ("strike", "NaN", "a number must be finite"),
        ("price", "cheap", "a FixedPointDollars amount must be a decimal number"),
        ("count", None, "None"),
    ],
)
def test_request_fields_refuse_bad_values(field: str, value: object, message: str) -> None:
    fields: dict[str, Any] = {field: value}
    if value is None:
        assert getattr(Ticket.model_validate(fields), field) is None  # None is "not sent"
        return
    with pytest.raises(pydantic.ValidationError, match=message):
        Ticket.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        # Zeros past the places a request takes are dropped, never digits.
        ({"price": "0.560000", "count": "1.000"}, '{"price":"0.5600","count":"1.00"}'),
        ({"price": "0.12340", "count": "2.5000"}, '{"price":"0.1234","count":"2.50"}'),
        # A zero has no sign on the wire.
        ({"price": "-0", "count": "-0.00"}, '{"price":"0.00","count":"0.00"}'),
        # Past the 28 digits of the default decimal context, still exact.
        ({"price": "1E+30", "count": "12345678901234567890123456789012.000"}, (
            '{"price":"1000000000000000000000000000000.00",'
            '"count":"12345678901234567890123456789012.00"}'
        )),
    ],
)
def test_request_fields_drop_zeros_past_their_places_and_the_sign_of_zero(
    fields: dict[str, str], wire: str
) -> None:
    ticket = Ticket.model_validate(fields)
    assert ticket.model_dump_json(exclude_none=True) == wire
    assert ticket.price == Decimal(fields["price"])


def test_request_models_are_frozen() -> None:
    ticket = Ticket(price=Decimal("0.5"))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        ticket.price = 0.6  # type: ignore[assignment, misc]
    assert ticket.price == Decimal("0.5")
    with pytest.raises(pydantic.ValidationError, match="floats cannot represent money"):
        Ticket(price=0.6)  # type: ignore[arg-type]


def test_request_fields_serialise_in_wire_form() -> None:
    ticket = Ticket(price=Decimal("0.5"), count=Decimal("1E+2"), strike=Decimal("1E+2"))
    assert ticket.model_dump_json() == '{"price":"0.50","count":"100","strike":100}'
    exact = Ticket.model_validate({"price": "0.5600", "count": 3, "strike": "-0.25"})
    assert exact.model_dump_json() == '{"price":"0.5600","count":"3","strike":-0.25}'
    assert exact.model_dump() == {
        "price": Decimal("0.5600"),
        "count": Decimal("3"),
        "strike": Decimal("-0.25"),
    }


def test_request_models_forbid_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        Ticket(prise="0.5")  # type: ignore[call-arg]


def test_a_generated_request_model_refuses_a_float_price() -> None:
    fields: dict[str, Any] = {
        "ticker": "KX-1",
        "client_order_id": "c-1",
        "side": "bid",
        "count": "1",
        "price": 0.56,
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "maker",
    }
    with pytest.raises(pydantic.ValidationError, match="floats cannot represent money") as info:
        m.CreateOrderV2Request.model_validate(fields)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, TypeError)
    fields["price"] = "0.56"
    assert m.CreateOrderV2Request.model_validate(fields).price == Decimal("0.56")


# ---- integer and uuid formats -------------------------------------------------------------


class Formats(RequestModel):
    small: Int32In | None = None
    big: Int64In | None = None
    transfer_id: UuidIn | None = None


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("small", 2**31 - 1, True),
        ("small", -(2**31), True),
        ("small", 2**31, False),
        ("small", -(2**31) - 1, False),
        ("big", 2**63 - 1, True),
        ("big", -(2**63), True),
        ("big", 2**63, False),
        ("big", -(2**63) - 1, False),
        ("big", True, False),
        ("big", "5", False),
        ("big", 5.0, False),
    ],
)
def test_integer_formats_hold_their_range_and_only_ints(
    field: str, value: object, ok: bool
) -> None:
    if ok:
        assert getattr(Formats.model_validate({field: value}), field) == value
        return
    with pytest.raises(pydantic.ValidationError) as caught:
        Formats.model_validate({field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_uuid_takes_the_canonical_form_in_either_case() -> None:
    fresh = str(uuid.uuid4())
    assert Formats(transfer_id=fresh).transfer_id == fresh
    assert Formats(transfer_id=fresh.upper()).transfer_id == fresh.upper()  # kept as given
    assert json.loads(Formats(transfer_id=fresh).model_dump_json())["transfer_id"] == fresh


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "8-4-4-4-12"),
        ("0123456789abcdef0123456789abcdef", "8-4-4-4-12"),  # no hyphens
        ("{01234567-89ab-cdef-0123-456789abcdef}", "8-4-4-4-12"),
        ("urn:uuid:01234567-89ab-cdef-0123-456789abcdef", "8-4-4-4-12"),
        ("01234567-89ab-cdef-0123-456789abcdeg", "8-4-4-4-12"),
        ("01234567-89ab-cdef-0123-456789abcdef\n", "8-4-4-4-12"),
        (uuid.UUID(int=1), r"not UUID; pass str\(uuid.uuid4\(\)\)"),
        (12, "not int"),
    ],
)
def test_uuid_refuses_other_forms_and_types(value: object, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Formats.model_validate({"transfer_id": value})


def test_the_generated_transfer_request_takes_a_uuid_only() -> None:
    fresh = str(uuid.uuid4())
    request = m.ApplySubaccountTransferRequest(
        client_transfer_id=fresh, from_subaccount=0, to_subaccount=1, amount_cents=100
    )
    assert request.client_transfer_id == fresh
    with pytest.raises(pydantic.ValidationError, match="8-4-4-4-12"):
        m.ApplySubaccountTransferRequest(
            client_transfer_id="transfer-1", from_subaccount=0, to_subaccount=1, amount_cents=100
        )
