"""Golden bytes of the generated `Call` builders (STYLE section 6, step 4).

Each test pins the exact method, path, query pairs, request-target and body bytes a builder
produces, and the errors it raises for bad arguments before anything is signed or sent.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from kalshi_proto.auth import Credentials
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.rest.call import Call, HttpRequest, build_call
from kalshi_proto.rest.client import USER_AGENT, RestConfig, RestCore
from kalshi_proto.rest.generated import calls, table
from kalshi_proto.rest.generated.models import (
    BatchCancelOrdersV2Request,
    BatchCancelOrdersV2RequestOrdersItem,
    BatchCreateOrdersV2Request,
    CreateOrderV2Request,
    DecreaseOrderV2Request,
)
from kalshi_proto.rest.operation_table import ParamKind, operation

WALL_MS = 1_767_225_600_000
CLIENT_ORDER_ID = "8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1"


def _public_core() -> RestCore:
    return RestCore(RestConfig(base_url=resolve_base_url()), rng=lambda: 0.5)


def _order(client_order_id: str = CLIENT_ORDER_ID, price: str = "0.56") -> CreateOrderV2Request:
    return CreateOrderV2Request(
        ticker="KXHIGHNY-26JAN02-T60",
        client_order_id=client_order_id,
        side="bid",
        count=Decimal("10"),
        price=Decimal(price),
        time_in_force="good_till_canceled",
        self_trade_prevention_type="taker_at_cross",
    )


# ---- GetMarkets: method, path, query order, target -----------------------------------------


def test_get_markets_golden() -> None:
    # The spec lists ``limit`` before ``status`` (MarketLimitQuery ... MarketStatusQuery), so
    # that is the wire order whatever the keyword order.
    call = calls.get_markets(status="open", limit=100)
    assert call.operation is table.GET_MARKETS
    assert [p.name for p in call.operation.query_params].index("limit") < [
        p.name for p in call.operation.query_params
    ].index("status")
    assert call.method == "GET"
    assert call.path == "/markets"
    assert call.query == (("limit", "100"), ("status", "open"))
    assert call.body == b""
    assert call.items == 1
    assert call.target() == "/markets?limit=100&status=open"
    assert call.target("/trade-api/v2") == "/trade-api/v2/markets?limit=100&status=open"
    assert call.requires_auth is False
    assert call.idempotent is True


def test_get_markets_http_request_golden() -> None:
    request = _public_core().build_request(calls.get_markets(status="open", limit=100), WALL_MS)
    assert request == HttpRequest(
        method="GET",
        target="/trade-api/v2/markets?limit=100&status=open",
        headers=(("Accept", "application/json"), ("User-Agent", USER_AGENT)),
        body=b"",
    )


def test_no_arguments_means_no_query() -> None:
    call = calls.get_markets()
    assert call.query == ()
    assert call.target() == "/markets"
    assert calls.get_exchange_status().target("/trade-api/v2") == "/trade-api/v2/exchange/status"


def test_query_values_are_percent_encoded() -> None:
    call = calls.get_markets(series_ticker="A B&C=D+E/F?G#H%", cursor="c:1,2~3")
    assert call.query == (("cursor", "c:1,2~3"), ("series_ticker", "A B&C=D+E/F?G#H%"))
    target = call.target()
    assert target == "/markets?cursor=c:1,2~3&series_ticker=A%20B%26C%3DD%2BE%2FF%3FG%23H%25"
    assert parse_qsl(urlsplit(target).query) == list(call.query)


# ---- path parameters -----------------------------------------------------------------------


def test_path_param_is_percent_encoded() -> None:
    call = calls.get_market("A/B C")
    assert call.path == "/markets/A%2FB%20C"
    assert call.target() == "/markets/A%2FB%20C"
    assert call.query == ()


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("KXHIGHNY-26JAN02-T60", "KXHIGHNY-26JAN02-T60"),
        ("a?b#c", "a%3Fb%23c"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
        ("{ticker}", "%7Bticker%7D"),
    ],
)
def test_path_param_encoding(value: str, encoded: str) -> None:
    assert calls.get_market(value).path == "/markets/" + encoded


def test_two_path_params_fill_their_own_slots() -> None:
    call = calls.get_market_candlesticks(
        "KX/S", "KX T", start_ts=1_767_225_600, end_ts=1_767_229_200, period_interval=60
    )
    assert call.path == "/series/KX%2FS/markets/KX%20T/candlesticks"
    assert call.query == (
        ("start_ts", "1767225600"),
        ("end_ts", "1767229200"),
        ("period_interval", "60"),
    )


def test_signed_request_signs_the_encoded_path(
    rsa_private_key: rsa.RSAPrivateKey, rsa_pem: bytes
) -> None:
    credentials = Credentials.from_pem("key-id", rsa_pem)
    config = RestConfig(base_url=resolve_base_url(), credentials=credentials)
    core = RestCore(config, rng=lambda: 0.5)
    request = core.build_request(calls.get_order("A/B C"), WALL_MS)
    assert request.target == "/trade-api/v2/portfolio/orders/A%2FB%20C"
    headers = dict(request.headers)
    assert headers["KALSHI-ACCESS-KEY"] == "key-id"
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == str(WALL_MS)
    assert "Content-Type" not in headers
    rsa_private_key.public_key().verify(
        base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]),
        f"{WALL_MS}GET/trade-api/v2/portfolio/orders/A%2FB%20C".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_segment_path_params_are_refused(value: str) -> None:
    try:
        call = calls.get_market(value)
    except ValueError:
        return
    assert urlsplit(urljoin("https://host/", call.path)).path == call.path


# ---- the ``from`` parameter ----------------------------------------------------------------


def test_from_keyword_maps_to_wire_name_from() -> None:
    op = operation("GetWeatherIndex")
    assert op.param("from_").name == "from"
    call = calls.get_weather_index("NYC", from_=1_767_225_600, to=1_767_229_200, detailed=False)
    assert call.path == "/live_data/weather/NYC"
    assert call.query == (("from", "1767225600"), ("to", "1767229200"), ("detailed", "false"))
    assert call.target() == "/live_data/weather/NYC?from=1767225600&to=1767229200&detailed=false"


def test_wire_name_from_is_not_a_keyword() -> None:
    with pytest.raises(TypeError, match="takes no argument 'from'"):
        build_call(operation("GetWeatherIndex"), {"city": "NYC", "from": 1})


# ---- arrays, booleans, datetimes -----------------------------------------------------------


def test_string_array_repeats_the_name() -> None:
    param = operation("GetMarketOrderbooks").param("tickers")
    assert param.kind is ParamKind.STRING_ARRAY
    call = calls.get_market_orderbooks(tickers=["KXA-1", "KX B", "KXC"])
    assert call.query == (("tickers", "KXA-1"), ("tickers", "KX B"), ("tickers", "KXC"))
    assert call.target() == "/markets/orderbooks?tickers=KXA-1&tickers=KX%20B&tickers=KXC"


def test_string_array_accepts_a_tuple_with_one_item() -> None:
    assert calls.get_market_orderbooks(tickers=("KXA",)).query == (("tickers", "KXA"),)


def test_integer_array_repeats_the_name() -> None:
    param = operation("GetEventForecastPercentilesHistory").param("percentiles")
    assert param.kind is ParamKind.INTEGER_ARRAY
    call = calls.get_event_forecast_percentiles_history(
        "KXHIGHNY",
        "KXHIGHNY-26JAN02",
        percentiles=[1000, 5000, 9000],
        start_ts=1,
        end_ts=2,
        period_interval=60,
    )
    assert call.path == "/series/KXHIGHNY/events/KXHIGHNY-26JAN02/forecast_percentile_history"
    assert call.query == (
        ("percentiles", "1000"),
        ("percentiles", "5000"),
        ("percentiles", "9000"),
        ("start_ts", "1"),
        ("end_ts", "2"),
        ("period_interval", "60"),
    )


@pytest.mark.parametrize(("value", "wire"), [(True, "true"), (False, "false")])
def test_booleans_encode_as_true_false(value: bool, wire: str) -> None:
    call = calls.get_series("KXHIGHNY", include_volume=value)
    assert call.query == (("include_volume", wire),)
    assert call.target() == f"/series/KXHIGHNY?include_volume={wire}"


@pytest.mark.parametrize(
    ("when", "wire"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (
            datetime(2026, 1, 2, 4, 4, 5, 250000, tzinfo=timezone(timedelta(hours=1))),
            "2026-01-02T03:04:05.250000Z",
        ),
    ],
)
def test_datetimes_encode_in_utc(when: datetime, wire: str) -> None:
    call = calls.get_milestones(limit=10, minimum_start_date=when)
    assert call.query == (("limit", "10"), ("minimum_start_date", wire))


# ---- bad arguments -------------------------------------------------------------------------

FLOAT: Any = 1.0
INT: Any = 5
STR: Any = "5"


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: calls.get_markets(series_ticker=INT), id="int-for-str"),
        pytest.param(lambda: calls.get_markets(limit=True), id="bool-for-int"),
        pytest.param(lambda: calls.get_markets(limit=STR), id="str-for-int"),
        pytest.param(lambda: calls.get_markets(limit=FLOAT), id="float-for-int"),
        pytest.param(lambda: calls.get_markets(series_ticker=FLOAT), id="float-for-str"),
        pytest.param(lambda: calls.get_series("KX", include_volume=FLOAT), id="float-for-bool"),
        pytest.param(lambda: calls.get_series("KX", include_volume=INT), id="int-for-bool"),
        pytest.param(lambda: calls.get_market(FLOAT), id="float-for-path"),
        pytest.param(lambda: calls.get_market(INT), id="int-for-path"),
        pytest.param(lambda: calls.get_market_orderbooks(tickers=[FLOAT]), id="float-in-array"),
        pytest.param(lambda: calls.get_market_orderbooks(tickers=STR), id="str-for-array"),
        pytest.param(
            lambda: calls.get_event_forecast_percentiles_history(
                "S", "T", percentiles=[FLOAT], start_ts=1, end_ts=2, period_interval=60
            ),
            id="float-in-int-array",
        ),
        pytest.param(
            lambda: calls.get_event_forecast_percentiles_history(
                "S", "T", percentiles=[True], start_ts=1, end_ts=2, period_interval=60
            ),
            id="bool-in-int-array",
        ),
        pytest.param(
            lambda: calls.get_milestones(limit=1, minimum_start_date=datetime(2026, 1, 2)),
            id="naive-datetime",
        ),
        pytest.param(
            lambda: calls.get_milestones(limit=1, minimum_start_date=STR), id="str-for-datetime"
        ),
    ],
)
def test_wrong_type_raises_type_error(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


def test_unknown_argument_raises_type_error() -> None:
    with pytest.raises(TypeError, match="takes no argument 'statuz'"):
        build_call(table.GET_MARKETS, {"statuz": "open"})


def test_enum_value_not_in_the_spec_raises_value_error() -> None:
    bad: Any = "opened"
    with pytest.raises(ValueError, match="status must be one of"):
        calls.get_markets(status=bad)
    interval: Any = 5
    with pytest.raises(ValueError, match="period_interval"):
        calls.get_market_candlesticks("S", "T", start_ts=1, end_ts=2, period_interval=interval)


@pytest.mark.parametrize(
    "arguments",
    [
        {"series_ticker": "S", "ticker": "T", "start_ts": 1, "end_ts": 2},
        {"series_ticker": "S", "start_ts": 1, "end_ts": 2, "period_interval": 60},
        {"series_ticker": "S", "ticker": "", "start_ts": 1, "end_ts": 2, "period_interval": 60},
        {"series_ticker": "S", "ticker": None, "start_ts": 1, "end_ts": 2, "period_interval": 1},
    ],
    ids=["missing-query", "missing-path", "empty-path", "none-path"],
)
def test_missing_required_argument_raises_value_error(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_call(table.GET_MARKET_CANDLESTICKS, arguments)


def test_missing_required_keyword_of_a_builder() -> None:
    none: Any = None
    with pytest.raises(ValueError, match="GetMarketOrderbooks needs tickers"):
        calls.get_market_orderbooks(tickers=none)


def test_empty_required_array_raises_value_error() -> None:
    with pytest.raises(ValueError):
        calls.get_market_orderbooks(tickers=[])


def test_empty_required_query_string_raises_value_error() -> None:
    with pytest.raises(ValueError):
        calls.batch_get_market_candlesticks(
            market_tickers="", start_ts=1, end_ts=2, period_interval=1
        )


# ---- request bodies ------------------------------------------------------------------------


def test_create_order_v2_body_bytes() -> None:
    call = calls.create_order_v2(_order())
    assert call.method == "POST"
    assert call.path == "/portfolio/events/orders"
    assert call.query == ()
    assert call.items == 1
    assert call.requires_auth is True
    assert call.idempotent is False
    assert call.body == (
        b'{"ticker":"KXHIGHNY-26JAN02-T60",'
        b'"client_order_id":"8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1",'
        b'"side":"bid","count":"10","price":"0.56",'
        b'"time_in_force":"good_till_canceled",'
        b'"self_trade_prevention_type":"taker_at_cross"}'
    )
    assert b"null" not in call.body and b" " not in call.body


@pytest.mark.parametrize(
    ("price", "wire"),
    [
        ("0.5", "0.50"),
        ("0.56", "0.56"),
        ("0.5600", "0.5600"),
        ("0.0001", "0.0001"),
        ("0.99", "0.99"),
    ],
)
def test_order_prices_are_strings_with_at_least_two_decimals(price: str, wire: str) -> None:
    body = json.loads(calls.create_order_v2(_order(price=price)).body)
    assert body["price"] == wire


def test_create_order_v2_optional_fields_appear_when_set() -> None:
    order = CreateOrderV2Request(**(_order().model_dump() | {"post_only": False, "subaccount": 0}))
    assert calls.create_order_v2(order).body == (
        b'{"ticker":"KXHIGHNY-26JAN02-T60",'
        b'"client_order_id":"8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1",'
        b'"side":"bid","count":"10","price":"0.56",'
        b'"time_in_force":"good_till_canceled","post_only":false,'
        b'"self_trade_prevention_type":"taker_at_cross","subaccount":0}'
    )


def test_create_order_v2_http_request_headers() -> None:
    request = _public_core().build_request(calls.create_order_v2(_order()), WALL_MS)
    assert request.method == "POST"
    assert request.target == "/trade-api/v2/portfolio/events/orders"
    assert request.headers == (
        ("Accept", "application/json"),
        ("User-Agent", USER_AGENT),
        ("Content-Type", "application/json"),
    )
    assert request.body == calls.create_order_v2(_order()).body


@pytest.mark.parametrize(
    "changes",
    [
        {"client_order_id": None},
        {"client_order_id": ""},
        {"price": Decimal("1")},
        {"price": Decimal("0")},
        {"price": Decimal("0.12345")},
        {"count": Decimal("0")},
    ],
    ids=[
        "no-client-order-id",
        "empty-client-order-id",
        "price-1",
        "price-0",
        "5-places",
        "count-0",
    ],
)
def test_bad_orders_fail_when_built(changes: dict[str, Any]) -> None:
    fields = _order().model_dump() | changes
    with pytest.raises(ValidationError):
        CreateOrderV2Request(**fields)


def test_float_price_is_refused() -> None:
    fields = _order().model_dump() | {"price": 0.56}
    with pytest.raises(ValidationError, match="float"):
        CreateOrderV2Request(**fields)


def test_decrease_order_v2_body_bytes() -> None:
    call = calls.decrease_order_v2(
        "ord-1", DecreaseOrderV2Request(reduce_to=Decimal("0")), subaccount=2
    )
    assert call.path == "/portfolio/events/orders/ord-1/decrease"
    assert call.query == (("subaccount", "2"),)
    assert call.body == b'{"reduce_to":"0"}'
    with pytest.raises(ValidationError, match="exactly one"):
        DecreaseOrderV2Request(reduce_by=Decimal("1"), reduce_to=Decimal("1"))


def test_wrong_body_model_raises_type_error() -> None:
    wrong: Any = DecreaseOrderV2Request(reduce_by=Decimal("1"))
    with pytest.raises(TypeError, match="takes a CreateOrderV2Request"):
        calls.create_order_v2(wrong)
    with pytest.raises(TypeError, match="takes no request body"):
        build_call(table.GET_MARKETS, {}, _order())


def test_batch_create_orders_v2_counts_items() -> None:
    orders = [_order(f"{CLIENT_ORDER_ID[:-1]}{i}") for i in range(3)]
    call = calls.batch_create_orders_v2(BatchCreateOrdersV2Request(orders=orders))
    assert call.method == "POST"
    assert call.path == "/portfolio/events/orders/batched"
    assert call.items == 3
    body = json.loads(call.body)
    assert [o["client_order_id"] for o in body["orders"]] == [o.client_order_id for o in orders]
    assert call.body.startswith(b'{"orders":[{"ticker":"KXHIGHNY-26JAN02-T60","client_order_id"')


def test_batch_cancel_orders_v2_counts_items() -> None:
    items = [BatchCancelOrdersV2RequestOrdersItem(order_id=f"ord-{i}") for i in range(5)]
    call: Call[Any] = calls.batch_cancel_orders_v2(BatchCancelOrdersV2Request(orders=items))
    assert call.method == "DELETE"
    assert call.items == 5
    assert call.body == (
        b'{"orders":[{"order_id":"ord-0"},{"order_id":"ord-1"},{"order_id":"ord-2"},'
        b'{"order_id":"ord-3"},{"order_id":"ord-4"}]}'
    )


def test_optional_body_defaults_to_an_empty_object() -> None:
    call = calls.reset_order_group("og-1")
    assert call.method == "PUT"
    assert call.path == "/portfolio/order_groups/og-1/reset"
    assert call.body == b"{}"
