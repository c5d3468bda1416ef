"""Request models: aware date-times written in UTC, and lists that cannot change once built.

Response models stay lenient (a naive date-time from the server still parses); request models
refuse what the spec forbids, so a request is checked once, when you build it.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from kalshi_proto.rest.base import RequestModel
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import operations
from tests.helpers.spec import example

BLOCK_TRADE: dict[str, Any] = {
    "buyer_user_id": "u",
    "seller_user_id": "s",
    "market_ticker": "KX",
    "price_centi_cents": 5000,
    "centicount": 100,
    "maker_side": "yes",
}


def _order(client_order_id: str = "c-1") -> m.CreateOrderV2Request:
    return m.CreateOrderV2Request(
        ticker="KX-1",
        client_order_id=client_order_id,
        side="bid",
        count=Decimal(1),
        price=Decimal("0.50"),
        time_in_force="good_till_canceled",
        self_trade_prevention_type="maker",
    )


def _sent_expiration(value: Any) -> str:
    call = calls.propose_block_trade(m.ProposeBlockTradeRequest(**BLOCK_TRADE, expiration_ts=value))
    sent = json.loads(call.body)["expiration_ts"]
    assert isinstance(sent, str)
    return sent


class _NoOffset(tzinfo):
    # A tzinfo that knows no offset: the datetime is still naive (datetime docs, "aware and naive").
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "got a naive datetime (2026-01-02T03:04:05)"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=_NoOffset()), "got a naive datetime"),
        ("2026-01-02T03:04:05", "an RFC 3339 string with an offset, got '2026-01-02T03:04:05'"),
        ("2026-01-02", "an RFC 3339 string with an offset, got '2026-01-02'"),
        ("1767225600", "an RFC 3339 string with an offset"),
        (1767225600, "must be a datetime, not int"),
        (0, "must be a datetime, not int"),
        (date(2026, 1, 2), "must be a datetime, not date"),
    ],
)
def test_request_date_times_refuse_naive_and_partial_values(value: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        m.ProposeBlockTradeRequest(**BLOCK_TRADE, expiration_ts=value)
    text = str(caught.value)
    assert message in text
    assert "pass a timezone-aware datetime" in text  # and how to fix it


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))), "2026-01-02T08:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC), "2026-01-02T03:04:05.250000Z"),
        ("2026-01-02T03:04:05+01:00", "2026-01-02T02:04:05Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
    ],
)
def test_request_date_times_are_sent_in_utc_with_a_z(value: Any, wire: str) -> None:
    assert _sent_expiration(value) == wire


def test_body_and_query_date_times_are_written_alike() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9)))
    query = calls.get_milestones(limit=1, minimum_start_date=moment).query_value("minimum_start_date")
    assert query == _sent_expiration(moment) == "2026-01-01T18:04:05Z"


def test_response_date_times_stay_lenient() -> None:
    proposal = example("BlockTradeProposal")
    proposal["expiration_ts"] = "2026-01-02T03:04:05"  # no offset: read as sent
    parsed = m.BlockTradeProposal.model_validate(proposal)
    assert parsed.expiration_ts == datetime(2026, 1, 2, 3, 4, 5)


def _mutable_parts(annotation: object) -> list[object]:
    origin = typing.get_origin(annotation)
    found: list[object] = [annotation] if origin in (list, dict, set) else []
    for arg in typing.get_args(annotation):
        found += _mutable_parts(arg)
    return found


REQUEST_MODELS = sorted(
    (
        cls
        for cls in vars(m).values()
        if isinstance(cls, type) and issubclass(cls, RequestModel) and cls.__module__ == m.__name__
    ),
    key=lambda cls: cls.__name__,
)


def test_no_request_model_declares_a_mutable_container() -> None:
    bodies = {op.request_model for op in operations() if op.request_model is not None}
    assert bodies <= set(REQUEST_MODELS)
    mutable = {
        f"{cls.__name__}.{name}": parts
        for cls in REQUEST_MODELS
        for name, info in cls.model_fields.items()
        if (parts := _mutable_parts(info.annotation))
    }
    assert mutable == {}


def test_request_lists_are_tuples_and_a_built_batch_cannot_change() -> None:
    batch = m.BatchCreateOrdersV2Request(orders=[_order()])
    assert batch.orders == (_order(),)
    with pytest.raises(AttributeError):
        batch.orders.append(_order("c-2"))  # type: ignore[attr-defined]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        batch.orders = (_order(), _order("c-2"))  # type: ignore[misc]
    call = calls.batch_create_orders_v2(batch)
    assert call.items == 1
    assert [o["client_order_id"] for o in json.loads(call.body)["orders"]] == ["c-1"]


def test_a_request_list_stored_as_a_tuple_is_dumped_as_a_list() -> None:
    # model_dump() gave lists before the fields became tuples; code comparing dumps keeps working.
    keys = m.CreateApiKeyRequest(name="k", public_key="pem", scopes=("read",))
    assert keys.model_dump()["scopes"] == ["read"]
    batch = m.BatchCreateOrdersV2Request(orders=[_order()])
    dumped = batch.model_dump(mode="python")["orders"]
    assert isinstance(dumped, list) and isinstance(dumped[0], dict)
    assert dumped[0]["client_order_id"] == "c-1"


def test_request_lists_take_lists_and_tuples_but_not_a_string() -> None:
    from_list = m.CreateApiKeyRequest(name="k", public_key="pem", scopes=["read", "write"])
    from_tuple = m.CreateApiKeyRequest(name="k", public_key="pem", scopes=("read", "write"))
    assert from_list == from_tuple and from_list.scopes == ("read", "write")
    assert json.loads(calls.create_api_key(from_list).body)["scopes"] == ["read", "write"]
    with pytest.raises(pydantic.ValidationError):
        m.CreateApiKeyRequest(name="k", public_key="pem", scopes="read")  # type: ignore[arg-type]


def test_request_lists_read_from_json_as_tuples() -> None:
    wire = calls.batch_create_orders_v2(
        m.BatchCreateOrdersV2Request(orders=[_order(), _order("c-2")])
    ).body
    parsed = m.BatchCreateOrdersV2Request.model_validate_json(wire)
    assert isinstance(parsed.orders, tuple) and len(parsed.orders) == 2


def test_the_servers_validate_rules_refuse_a_request_before_it_is_sent() -> None:
    transfer: dict[str, Any] = {
        "source_subtrader_id": "fcm-1",
        "target_subtrader_id": "err_1",
        "market_ticker": "KXTEST-1",
        "position_centicount": 1000,
        "price_centicents": 4500,
    }
    assert m.CreateFCMPositionTransferRequest(**{**transfer, "position_centicount": -500})
    with pytest.raises(pydantic.ValidationError, match="must not be zero"):
        m.CreateFCMPositionTransferRequest(**{**transfer, "position_centicount": 0})
    with pytest.raises(pydantic.ValidationError, match="at least 1 character"):
        m.CreateOrderV2Request.model_validate({**_order().model_dump(mode="json"), "ticker": ""})
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        m.CreateSubaccountRequest(exchange_index=-1)
    assert m.CreateSubaccountRequest(exchange_index=0).exchange_index == 0
