"""Tests for kalshi_proto.sim.rest: `ExchangeApp` over the default scenario.

Requests are built and signed by the SDK's own `RestCore` (an RSA trader and an Ed25519 trader)
and answered by ``app.handle``; answers are read with the SDK's `Call.parse`. Covered: routing
(404, 405, 501 and `NOT_MODELLED`), authentication, 400s for bad queries and bodies, every
modelled operation answering with its response model, each handler's filters and paging,
determinism, the exchange clock, and fault injection.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.auth import Credentials
from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import (
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse, Page, error_from_response
from kalshi_proto.rest.client import RestConfig, RestCore
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import operation, operations
from kalshi_proto.sim import rest as sim_rest
from kalshi_proto.sim.app import Drop, Reply, Respond
from kalshi_proto.sim.exchange import Exchange
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce
from kalshi_proto.sim.rest import NOT_MODELLED, ExchangeApp, Faults
from kalshi_proto.sim.scenario import build_exchange
from kalshi_proto.sim.scenarios import default_scenario
from kalshi_proto.sim.scenarios.default import START_MS

PREFIX = "/trade-api/v2"
WALL = 1_800_000_000_000  #: the adapter's wall clock; the exchange's own clock starts at START_MS
RSA_KEY, ED_KEY, EC_KEY = "rsa-key-id", "ed-key-id", "ec-key-id"
T100K = "KXBTCD-26JAN3017-T100000"  # mid 0.55: bids 0.54/0.53/0.52, asks 0.56/0.57/0.58
C50 = "KXFED-26JAN-C50"  # mid 0.02: bid 0.01, asks 0.03/0.04/0.05
HOLD = "KXFED-26JAN-HOLD"
T95K = "KXBTCD-26JAN3017-T95000"  # bids 0.77/0.76/0.75
START_S = START_MS // 1000
D = Decimal
#: ApplySubaccountTransfer's client_transfer_id is ``format: uuid``.
TRANSFER_1 = "00000000-0000-4000-8000-000000000001"
TRANSFER_2 = "00000000-0000-4000-8000-000000000002"


def _public_pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _core(key_id: str, pem: bytes) -> RestCore:
    base_url = resolve_base_url(base_url="http://127.0.0.1:1/trade-api/v2")
    return RestCore(
        RestConfig(base_url=base_url, credentials=Credentials.from_pem(key_id, pem)),
        rng=lambda: 0.5,
    )


@dataclass(frozen=True)
class Keys:
    rsa_core: RestCore
    ed_core: RestCore
    rsa_public: bytes
    ed_public: bytes
    ec_public: bytes
    rsa_credentials: Credentials
    ed_credentials: Credentials


@pytest.fixture(scope="module")
def keys(
    rsa_private_key: rsa.RSAPrivateKey,
    rsa_pem: bytes,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
    ed25519_pem: bytes,
) -> Keys:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return Keys(
        rsa_core=_core(RSA_KEY, rsa_pem),
        ed_core=_core(ED_KEY, ed25519_pem),
        rsa_public=_public_pem(rsa_private_key),
        ed_public=_public_pem(ed25519_private_key),
        ec_public=_public_pem(ec_key),
        rsa_credentials=Credentials.from_pem(RSA_KEY, rsa_pem),
        ed_credentials=Credentials.from_pem(ED_KEY, ed25519_pem),
    )


def make_exchange(keys: Keys) -> Exchange:
    ex = build_exchange(default_scenario())
    ex.add_account("trader", D(10_000), {RSA_KEY: keys.rsa_public})
    ex.add_account("edtrader", D(10_000), {ED_KEY: keys.ed_public})
    ex.add_account("ectrader", D(10_000), {EC_KEY: keys.ec_public})
    return ex


class Harness:
    """An app plus the SDK cores that talk to it."""

    def __init__(self, keys: Keys, **app_kwargs: Any) -> None:
        self.keys = keys
        app_kwargs.setdefault("epoch_ms", WALL)
        self.app = ExchangeApp(make_exchange(keys), **app_kwargs)
        self.ex = self.app.exchange

    def request(self, call: Call[Any], wall_ms: int = WALL, *, ed: bool = False) -> HttpRequest:
        core = self.keys.ed_core if ed else self.keys.rsa_core
        return core.build_request(call, wall_ms)

    def reply(self, request: HttpRequest, wall_ms: int = WALL) -> Reply:
        return self.app.handle(request, now=0.0, wall_ms=wall_ms)

    def send(self, request: HttpRequest, wall_ms: int = WALL) -> HttpResponse:
        reply = self.reply(request, wall_ms)
        assert isinstance(reply, Respond) and reply.delay == 0.0
        return reply.response

    def call(self, call: Call[Any], wall_ms: int = WALL, *, ed: bool = False) -> HttpResponse:
        return self.send(self.request(call, wall_ms, ed=ed), wall_ms)

    def ok(self, call: Call[Any], wall_ms: int = WALL, *, ed: bool = False) -> Any:
        response = self.call(call, wall_ms, ed=ed)
        assert response.status == call.operation.success_status, response.body
        assert response.headers == (("content-type", "application/json"),)
        return call.parse(response)

    def raw(
        self,
        method: str,
        target: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        wall_ms: int = WALL,
    ) -> HttpResponse:
        return self.send(HttpRequest(method, target, headers, body), wall_ms)

    def signed_raw(
        self, method: str, target: str, body: bytes = b"", wall_ms: int = WALL
    ) -> HttpResponse:
        headers = self.keys.ed_credentials.headers(method, target, wall_ms)
        return self.raw(method, target, headers, body, wall_ms)


def error(response: HttpResponse) -> dict[str, Any]:
    payload = json.loads(response.body)
    assert isinstance(payload, dict)
    return payload


@pytest.fixture
def h(keys: Keys) -> Harness:
    return Harness(keys)


def order_request(
    ticker: str = T100K, side: str = "bid", price: str = "0.50", count: str = "10", **extra: Any
) -> m.CreateOrderV2Request:
    fields: dict[str, Any] = {
        "ticker": ticker,
        "client_order_id": "c-1",
        "side": side,
        "price": D(price),
        "count": D(count),
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
    } | extra
    return m.CreateOrderV2Request.model_validate(fields)


# ---- routing --------------------------------------------------------------------------------


def test_get_trades_is_not_taken_for_get_market(h: Harness) -> None:
    page = h.ok(calls.get_trades())
    assert (
        isinstance(page, Page)
        and isinstance(page.response, m.GetTradesResponse)
        and page.items == []
    )
    market = h.ok(calls.get_market(T100K))
    assert isinstance(market, m.GetMarketResponse) and market.market.ticker == T100K


@pytest.mark.parametrize(
    "target",
    [
        PREFIX + "/nope",
        PREFIX + "/markets/A/B/C",
        "/markets",
        PREFIX + "/markets/",
        "/other" + PREFIX + "/markets",
    ],
)
def test_unknown_path_is_404(h: Harness, target: str) -> None:
    response = h.raw("GET", target)
    assert response.status == 404
    assert error(response) == {"code": "not_found", "message": f"no endpoint at {target}"}


def test_wrong_method_is_405(h: Harness) -> None:
    response = h.raw("DELETE", PREFIX + "/markets/trades")
    assert response.status == 405
    assert error(response)["message"] == "DELETE is not allowed here; use GET"
    response = h.raw("PATCH", PREFIX + "/portfolio/events/orders")
    assert response.status == 405
    assert error(response)["message"] == "PATCH is not allowed here; use DELETE, POST"


def test_not_modelled_lists_exactly_the_operations_without_a_handler(h: Harness) -> None:
    ids = {op.operation_id for op in operations()}
    assert NOT_MODELLED < ids
    assert set(EXAMPLES) == ids - NOT_MODELLED  # each of these answers (test below)
    for op in operations():
        if op.operation_id not in NOT_MODELLED:
            continue
        target = PREFIX + op.path
        for param in op.path_params:
            target = target.replace("{" + param.name + "}", "x1")
        response = h.signed_raw(op.method, target)
        assert response.status == 501, op.operation_id
        assert error(response) == {
            "code": "not_implemented",
            "message": f"the local exchange does not model {op.operation_id} ({op.method} {op.path})",
        }


def test_not_modelled_public_operation_needs_no_auth(h: Harness) -> None:
    response = h.raw("GET", PREFIX + "/historical/cutoff")
    assert response.status == 501 and "GetHistoricalCutoff" in error(response)["message"]


def test_a_custom_prefix(keys: Keys) -> None:
    app = ExchangeApp(make_exchange(keys), prefix="/v9")
    reply = app.handle(HttpRequest("GET", "/v9/exchange/status", (), b""), now=0.0, wall_ms=WALL)
    assert isinstance(reply, Respond) and reply.response.status == 200
    assert app.prefix == "/v9" and app.requests == 1
    costs = m.GetAccountEndpointCostsResponse.model_validate_json(
        app.handle(
            HttpRequest("GET", "/v9/account/endpoint_costs", (), b""), now=0.0, wall_ms=WALL
        ).response.body
    )
    assert all(row.path.startswith("/v9/") for row in costs.endpoint_costs)


# ---- authentication -------------------------------------------------------------------------


def _signed(h: Harness, call: Call[Any], wall_ms: int = WALL) -> dict[str, str]:
    return dict(h.request(call, wall_ms).headers)


def _with(headers: dict[str, str], **changes: str | None) -> tuple[tuple[str, str], ...]:
    out = dict(headers)
    for name, value in changes.items():
        key = "KALSHI-ACCESS-" + name.upper()
        if value is None:
            del out[key]
        else:
            out[key] = value
    return tuple(out.items())


BALANCE = PREFIX + "/portfolio/balance"


@pytest.mark.parametrize("missing", ["key", "timestamp", "signature"])
def test_missing_auth_header_is_401(h: Harness, missing: str) -> None:
    headers = _with(_signed(h, calls.get_balance()), **{missing: None})
    response = h.raw("GET", BALANCE, headers)
    assert response.status == 401
    assert error(response) == {
        "code": "missing_authentication",
        "message": "GetBalance needs the KALSHI-ACCESS-* headers",
    }


def test_no_headers_at_all_is_401(h: Harness) -> None:
    assert h.raw("GET", BALANCE).status == 401


def test_unknown_key_is_401(h: Harness) -> None:
    response = h.raw("GET", BALANCE, _with(_signed(h, calls.get_balance()), key="someone-else"))
    assert (response.status, error(response)["code"]) == (401, "invalid_api_key")


@pytest.mark.parametrize("skew", [-30_001, 30_001])
def test_stale_timestamp_is_401(h: Harness, skew: int) -> None:
    request = h.request(calls.get_balance(), WALL + skew)
    response = h.send(request, WALL)
    assert (response.status, error(response)["code"]) == (401, "stale_timestamp")


@pytest.mark.parametrize("skew", [-30_000, 30_000])
def test_timestamp_at_the_skew_limit_is_accepted(h: Harness, skew: int) -> None:
    assert h.send(h.request(calls.get_balance(), WALL + skew), WALL).status == 200


@pytest.mark.parametrize("stamp", ["-5", "abc", "1.5e12", "17031234567\u00b2"])
def test_malformed_timestamp_is_401(h: Harness, stamp: str) -> None:
    response = h.raw("GET", BALANCE, _with(_signed(h, calls.get_balance()), timestamp=stamp))
    assert (response.status, error(response)["code"]) == (401, "stale_timestamp")


def test_max_clock_skew_is_configurable(keys: Keys) -> None:
    h = Harness(keys, max_clock_skew_ms=10)
    assert h.send(h.request(calls.get_balance(), WALL + 10), WALL).status == 200
    assert h.send(h.request(calls.get_balance(), WALL + 11), WALL).status == 401


@pytest.mark.parametrize("signature", ["not base64!", "abc", "é"])
def test_bad_base64_signature_is_401(h: Harness, signature: str) -> None:
    response = h.raw("GET", BALANCE, _with(_signed(h, calls.get_balance()), signature=signature))
    assert response.status == 401
    assert error(response) == {
        "code": "invalid_signature",
        "message": "the signature is not base64",
    }


def test_wrong_signature_is_401(h: Harness) -> None:
    other_path = _signed(h, calls.get_positions())  # signed for another path
    for headers in (
        _with(_signed(h, calls.get_balance()), signature=base64.b64encode(b"\0" * 256).decode()),
        _with(_signed(h, calls.get_balance()), signature=other_path["KALSHI-ACCESS-SIGNATURE"]),
        # the RSA trader's key id with an Ed25519 signature
        _with(dict(h.request(calls.get_balance(), ed=True).headers), key=RSA_KEY),
    ):
        response = h.raw("GET", BALANCE, headers)
        assert response.status == 401
        assert error(response) == {
            "code": "invalid_signature",
            "message": "the signature does not verify",
        }
    # A signature made at one time does not verify under another timestamp.
    headers = _with(_signed(h, calls.get_balance()), timestamp=str(WALL + 1))
    assert h.raw("GET", BALANCE, headers).status == 401


def test_method_is_signed(h: Harness) -> None:
    headers = dict(h.keys.rsa_credentials.headers("POST", BALANCE, WALL))
    assert h.raw("GET", BALANCE, tuple(headers.items())).status == 401


def test_ed25519_key_is_accepted(h: Harness) -> None:
    balance = h.ok(calls.get_balance(), ed=True)
    assert balance.balance_dollars == D("10000.0000")


def test_a_key_of_another_type_never_verifies(h: Harness) -> None:
    headers = (
        ("KALSHI-ACCESS-KEY", EC_KEY),
        ("KALSHI-ACCESS-TIMESTAMP", str(WALL)),
        ("KALSHI-ACCESS-SIGNATURE", "AAAA"),
    )
    response = h.raw("GET", BALANCE, headers)
    assert (response.status, error(response)["code"]) == (401, "invalid_signature")


def test_header_names_are_case_insensitive_and_the_query_is_not_signed(h: Harness) -> None:
    headers = tuple(
        (k.lower(), v)
        for k, v in h.keys.rsa_credentials.headers("GET", PREFIX + "/portfolio/orders", WALL)
    )
    response = h.raw("GET", PREFIX + "/portfolio/orders?limit=5", headers)
    assert response.status == 200


def test_repeated_requests_reuse_the_loaded_key(h: Harness) -> None:
    for _ in range(3):
        assert h.call(calls.get_balance()).status == 200
        assert h.call(calls.get_balance(), ed=True).status == 200


# ---- 400s -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/markets?limit=abc", "query parameter limit has an invalid value 'abc'"),
        ("/markets?limit=", "query parameter limit has an invalid value ''"),
        (
            "/events?with_nested_markets=yes",
            "query parameter with_nested_markets has an invalid value 'yes'",
        ),
        (
            "/markets?status=bogus",
            "query parameter status must be one of ['unopened', 'open', 'paused', 'closed', 'settled']",
        ),
    ],
)
def test_bad_query_value_is_400(h: Harness, target: str, message: str) -> None:
    response = h.raw("GET", PREFIX + target)
    assert response.status == 400
    assert error(response) == {"code": "invalid_parameters", "message": message}


def test_unknown_query_parameters_are_ignored(h: Harness) -> None:
    assert h.raw("GET", PREFIX + "/markets?foo=1&limit=2").status == 200


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (b'{"ticker":"T"}', "side: Field required"),
        (b"not json", "body: Invalid JSON"),
        (b"[]", "body: Input should be an object"),
        (b"", "ticker: Field required"),
    ],
)
def test_body_the_model_refuses_is_400_with_details(h: Harness, body: bytes, details: str) -> None:
    response = h.signed_raw("POST", PREFIX + "/portfolio/events/orders", body)
    assert response.status == 400
    payload = error(response)
    assert (
        payload["code"] == "invalid_parameters"
        and payload["message"] == "the request body is invalid"
    )
    assert details in payload["details"]
    assert len(payload["details"].split("; ")) <= 5


def test_sdk_side_check_failures_are_refused_by_the_exchange_too(h: Harness) -> None:
    body = order_request().model_dump(mode="json", by_alias=True, exclude_none=True) | {
        "price": "1.50"
    }
    response = h.signed_raw("POST", PREFIX + "/portfolio/events/orders", json.dumps(body).encode())
    assert response.status == 400 and "price must be between 0 and 1" in error(response)["details"]


def test_exchange_refusals_are_error_responses(h: Harness) -> None:
    response = h.call(calls.get_market("NOPE"))
    assert response.status == 404
    assert error(response) == {"code": "market_not_found", "message": "market NOPE not found"}
    response = h.call(calls.create_order_v2(order_request(count="100000")))
    assert (response.status, error(response)["code"]) == (400, "insufficient_balance")
    # The SDK reads the body back as the matching ApiError.
    with pytest.raises(ValidationError) as info:
        calls.create_order_v2(order_request(count="100000")).parse(response)
    assert (info.value.status, info.value.code) == (400, "insufficient_balance")
    response = h.call(calls.get_order("missing"))
    with pytest.raises(NotFoundError):
        calls.get_order("missing").parse(response)


# ---- every modelled operation answers with its response model -------------------------------


@dataclass(frozen=True)
class State:
    order_id: str  #: the trader's resting bid on T100K at 0.54, behind mm's 100
    filled_order_id: str
    group_id: str


def seed_state(h: Harness) -> State:
    """Give the RSA trader fills, a resting order, an order group, a subaccount and a settlement."""
    ex = h.ex
    kwargs: dict[str, Any] = {
        "tif": TimeInForce.IOC,
        "stp": StpMode.TAKER_AT_CROSS,
        "wall_ms": START_MS,
    }
    filled = ex.place_order(
        "trader",
        ticker=T100K,
        side=Side.BID,
        price=D("0.56"),
        count=D(5),
        client_order_id="s-1",
        **kwargs,
    )
    kwargs["tif"] = TimeInForce.GTC
    resting = ex.place_order(
        "trader",
        ticker=T100K,
        side=Side.BID,
        price=D("0.54"),
        count=D(10),
        client_order_id="s-2",
        **kwargs,
    )
    ex.place_order(
        "trader",
        ticker=C50,
        side=Side.BID,
        price=D("0.03"),
        count=D(2),
        client_order_id="s-3",
        **kwargs,
    )
    ex.determine_market(C50, "yes", START_MS)
    ex.settle_market(C50, START_MS)
    group = ex.create_order_group("trader", D(50), START_MS)
    ex.create_subaccount("trader")
    return State(resting.order.order_id, filled.order.order_id, group.order_group_id)


def _examples() -> dict[str, Callable[[State], Call[Any]]]:
    return {
        "GetExchangeStatus": lambda s: calls.get_exchange_status(),
        "GetExchangeSchedule": lambda s: calls.get_exchange_schedule(),
        "GetUserDataTimestamp": lambda s: calls.get_user_data_timestamp(),
        "GetTrades": lambda s: calls.get_trades(limit=10, ticker=T100K),
        "GetMarketOrderbook": lambda s: calls.get_market_orderbook(T100K, depth=2),
        "GetMarketOrderbooks": lambda s: calls.get_market_orderbooks(tickers=[T100K, HOLD]),
        "GetMarketCandlesticks": lambda s: calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S - 3600, end_ts=START_S + 3600, period_interval=1
        ),
        "BatchGetMarketCandlesticks": lambda s: calls.batch_get_market_candlesticks(
            market_tickers=f"{T100K},{HOLD}",
            start_ts=START_S - 3600,
            end_ts=START_S + 3600,
            period_interval=1,
        ),
        "GetMarketCandlesticksByEvent": lambda s: calls.get_market_candlesticks_by_event(
            "KXBTCD",
            "KXBTCD-26JAN3017",
            start_ts=START_S - 3600,
            end_ts=START_S + 3600,
            period_interval=1,
        ),
        "GetSeriesFeeChanges": lambda s: calls.get_series_fee_changes(series_ticker="KXBTCD"),
        "GetEventFeeChanges": lambda s: calls.get_event_fee_changes(limit=10),
        "GetSeries": lambda s: calls.get_series("KXBTCD"),
        "GetSeriesList": lambda s: calls.get_series_list(),
        "GetMarkets": lambda s: calls.get_markets(limit=5, status="open"),
        "GetMarket": lambda s: calls.get_market(T100K),
        "GetEvents": lambda s: calls.get_events(with_nested_markets=True),
        "GetEvent": lambda s: calls.get_event("KXFED-26JAN"),
        "GetOrders": lambda s: calls.get_orders(),
        "GetOrder": lambda s: calls.get_order(s.order_id),
        "GetOrderQueuePositions": lambda s: calls.get_order_queue_positions(),
        "GetOrderQueuePosition": lambda s: calls.get_order_queue_position(s.order_id),
        "CreateOrderV2": lambda s: calls.create_order_v2(
            order_request(price="0.57", count="3", client_order_id="new")
        ),
        "CancelAllOrders": lambda s: calls.cancel_all_orders(),
        "BatchCreateOrdersV2": lambda s: calls.batch_create_orders_v2(
            m.BatchCreateOrdersV2Request(
                orders=[
                    order_request(client_order_id="b-1"),
                    order_request(client_order_id="b-2", side="ask", price="0.54"),
                ]
            )
        ),
        "BatchCancelOrdersV2": lambda s: calls.batch_cancel_orders_v2(
            m.BatchCancelOrdersV2Request(
                orders=[m.BatchCancelOrdersV2RequestOrdersItem(order_id=s.order_id)]
            )
        ),
        "CancelOrderV2": lambda s: calls.cancel_order_v2(s.order_id),
        "AmendOrderV2": lambda s: calls.amend_order_v2(
            s.order_id,
            m.AmendOrderV2Request(ticker=T100K, side="bid", price=D("0.56"), count=D(12)),
        ),
        "DecreaseOrderV2": lambda s: calls.decrease_order_v2(
            s.order_id, m.DecreaseOrderV2Request(reduce_by=D(4))
        ),
        "GetOrderGroups": lambda s: calls.get_order_groups(),
        "CreateOrderGroup": lambda s: calls.create_order_group(
            m.CreateOrderGroupRequest(contracts_limit=10)
        ),
        "GetOrderGroup": lambda s: calls.get_order_group(s.group_id),
        "DeleteOrderGroup": lambda s: calls.delete_order_group(s.group_id),
        "ResetOrderGroup": lambda s: calls.reset_order_group(s.group_id),
        "TriggerOrderGroup": lambda s: calls.trigger_order_group(s.group_id),
        "UpdateOrderGroupLimit": lambda s: calls.update_order_group_limit(
            s.group_id, m.UpdateOrderGroupLimitRequest(contracts_limit_fp=D("20.5"))
        ),
        "GetBalance": lambda s: calls.get_balance(),
        "CreateSubaccount": lambda s: calls.create_subaccount(),
        "ApplySubaccountTransfer": lambda s: calls.apply_subaccount_transfer(
            m.ApplySubaccountTransferRequest(
                client_transfer_id=TRANSFER_1, from_subaccount=0, to_subaccount=1, amount_cents=1234
            )
        ),
        "GetSubaccountBalances": lambda s: calls.get_subaccount_balances(),
        "GetSubaccountTransfers": lambda s: calls.get_subaccount_transfers(),
        "GetPositions": lambda s: calls.get_positions(settlement_status="all"),
        "GetSettlements": lambda s: calls.get_settlements(),
        "GetPortfolioRestingOrderTotalValue": lambda s: (
            calls.get_portfolio_resting_order_total_value()
        ),
        "GetFills": lambda s: calls.get_fills(),
        "GetAccountApiLimits": lambda s: calls.get_account_api_limits(),
        "GetAccountEndpointCosts": lambda s: calls.get_account_endpoint_costs(),
    }


EXAMPLES = _examples()


@pytest.mark.parametrize("operation_id", sorted(EXAMPLES))
def test_every_modelled_operation_answers_with_its_response_model(
    h: Harness, operation_id: str
) -> None:
    state = seed_state(h)
    call = EXAMPLES[operation_id](state)
    assert call.operation is operation(operation_id)
    result = h.ok(call)
    model = call.operation.response_model
    if model is None:
        assert result is None
        return
    parsed = result.response if isinstance(result, Page) else result
    assert isinstance(parsed, model)


# ---- the handlers ---------------------------------------------------------------------------


def test_exchange_status_schedule_and_limits(h: Harness) -> None:
    status = h.ok(calls.get_exchange_status())
    assert status.exchange_active and status.trading_active
    limits = h.ok(calls.get_account_api_limits())
    assert limits.usage_tier == "basic"
    costs = h.ok(calls.get_account_endpoint_costs())
    assert costs.endpoint_costs and all(
        row.path.startswith(PREFIX + "/") for row in costs.endpoint_costs
    )
    assert all(row.cost != costs.default_cost for row in costs.endpoint_costs)


def test_series_and_events(h: Harness) -> None:
    everything = h.ok(calls.get_series_list())
    assert [s.ticker for s in everything.series] == ["KXBTCD", "KXFED", "KXHIGHNY"]
    crypto = h.ok(calls.get_series_list(category="Crypto"))
    assert [s.ticker for s in crypto.series] == ["KXBTCD"]
    assert crypto.series[0].fee_type == "quadratic"
    series = h.ok(calls.get_series("KXHIGHNY")).series
    assert series.fee_multiplier == D("0.5")
    response = h.call(calls.get_series("NOPE"))
    assert (response.status, error(response)["code"]) == (404, "series_not_found")
    page = h.ok(calls.get_events(limit=2))
    assert [e.event_ticker for e in page] == [
        "KXBTCD-26JAN3017",
        "KXFED-26JAN",
    ] and page.cursor == "KXFED-26JAN"
    assert all(not e.markets for e in page)
    page = h.ok(calls.get_events(limit=2, cursor=page.cursor, with_nested_markets=True))
    assert [e.event_ticker for e in page] == ["KXHIGHNY-26JAN30"] and page.cursor is None
    assert len(page[0].markets) == 4
    fed = h.ok(calls.get_events(series_ticker="KXFED"))
    assert [e.event_ticker for e in fed] == ["KXFED-26JAN"]
    event = h.ok(calls.get_event("KXFED-26JAN"))
    assert event.event.mutually_exclusive and len(event.markets) == 4
    response = h.call(calls.get_event("NOPE"))
    assert (response.status, error(response)["code"]) == (404, "event_not_found")


def test_markets_filters_and_paging(h: Harness) -> None:
    h.ex.close_market(HOLD, START_MS)
    h.ex.determine_market(C50, "no", START_MS)
    h.ex.settle_market(C50, START_MS)
    assert len(h.ok(calls.get_markets())) == 12
    assert len(h.ok(calls.get_markets(status="open"))) == 10
    assert [mk.ticker for mk in h.ok(calls.get_markets(status="closed"))] == [HOLD]
    assert [mk.ticker for mk in h.ok(calls.get_markets(status="settled"))] == [C50]
    assert len(h.ok(calls.get_markets(status="paused"))) == 0
    assert len(h.ok(calls.get_markets(status="unopened"))) == 0
    assert len(h.ok(calls.get_markets(event_ticker="KXFED-26JAN"))) == 4
    assert len(h.ok(calls.get_markets(series_ticker="KXHIGHNY"))) == 4
    chosen = h.ok(calls.get_markets(tickers=f"{T100K},{HOLD},NOPE"))
    assert [mk.ticker for mk in chosen] == [T100K, HOLD]
    first = h.ok(calls.get_markets(limit=5))
    assert len(first) == 5 and first.cursor == first[4].ticker
    second = h.ok(calls.get_markets(limit=5, cursor=first.cursor))
    third = h.ok(calls.get_markets(limit=5, cursor=second.cursor))
    assert len(third) == 2 and third.cursor is None
    assert len({mk.ticker for page in (first, second, third) for mk in page}) == 12
    for query, code in (
        ("cursor=abc", "invalid_cursor"),
        ("cursor=5", "invalid_cursor"),  # not a market ticker
        ("limit=1001", "invalid_parameters"),
        ("limit=-1", "invalid_parameters"),
    ):
        response = h.raw("GET", f"{PREFIX}/markets?{query}")
        assert (response.status, error(response)["code"]) == (400, code)
    assert len(h.ok(calls.get_markets(limit=1000))) == 12


def test_market_view(h: Harness) -> None:
    market = h.ok(calls.get_market(T100K)).market
    assert (market.yes_bid_dollars, market.yes_ask_dollars) == (D("0.5400"), D("0.5600"))
    assert (market.no_bid_dollars, market.no_ask_dollars) == (D("0.4400"), D("0.4600"))
    assert (market.yes_bid_size_fp, market.yes_ask_size_fp) == (D("100.00"), D("100.00"))
    assert market.status == "active" and market.price_level_structure == "linear_cent"
    assert market.open_time == datetime.fromtimestamp(START_MS / 1000, UTC)
    weather = h.ok(calls.get_market("KXHIGHNY-26JAN30-B31")).market
    assert weather.price_level_structure == "deci_cent"
    # An empty book shows the widest quotes.
    h.ex.cancel_all("mm", START_MS)
    empty = h.ok(calls.get_market(T100K)).market
    assert (
        empty.yes_bid_dollars,
        empty.yes_ask_dollars,
        empty.no_bid_dollars,
        empty.no_ask_dollars,
    ) == (D(0), D(1), D(0), D(1))
    assert (empty.yes_bid_size_fp, empty.yes_ask_size_fp) == (D(0), D(0))


def test_orderbook_lists_yes_bids_and_no_bids_best_last(h: Harness) -> None:
    book = h.ok(calls.get_market_orderbook(T100K)).orderbook_fp
    assert [[str(p), str(c)] for p, c in book.yes_dollars] == [
        ["0.5200", "300.00"],
        ["0.5300", "200.00"],
        ["0.5400", "100.00"],
    ]
    assert [[str(p), str(c)] for p, c in book.no_dollars] == [
        ["0.4200", "300.00"],
        ["0.4300", "200.00"],
        ["0.4400", "100.00"],
    ]
    shallow = h.ok(calls.get_market_orderbook(T100K, depth=1)).orderbook_fp
    assert [str(p) for p, _ in shallow.yes_dollars] == ["0.5400"] and [
        str(p) for p, _ in shallow.no_dollars
    ] == ["0.4400"]
    response = h.raw("GET", PREFIX + f"/markets/{T100K}/orderbook?depth=-1")
    assert (response.status, error(response)["code"]) == (400, "invalid_parameters")


def test_several_orderbooks(h: Harness) -> None:
    books = h.ok(calls.get_market_orderbooks(tickers=[HOLD, T100K])).orderbooks
    assert [b.ticker for b in books] == [HOLD, T100K]
    single = h.ok(calls.get_market_orderbook(T100K)).orderbook_fp
    assert books[1].orderbook_fp == single
    response = h.call(calls.get_market_orderbooks(tickers=[T100K, "NOPE"]))
    assert (response.status, error(response)["code"]) == (404, "market_not_found")
    # The SDK refuses an empty list; the app answers an empty one.
    response = h.raw("GET", PREFIX + "/markets/orderbooks")
    assert response.status == 200 and json.loads(response.body) == {"orderbooks": []}


def _trade(h: Harness, wall_ms: int, price: str, count: int) -> None:
    h.ex.place_order(
        "trader",
        ticker=T100K,
        side=Side.BID,
        price=D(price),
        count=D(count),
        tif=TimeInForce.IOC,
        stp=StpMode.TAKER_AT_CROSS,
        client_order_id=f"k{wall_ms}{price}",
        wall_ms=wall_ms,
    )


def _hold_trade(h: Harness) -> None:
    # One contract of HOLD (event KXFED-26JAN) traded in the minute ending START_S + 60.
    h.ex.place_order(
        "trader",
        ticker=HOLD,
        side=Side.BID,
        price=D("0.82"),
        count=D(1),
        tif=TimeInForce.IOC,
        stp=StpMode.MAKER,
        client_order_id="other-market",
        wall_ms=START_MS + 10_000,
    )


def test_candlesticks_from_trades(h: Harness) -> None:
    _trade(h, START_MS + 10_000, "0.56", 40)  # minute ending START_S + 60
    _trade(h, START_MS + 20_000, "0.57", 60)  # 0.56 x 60, then 0.57 x 0 ... see below
    _trade(h, START_MS + 130_000, "0.58", 5)  # minute ending START_S + 180
    _hold_trade(h)  # a trade on another market stays out of T100K's candles
    candles = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S, end_ts=START_S + 600, period_interval=1
        )
    ).candlesticks
    assert [c.end_period_ts for c in candles] == [START_S + 60, START_S + 180]
    first = candles[0]
    # The first order took 40 of the 100 at 0.56; the second took the other 60 at 0.56.
    assert (first.price.open_dollars, first.price.high_dollars, first.price.close_dollars) == (
        D("0.56"),
        D("0.56"),
        D("0.56"),
    )
    assert first.volume_fp == D(100) and first.price.mean_dollars == D("0.56")
    second = candles[1]
    assert (second.price.open_dollars, second.price.low_dollars, second.volume_fp) == (
        D("0.57"),
        D("0.57"),
        D(5),
    )
    assert second.yes_bid.close_dollars == D("0.54") and second.yes_ask.close_dollars == D("0.57")
    # The hour candle ends at START_S + 3600: asked only up to START_S + 600, it is not returned.
    early = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S, end_ts=START_S + 600, period_interval=60
        )
    ).candlesticks
    assert early == []
    hourly = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S, end_ts=START_S + 3600, period_interval=60
        )
    ).candlesticks
    [hour] = hourly
    assert hour.end_period_ts == START_S + 3600 and hour.volume_fp == D(105)
    assert (hour.price.low_dollars, hour.price.high_dollars, hour.price.close_dollars) == (
        D("0.56"),
        D("0.57"),
        D("0.57"),
    )
    assert hour.price.mean_dollars == D("0.5605")  # (100 * 0.56 + 5 * 0.57) / 105
    empty = h.ok(
        calls.get_market_candlesticks(
            "KXFED", HOLD, start_ts=START_S, end_ts=START_S + 600, period_interval=1440
        )
    )
    assert empty.ticker == HOLD and empty.candlesticks == []


def test_candlestick_refusals(h: Harness) -> None:
    response = h.call(
        calls.get_market_candlesticks("KXFED", T100K, start_ts=1, end_ts=2, period_interval=1)
    )
    assert (response.status, error(response)["code"]) == (404, "market_not_found")
    response = h.call(
        calls.get_market_candlesticks("KXBTCD", T100K, start_ts=2, end_ts=1, period_interval=1)
    )
    assert (response.status, error(response)["code"]) == (400, "invalid_parameters")
    target = (
        f"{PREFIX}/series/KXBTCD/markets/{T100K}/candlesticks?start_ts=1&end_ts=2&period_interval=5"
    )
    response = h.raw("GET", target)
    assert response.status == 400
    assert (
        error(response)["message"] == "query parameter period_interval must be one of [1, 60, 1440]"
    )


def _minute_trades(h: Harness) -> None:
    # T100K trades in the minutes ending START_S + 60 and START_S + 180; HOLD (another event) in
    # the minute ending START_S + 60.
    _trade(h, START_MS + 10_000, "0.56", 40)
    _trade(h, START_MS + 130_000, "0.56", 5)
    _hold_trade(h)


def test_batch_candlesticks_answer_each_market_as_the_single_call_does(h: Harness) -> None:
    _minute_trades(h)
    window: dict[str, Any] = {"start_ts": START_S, "end_ts": START_S + 600}
    batch = h.ok(
        calls.batch_get_market_candlesticks(
            market_tickers=f"{HOLD},{T100K},{T95K},{HOLD}", period_interval=1, **window
        )
    ).markets
    # One entry per distinct ticker, in the order first named.
    assert [entry.market_ticker for entry in batch] == [HOLD, T100K, T95K]
    single = {
        (series, ticker): h.ok(
            calls.get_market_candlesticks(series, ticker, period_interval=1, **window)
        ).candlesticks
        for series, ticker in (("KXFED", HOLD), ("KXBTCD", T100K), ("KXBTCD", T95K))
    }
    assert batch[0].candlesticks == single["KXFED", HOLD] != []
    assert batch[1].candlesticks == single["KXBTCD", T100K]
    assert [c.end_period_ts for c in batch[1].candlesticks] == [START_S + 60, START_S + 180]
    assert batch[2].candlesticks == single["KXBTCD", T95K] == []
    # Any period of a minute or more: one 5-minute candle holds both T100K trades.
    [five] = (
        h.ok(calls.batch_get_market_candlesticks(market_tickers=T100K, period_interval=5, **window))
        .markets[0]
        .candlesticks
    )
    assert (five.end_period_ts, five.volume_fp) == (START_S + 300, D(45))


def test_batch_candlesticks_stop_at_the_cap_market_by_market(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _minute_trades(h)
    monkeypatch.setattr(sim_rest, "BATCH_CANDLES_MAX", 2)
    batch = h.ok(
        calls.batch_get_market_candlesticks(
            market_tickers=f"{HOLD},{T100K}",
            start_ts=START_S,
            end_ts=START_S + 600,
            period_interval=1,
        )
    ).markets
    # HOLD's one candle, then the first of T100K's two: the answer holds the cap and no more.
    assert [(e.market_ticker, len(e.candlesticks)) for e in batch] == [(HOLD, 1), (T100K, 1)]
    assert batch[1].candlesticks[0].end_period_ts == START_S + 60


def test_batch_candlestick_refusals(h: Harness) -> None:
    def refusal(tickers: str, **kwargs: Any) -> tuple[int, str]:
        args = {"start_ts": 1, "end_ts": 2, "period_interval": 1, **kwargs}
        response = h.call(calls.batch_get_market_candlesticks(market_tickers=tickers, **args))
        return response.status, error(response)["message"]

    assert refusal(f"{T100K},NOPE") == (404, "market NOPE not found")
    assert refusal(f"{T100K},,{HOLD}") == (400, "market_tickers has an empty ticker")
    assert refusal(",".join(f"T{i}" for i in range(101))) == (
        400,
        "market_tickers names 101 markets; at most 100",
    )
    # 100 named, repeats aside, is within bounds: the unknown ticker is what is refused then.
    assert refusal(",".join([T100K] * 150 + [f"T{i}" for i in range(99)]))[0] == 404
    assert refusal(T100K, start_ts=2, end_ts=1) == (400, "end_ts is before start_ts")
    # The SDK refuses a period under a minute itself (the spec's minimum); the exchange too.
    response = h.raw(
        "GET",
        f"{PREFIX}/markets/candlesticks?market_tickers={T100K}&start_ts=1&end_ts=2&period_interval=0",
    )
    assert (response.status, error(response)["message"]) == (
        400,
        "period_interval must be at least 1",
    )


def test_event_candlesticks_list_the_event_markets_in_ticker_order(h: Harness) -> None:
    _minute_trades(h)
    window: dict[str, Any] = {"start_ts": START_S, "end_ts": START_S + 600, "period_interval": 1}
    answer = h.ok(calls.get_market_candlesticks_by_event("KXBTCD", "KXBTCD-26JAN3017", **window))
    tickers = sorted(t for t in h.ex.markets if t.startswith("KXBTCD-26JAN3017-"))
    assert answer.market_tickers == tickers and len(tickers) == 4
    assert answer.adjusted_end_ts == START_S + 600
    for ticker, candles in zip(answer.market_tickers, answer.market_candlesticks, strict=True):
        single = h.ok(calls.get_market_candlesticks("KXBTCD", ticker, **window)).candlesticks
        assert candles == single
        assert (candles != []) is (ticker == T100K)


_taker = st.tuples(
    # Seconds after START_S, midnight: a trade at second 0 would end the day before's candle.
    st.integers(min_value=1, max_value=3 * 3600 - 1),
    st.sampled_from([Side.BID, Side.ASK]),
    st.integers(min_value=1, max_value=5),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_taker, min_size=1, max_size=25))
def test_candles_of_every_period_agree(keys: Keys, takers: list[tuple[int, Side, int]]) -> None:
    """Random trades on one market over three hours: each hour candle is what the minute candles
    ending in that hour add up to, a day candle holds every trade, every candle's prices lie
    between its low and high, and the batch and event forms answer what the single form does."""
    h = Harness(keys)
    for n, (offset, side, count) in enumerate(sorted(takers, key=lambda t: t[0])):
        h.ex.place_order(
            "trader",
            ticker=T100K,
            side=side,
            price=D("0.99") if side is Side.BID else D("0.01"),  # takes the best price there
            count=D(count),
            tif=TimeInForce.IOC,
            stp=StpMode.TAKER_AT_CROSS,
            client_order_id=f"p{n}",
            wall_ms=START_MS + offset * 1000,
        )
    traded = sum((t.count for t in h.ex.trades if t.ticker == T100K), D(0))
    assert traded > 0  # the book holds more than 25 x 5 contracts on each side
    window: dict[str, Any] = {"start_ts": START_S - 86400, "end_ts": START_S + 2 * 86400}

    def candles(period: Any) -> list[Any]:
        call = calls.get_market_candlesticks("KXBTCD", T100K, period_interval=period, **window)
        found: list[Any] = h.ok(call).candlesticks
        return found

    minutes, hours, days = candles(1), candles(60), candles(1440)
    assert sum(c.volume_fp for c in minutes) == sum(c.volume_fp for c in hours) == traded
    [day] = days  # all within three hours after midnight: one day
    assert day.volume_fp == traded
    for hour in hours:
        inside = [
            c for c in minutes if hour.end_period_ts - 3600 < c.end_period_ts <= hour.end_period_ts
        ]
        assert inside, "an hour candle without minute candles"
        assert hour.volume_fp == sum(c.volume_fp for c in inside)
        assert hour.price.open_dollars == inside[0].price.open_dollars
        assert hour.price.close_dollars == inside[-1].price.close_dollars
        assert hour.price.high_dollars == max(c.price.high_dollars for c in inside)
        assert hour.price.low_dollars == min(c.price.low_dollars for c in inside)
    for c in minutes + hours + days:
        p = c.price
        assert p.low_dollars <= min(p.open_dollars, p.close_dollars, p.mean_dollars)
        assert max(p.open_dollars, p.close_dollars, p.mean_dollars) <= p.high_dollars
    batch = h.ok(
        calls.batch_get_market_candlesticks(
            market_tickers=f"{T95K},{T100K}", period_interval=60, **window
        )
    ).markets
    assert [(e.market_ticker, e.candlesticks) for e in batch] == [(T95K, []), (T100K, hours)]
    event = h.ok(
        calls.get_market_candlesticks_by_event(
            "KXBTCD", "KXBTCD-26JAN3017", period_interval=60, **window
        )
    )
    assert dict(zip(event.market_tickers, event.market_candlesticks, strict=True))[T100K] == hours


def test_event_candlestick_refusals(h: Harness) -> None:
    def refusal(series: str, event: str, start: int = 1, end: int = 2) -> tuple[int, str, str]:
        call = calls.get_market_candlesticks_by_event(
            series, event, start_ts=start, end_ts=end, period_interval=60
        )
        response = h.call(call)
        body = error(response)
        return response.status, body["code"], body["message"]

    assert refusal("KXBTCD", "NOPE") == (404, "event_not_found", "event NOPE not found")
    assert refusal("KXFED", "KXBTCD-26JAN3017") == (
        404,
        "event_not_found",
        "event KXBTCD-26JAN3017 is not in series KXFED",
    )
    assert refusal("KXBTCD", "KXBTCD-26JAN3017", 2, 1)[:2] == (400, "invalid_parameters")


def test_no_fee_change_is_scheduled(h: Harness) -> None:
    series = h.ok(calls.get_series_fee_changes(series_ticker="KXBTCD", show_historical=True))
    assert series.series_fee_change_arr == []
    events = h.ok(calls.get_event_fee_changes(event_ticker="KXFED-26JAN"))
    assert (list(events), events.cursor, events.has_next) == ([], None, False)
    # The page is still checked like any other.
    response = h.call(calls.get_event_fee_changes(cursor="KXFED-26JAN"))
    assert (response.status, error(response)["code"]) == (400, "invalid_cursor")
    response = h.raw("GET", f"{PREFIX}/events/fee_changes?limit=1001")
    assert (response.status, error(response)["message"]) == (
        400,
        "limit must be between 1 and 1000",
    )


def test_orders_fills_trades_and_positions(h: Harness) -> None:
    state = seed_state(h)
    orders = h.ok(calls.get_orders())
    assert [o.client_order_id for o in orders] == ["s-3", "s-2", "s-1"]  # newest first
    assert [o.client_order_id for o in h.ok(calls.get_orders(ticker=T100K))] == ["s-2", "s-1"]
    assert [o.client_order_id for o in h.ok(calls.get_orders(status="resting"))] == ["s-2"]
    assert [o.client_order_id for o in h.ok(calls.get_orders(event_ticker="KXFED-26JAN"))] == [
        "s-3"
    ]
    order = h.ok(calls.get_order(state.order_id)).order
    assert (order.status, order.book_side, order.remaining_count_fp, order.yes_price_dollars) == (
        "resting",
        "bid",
        D(10),
        D("0.54"),
    )
    assert order.expiration_time is None
    other = h.ex.place_order(
        "mm",
        ticker=HOLD,
        side=Side.BID,
        price=D("0.5"),
        count=D(1),
        tif=TimeInForce.GTC,
        stp=StpMode.MAKER,
        client_order_id="mm-x",
        wall_ms=START_MS,
    )
    response = h.call(calls.get_order(other.order.order_id))
    assert (response.status, error(response)["code"]) == (404, "order_not_found")
    fills = h.ok(calls.get_fills())
    assert [f.count_fp for f in fills] == [D(2), D(5)] and all(f.is_taker for f in fills)
    assert [f.order_id for f in h.ok(calls.get_fills(order_id=state.filled_order_id))] == [
        state.filled_order_id
    ]
    assert len(h.ok(calls.get_fills(ticker=C50))) == 1
    trades = h.ok(calls.get_trades(ticker=T100K))
    assert [(t.count_fp, t.yes_price_dollars, t.taker_book_side) for t in trades] == [
        (D(5), D("0.56"), "bid")
    ]
    assert len(h.ok(calls.get_trades())) == 2
    positions = h.ok(calls.get_positions())
    assert [(p.ticker, p.position_fp) for p in positions] == [
        (T100K, D(5))
    ]  # the settled C50 is hidden
    everything = h.ok(calls.get_positions(settlement_status="all"))
    assert [(p.ticker, p.position_fp) for p in everything] == [(T100K, D(5)), (C50, D(0))]
    assert [e.event_ticker for e in everything.response.event_positions] == [
        "KXBTCD-26JAN3017",
        "KXFED-26JAN",
    ]
    assert len(h.ok(calls.get_positions(ticker=C50, settlement_status="all"))) == 1
    assert len(h.ok(calls.get_positions(event_ticker="KXBTCD-26JAN3017"))) == 1
    assert len(h.ok(calls.get_positions(subaccount=1))) == 0
    settlements = h.ok(calls.get_settlements())
    [settlement] = settlements
    assert (
        settlement.ticker,
        settlement.market_result,
        settlement.revenue,
        settlement.yes_count_fp,
    ) == (C50, "yes", 200, D(2))


def test_positions_report_an_exact_cost_basis_through_partial_closes(h: Harness) -> None:
    # 101 YES for 56.57 (100 at 0.56, 1 at 0.57), sold back in three orders into mm's bids
    # (100 at 0.54, then 0.53). Each partial close releases the average cost floored to $0.0001
    # (kalshi_proto.sim.exchange); the last one releases what is left.
    ioc = {"time_in_force": "immediate_or_cancel"}
    h.ok(
        calls.create_order_v2(order_request(price="0.57", count="101", client_order_id="b", **ioc))
    )
    reported = []
    for n, count in enumerate(("33", "33", "35")):
        sell = order_request(side="ask", price="0.53", count=count, client_order_id=f"s{n}", **ioc)
        h.ok(calls.create_order_v2(sell))
        body = json.loads(h.call(calls.get_positions(settlement_status="all")).body)
        [row] = body["market_positions"]
        [event] = body["event_positions"]
        reported.append(
            (row["position_fp"], row["market_exposure_dollars"], row["realized_pnl_dollars"])
        )
        assert (event["event_exposure_dollars"], event["realized_pnl_dollars"]) == reported[-1][1:]
    # 56.57 * 33 / 101 = 18.48326.. -> 18.4832; 38.0868 * 33 / 68 = 18.48330.. -> 18.4833;
    # 19.6035 * 34 / 35 = 19.0434 (34 at 0.54); the last contract (at 0.53) releases 0.5601.
    assert reported == [
        ("68.00", "38.0868", "-0.6632"),
        ("35.00", "19.6035", "-1.3265"),
        ("0.00", "0.0000", "-2.0400"),  # 100 * 0.54 + 0.53 - 56.57
    ]


def test_balance_and_resting_value(h: Harness) -> None:
    seed_state(h)
    balance = h.ok(calls.get_balance())
    # 10,000 - 5 * 0.56 - 0.0863 (fee) - 2 * 0.03 - 0.0041 (fee) + 2 (settlement) - 5.40 reserved
    # - 0.20 held as the resting order's fee budget (0.02 per contract of rounding; no maker fee)
    assert balance.balance_dollars == D("9993.4496")
    assert balance.balance == 999344
    assert balance.portfolio_value == 280  # 5 YES at the last price 0.56
    assert balance.updated_ts == START_MS // 1000
    resting = h.ok(calls.get_portfolio_resting_order_total_value())
    assert resting.total_resting_order_value == 540
    # GetBalance declares no 400: a subaccount never created holds nothing.
    assert h.ok(calls.get_balance(subaccount=7)).balance_dollars == 0
    assert h.ok(calls.get_balance(subaccount=1)).balance_dollars == 0


def test_queue_positions(h: Harness) -> None:
    state = seed_state(h)
    assert h.ok(calls.get_order_queue_position(state.order_id)).queue_position_fp == D(100)
    rows = h.ok(calls.get_order_queue_positions()).queue_positions
    assert [(r.order_id, r.market_ticker, r.queue_position_fp) for r in rows] == [
        (state.order_id, T100K, D(100))
    ]
    assert h.ok(calls.get_order_queue_positions(market_tickers=T100K)).queue_positions == rows
    assert h.ok(calls.get_order_queue_positions(market_tickers=HOLD)).queue_positions == []
    event = h.ex.markets[T100K].event_ticker
    assert h.ok(calls.get_order_queue_positions(event_ticker=event)).queue_positions == rows
    assert h.ok(calls.get_order_queue_positions(event_ticker="KXFED-26JAN")).queue_positions == []
    # A finished order has nothing ahead of it.
    assert h.ok(calls.get_order_queue_position(state.filled_order_id)).queue_position_fp == 0


def test_create_amend_decrease_and_cancel(h: Harness) -> None:
    created = h.ok(
        calls.create_order_v2(order_request(price="0.57", count="150", client_order_id="mine"))
    )
    # 100 at 0.56 and 50 at 0.57; fees 1.7248 + ceil(0.07*50*0.57*0.43 = 0.85785), / 150.
    assert (created.fill_count, created.remaining_count) == (D(150), D(0))
    assert created.average_fill_price == D("0.5633")
    assert created.average_fee_paid == D("0.0172")
    assert created.ts_ms == START_MS and created.client_order_id == "mine"
    rest = h.ok(
        calls.create_order_v2(order_request(price="0.50", count="10", client_order_id="rest"))
    )
    assert (
        rest.fill_count,
        rest.remaining_count,
        rest.average_fill_price,
        rest.average_fee_paid,
    ) == (D(0), D(10), None, None)
    amended = h.ok(
        calls.amend_order_v2(
            rest.order_id,
            m.AmendOrderV2Request(ticker=T100K, side="bid", price=D("0.51"), count=D(8)),
        )
    )
    assert amended.order_id == rest.order_id and amended.remaining_count == D(8)
    decreased = h.ok(
        calls.decrease_order_v2(rest.order_id, m.DecreaseOrderV2Request(reduce_to=D(3)))
    )
    assert decreased.remaining_count == D(3) and decreased.client_order_id == "rest"
    cancelled = h.ok(calls.cancel_order_v2(rest.order_id))
    assert cancelled.reduced_by == D(3) and cancelled.ts_ms == START_MS
    # CancelOrderV2 declares 200, 401, 404 and 500: an order that no longer rests is a 404.
    response = h.call(calls.cancel_order_v2(rest.order_id))
    assert (response.status, error(response)["code"]) == (404, "order_not_resting")
    assert h.ex.account("trader").reserved[0] == 0


def test_batches_report_errors_per_item(h: Harness) -> None:
    batch = m.BatchCreateOrdersV2Request(
        orders=[
            order_request(client_order_id="a"),
            order_request(client_order_id="b", ticker="NOPE"),
            order_request(client_order_id="a"),
        ]
    )
    rows = h.ok(calls.batch_create_orders_v2(batch)).orders
    assert rows[0].order_id is not None and rows[0].error is None
    assert (rows[1].client_order_id, rows[1].error.code) == ("b", "market_not_found")
    assert rows[2].error.code == "duplicate_client_order_id"
    cancel = m.BatchCancelOrdersV2Request(
        orders=[
            m.BatchCancelOrdersV2RequestOrdersItem(order_id=rows[0].order_id or ""),
            m.BatchCancelOrdersV2RequestOrdersItem(order_id="missing"),
        ]
    )
    done = h.ok(calls.batch_cancel_orders_v2(cancel)).orders
    assert (done[0].reduced_by, done[0].error, done[0].client_order_id) == (D(10), None, "a")
    assert (done[1].order_id, done[1].reduced_by, done[1].ts_ms) == ("missing", D(0), None)
    assert done[1].error is not None and done[1].error.code == "order_not_found"


def test_cancel_all_answers_204_with_no_body(h: Harness) -> None:
    seed_state(h)
    h.ex.create_subaccount("trader")
    response = h.call(calls.cancel_all_orders(subaccount=1))
    assert (response.status, response.body) == (204, b"")
    assert any(o.status == "resting" for o in h.ex.user_orders("trader"))
    assert h.ok(calls.cancel_all_orders()) is None
    assert not any(o.status == "resting" for o in h.ex.user_orders("trader"))


def test_order_groups(h: Harness) -> None:
    created = h.ok(calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit_fp=D("2.5"))))
    gid = created.order_group_id
    assert created.subaccount == 0
    h.ok(calls.create_order_v2(order_request(client_order_id="g1", order_group_id=gid)))
    group = h.ok(calls.get_order_group(gid))
    assert (group.contracts_limit_fp, group.is_auto_cancel_enabled, len(group.orders)) == (
        D("2.5"),
        False,
        1,
    )
    h.ok(calls.trigger_order_group(gid))
    group = h.ok(calls.get_order_group(gid))
    assert group.is_auto_cancel_enabled and group.orders == []
    response = h.call(
        calls.create_order_v2(order_request(client_order_id="g2", order_group_id=gid))
    )
    assert (response.status, error(response)["code"]) == (400, "order_group_triggered")
    h.ok(calls.reset_order_group(gid))
    h.ok(calls.update_order_group_limit(gid, m.UpdateOrderGroupLimitRequest(contracts_limit=7)))
    listed = h.ok(calls.get_order_groups()).order_groups
    assert [(g.id, g.contracts_limit_fp, g.is_auto_cancel_enabled) for g in listed] == [
        (gid, D(7), False)
    ]
    assert h.ok(calls.get_order_groups(), ed=True).order_groups == []
    no_limit = {
        "code": "invalid_parameters",
        "message": "give contracts_limit or contracts_limit_fp",
    }
    response = h.call(calls.update_order_group_limit(gid, m.UpdateOrderGroupLimitRequest()))
    assert (response.status, error(response)) == (400, no_limit)
    response = h.call(calls.create_order_group(m.CreateOrderGroupRequest()))
    assert (response.status, error(response)) == (400, no_limit)
    response = h.call(
        calls.update_order_group_limit(gid, m.UpdateOrderGroupLimitRequest(contracts_limit_fp=D(0)))
    )
    assert (response.status, error(response)["code"]) == (400, "invalid_contracts_limit")
    h.ok(calls.delete_order_group(gid))
    response = h.call(calls.get_order_group(gid))
    assert (response.status, error(response)["code"]) == (404, "order_group_not_found")
    sub_group = h.ok(
        calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit=1, subaccount=0))
    )
    assert sub_group.subaccount == 0
    # A group lives in a subaccount that exists, and takes that subaccount's orders only.
    response = h.call(
        calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit=5, subaccount=9))
    )
    assert (response.status, error(response)["code"]) == (400, "invalid_subaccount")
    h.ok(calls.create_subaccount())
    other = h.ok(
        calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit=5, subaccount=1))
    )
    response = h.call(
        calls.create_order_v2(
            order_request(client_order_id="g", order_group_id=other.order_group_id)
        )
    )
    assert (response.status, error(response)["code"]) == (400, "invalid_subaccount")


def test_subaccounts_and_transfers(h: Harness) -> None:
    assert h.ok(calls.create_subaccount()).subaccount_number == 1
    transfer = m.ApplySubaccountTransferRequest(
        client_transfer_id=TRANSFER_1, from_subaccount=0, to_subaccount=1, amount_cents=12_345
    )
    h.ok(calls.apply_subaccount_transfer(transfer))
    balances = h.ok(calls.get_subaccount_balances()).subaccount_balances
    assert [(b.subaccount_number, b.balance) for b in balances] == [
        (0, D("9876.5500")),
        (1, D("123.4500")),
    ]
    page = h.ok(calls.get_subaccount_transfers())
    assert [(t.from_subaccount, t.to_subaccount, t.amount_cents, t.transfer_id) for t in page] == [
        (0, 1, 12_345, TRANSFER_1)
    ]
    bad = m.ApplySubaccountTransferRequest(
        client_transfer_id=TRANSFER_2, from_subaccount=1, to_subaccount=0, amount_cents=1_000_000
    )
    response = h.call(calls.apply_subaccount_transfer(bad))
    assert (response.status, error(response)["code"]) == (400, "insufficient_balance")
    order = h.ok(calls.create_order_v2(order_request(client_order_id="s1", subaccount=1)))
    assert h.ex.orders[order.order_id].subaccount == 1


# ---- bugs -----------------------------------------------------------------------------------


def test_queue_positions_take_a_comma_separated_list(h: Harness) -> None:
    state = seed_state(h)
    rows = h.ok(calls.get_order_queue_positions(market_tickers=f"{T100K},{HOLD}")).queue_positions
    assert [r.order_id for r in rows] == [state.order_id]


def test_average_fill_price_of_an_ask_is_a_yes_price(h: Harness) -> None:
    sold = h.ok(
        calls.create_order_v2(
            order_request(side="ask", price="0.54", count="10", client_order_id="sell")
        )
    )
    assert sold.fill_count == D(10)
    assert sold.average_fill_price == D("0.54")


def test_a_repeated_transfer_id_moves_money_once(h: Harness) -> None:
    h.ok(calls.create_subaccount())
    transfer = m.ApplySubaccountTransferRequest(
        client_transfer_id=TRANSFER_1, from_subaccount=0, to_subaccount=1, amount_cents=100
    )
    h.call(calls.apply_subaccount_transfer(transfer))
    h.call(calls.apply_subaccount_transfer(transfer))
    assert h.ex.account("trader").cash[1] == D(1)


def test_a_trade_on_a_period_boundary_belongs_to_the_candle_ending_there(h: Harness) -> None:
    _trade(h, START_MS, "0.56", 1)  # START_S is a whole minute
    candles = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S - 600, end_ts=START_S + 600, period_interval=1
        )
    ).candlesticks
    assert [c.end_period_ts for c in candles] == [START_S]


def test_candles_end_on_or_before_end_ts(h: Harness) -> None:
    _trade(h, START_MS + 10_000, "0.56", 1)
    candles = h.ok(
        calls.get_market_candlesticks(
            "KXBTCD", T100K, start_ts=START_S, end_ts=START_S + 30, period_interval=1
        )
    ).candlesticks
    assert all(c.end_period_ts <= START_S + 30 for c in candles)


def test_settled_positions_filter(h: Harness) -> None:
    seed_state(h)  # T100K is open, C50 settled
    settled = h.ok(calls.get_positions(settlement_status="settled"))
    assert [p.ticker for p in settled] == [C50]


# ---- determinism and the exchange clock -----------------------------------------------------


def _session(h: Harness) -> list[tuple[int, HttpRequest]]:
    steps: list[tuple[int, Call[Any]]] = [
        (0, calls.get_markets(limit=3)),
        (
            10,
            calls.create_order_v2(order_request(price="0.57", count="120", client_order_id="d-1")),
        ),
        (20, calls.create_order_v2(order_request(price="0.50", count="10", client_order_id="d-2"))),
        (30, calls.get_orders()),
        (40, calls.get_fills()),
        (50, calls.get_positions()),
        (60, calls.get_market_orderbook(T100K)),
        (70, calls.create_order_group(m.CreateOrderGroupRequest(contracts_limit=5))),
        (
            80,
            calls.batch_create_orders_v2(
                m.BatchCreateOrdersV2Request(
                    orders=[order_request(side="ask", price="0.53", client_order_id="d-3")]
                )
            ),
        ),
        (90, calls.get_trades()),
        (100, calls.get_balance()),
        (110, calls.cancel_all_orders()),
        (120, calls.get_orders(status="canceled")),
        (130, calls.get_user_data_timestamp()),
    ]
    return [(WALL + dt, h.request(call, WALL + dt)) for dt, call in steps]


def test_same_requests_give_byte_identical_responses(keys: Keys) -> None:
    first, second = Harness(keys), Harness(keys)
    session = _session(first)
    answers = []
    for app in (first, second):
        answers.append([app.send(request, wall_ms) for wall_ms, request in session])
    assert answers[0] == answers[1]
    assert all(r.status < 300 for r in answers[0])
    assert b"d-3" in answers[0][8].body


def test_exchange_time_starts_at_the_first_request(keys: Keys) -> None:
    app = ExchangeApp(make_exchange(keys))
    assert app.exchange_time(WALL + 500) == START_MS  # the first reading sets the epoch
    assert app.exchange_time(WALL + 2_500) == START_MS + 2_000
    pinned = ExchangeApp(make_exchange(keys), epoch_ms=WALL)
    assert pinned.exchange_time(WALL + 500) == START_MS + 500


def test_requests_run_on_the_exchange_clock(h: Harness) -> None:
    stamp = h.ok(calls.get_user_data_timestamp(), WALL + 90_000)
    assert stamp.as_of_time == datetime.fromtimestamp((START_MS + 90_000) / 1000, UTC)
    created = h.ok(calls.create_order_v2(order_request(client_order_id="late")), WALL + 91_000)
    assert created.ts_ms == START_MS + 91_000
    assert h.ex.orders[created.order_id].created_ms == START_MS + 91_000
    # Twenty-nine days on, the markets have closed and the resting order is cancelled.
    later = WALL + 29 * 86_400_000
    assert h.ok(calls.get_market(T100K), later).market.status == "closed"
    assert h.ex.orders[created.order_id].status == "canceled"
    response = h.call(calls.create_order_v2(order_request(client_order_id="too-late")), later)
    assert (response.status, error(response)["code"]) == (400, "market_closed")


# ---- faults ---------------------------------------------------------------------------------


STATUS = HttpRequest("GET", PREFIX + "/exchange/status", (), b"")


def _app(keys: Keys, faults: Faults, rng: Callable[[], float] | None) -> ExchangeApp:
    return ExchangeApp(make_exchange(keys), faults=faults, rng=rng, epoch_ms=WALL)


@pytest.mark.parametrize("wrong", ["429", {"rate_limit_share": 1.0}, 0.5])
def test_faults_that_are_not_a_faults_are_refused(keys: Keys, wrong: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^faults must be a Faults \(for example"):
        _app(keys, wrong, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retry_after", "header"), [(None, None), (2.5, "2.5"), (2.0, "2"), (0.0, "0")]
)
def test_rate_limit_share_one_answers_429(
    keys: Keys, retry_after: float | None, header: str | None
) -> None:
    app = _app(keys, Faults(rate_limit_share=1.0, retry_after=retry_after), random.Random(7).random)
    for _ in range(5):
        reply = app.handle(STATUS, now=0.0, wall_ms=WALL)
        assert isinstance(reply, Respond) and reply.delay == 0.0
        response = reply.response
        assert response.status == 429 and response.body == b'{"error":"too many requests"}'
        assert response.header("retry-after") == header
        exc = error_from_response(response)
        assert isinstance(exc, RateLimitError)
        assert exc.retry_after == (None if retry_after is None else retry_after)
    assert app.requests == 5


def test_rate_limit_share_picks_requests_with_the_rng(keys: Keys) -> None:
    statuses = []
    app = _app(keys, Faults(rate_limit_share=0.5), random.Random(3).random)
    for _ in range(200):
        reply = app.handle(STATUS, now=0.0, wall_ms=WALL)
        statuses.append(reply.response.status)
    assert set(statuses) == {200, 429}
    rng = random.Random(3)
    assert statuses == [429 if rng.random() < 0.5 else 200 for _ in range(200)]


def test_error_bursts_fail_exactly_error_burst_requests_in_a_row(keys: Keys) -> None:
    app = _app(
        keys, Faults(error_share=0.1, error_burst=4, error_status=502), random.Random(11).random
    )
    statuses = "".join(
        "E" if app.handle(STATUS, now=0.0, wall_ms=WALL).response.status == 502 else "."
        for _ in range(400)
    )
    runs = [len(run) for run in statuses.split(".") if run]
    assert runs and all(length % 4 == 0 for length in runs)
    assert set(statuses) == {"E", "."}


def test_an_error_burst_does_not_consult_the_rng(keys: Keys) -> None:
    rolls = iter([0.0, 0.99, 0.99, 0.99])
    used: list[float] = []

    def rng() -> float:
        value = next(rolls)
        used.append(value)
        return value

    app = _app(keys, Faults(error_share=0.5, error_burst=3, latency=0.125), rng)
    replies = [app.handle(STATUS, now=0.0, wall_ms=WALL) for _ in range(5)]
    assert [r.response.status for r in replies] == [503, 503, 503, 200, 200]
    assert used == [0.0, 0.99, 0.99]
    assert all(isinstance(r, Respond) and r.delay == 0.125 for r in replies)
    body = json.loads(replies[0].response.body)
    assert body == {"code": "service_unavailable", "message": "injected server error"}
    assert isinstance(error_from_response(replies[0].response), ServerError)


def test_drop_share_one_cuts_every_response_at_half_its_body(keys: Keys) -> None:
    app = _app(keys, Faults(drop_share=1.0, latency=0.5), random.Random(1).random)
    for target in (PREFIX + "/exchange/status", PREFIX + "/markets", PREFIX + "/nope"):
        reply = app.handle(HttpRequest("GET", target, (), b""), now=0.0, wall_ms=WALL)
        assert isinstance(reply, Drop)
        assert reply.after == len(reply.response.body) // 2 and reply.delay == 0.5
        assert reply.response.status in (200, 404)


def test_a_dropped_response_is_cut_inside_its_body(keys: Keys) -> None:
    app = _app(keys, Faults(drop_share=1.0), random.Random(1).random)
    reply = app.handle(STATUS, now=0.0, wall_ms=WALL)
    assert isinstance(reply, Drop)
    response = reply.response
    # ``after`` counts body bytes: the server sends the head, then half the body, then closes.
    assert 0 < reply.after == len(response.body) // 2 < len(response.body)


def test_latency_sets_the_delay_without_an_rng(keys: Keys) -> None:
    faults = Faults(latency=0.75)
    assert not faults.active
    app = _app(keys, faults, None)
    reply = app.handle(STATUS, now=0.0, wall_ms=WALL)
    assert isinstance(reply, Respond) and reply.delay == 0.75 and reply.response.status == 200


def test_faults_are_not_active_by_default() -> None:
    assert not Faults().active
    assert (
        Faults(rate_limit_share=0.1).active
        and Faults(error_share=0.1).active
        and Faults(drop_share=0.1).active
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_limit_share": -0.1}, "rate_limit_share must be within [0, 1], got -0.1"),
        ({"rate_limit_share": 1.1}, "rate_limit_share must be within [0, 1], got 1.1"),
        ({"error_share": math.nan}, "error_share must be within [0, 1], got nan"),
        ({"drop_share": -1}, "drop_share must be within [0, 1], got -1"),
        ({"drop_share": "0.5"}, "drop_share must be a number, got str"),
        ({"drop_share": True}, "drop_share must be a number, got bool"),
        ({"error_burst": 0}, "error_burst must be 1 or more, got 0"),
        ({"error_burst": 1.5}, "error_burst must be an int, got float"),
        ({"error_burst": True}, "error_burst must be an int, got bool"),
        ({"error_status": 404}, "error_status must be from 500 to 599, got 404"),
        ({"error_status": 600}, "error_status must be from 500 to 599, got 600"),
        ({"error_status": 503.0}, "error_status must be an int, got float"),
        ({"latency": -0.1}, "latency must be a finite number of seconds >= 0, got -0.1"),
        ({"latency": math.inf}, "latency must be a finite number of seconds >= 0, got inf"),
        ({"latency": "1"}, "latency must be a number, got str"),
        ({"retry_after": -1.0}, "retry_after must be a finite number of seconds >= 0, got -1.0"),
        ({"retry_after": math.nan}, "retry_after must be a finite number of seconds >= 0, got nan"),
        ({"retry_after": False}, "retry_after must be a number, got bool"),
    ],
)
def test_faults_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Faults(**kwargs)
    assert str(info.value) == message


def test_faults_keep_numbers_of_any_kind_as_floats_and_ints() -> None:
    numbers: dict[str, Any] = {
        "rate_limit_share": Fraction(1, 4),
        "retry_after": np.float32(0.5),
        "error_share": 1,
        "error_burst": np.int64(3),
        "error_status": np.int16(502),
        "latency": np.float64(0.125),
    }
    faults = Faults(**numbers)
    assert (faults.rate_limit_share, faults.retry_after, faults.error_share) == (0.25, 0.5, 1.0)
    assert (faults.error_burst, faults.error_status, faults.latency) == (3, 502, 0.125)
    assert type(faults.retry_after) is float and type(faults.error_status) is int


@pytest.mark.parametrize(
    "faults", [Faults(rate_limit_share=0.1), Faults(error_share=0.5), Faults(drop_share=1.0)]
)
def test_faults_without_an_rng_are_a_configuration_error(keys: Keys, faults: Faults) -> None:
    with pytest.raises(ConfigurationError, match="needs an rng"):
        ExchangeApp(make_exchange(keys), faults=faults)


def test_fault_free_app_never_calls_an_rng(keys: Keys) -> None:
    def rng() -> float:
        raise AssertionError("rng called")

    app = _app(keys, Faults(), rng)
    assert all(app.handle(STATUS, now=0.0, wall_ms=WALL).response.status == 200 for _ in range(3))


# ---- stable cursors and spec filters --------------------------------------------------------

Listing = Callable[[int, str | None], Call[Any]]
LISTINGS: dict[str, tuple[Listing, str]] = {
    "orders": (lambda limit, cursor: calls.get_orders(limit=limit, cursor=cursor), "order_id"),
    "fills": (lambda limit, cursor: calls.get_fills(limit=limit, cursor=cursor), "fill_id"),
    "trades": (
        lambda limit, cursor: calls.get_trades(limit=limit, cursor=cursor, ticker=T100K),
        "trade_id",
    ),
}


def _trade_one(h: Harness, name: str) -> None:
    # A new order that trades: one more order, two more fills (one ours), one more trade.
    h.ok(calls.create_order_v2(order_request(price="0.56", count="1", client_order_id=name)))


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_a_cursor_walk_sees_each_item_once_while_items_arrive(h: Harness, name: str) -> None:
    listing, key = LISTINGS[name]
    for n in range(5):
        _trade_one(h, f"old-{n}")
    before = [getattr(item, key) for item in h.ok(listing(1000, None))]
    seen: list[str] = []
    page = h.ok(listing(2, None))
    seen += [getattr(item, key) for item in page]
    while page.cursor:
        _trade_one(h, f"new-{len(seen)}")  # arrives between two page requests
        page = h.ok(listing(2, page.cursor))
        seen += [getattr(item, key) for item in page]
    # Offsets into a rebuilt newest-first list repeated an item on every page after an arrival.
    assert seen == before


def test_a_cursor_from_another_list_or_past_the_end_is_refused(h: Harness) -> None:
    _trade_one(h, "one")
    for target in (
        f"{PREFIX}/portfolio/orders?cursor=100000",  # past every order the exchange has had
        f"{PREFIX}/portfolio/fills?cursor=-1",
        f"{PREFIX}/markets?cursor=KXFED-26JAN",  # an event ticker, not a market's
        f"{PREFIX}/portfolio/positions?cursor=NOPE",
    ):
        response = h.signed_raw("GET", target)
        assert (response.status, error(response)["code"]) == (400, "invalid_cursor"), target


def test_time_filters_keep_items_strictly_inside_the_window(h: Harness) -> None:
    _trade_one(h, "early")
    later = WALL + 10_000  # the exchange's clock reads START_MS + 10 s
    h.ok(
        calls.create_order_v2(order_request(price="0.56", count="1", client_order_id="late")), later
    )
    at = START_S + 10

    def ids(call: Call[Any]) -> list[str]:
        return [o.client_order_id for o in h.ok(call, later)]

    assert ids(calls.get_orders()) == ["late", "early"]
    assert ids(calls.get_orders(min_ts=START_S)) == ["late"]
    assert ids(calls.get_orders(min_ts=START_S - 1)) == ["late", "early"]
    assert ids(calls.get_orders(max_ts=at)) == ["early"]
    assert ids(calls.get_orders(min_ts=START_S - 1, max_ts=at + 1)) == ["late", "early"]
    assert ids(calls.get_orders(min_ts=at)) == []
    fills = h.ok(calls.get_fills(max_ts=at), later)
    assert [f.created_time.timestamp() for f in fills] == [START_S]
    assert len(h.ok(calls.get_fills(min_ts=at - 1), later)) == 1
    assert len(h.ok(calls.get_fills(max_ts=1), later)) == 0
    trades = h.ok(calls.get_trades(ticker=T100K, min_ts=START_S), later)
    assert [t.created_time.timestamp() for t in trades] == [at]
    assert len(h.ok(calls.get_trades(max_ts=1), later)) == 0
    # Every trade here is an ordinary one.
    assert len(h.ok(calls.get_trades(is_block_trade=True), later)) == 0
    assert len(h.ok(calls.get_trades(is_block_trade=False), later)) == 2


def test_portfolio_lists_filter_by_subaccount(h: Harness) -> None:
    sub = h.ok(calls.create_subaccount(m.CreateSubaccountRequest())).subaccount_number
    h.ok(
        calls.apply_subaccount_transfer(
            m.ApplySubaccountTransferRequest(
                client_transfer_id=TRANSFER_1,
                from_subaccount=0,
                to_subaccount=sub,
                amount_cents=10_000,
            )
        )
    )
    _trade_one(h, "primary")
    h.ok(
        calls.create_order_v2(
            order_request(price="0.56", count="2", client_order_id="second", subaccount=sub)
        )
    )
    orders = h.ok(calls.get_orders())
    assert [o.client_order_id for o in orders] == ["second", "primary"]
    assert [o.client_order_id for o in h.ok(calls.get_orders(subaccount=sub))] == ["second"]
    assert [o.client_order_id for o in h.ok(calls.get_orders(subaccount=0))] == ["primary"]
    assert h.ok(calls.get_orders(subaccount=5)).items == []
    # GetOrders takes a comma-separated list of at most ten event tickers.
    both = h.ok(calls.get_orders(event_ticker="KXFED-26JAN,KXBTCD-26JAN3017"))
    assert [o.client_order_id for o in both] == ["second", "primary"]
    assert h.ok(calls.get_orders(event_ticker="KXFED-26JAN")).items == []
    response = h.call(calls.get_orders(event_ticker=",".join(["KXFED-26JAN"] * 11)))
    assert (response.status, error(response)["code"]) == (400, "invalid_parameters")
    assert [f.subaccount_number for f in h.ok(calls.get_fills(subaccount=sub))] == [sub]
    assert [f.subaccount_number for f in h.ok(calls.get_fills())] == [sub, 0]
    h.ex.determine_market(T100K, "yes", START_MS)
    h.ex.settle_market(T100K, START_MS)
    settled = h.ok(calls.get_settlements(subaccount=sub))
    assert [(s.ticker, s.yes_count_fp) for s in settled] == [(T100K, D(2))]
    assert [s.yes_count_fp for s in h.ok(calls.get_settlements(subaccount=0))] == [D(1)]
    assert len(h.ok(calls.get_settlements())) == 2
    assert h.ok(calls.get_settlements(subaccount=5)).items == []


def test_settlements_filter_by_ticker_event_and_time(h: Harness) -> None:
    _trade_one(h, "btc")
    h.ok(
        calls.create_order_v2(
            order_request(ticker=C50, price="0.03", count="1", client_order_id="fed")
        )
    )
    for ticker in (T100K, C50):
        h.ex.determine_market(ticker, "no", START_MS)
    h.ex.settle_market(T100K, START_MS)
    h.ex.settle_market(C50, START_MS + 5_000)
    assert [s.ticker for s in h.ok(calls.get_settlements())] == [C50, T100K]
    assert [s.ticker for s in h.ok(calls.get_settlements(ticker=T100K))] == [T100K]
    assert h.ok(calls.get_settlements(ticker="NOPE")).items == []
    assert [s.ticker for s in h.ok(calls.get_settlements(event_ticker="KXFED-26JAN"))] == [C50]
    assert [s.ticker for s in h.ok(calls.get_settlements(min_ts=START_S))] == [C50]
    assert [s.ticker for s in h.ok(calls.get_settlements(max_ts=START_S + 5))] == [T100K]


def test_events_filter_by_status_tickers_and_close_time(h: Harness) -> None:
    def tickers(**query: Any) -> list[str]:
        return [e.event_ticker for e in h.ok(calls.get_events(**query))]

    assert tickers(status="open") == ["KXBTCD-26JAN3017", "KXFED-26JAN", "KXHIGHNY-26JAN30"]
    assert tickers(status="settled") == tickers(status="closed") == tickers(status="unopened") == []
    for ticker in [mk.ticker for mk in h.ex.markets.values() if mk.event_ticker == "KXFED-26JAN"]:
        h.ex.determine_market(ticker, "no", START_MS)
    assert tickers(status="closed") == ["KXFED-26JAN"]
    for ticker in [mk.ticker for mk in h.ex.markets.values() if mk.event_ticker == "KXFED-26JAN"]:
        h.ex.settle_market(ticker, START_MS)
    assert tickers(status="settled") == ["KXFED-26JAN"]
    assert tickers(status="open") == ["KXBTCD-26JAN3017", "KXHIGHNY-26JAN30"]
    btc = [mk for mk in h.ex.markets.values() if mk.event_ticker == "KXBTCD-26JAN3017"]
    for mk in btc:  # an event whose markets have not opened yet
        mk.status, mk.open_ms = "initialized", mk.close_ms - 1
    assert tickers(status="unopened") == ["KXBTCD-26JAN3017"]
    assert tickers(tickers="KXFED-26JAN,NOPE") == ["KXFED-26JAN"]
    last_close = max(mk.close_ms for mk in btc) // 1000
    assert "KXBTCD-26JAN3017" in tickers(min_close_ts=last_close - 1)
    assert "KXBTCD-26JAN3017" not in tickers(min_close_ts=last_close)
    assert len(tickers(min_updated_ts=START_S - 1)) == 3 and tickers(min_updated_ts=START_S) == []


def test_markets_filter_by_close_created_and_settled_time(h: Harness) -> None:
    closes = sorted({mk.close_ms // 1000 for mk in h.ex.markets.values()})
    first = closes[0]

    def count(**query: Any) -> int:
        return len(h.ok(calls.get_markets(**query)))

    assert count(max_close_ts=1) == 0
    assert count(max_close_ts=first) == 0
    early = sum(mk.close_ms // 1000 == first for mk in h.ex.markets.values())
    assert count(max_close_ts=first + 1) == early
    assert count(min_close_ts=first) == 12 - early
    assert count(min_close_ts=first - 1) == 12
    assert count(min_created_ts=START_S) == 0 and count(max_created_ts=START_S + 1) == 12
    assert count(min_settled_ts=0) == 0
    h.ex.determine_market(C50, "no", START_MS)
    h.ex.settle_market(C50, START_MS)
    assert [mk.ticker for mk in h.ok(calls.get_markets(min_settled_ts=START_S - 1))] == [C50]
    assert count(max_settled_ts=START_S) == 0 and count(max_settled_ts=START_S + 1) == 1
    # No market is multivariate; metadata changes with the status only.
    assert count(mve_filter="only") == 0 and count(mve_filter="exclude") == 12
    assert count(min_updated_ts=START_S - 1) == 12 and count(min_updated_ts=START_S) == 0
    h.ex.markets[C50].updated_ms = START_MS + 5_000
    assert [mk.ticker for mk in h.ok(calls.get_markets(min_updated_ts=START_S + 4))] == [C50]
    assert count(max_updated_ts=START_S + 4) == 11


def test_positions_count_filter(h: Harness) -> None:
    _trade_one(h, "buy")
    h.ok(
        calls.create_order_v2(
            order_request(side="ask", price="0.54", count="1", client_order_id="sell")
        )
    )  # flat again, but traded
    h.ok(
        calls.create_order_v2(
            order_request(ticker=C50, price="0.03", count="1", client_order_id="c")
        )
    )
    assert [p.ticker for p in h.ok(calls.get_positions())] == [T100K, C50]
    assert [p.ticker for p in h.ok(calls.get_positions(count_filter="position"))] == [C50]
    traded = h.ok(calls.get_positions(count_filter="total_traded"))
    assert [p.ticker for p in traded] == [T100K, C50]
    both = h.ok(calls.get_positions(count_filter="position, total_traded"))
    assert [p.ticker for p in both] == [T100K, C50]
    response = h.call(calls.get_positions(count_filter="volume"))
    assert (response.status, error(response)["code"]) == (400, "invalid_parameters")


def test_an_unknown_subaccount_reads_as_empty_everywhere(h: Harness) -> None:
    # GetBalance declares 200/401/500 only: it and GetPositions answer 200 with nothing held.
    balance = h.ok(calls.get_balance(subaccount=7))
    assert (balance.balance, balance.balance_dollars, balance.portfolio_value) == (0, 0, 0)
    assert h.ok(calls.get_positions(subaccount=7)).items == []
