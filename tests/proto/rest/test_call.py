"""`kalshi_proto.rest.call`: responses, pages, `Call`, parsing, error mapping and `build_call`."""

from __future__ import annotations

import gc
import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, cast

import pydantic
import pytest

from kalshi_proto.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RemoteProtocolError,
    ServerError,
    ValidationError,
)
from kalshi_proto.rest.call import (
    LARGE_BODY,
    REQUEST_ID_HEADERS,
    Call,
    HttpResponse,
    Page,
    build_call,
    error_from_response,
)
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import (
    Constraints,
    Operation,
    Param,
    ParamKind,
    ParamLocation,
    operation,
)
from tests.helpers.spec import example

# 2026-01-01T00:00:00Z
WALL_MS = 1_767_225_600_000

EXCHANGE_STATUS = b'{"exchange_active": true, "trading_active": false}'

FEE_CHANGE = {
    "id": "fc-1",
    "event_ticker": "KXEV-1",
    "series_ticker": "KXEV",
    "fee_type_override": "flat",
    "fee_multiplier_override": "0.5",
    "scheduled_ts": "2026-01-01T00:00:00Z",
}

INCENTIVE = {
    "id": "ip-1",
    "market_id": "m-1",
    "market_ticker": "KXM-1",
    "incentive_type": "liquidity",
    "incentive_description": "maker rebate",
    "start_date": "2026-01-01T00:00:00Z",
    "end_date": "2026-02-01T00:00:00Z",
    "period_reward": 100,
    "paid_out": False,
}


def response(
    status: int, body: bytes | dict[str, Any] | list[Any] = b"", *headers: tuple[str, str]
) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status=status, headers=headers, body=raw)


def order(**changes: Any) -> m.CreateOrderV2Request:
    fields: dict[str, Any] = {
        "ticker": "KXBTC-25",
        "client_order_id": "c-1",
        "side": "bid",
        "count": Decimal("10"),
        "price": Decimal("0.5"),
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "maker",
    }
    fields.update(changes)
    return m.CreateOrderV2Request(**fields)


# ---- HttpResponse -------------------------------------------------------------------------


def test_header_is_case_insensitive_and_returns_the_first_value() -> None:
    resp = response(200, b"", ("x-a", "1"), ("x-b", "2"), ("x-a", "3"))
    assert resp.header("X-A") == "1"
    assert resp.header("x-b") == "2"
    assert resp.header("x-c") is None


# ---- Page ---------------------------------------------------------------------------------


def test_page_is_a_sequence_of_its_items() -> None:
    model = m.EmptyResponse()
    page = Page(items=["a", "b", "c"], cursor="next", response=model)
    assert page.has_next
    assert list(page) == ["a", "b", "c"]
    assert len(page) == 3
    assert page[1] == "b"
    assert page[1:] == ["b", "c"]
    assert page.response is model
    assert not Page(items=[], cursor=None, response=model).has_next


def test_the_repr_of_a_page_is_a_summary() -> None:
    # Not the items: a page of 1,000 markets printed them all, twice (the response holds them).
    # Built unchecked: only their classes show.
    markets = [cast(Any, m.Market).model_construct(ticker=f"KX-{n}") for n in range(3)]
    response = cast(Any, m.GetMarketsResponse).model_construct(markets=markets, cursor="c2")
    page = Page(items=markets, cursor="c2", response=response)
    assert repr(page) == "<Page of 3 Market, cursor='c2', response=GetMarketsResponse>"
    empty: Page[object] = Page(items=[], cursor=None, response=m.EmptyResponse())
    assert repr(empty) == "<Page of 0 items, cursor=None, response=EmptyResponse>"


# ---- Call ---------------------------------------------------------------------------------


def test_call_exposes_the_operation() -> None:
    status = calls.get_exchange_status()
    assert (status.method, status.requires_auth, status.idempotent) == ("GET", False, True)
    create = calls.create_order_v2(order())
    assert (create.method, create.requires_auth, create.idempotent) == ("POST", True, False)


def test_target_without_query_is_prefix_and_path() -> None:
    call = calls.get_exchange_status()
    assert call.query == ()
    assert call.target() == "/exchange/status"
    assert call.target("/trade-api/v2") == "/trade-api/v2/exchange/status"


def test_target_percent_encodes_the_query_in_order() -> None:
    call: Call[object] = Call(
        operation=operation("GetMarkets"),
        path="/markets",
        query=(
            ("status", "open"),
            ("series_ticker", "A B/C&d=e"),
            ("tickers", "X:1,Y~2-z_3.4"),
            ("event_ticker", "é?#"),
        ),
    )
    assert call.target("/p") == (
        "/p/markets?status=open&series_ticker=A%20B%2FC%26d%3De"
        "&tickers=X:1,Y~2-z_3.4&event_ticker=%C3%A9%3F%23"
    )


def test_with_query_replaces_adds_and_removes() -> None:
    call = calls.get_markets(limit=5, cursor="c1")
    assert call.query == (("limit", "5"), ("cursor", "c1"))
    replaced = call.with_query("cursor", "c2")
    assert replaced.query == (("limit", "5"), ("cursor", "c2"))
    added = call.with_query("status", "open")
    assert added.query == (("limit", "5"), ("cursor", "c1"), ("status", "open"))
    removed = call.with_query("cursor", None)
    assert removed.query == (("limit", "5"),)
    assert call.with_query("absent", None).query == call.query
    assert call.query == (("limit", "5"), ("cursor", "c1"))  # the original is unchanged
    assert replaced.operation is call.operation


def test_query_value() -> None:
    call = calls.get_markets(limit=5, cursor="c1")
    assert call.query_value("cursor") == "c1"
    assert call.query_value("limit") == "5"
    assert call.query_value("status") is None


# ---- Call.parse ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 299])
def test_parse_2xx_validates_the_response_model(status: int) -> None:
    parsed = calls.get_exchange_status().parse(response(status, EXCHANGE_STATUS))
    assert isinstance(parsed, m.ExchangeStatus)
    assert parsed.exchange_active is True
    assert parsed.trading_active is False
    assert parsed.exchange_index_statuses == []


def test_parse_keeps_money_exact() -> None:
    body = {"order_id": "o-1", "fill_count": "1.50", "remaining_count": "8.50", "ts_ms": 7}
    parsed = calls.create_order_v2(order()).parse(response(201, body))
    assert parsed.fill_count == Decimal("1.50")
    assert str(parsed.remaining_count) == "8.50"


def test_parse_204_without_model_returns_none() -> None:
    call = calls.delete_api_key("key-1")
    assert call.operation.response_model is None
    assert call.parse(response(204)) is None


def test_parse_without_model_ignores_any_body() -> None:
    call = calls.update_subaccount_netting(
        m.UpdateSubaccountNettingRequest(subaccount_number=1, enabled=True)
    )
    assert call.parse(response(200, b"not json at all")) is None


def test_parse_empty_body_reads_as_an_empty_object() -> None:
    parsed = calls.delete_order_group("g-1").parse(response(200))
    assert isinstance(parsed, m.EmptyResponse)


@pytest.mark.parametrize(
    ("call", "model"),
    [
        # Every field optional: read as {}, these came out as an empty list or None.
        (calls.get_order_groups(), "GetOrderGroupsResponse"),
        (calls.get_structured_targets(), "GetStructuredTargetsResponse"),
        (calls.get_structured_target("t-1"), "GetStructuredTargetResponse"),
        (calls.get_game_stats("m-1"), "GetGameStatsResponse"),
        (calls.get_exchange_status(), "ExchangeStatus"),
    ],
)
def test_parse_an_empty_body_for_a_model_with_fields_is_remote_protocol_error(
    call: Call[Any], model: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        call.parse(response(200))
    assert str(info.value) == (
        f"{call.operation.operation_id}: HTTP 200 has an empty body, not the {model} the spec "
        "promises"
    )
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"[]",
        b'{"exchange_active": "maybe", "trading_active": true}',
        b'{"exchange_active": true',
    ],
)
def test_parse_a_2xx_body_that_does_not_match_is_remote_protocol_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        calls.get_exchange_status().parse(response(200, body))
    message = str(info.value)
    assert message.startswith("GetExchangeStatus: HTTP 200 body does not match ExchangeStatus: ")
    assert "\n" not in message
    assert info.value.hint is None
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_parse_error_message_keeps_the_first_four_lines() -> None:
    # Four required fields missing make pydantic write thirteen lines.
    with pytest.raises(RemoteProtocolError) as info:
        calls.create_order_v2(order()).parse(response(201, b"{}"))
    detail = str(info.value).split("CreateOrderV2Response: ", 1)[1]
    assert detail.count(" / ") == 3
    assert detail.startswith(
        "4 validation errors for CreateOrderV2Response / order_id / Field required "
    )


def test_parse_paginated_returns_a_page() -> None:
    body = {"event_fee_changes": [FEE_CHANGE, {**FEE_CHANGE, "id": "fc-2"}], "cursor": "c2"}
    page = calls.get_event_fee_changes(limit=2).parse(response(200, body))
    assert isinstance(page, Page)
    assert [item.id for item in page] == ["fc-1", "fc-2"]
    assert isinstance(page[0], m.EventFeeChange)
    assert page[0].fee_multiplier_override == Decimal("0.5")
    assert page.cursor == "c2"
    assert page.has_next
    assert isinstance(page.response, m.GetEventFeeChangesResponse)
    assert page.response.event_fee_changes is page.items


def test_parse_paginated_empty_cursor_is_the_last_page() -> None:
    page = calls.get_event_fee_changes().parse(
        response(200, {"event_fee_changes": None, "cursor": ""})
    )
    assert page.items == []
    assert page.cursor is None
    assert not page.has_next


def test_parse_paginated_missing_cursor_is_the_last_page() -> None:
    page = calls.get_structured_targets().parse(response(200, {}))
    assert page.items == []
    assert page.cursor is None


def test_parse_paginated_reads_an_irregular_cursor_field() -> None:
    call = calls.get_incentive_programs()
    assert call.operation.pagination is not None
    assert call.operation.pagination.cursor_field == "next_cursor"
    page = call.parse(response(200, {"incentive_programs": [INCENTIVE], "next_cursor": "n2"}))
    assert page.cursor == "n2"
    assert [p.market_ticker for p in page] == ["KXM-1"]
    last = call.parse(response(200, {"incentive_programs": [INCENTIVE], "next_cursor": None}))
    assert last.cursor is None


@pytest.mark.parametrize("status", [100, 199, 300, 304, 404, 503])
def test_parse_non_2xx_raises_the_mapped_error(status: int) -> None:
    with pytest.raises(ApiError) as info:
        calls.get_exchange_status().parse(response(status, EXCHANGE_STATUS))
    assert info.value.status == status
    assert info.value.operation_id == "GetExchangeStatus"


def test_parse_passes_wall_ms_to_the_error() -> None:
    date = "Thu, 01 Jan 2026 00:00:05 GMT"
    resp = response(429, b"", ("retry-after", date))
    with pytest.raises(RateLimitError) as info:
        calls.get_exchange_status().parse(resp, wall_ms=WALL_MS)
    assert info.value.retry_after == 5.0
    with pytest.raises(RateLimitError) as info:
        calls.get_exchange_status().parse(resp)
    assert info.value.retry_after is None


# ---- error_from_response ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "message"),
    [
        (400, ValidationError, "bad request"),
        (401, AuthenticationError, "unauthorized"),
        (403, PermissionDeniedError, "forbidden"),
        (404, NotFoundError, "not found"),
        (409, ConflictError, "conflict"),
        (429, RateLimitError, "too many requests"),
        (500, ServerError, "internal server error"),
        (502, ServerError, "bad gateway"),
        (503, ServerError, "service unavailable"),
        (504, ServerError, "gateway timeout"),
        (501, ServerError, "request failed"),
        (599, ServerError, "request failed"),
        (418, ApiError, "request failed"),
        (302, ApiError, "request failed"),
        (101, ApiError, "request failed"),
    ],
)
def test_every_status_class_maps_with_a_default_message(
    status: int, cls: type[ApiError], message: str
) -> None:
    error = error_from_response(response(status))
    assert type(error) is cls
    assert error.status == status
    assert error.message == message
    assert (error.code, error.details, error.request_id, error.operation_id) == (None,) * 4
    assert str(error) == f"HTTP {status}: {message}"


def test_error_response_body_fills_code_message_and_details() -> None:
    body = {
        "code": "invalid_order",
        "message": "price out of range",
        "details": "tick is 0.01",
        "service": "exchange",
    }
    error = error_from_response(response(400, body, ("x-request-id", "req-1")), "CreateOrderV2")
    assert type(error) is ValidationError
    assert (error.code, error.message, error.details) == (
        "invalid_order",
        "price out of range",
        "tick is 0.01",
    )
    assert error.request_id == "req-1"
    assert error.operation_id == "CreateOrderV2"
    assert str(error) == (
        "HTTP 400 from CreateOrderV2: [invalid_order] price out of range (tick is 0.01) "
        "[request id req-1]"
    )


def test_error_object_nested_under_error_is_read() -> None:
    body = {"error": {"code": "not_found", "message": "no such market", "details": "KX-1"}}
    error = error_from_response(response(404, body))
    assert type(error) is NotFoundError
    assert (error.code, error.message, error.details) == ("not_found", "no such market", "KX-1")


def test_too_many_requests_error_string_becomes_the_message() -> None:
    error = error_from_response(response(429, {"error": "too many requests"}), "GetMarkets")
    assert isinstance(error, RateLimitError)
    assert error.message == "too many requests"
    assert error.code is None
    assert error.retry_after is None
    assert str(error) == "HTTP 429 from GetMarkets: too many requests"


def test_error_string_is_used_only_without_a_message() -> None:
    error = error_from_response(response(429, {"error": "slow down", "message": "throttled"}))
    assert error.message == "throttled"
    error = error_from_response(response(429, {"error": "", "code": "rate_limited"}))
    assert (error.message, error.code) == ("too many requests", "rate_limited")


def test_error_string_becomes_the_message_whatever_it_says() -> None:
    error = error_from_response(response(429, {"error": "slow down"}))
    assert error.message == "slow down"
    assert str(error) == "HTTP 429: slow down"


@pytest.mark.parametrize("opener", [b"[", b'{"error":'], ids=["list", "object"])
def test_error_body_nested_too_deep_to_read_becomes_the_message(opener: bytes) -> None:
    # json.loads raises RecursionError, not ValueError, on a body like this one.
    closer = b"]" if opener == b"[" else b"}"
    body = opener * 100_000 + b"1" + closer * 100_000
    error = error_from_response(response(502, body))
    assert type(error) is ServerError
    assert error.message == body[:200].decode()
    assert error.code is None


def test_error_fields_that_are_empty_are_dropped() -> None:
    body: dict[str, Any] = {"code": None, "message": [], "details": "", "error": 7}
    error = error_from_response(response(409, body))
    assert (error.code, error.message, error.details) == (None, "conflict", None)
    error = error_from_response(response(409, {"code": "", "message": "", "details": {}}))
    assert (error.code, error.message, error.details) == (None, "conflict", None)


def test_error_fields_that_are_not_strings_are_kept_as_json() -> None:
    # The spec types them as strings; what a server off the spec says is not dropped.
    body = {"code": 5, "message": ["bad", "price"], "details": {"price": "tick is 0.01", "n": 1.5}}
    error = error_from_response(response(400, body))
    assert (error.code, error.message, error.details) == (
        "5",
        '["bad","price"]',
        '{"price":"tick is 0.01","n":1.5}',
    )
    long = error_from_response(response(400, {"details": {"x": "é" * 1000}}))
    assert long.details == '{"x":"' + "é" * 494
    assert error_from_response(response(400, {"code": False})).code == "false"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'["a", 1]', '["a", 1]'),
        (b'"oops"', '"oops"'),
        (b"42", "42"),
        (b"null", "null"),
        (b"<html>Bad Gateway</html>\n", "<html>Bad Gateway</html>"),
        (b"upstream connect error", "upstream connect error"),
        (b"x" * 300, "x" * 200),
        (b"  \r\n ", "bad gateway"),
    ],
)
def test_bodies_that_are_not_json_objects_become_the_message(body: bytes, message: str) -> None:
    error = error_from_response(response(502, body))
    assert type(error) is ServerError
    assert error.message == message
    assert error.code is None


def test_undecodable_body_is_read_with_replacement_characters() -> None:
    error = error_from_response(response(500, b"\xff\xfe\xfa broken"))
    assert error.message == "\ufffd\ufffd\ufffd broken"


def test_request_id_headers_are_read_in_order() -> None:
    assert REQUEST_ID_HEADERS == ("x-request-id", "request-id", "x-amzn-requestid")
    for name in REQUEST_ID_HEADERS:
        assert error_from_response(response(500, b"", (name, "r-" + name))).request_id == (
            "r-" + name
        )
    both = response(500, b"", ("x-amzn-requestid", "amzn"), ("request-id", "plain"))
    assert error_from_response(both).request_id == "plain"
    assert error_from_response(response(500, b"", ("x-trace", "t"))).request_id is None


@pytest.mark.parametrize(
    ("value", "wall_ms", "expected"),
    [
        ("7", None, 7.0),
        (" 12 ", None, 12.0),
        ("1.5", None, 1.5),
        ("0", None, 0.0),
        ("7", WALL_MS, 7.0),
        ("Thu, 01 Jan 2026 00:00:03 GMT", WALL_MS, 3.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", WALL_MS, 0.0),
        ("Thu, 01 Jan 2026 00:00:03 GMT", None, None),
        ("soon", WALL_MS, None),
        ("soon", None, None),
        ("", None, None),
        ("", WALL_MS, None),
        ("9e9999", None, None),
    ],
)
def test_retry_after_as_seconds_or_http_date(
    value: str, wall_ms: int | None, expected: float | None
) -> None:
    resp = response(429, {"error": "too many requests"}, ("retry-after", value))
    error = error_from_response(resp, wall_ms=wall_ms)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == expected


def test_retry_after_date_is_read_against_a_wall_clock_at_zero() -> None:
    # wall_ms=0 is the epoch, a time like any other, not "no clock".
    resp = response(429, b"", ("retry-after", "Thu, 01 Jan 1970 00:00:10 GMT"))
    error = error_from_response(resp, wall_ms=0)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 10.0


def test_retry_after_is_read_only_for_429() -> None:
    error = error_from_response(response(503, b"", ("retry-after", "5")))
    assert type(error) is ServerError
    assert not hasattr(error, "retry_after")


def test_missing_retry_after_is_none() -> None:
    error = error_from_response(response(429), wall_ms=WALL_MS)
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


# ---- build_call ---------------------------------------------------------------------------


def test_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^GetExchangeStatus takes no argument 'limit'$"):
        build_call(operation("GetExchangeStatus"), {"limit": 5})
    # Checked before anything else, even when a required argument is also missing.
    with pytest.raises(TypeError, match="takes no argument 'tickr'"):
        build_call(operation("GetMarket"), {"tickr": "KX"})


def test_none_means_not_sent_and_required_none_is_missing() -> None:
    call = build_call(operation("GetMarkets"), {"status": None, "limit": None})
    assert call.query == ()
    assert call.path == "/markets"
    with pytest.raises(ValueError, match=r"^GetMarket needs ticker$"):
        build_call(operation("GetMarket"), {})
    with pytest.raises(ValueError, match=r"^GetMarket needs ticker$"):
        build_call(operation("GetMarket"), {"ticker": None})


def test_path_parameters_are_percent_encoded_whole() -> None:
    op = operation("GetMarket")
    assert [p.name for p in op.path_params] == ["ticker"]
    assert op.query_params == ()
    call = build_call(op, {"ticker": "A/B C?%"})
    assert call.path == "/markets/A%2FB%20C%3F%25"
    assert call.target("/v2") == "/v2/markets/A%2FB%20C%3F%25"


def test_empty_path_parameter_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^ticker must not be empty, '\.' or '\.\.'; got ''$"):
        build_call(operation("GetMarket"), {"ticker": ""})


def test_empty_required_query_values_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^GetMarketOrderbooks needs at least one tickers$"):
        build_call(operation("GetMarketOrderbooks"), {"tickers": []})
    candles = operation("BatchGetMarketCandlesticks")
    required = {p.python_name: 1 for p in candles.query_params if p.kind is ParamKind.INTEGER}
    with pytest.raises(ValueError, match=r"^market_tickers must not be empty$"):
        build_call(candles, {**required, "market_tickers": "", "period_interval": 1})
    # An optional empty string or list is sent as given.
    assert build_call(operation("GetMarkets"), {"event_ticker": ""}).query == (
        ("event_ticker", ""),
    )
    assert build_call(operation("GetStructuredTargets"), {"ids": []}).query == ()


def test_booleans_and_aware_datetimes_in_wire_form() -> None:
    eastern = timezone(timedelta(hours=-5))
    call = build_call(
        operation("GetMilestones"),
        {
            "limit": 1,
            "minimum_start_date": datetime(2025, 12, 31, 19, 0, 0, 250000, tzinfo=eastern),
        },
    )
    assert call.query_value("minimum_start_date") == "2026-01-01T00:00:00.250000Z"
    flags = [
        build_call(operation("GetSeriesFeeChanges"), {"show_historical": v}).query
        for v in (True, False)
    ]
    assert flags == [(("show_historical", "true"),), (("show_historical", "false"),)]


class NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> None:
        return None


@pytest.mark.parametrize(
    ("op", "arguments", "message"),
    [
        ("GetMarket", {"ticker": 5}, r"^ticker must be str, not int$"),
        ("GetMarkets", {"event_ticker": b"KX"}, r"^event_ticker must be str, not bytes$"),
        ("GetMarkets", {"limit": True}, r"^limit must be int, not bool$"),
        ("GetMarkets", {"limit": "5"}, r"^limit must be int, not str$"),
        ("GetMarkets", {"limit": 5.0}, r"^limit must be int, not float$"),
        ("GetSeriesFeeChanges", {"show_historical": 1}, r"^show_historical must be bool, not int$"),
        (
            "GetMilestones",
            {"limit": 1, "minimum_start_date": datetime(2026, 1, 1)},
            r"^minimum_start_date must be a timezone-aware datetime$",
        ),
        (
            "GetMilestones",
            {"limit": 1, "minimum_start_date": "2026-01-01T00:00:00Z"},
            r"^minimum_start_date must be a timezone-aware datetime$",
        ),
        (
            # A tzinfo that names no offset: the datetime is naive all the same (it was read
            # in the machine's local zone).
            "GetMilestones",
            {"limit": 1, "minimum_start_date": datetime(2026, 1, 1, tzinfo=NoOffset())},
            r"^minimum_start_date must be a timezone-aware datetime$",
        ),
        ("GetMarketOrderbooks", {"tickers": "KX-1"}, r"^tickers must be a list, not str$"),
        ("GetMarketOrderbooks", {"tickers": b"KX-1"}, r"^tickers must be a list, not bytes$"),
        ("GetMarketOrderbooks", {"tickers": {"KX-1"}}, r"^tickers must be a list, not set$"),
        ("GetMarketOrderbooks", {"tickers": ["KX-1", 2]}, r"^tickers items must be str, not int$"),
    ],
)
def test_wrong_argument_types_are_type_errors(
    op: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        build_call(operation(op), arguments)


def test_integer_array_items_are_checked() -> None:
    op = operation("GetEventForecastPercentilesHistory")
    arguments: dict[str, Any] = {
        "series_ticker": "S",
        "ticker": "E",
        "percentiles": [10, 90],
        "start_ts": 1,
        "end_ts": 2,
        "period_interval": 0,
    }
    call = build_call(op, arguments)
    assert call.query[:2] == (("percentiles", "10"), ("percentiles", "90"))
    with pytest.raises(TypeError, match=r"^percentiles must be int, not bool$"):
        build_call(op, {**arguments, "percentiles": [10, True]})
    with pytest.raises(TypeError, match=r"^percentiles must be a list, not int$"):
        build_call(op, {**arguments, "percentiles": 10})


def test_values_outside_the_spec_enum_are_value_errors() -> None:
    op = operation("GetMarkets")
    assert op.param("status").enum == ("unopened", "open", "paused", "closed", "settled")
    assert build_call(op, {"status": "open"}).query == (("status", "open"),)
    with pytest.raises(
        ValueError,
        match=r"^status must be one of 'unopened', 'open', 'paused', 'closed', 'settled'; "
        r"got 'opened'$",
    ):
        build_call(op, {"status": "opened"})
    candles = operation("GetMarketCandlesticks")
    with pytest.raises(ValueError, match=r"^period_interval must be one of 1, 60, 1440; got 5$"):
        build_call(
            candles,
            {"series_ticker": "S", "ticker": "T", "start_ts": 1, "end_ts": 2, "period_interval": 5},
        )


def _operation_with(param: Param) -> Operation:
    # For parameter kinds no spec operation has today; build_call accepts any Operation.
    return Operation(
        operation_id="GetThing",
        method="GET",
        path="/things",
        facade="things.list",
        tag="things",
        summary="Get things",
        requires_auth=False,
        idempotent=True,
        deprecated=False,
        params=(param,),
        request_model=None,
        response_model=None,
        success_status=200,
        pagination=None,
    )


def _number_operation(enum: tuple[str | int, ...] | None = None) -> Operation:
    return _operation_with(
        Param("strike", "strike", ParamLocation.QUERY, ParamKind.NUMBER, False, enum)
    )


def test_each_item_of_a_list_parameter_must_be_in_the_spec_enum() -> None:
    sides = Param(
        "sides", "sides", ParamLocation.QUERY, ParamKind.STRING_ARRAY, False, ("yes", "no")
    )
    op = _operation_with(sides)
    assert build_call(op, {"sides": ["yes", "no"]}).query == (("sides", "yes"), ("sides", "no"))
    with pytest.raises(ValueError, match=r"^sides must be one of 'yes', 'no'; got 'maybe'$"):
        build_call(op, {"sides": ["yes", "maybe"]})


@pytest.mark.parametrize(
    ("value", "wire"),
    [(Decimal("0.10"), "0.10"), (5, "5"), (Decimal("1E+2"), "100"), (Decimal("-2.5"), "-2.5")],
)
def test_number_parameters_are_fixed_point(value: Decimal | int, wire: str) -> None:
    assert build_call(_number_operation(), {"strike": value}).query == (("strike", wire),)


@pytest.mark.parametrize(("value", "kind"), [(0.1, "float"), (True, "bool"), ("1", "str")])
def test_number_parameters_refuse_float_bool_and_str(value: object, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"^strike must be Decimal or int, not {kind}$"):
        build_call(_number_operation(), {"strike": value})


def test_request_body_is_compact_json_without_nones() -> None:
    call = calls.create_order_v2(order())
    assert call.body == (
        b'{"ticker":"KXBTC-25","client_order_id":"c-1","side":"bid","count":"10",'
        b'"price":"0.50","time_in_force":"good_till_canceled",'
        b'"self_trade_prevention_type":"maker"}'
    )
    assert call.query == ()
    assert call.items == 1


def test_items_is_carried_for_batches() -> None:
    batch = m.BatchCreateOrdersV2Request(orders=[order(), order(client_order_id="c-2")])
    call = calls.batch_create_orders_v2(batch)
    assert call.items == 2
    assert json.loads(call.body)["orders"][1]["client_order_id"] == "c-2"
    direct = build_call(operation("BatchCreateOrdersV2"), {}, batch, items=7)
    assert direct.items == 7


def test_body_of_the_wrong_model_type_is_a_type_error() -> None:
    amend = m.AmendOrderV2Request(ticker="KX", side="bid", price=Decimal("0.5"), count=Decimal("1"))
    with pytest.raises(
        TypeError, match=r"^CreateOrderV2 takes a CreateOrderV2Request, not AmendOrderV2Request$"
    ):
        build_call(operation("CreateOrderV2"), {}, amend)


def test_body_for_an_operation_without_one_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^GetExchangeStatus takes no request body$"):
        build_call(operation("GetExchangeStatus"), {}, m.EmptyResponseBody())


def test_missing_body_of_a_required_model_is_refused_by_the_model() -> None:
    with pytest.raises(pydantic.ValidationError, match="6 validation errors for CreateOrderV2Req"):
        build_call(operation("CreateOrderV2"), {})


def test_empty_body_model_is_the_default_body() -> None:
    call = calls.confirm_quote("q-1")
    assert call.operation.request_model is m.EmptyResponseBody
    assert call.body == b"{}"
    assert call.path == "/communications/quotes/q-1/confirm"
    assert calls.confirm_quote("q-1", m.EmptyResponseBody()).body == b"{}"


def test_operation_without_body_sends_none() -> None:
    assert calls.delete_api_key("k").body == b""


def test_a_large_page_parses_with_the_collector_paused_and_restored() -> None:
    import gc
    import json as _json

    from kalshi_proto.rest.call import LARGE_BODY
    from kalshi_proto.rest.generated import calls as _calls
    from tests.helpers.spec import example

    market = example("Market")
    count = LARGE_BODY // len(_json.dumps(market)) + 2
    body = _json.dumps({"markets": [dict(market, ticker=f"M{i}") for i in range(count)], "cursor": ""}).encode()
    assert len(body) >= LARGE_BODY
    response = HttpResponse(status=200, headers=(), body=body)
    assert gc.isenabled()
    page = _calls.get_markets().parse(response)
    assert len(page) == count and page[-1].ticker == f"M{count - 1}"
    assert gc.isenabled()
    gc.disable()  # a caller who turned the collector off keeps it off
    try:
        assert len(_calls.get_markets().parse(response)) == count
        assert not gc.isenabled()
    finally:
        gc.enable()
    bad = HttpResponse(status=200, headers=(), body=body.replace(b'"M1"', b"1", 1))
    with pytest.raises(RemoteProtocolError):
        _calls.get_markets().parse(bad)
    assert gc.isenabled()


def test_no_collection_runs_while_a_large_page_is_validated() -> None:
    market = example("Market")
    count = LARGE_BODY // len(json.dumps(market)) + 2
    markets = [dict(market, ticker=f"M{i}") for i in range(count)]
    body = json.dumps({"markets": markets, "cursor": ""}).encode()
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(record)
    try:
        page = calls.get_markets().parse(HttpResponse(status=200, headers=(), body=body))
    finally:
        gc.callbacks.remove(record)
    assert len(page) == count
    # Validating allocates thousands of objects (several young-generation passes if the
    # collector ran); at most the one pass the restored collector may start at the end.
    assert len(collections) <= 1


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "Infinity", "sNaN"])
def test_number_parameters_refuse_nan_and_infinity(value: str) -> None:
    message = f"strike must be a finite number, got {value}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        build_call(_number_operation(), {"strike": Decimal(value)})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: calls.get_markets(limit=5000), r"^limit must be between 0 and 1000, got 5000$"),
        (lambda: calls.get_milestones(limit=0), r"^limit must be between 1 and 500, got 0$"),
        (
            lambda: calls.get_market_orderbooks(tickers=["KX"] * 101),
            r"^tickers takes at most 100 items, got 101$",
        ),
        (
            lambda: calls.get_market_orderbooks(tickers=["K" * 250]),
            r"^tickers items must be at most 200 characters long, got 250$",
        ),
        (
            lambda: calls.get_event_forecast_percentiles_history(
                "S", "E", percentiles=[10, 10000], start_ts=1, end_ts=2, period_interval=60
            ),
            r"^percentiles items must be between 0 and 9999, got 10000$",
        ),
    ],
)
def test_parameters_outside_the_spec_limits_are_value_errors(
    build: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def _limited(kind: ParamKind, limits: Constraints, location: ParamLocation = ParamLocation.QUERY) -> Operation:
    return _operation_with(Param("x", "x", location, kind, False, constraints=limits))


@pytest.mark.parametrize(
    ("kind", "limits", "good", "bad", "message"),
    [
        (ParamKind.INTEGER, Constraints(minimum=0), 0, -1, "x must be at least 0, got -1"),
        (ParamKind.INTEGER, Constraints(maximum=9), 9, 10, "x must be at most 9, got 10"),
        (
            ParamKind.NUMBER,
            Constraints(minimum=0, exclusive_minimum=True),
            Decimal("0.01"),
            Decimal("0"),
            "x must be greater than 0, got 0",
        ),
        (
            ParamKind.NUMBER,
            Constraints(minimum=Decimal("0.5"), maximum=1, exclusive_maximum=True),
            Decimal("0.5"),
            1,
            "x must be at least 0.5 and less than 1, got 1",
        ),
        (ParamKind.STRING, Constraints(min_length=2), "ab", "a", "x must be at least 2 characters long, got 1"),
        (ParamKind.STRING, Constraints(pattern="^[A-Z]+$"), "KX", "kx", "x must match '^[A-Z]+$', got 'kx'"),
        (ParamKind.STRING_ARRAY, Constraints(min_items=2), ["a", "b"], ["a"], "x takes at least 2 items, got 1"),
    ],
)
def test_each_kind_of_limit_is_checked_with_its_message(
    kind: ParamKind, limits: Constraints, good: object, bad: object, message: str
) -> None:
    op = _limited(kind, limits)
    build_call(op, {"x": good})
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        build_call(op, {"x": bad})


def test_path_parameters_are_checked_against_their_limits() -> None:
    op = _limited(ParamKind.STRING, Constraints(max_length=3), ParamLocation.PATH)
    op = replace(op, path="/things/{x}")
    assert build_call(op, {"x": "abc"}).path == "/things/abc"
    with pytest.raises(ValueError, match=r"^x must be at most 3 characters long, got 4$"):
        build_call(op, {"x": "abcd"})


# ---- raw calls -------------------------------------------------------------------------------


def test_a_raw_call_answers_with_the_response_itself() -> None:
    call = calls.get_markets(limit=2)
    raw = call.raw()
    body = b'{"markets": "not even a list", "cursor": "c"}'  # no model is built
    response = HttpResponse(status=200, headers=(("content-type", "application/json"),), body=body)
    assert raw.parse(response) is response
    assert (raw.is_raw, call.is_raw) == (True, False)  # the call itself is unchanged
    assert raw.raw() == raw
    # The same request goes out.
    assert (raw.operation, raw.target("/p"), raw.body) == (call.operation, call.target("/p"), b"")


def test_a_raw_call_still_maps_error_statuses() -> None:
    raw = calls.get_market("KXNONE").raw()
    missing = HttpResponse(status=404, headers=(), body=b'{"code": "not_found", "message": "no"}')
    with pytest.raises(NotFoundError) as info:
        raw.parse(missing)
    assert (info.value.code, info.value.operation_id) == ("not_found", "GetMarket")


def test_a_raw_call_of_an_operation_without_a_model_gives_the_response_too() -> None:
    call = calls.delete_api_key("k-1")
    empty = HttpResponse(status=204, headers=(), body=b"")
    assert call.parse(empty) is None
    assert call.raw().parse(empty) is empty


def test_a_raw_call_cannot_be_walked_page_by_page() -> None:
    from kalshi_proto.rest.pagination import CursorPager

    with pytest.raises(TypeError, match="a raw call of GetMarkets cannot be walked page by page"):
        CursorPager(calls.get_markets().raw())  # type: ignore[arg-type]


def test_an_error_field_nested_too_deep_to_write_again_is_dropped() -> None:
    from kalshi_proto.rest.call import _text

    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    assert _text(nested) is None
    assert _text([[1]]) == "[[1]]"
