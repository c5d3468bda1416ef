"""`kalshi_proto.rest.checks`: the V2 order rules the OpenAPI schemas cannot express."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pydantic
import pytest

from kalshi_proto.rest import checks
from kalshi_proto.rest.base import RequestModel
from kalshi_proto.rest.checks import (
    CHECKED_MODELS,
    AmendOrderV2Checks,
    DecreaseOrderV2Checks,
    NewOrderV2Checks,
    check_price,
)
from kalshi_proto.rest.generated import models as m


def order_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ticker": "KXBTC-25",
        "client_order_id": "c-1",
        "side": "bid",
        "count": "10",
        "price": "0.56",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "maker",
    }
    fields.update(changes)
    return fields


def refused(model: type[pydantic.BaseModel], fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate(fields)
    [error] = info.value.errors()
    assert error["type"] == "value_error"
    assert error["msg"] == f"Value error, {message}"


# ---- check_price --------------------------------------------------------------------------


@pytest.mark.parametrize("price", ["0.01", "0.5", "0.99", "0.0001", "0.9999", "0.5600"])
def test_check_price_accepts_prices_inside_zero_and_one(price: str) -> None:
    check_price(Decimal(price))


@pytest.mark.parametrize("price", ["0", "1", "-0.5", "1.01", "0.0000", "1.00", "Infinity"])
def test_check_price_refuses_prices_outside_zero_and_one(price: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^limit must be between 0 and 1 dollar \(exclusive\), got {price}$"
    ):
        check_price(Decimal(price), what="limit")


DOLLARS_PLACES = "a FixedPointDollars amount takes at most 4 decimal places, got "


@pytest.mark.parametrize("price", ["0.560000", "0.5600", "0.56", "0.12340"])
def test_check_price_counts_places_without_trailing_zeros(price: str) -> None:
    # A price from a response or a PriceGrid may have six places, zeros past the fourth; it is
    # sent with four.
    check_price(Decimal(price))


@pytest.mark.parametrize("price", ["0.00001", "0.12345", "0.123450"])
def test_check_price_refuses_more_than_four_places(price: str) -> None:
    with pytest.raises(ValueError, match=rf"^price takes at most 4 decimal places, got {price}$"):
        check_price(Decimal(price))


def test_check_price_refuses_nan_with_value_error() -> None:
    with pytest.raises(ValueError):
        check_price(Decimal("NaN"))


# ---- new orders ---------------------------------------------------------------------------


def test_a_valid_new_order_is_accepted() -> None:
    created = m.CreateOrderV2Request.model_validate(order_fields())
    assert created.price == Decimal("0.56")
    assert created.count == Decimal("10")


@pytest.mark.parametrize("client_order_id", [None, ""])
def test_a_new_order_needs_a_client_order_id(client_order_id: str | None) -> None:
    refused(
        m.CreateOrderV2Request,
        order_fields(client_order_id=client_order_id),
        "client_order_id is required: the SDK never resends an order, and after a timeout "
        "this id is how you find out whether it arrived (every Order carries it)",
    )
    fields = order_fields()
    del fields["client_order_id"]
    with pytest.raises(pydantic.ValidationError, match="client_order_id is required"):
        m.CreateOrderV2Request.model_validate(fields)


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("0", "price must be between 0 and 1 dollar (exclusive), got 0"),
        ("1", "price must be between 0 and 1 dollar (exclusive), got 1"),
        ("0.12345", DOLLARS_PLACES + "0.12345"),
    ],
)
def test_a_new_order_price_is_checked(price: str, message: str) -> None:
    refused(m.CreateOrderV2Request, order_fields(price=price), message)


@pytest.mark.parametrize("count", ["0", "-1", "0.00"])
def test_a_new_order_count_must_be_positive(count: str) -> None:
    refused(
        m.CreateOrderV2Request, order_fields(count=count), f"count must be positive, got {count}"
    )


def test_a_fractional_count_is_accepted() -> None:
    assert m.CreateOrderV2Request.model_validate(order_fields(count="0.01")).count == Decimal(
        "0.01"
    )


def test_immediate_or_cancel_cannot_carry_an_expiration_time() -> None:
    refused(
        m.CreateOrderV2Request,
        order_fields(time_in_force="immediate_or_cancel", expiration_time=1_767_225_600),
        "immediate_or_cancel orders cannot carry expiration_time",
    )
    m.CreateOrderV2Request.model_validate(
        order_fields(time_in_force="good_till_canceled", expiration_time=1_767_225_600)
    )
    m.CreateOrderV2Request.model_validate(order_fields(time_in_force="immediate_or_cancel"))


@pytest.mark.parametrize("tif", ["good_till_canceled", "fill_or_kill"])
def test_reduce_only_needs_immediate_or_cancel(tif: str) -> None:
    refused(
        m.CreateOrderV2Request,
        order_fields(time_in_force=tif, reduce_only=True),
        "reduce_only orders must be immediate_or_cancel",
    )


def test_reduce_only_with_immediate_or_cancel_and_false_reduce_only_are_accepted() -> None:
    ioc = m.CreateOrderV2Request.model_validate(
        order_fields(time_in_force="immediate_or_cancel", reduce_only=True)
    )
    assert ioc.reduce_only is True
    gtc = m.CreateOrderV2Request.model_validate(order_fields(reduce_only=False))
    assert gtc.reduce_only is False


def test_requests_cannot_be_changed_after_they_are_checked() -> None:
    created = m.CreateOrderV2Request.model_validate(order_fields())
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        created.price = Decimal("1.5")  # type: ignore[misc]
    assert created.price == Decimal("0.56")


def test_a_refused_assignment_keeps_the_old_value() -> None:
    created = m.CreateOrderV2Request.model_validate(order_fields())
    with pytest.raises(pydantic.ValidationError):
        created.price = Decimal("1.5")  # type: ignore[misc]
    assert created.price == Decimal("0.56")


def test_every_order_of_a_batch_is_checked() -> None:
    good = order_fields()
    bad = order_fields(client_order_id=None)
    batch = m.BatchCreateOrdersV2Request.model_validate({"orders": [good, good]})
    assert len(batch.orders) == 2
    with pytest.raises(pydantic.ValidationError) as info:
        m.BatchCreateOrdersV2Request.model_validate({"orders": [good, bad]})
    [error] = info.value.errors()
    assert error["loc"] == ("orders", 1)
    assert "client_order_id is required" in error["msg"]


# ---- amend --------------------------------------------------------------------------------


def amend_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"ticker": "KXBTC-25", "side": "ask", "price": "0.4", "count": "5"}
    fields.update(changes)
    return fields


def test_a_valid_amend_is_accepted_without_a_client_order_id() -> None:
    amend = m.AmendOrderV2Request.model_validate(amend_fields())
    assert (amend.price, amend.count, amend.client_order_id) == (Decimal("0.4"), Decimal("5"), None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": "1"}, "price must be between 0 and 1 dollar (exclusive), got 1"),
        ({"price": "0.00005"}, DOLLARS_PLACES + "0.00005"),
        ({"count": "0"}, "count must be positive, got 0"),
    ],
)
def test_an_amend_is_checked(changes: dict[str, Any], message: str) -> None:
    refused(m.AmendOrderV2Request, amend_fields(**changes), message)


# ---- decrease -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"reduce_by": "1"}, {"reduce_by": "0.5"}, {"reduce_to": "0"}, {"reduce_to": "3"}],
)
def test_a_decrease_with_one_amount_is_accepted(fields: dict[str, Any]) -> None:
    decrease = m.DecreaseOrderV2Request.model_validate({**fields, "market_ticker": "KX"})
    [(name, amount)] = fields.items()
    assert isinstance(decrease, m.DecreaseOrderV2Request)
    assert getattr(decrease, name) == Decimal(amount)


@pytest.mark.parametrize("fields", [{}, {"reduce_by": "1", "reduce_to": "0"}])
def test_a_decrease_needs_exactly_one_amount(fields: dict[str, Any]) -> None:
    refused(m.DecreaseOrderV2Request, fields, "give exactly one of reduce_by and reduce_to")


@pytest.mark.parametrize("amount", ["0", "-2"])
def test_reduce_by_must_be_positive(amount: str) -> None:
    refused(
        m.DecreaseOrderV2Request, {"reduce_by": amount}, f"reduce_by must be positive, got {amount}"
    )


def test_reduce_to_must_not_be_negative() -> None:
    refused(m.DecreaseOrderV2Request, {"reduce_to": "-1"}, "reduce_to must not be negative, got -1")


# ---- which models get which rules ---------------------------------------------------------


def test_checked_models_inherit_their_mixins() -> None:
    assert CHECKED_MODELS == {
        "CreateOrderV2Request": "NewOrderV2Checks",
        "AmendOrderV2Request": "AmendOrderV2Checks",
        "DecreaseOrderV2Request": "DecreaseOrderV2Checks",
    }
    for model_name, mixin_name in CHECKED_MODELS.items():
        model = getattr(m, model_name)
        mixin = getattr(checks, mixin_name)
        assert issubclass(model, mixin)
        assert issubclass(mixin, RequestModel)
    assert {NewOrderV2Checks, AmendOrderV2Checks, DecreaseOrderV2Checks} == {
        getattr(checks, name) for name in CHECKED_MODELS.values()
    }
    assert not issubclass(m.BatchCreateOrdersV2Request, NewOrderV2Checks)
