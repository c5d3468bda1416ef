"""Checks on V2 order requests that the OpenAPI schemas cannot express.

The generator makes the listed request models inherit these mixins (see ``CHECKED_MODELS``), so
a bad order fails when you build it, before anything is signed or sent:

* ``client_order_id`` is required on new V2 orders. The spec makes it optional; the SDK requires
  it because it is the only way to learn, after a timeout, whether an order reached the
  exchange (and the SDK never resends a POST on its own).
* Prices are dollars strictly between 0 and 1 with at most 4 decimal places, the finest tick any
  price-level structure uses (``FixedPointDollars``: requests take 2-4 decimals). The
  market's own tick (``price_ranges``) is checked by the exchange, or beforehand with
  `kalshi_proto.prices.PriceGrid`.
* Counts are positive with at most 2 decimal places (``FixedPointCount``).
* ``immediate_or_cancel`` cannot carry ``expiration_time``, and ``reduce_only`` needs
  ``immediate_or_cancel`` (both from ``CreateOrderV2Request`` in ``openapi.yaml``).
* A decrease gives exactly one of ``reduce_by`` (> 0) and ``reduce_to`` (>= 0).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Self

from pydantic import model_validator

from kalshi_proto.rest.base import RequestModel
from kalshi_proto.types import decimal_places

__all__ = ["CHECKED_MODELS", "AmendOrderV2Checks", "DecreaseOrderV2Checks", "NewOrderV2Checks", "check_price"]

_ONE = Decimal(1)
_PRICE_PLACES = 4


def check_price(price: Decimal, *, what: str = "price") -> None:
    """Refuse a price outside (0, 1) or finer than 4 decimal places.

    Raises:
        ValueError: with a message naming the price and the rule it breaks.
    """
    if not price.is_finite() or not Decimal(0) < price < _ONE:
        raise ValueError(f"{what} must be between 0 and 1 dollar (exclusive), got {price}")
    if decimal_places(price) > _PRICE_PLACES:  # trailing zeros aside: 0.560000 is 0.56
        raise ValueError(f"{what} takes at most {_PRICE_PLACES} decimal places, got {price}")


def _check_count(count: Decimal, *, what: str = "count") -> None:
    if count <= 0:
        raise ValueError(f"{what} must be positive, got {count}")


class NewOrderV2Checks(RequestModel):
    """Checks for ``CreateOrderV2Request`` (also used inside batches)."""

    @model_validator(mode="after")
    def _check_new_order(self) -> Self:
        client_order_id = getattr(self, "client_order_id", None)
        if not client_order_id:
            raise ValueError(
                "client_order_id is required: the SDK never resends an order, and after a "
                "timeout this id is how you find out whether it arrived (every Order carries it)"
            )
        check_price(getattr(self, "price"))  # noqa: B009
        _check_count(getattr(self, "count"))  # noqa: B009
        tif = getattr(self, "time_in_force", None)
        if tif == "immediate_or_cancel" and getattr(self, "expiration_time", None) is not None:
            raise ValueError("immediate_or_cancel orders cannot carry expiration_time")
        if getattr(self, "reduce_only", None) and tif != "immediate_or_cancel":
            raise ValueError("reduce_only orders must be immediate_or_cancel")
        return self


class AmendOrderV2Checks(RequestModel):
    """Checks for ``AmendOrderV2Request``."""

    @model_validator(mode="after")
    def _check_amend(self) -> Self:
        check_price(getattr(self, "price"))  # noqa: B009
        _check_count(getattr(self, "count"))  # noqa: B009
        return self


class DecreaseOrderV2Checks(RequestModel):
    """Checks for ``DecreaseOrderV2Request``."""

    @model_validator(mode="after")
    def _check_decrease(self) -> Self:
        reduce_by = getattr(self, "reduce_by", None)
        reduce_to = getattr(self, "reduce_to", None)
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by and reduce_to")
        if reduce_by is not None:
            _check_count(reduce_by, what="reduce_by")
        if reduce_to is not None and reduce_to < 0:
            raise ValueError(f"reduce_to must not be negative, got {reduce_to}")
        return self


#: Generated model name -> the mixin it inherits instead of ``RequestModel``.
CHECKED_MODELS: Final[dict[str, str]] = {
    "CreateOrderV2Request": "NewOrderV2Checks",
    "AmendOrderV2Request": "AmendOrderV2Checks",
    "DecreaseOrderV2Request": "DecreaseOrderV2Checks",
}
