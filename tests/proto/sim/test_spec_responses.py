"""The local exchange's RESPONSES against the merged trade-API spec (openapi.yaml plus overlay).

`tests/proto/rest/test_spec_conformance.py` checks the requests the SDK builds; this module
checks what `ExchangeApp` answers, with openapi-core's response unmarshalling:

* every modelled operation (all of `operations()` minus `NOT_MODELLED`) is driven to its success
  status over a seeded account (fills, a resting order, a settlement, subaccounts, an order
  group, a short position, closed and determined markets ...) and the answer must carry the
  spec's success status, ``application/json`` (or no body for a 204), and a JSON body the spec's
  schema accepts, with no keys the schema does not declare;
* representative refusals (unknown ticker, bad signature, invalid body, insufficient balance,
  duplicate client order id, not-modelled operation, ...) must have an ``ErrorResponse`` body,
  ``{code, message[, details]}`` with string values: checked directly always, and with
  openapi-core wherever the spec declares that status for the operation.

Requests are built and signed by the SDK's `RestCore`, as in `test_rest_app.py`, whose harness,
seed state and per-operation examples this module reuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.datastructures import Headers

from kalshi_proto.environments import BaseUrl, resolve_base_url
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import Operation, operation, operations
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce
from kalshi_proto.sim.rest import NOT_MODELLED, Faults
from kalshi_proto.sim.scenarios.default import START_MS
from tests.helpers.spec import schemas
from tests.proto.rest.test_spec_conformance import (
    SpecRequest,
    _describe,
    _openapi,
    _spec,
    _spec_operations,
)
from tests.proto.sim import test_rest_app as rest_app
from tests.proto.sim.test_rest_app import (
    C50,
    EXAMPLES,
    HOLD,
    PREFIX,
    T100K,
    WALL,
    Harness,
    Keys,
    State,
    order_request,
    seed_state,
)

keys = rest_app.keys  # the module fixture: an RSA trader and an Ed25519 trader
D = Decimal
START_S = START_MS // 1000
T95K = "KXBTCD-26JAN3017-T95000"  # bids 0.77/0.76/0.75
T110K = "KXBTCD-26JAN3017-T110000"
C25 = "KXFED-26JAN-C25"  # asks 0.15/0.16/0.17
H25 = "KXFED-26JAN-H25"
B31 = "KXHIGHNY-26JAN30-B31"  # a deci-cent market
REF = "#/components/schemas/"
BASE: BaseUrl = resolve_base_url()  # an origin the spec's ``servers`` list

MODELLED = sorted(op.operation_id for op in operations() if op.operation_id not in NOT_MODELLED)


# ---- openapi-core's response protocol --------------------------------------------------------


@dataclass(frozen=True)
class SpecResponse:
    """openapi-core's response protocol over an `HttpResponse`."""

    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None

    @classmethod
    def from_http(cls, response: HttpResponse) -> SpecResponse:
        headers = Headers(list(response.headers))
        return cls(
            status_code=response.status,
            content_type=(headers.get("Content-Type") or "").lower(),
            headers=headers,
            data=response.body or None,
        )


def _spec_errors(op: Operation, request: HttpRequest, response: HttpResponse) -> list[Exception]:
    """What openapi-core finds wrong with ``response`` as the answer to ``request``."""
    spec_request = SpecRequest.from_http(request, BASE)
    api = _openapi()
    found = APICallPathFinder(api.spec).find(spec_request.method, spec_request.full_url)
    with (found.operation / "operationId").open() as operation_id:  # (any jsonschema-path)
        assert operation_id == op.operation_id
    result = api.unmarshal_response(spec_request, SpecResponse.from_http(response))
    return list(result.errors)


def _declared(op: Operation, status: int) -> dict[str, Any] | None:
    """The spec's response object for ``status`` (component refs resolved), None if undeclared."""
    responses: dict[str, Any] = _spec_operations()[op.operation_id].node["responses"]
    found = responses.get(str(status))
    if found is None:
        return None
    ref = found.get("$ref")
    if ref is not None:
        found = _spec()["components"]["responses"][ref.rsplit("/", 1)[-1]]
    assert isinstance(found, dict)
    return found


def _body_schema(declared: dict[str, Any]) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = (
        declared.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schemas()[node["$ref"].removeprefix(REF)]
    return node


#: Fixed-point strings as the spec's descriptions promise them in responses: counts "always
#: emit 2 decimals", dollars "emit up to 6".
_FIXED_POINT = {
    "FixedPointCount": re.compile(r"-?[0-9]+\.[0-9]{2}"),
    "FixedPointDollars": re.compile(r"-?[0-9]+(\.[0-9]{1,6})?"),
}


def _shape_problems(node: dict[str, Any], value: object, where: str) -> list[str]:
    """What the spec says about ``value`` that openapi-core does not check.

    * object keys that its schema neither lists nor allows as extra properties (OpenAPI allows
      them by default; this catches a misspelt or invented field name, which the SDK's models
      would silently keep in ``model_extra``);
    * ``FixedPointCount`` / ``FixedPointDollars`` strings (and the ``[dollars, count]`` pairs of
      ``PriceLevelDollarsCountFp``) not in the format the descriptions promise.
    """
    name = node.get("$ref", "").removeprefix(REF)
    if name in _FIXED_POINT:
        ok = isinstance(value, str) and _FIXED_POINT[name].fullmatch(value) is not None
        return [] if ok else [f"{where}: {value!r} is not a {name} string"]
    if name == "PriceLevelDollarsCountFp" and isinstance(value, list) and len(value) == 2:
        return [
            *_shape_problems({"$ref": REF + "FixedPointDollars"}, value[0], f"{where}[0]"),
            *_shape_problems({"$ref": REF + "FixedPointCount"}, value[1], f"{where}[1]"),
        ]
    node = _resolve(node)
    parts = [_resolve(p) for p in node.get("allOf", [])]
    if len(parts) == 1 and "$ref" in node["allOf"][0]:
        return _shape_problems(node["allOf"][0], value, where)
    if isinstance(value, list):
        items = next((n["items"] for n in [node, *parts] if "items" in n), None)
        if items is None:
            return []
        return [k for i, v in enumerate(value) for k in _shape_problems(items, v, f"{where}[{i}]")]
    if not isinstance(value, dict):
        return []
    props: dict[str, Any] = {}
    extra: object = None
    for n in [node, *parts]:
        props.update(n.get("properties") or {})
        extra = extra or n.get("additionalProperties")
    out: list[str] = []
    for key, item in value.items():
        if key in props:
            out += _shape_problems(props[key], item, f"{where}.{key}")
        elif isinstance(extra, dict):
            out += _shape_problems(extra, item, f"{where}.{key}")
        elif not extra:
            out.append(f"{where}.{key}: not in the schema")
    return out


# ---- a richer account ------------------------------------------------------------------------


def _place(
    h: Harness, ticker: str, side: Side, price: str, count: int, client_order_id: str, **extra: Any
) -> str:
    kwargs: dict[str, Any] = {"tif": TimeInForce.GTC, "stp": StpMode.TAKER_AT_CROSS} | extra
    result = h.ex.place_order(
        "trader",
        ticker=ticker,
        side=side,
        price=D(price),
        count=D(count),
        client_order_id=client_order_id,
        wall_ms=START_MS,
        **kwargs,
    )
    return result.order.order_id


def rich_state(h: Harness) -> State:
    """`seed_state` plus the rarer shapes: a short position, a NO settlement, an order in a group
    with an expiry, a cancelled order, subaccount money and orders, and markets in every state."""
    state = seed_state(h)
    ex = h.ex
    ioc = {"tif": TimeInForce.IOC}
    _place(h, T95K, Side.ASK, "0.77", 3, "r-short", **ioc)  # sells YES it does not hold
    _place(h, C25, Side.BID, "0.15", 4, "r-c25", **ioc)
    ex.determine_market(C25, "no", START_MS)
    ex.settle_market(C25, START_MS)
    _place(
        h,
        T100K,
        Side.BID,
        "0.50",
        2,
        "r-group",
        order_group_id=state.group_id,
        expiration_s=START_S + 86_400,
        cancel_order_on_pause=True,
    )
    cancelled = _place(h, T100K, Side.ASK, "0.60", 1, "r-cancel")
    ex.cancel_order("trader", cancelled, START_MS)
    _place(h, B31, Side.BID, "0.171", 3, "r-deci")
    ex.transfer("trader", 0, 1, D(100), transfer_id="r-tr", wall_ms=START_MS)
    _place(h, T95K, Side.BID, "0.78", 2, "r-sub", subaccount=1, **ioc)
    _place(h, T95K, Side.BID, "0.70", 2, "r-sub-rest", subaccount=1)
    ex.close_market(H25, START_MS)
    ex.determine_market(T110K, "yes", START_MS)
    return state


Example = Callable[[State], Call[Any]]

#: More answers per operation, beyond `EXAMPLES`: other filters, empty and partial results.
EXTRA: dict[str, list[Example]] = {
    "GetMarkets": [lambda s: calls.get_markets(limit=1000), lambda s: calls.get_markets(limit=2)],
    "GetMarket": [lambda s: calls.get_market(C50), lambda s: calls.get_market(H25)],
    "GetEvents": [lambda s: calls.get_events(limit=1)],
    "GetEvent": [lambda s: calls.get_event("KXBTCD-26JAN3017")],
    "GetTrades": [lambda s: calls.get_trades(), lambda s: calls.get_trades(limit=1)],
    "GetMarketOrderbook": [
        lambda s: calls.get_market_orderbook(H25),
        lambda s: calls.get_market_orderbook(B31),
    ],
    "GetMarketCandlesticks": [
        lambda s: calls.get_market_candlesticks(
            "KXBTCD", T95K, start_ts=START_S - 86_400, end_ts=START_S + 86_400, period_interval=1440
        ),
        lambda s: calls.get_market_candlesticks(
            "KXFED", HOLD, start_ts=START_S, end_ts=START_S + 60, period_interval=60
        ),
    ],
    "GetSeriesList": [lambda s: calls.get_series_list(category="Crypto")],
    "GetOrders": [
        lambda s: calls.get_orders(status="canceled"),
        lambda s: calls.get_orders(subaccount=1),
        lambda s: calls.get_orders(limit=1),
    ],
    "GetOrder": [lambda s: calls.get_order(s.filled_order_id)],
    "GetOrderQueuePosition": [lambda s: calls.get_order_queue_position(s.filled_order_id)],
    "GetOrderQueuePositions": [lambda s: calls.get_order_queue_positions(market_tickers=HOLD)],
    "CreateOrderV2": [
        lambda s: calls.create_order_v2(order_request(price="0.40", client_order_id="rest")),
        lambda s: calls.create_order_v2(
            order_request(side="ask", price="0.53", count="150", client_order_id="sell")
        ),
        lambda s: calls.create_order_v2(
            order_request(
                ticker=B31,
                price="0.172",
                count="2.5",
                client_order_id="deci",
                post_only=True,
                order_group_id=s.group_id,
                expiration_time=START_S + 3600,
            )
        ),
    ],
    "BatchCreateOrdersV2": [
        lambda s: calls.batch_create_orders_v2(
            m.BatchCreateOrdersV2Request(
                orders=[
                    order_request(client_order_id="e-1", ticker="NOPE"),
                    order_request(client_order_id="e-2", count="100000"),
                    order_request(client_order_id="s-1"),  # seed_state used it
                ]
            )
        )
    ],
    "BatchCancelOrdersV2": [
        lambda s: calls.batch_cancel_orders_v2(
            m.BatchCancelOrdersV2Request(
                orders=[
                    m.BatchCancelOrdersV2RequestOrdersItem(order_id="missing"),
                    m.BatchCancelOrdersV2RequestOrdersItem(order_id=s.filled_order_id),
                ]
            )
        )
    ],
    "CancelAllOrders": [lambda s: calls.cancel_all_orders(subaccount=1)],
    "AmendOrderV2": [
        lambda s: calls.amend_order_v2(
            s.order_id,
            m.AmendOrderV2Request(
                ticker=T100K,
                side="bid",
                price=D("0.53"),
                count=D(10),
                updated_client_order_id="renamed",
            ),
        )
    ],
    "DecreaseOrderV2": [
        lambda s: calls.decrease_order_v2(s.order_id, m.DecreaseOrderV2Request(reduce_to=D(0)))
    ],
    "CreateOrderGroup": [
        lambda s: calls.create_order_group(
            m.CreateOrderGroupRequest(contracts_limit_fp=D("2.5"), subaccount=1)
        )
    ],
    "GetBalance": [lambda s: calls.get_balance(subaccount=1)],
    "GetPositions": [
        lambda s: calls.get_positions(),
        lambda s: calls.get_positions(settlement_status="settled"),
        lambda s: calls.get_positions(subaccount=1),
        lambda s: calls.get_positions(settlement_status="all", limit=1),
    ],
    "GetSettlements": [lambda s: calls.get_settlements(limit=1)],
    "GetFills": [lambda s: calls.get_fills(limit=1), lambda s: calls.get_fills(ticker=T95K)],
    "GetSubaccountTransfers": [lambda s: calls.get_subaccount_transfers(limit=1)],
}


def _examples(operation_id: str) -> list[Example]:
    return [EXAMPLES[operation_id], *EXTRA.get(operation_id, [])]


# ---- successes -------------------------------------------------------------------------------


def _check_success(op: Operation, request: HttpRequest, response: HttpResponse) -> None:
    """The answer carries the spec's success status, media type and an accepted JSON body."""
    declared = _declared(op, response.status)
    assert 200 <= response.status < 300 and response.status == op.success_status, response.body
    assert declared is not None, f"{op.operation_id} does not declare {response.status}"
    schema = _body_schema(declared)
    if schema is None:  # 204
        assert response.body == b""
    else:
        assert response.header("content-type") == "application/json"
        body = json.loads(response.body)
        assert isinstance(body, dict)
        assert _shape_problems(schema, body, op.operation_id) == []
    errors = _spec_errors(op, request, response)
    assert not errors, f"{op.operation_id}:\n{_describe(errors)}"


def _answer(
    h: Harness, example: Example, state: State
) -> tuple[Operation, HttpRequest, HttpResponse]:
    call = example(state)
    request = h.request(call)
    return call.operation, request, h.send(request)


KNOWN: dict[str, str] = {}


def _success_params() -> list[Any]:
    return [
        pytest.param(
            op_id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN[op_id])] if op_id in KNOWN else [],
            id=op_id,
        )
        for op_id in MODELLED
    ]


SUCCESS_PARAMS = _success_params()


def test_every_modelled_operation_is_checked() -> None:
    ids = {op.operation_id for op in operations()}
    assert {p.values[0] for p in SUCCESS_PARAMS} == ids - NOT_MODELLED == set(EXAMPLES)
    assert set(EXTRA) <= set(MODELLED) and set(KNOWN) <= set(MODELLED)
    assert len(MODELLED) == len(SUCCESS_PARAMS) == 46


@pytest.mark.parametrize("operation_id", SUCCESS_PARAMS)
def test_success_response_matches_the_spec(keys: Keys, operation_id: str) -> None:
    for example in _examples(operation_id):
        h = Harness(keys)
        op, request, response = _answer(h, example, rich_state(h))
        assert op is operation(operation_id)
        _check_success(op, request, response)


@pytest.mark.parametrize("operation_id", ["GetSeries", "GetSeriesList"])
def test_series_send_fee_multiplier_as_a_json_number(keys: Keys, operation_id: str) -> None:
    """``Series.fee_multiplier`` is ``type: number``: it goes out as a JSON number, not a string."""
    for example in _examples(operation_id):
        h = Harness(keys)
        op, request, response = _answer(h, example, rich_state(h))
        body = json.loads(response.body)
        series = body["series"] if isinstance(body["series"], list) else [body["series"]]
        assert series and all(isinstance(s["fee_multiplier"], int | float) for s in series)
        _check_success(op, request, response)


def test_the_checks_catch_a_broken_answer(keys: Keys) -> None:
    """Neither openapi-core nor `_shape_problems` passes a real answer that has been broken."""
    h = Harness(keys)
    request = h.request(calls.get_market(T100K))
    response = h.send(request)
    op = operation("GetMarket")
    assert not _spec_errors(op, request, response)
    breakages: list[Callable[[dict[str, Any]], object]] = [
        lambda mk: mk.pop("result"),  # required
        lambda mk: mk.update(status="open"),  # not in the enum
        lambda mk: mk.update(created_time="yesterday"),  # not a date-time
        lambda mk: mk.update(settlement_timer_seconds="0"),  # not an integer
        lambda mk: mk.update(volume_fp=10),  # not a string
    ]
    for breakage in breakages:
        body = json.loads(response.body)
        breakage(body["market"])
        broken = HttpResponse(200, response.headers, json.dumps(body).encode())
        assert _spec_errors(op, request, broken), body
    body = json.loads(response.body)
    body["market"] |= {"volume_fp": "10", "yes_bid_dollars": "1E+1", "yes_bid_sizefp": "1.00"}
    assert _shape_problems({"$ref": REF + "GetMarketResponse"}, body, "") == [
        ".market.yes_bid_dollars: '1E+1' is not a FixedPointDollars string",
        ".market.volume_fp: '10' is not a FixedPointCount string",
        ".market.yes_bid_sizefp: not in the schema",
    ]
    book = json.loads(h.call(calls.get_market_orderbook(T100K)).body)
    book["orderbook_fp"]["yes_dollars"][0][1] = "300"
    assert _shape_problems({"$ref": REF + "GetMarketOrderbookResponse"}, book, "") == [
        ".orderbook_fp.yes_dollars[0][1]: '300' is not a FixedPointCount string"
    ]


def test_the_rich_state_reaches_the_rarer_shapes(keys: Keys) -> None:
    """The answers above include what a bare seed would not: every market state, a short, a
    NO settlement, cancelled and grouped orders, and subaccount activity."""
    h = Harness(keys)
    rich_state(h)
    markets = json.loads(h.call(calls.get_markets(limit=1000)).body)["markets"]
    assert {mk["status"] for mk in markets} == {"active", "closed", "determined", "finalized"}
    assert {mk["result"] for mk in markets} == {"", "yes", "no"}
    positions = json.loads(h.call(calls.get_positions(settlement_status="all")).body)
    assert any(D(p["position_fp"]) < 0 for p in positions["market_positions"])
    settlements = json.loads(h.call(calls.get_settlements()).body)["settlements"]
    assert {s["market_result"] for s in settlements} == {"yes", "no"}
    orders = json.loads(h.call(calls.get_orders()).body)["orders"]
    assert {o["status"] for o in orders} >= {"resting", "canceled", "executed"}
    assert any("order_group_id" in o and "expiration_time" in o for o in orders)
    assert json.loads(h.call(calls.get_subaccount_transfers()).body)["transfers"]
    assert json.loads(h.call(calls.get_orders(subaccount=1)).body)["orders"]


# ---- refusals --------------------------------------------------------------------------------


def _error_shape(response: HttpResponse) -> dict[str, Any]:
    """The body is ``{code, message[, details]}`` with string values."""
    assert response.header("content-type") == "application/json"
    payload = json.loads(response.body)
    assert isinstance(payload, dict)
    assert set(payload) in ({"code", "message"}, {"code", "message", "details"}), payload
    assert all(isinstance(v, str) and v for v in payload.values()), payload
    return payload


@dataclass(frozen=True)
class Refusal:
    operation_id: str
    status: int
    code: str
    send: Callable[[Harness], tuple[HttpRequest, HttpResponse]]
    #: how the spec covers (operation, status): "schema" (an ErrorResponse body), "status"
    #: (declared without a body) or "undeclared"
    spec: str


def _via(call: Call[Any]) -> Callable[[Harness], tuple[HttpRequest, HttpResponse]]:
    def send(h: Harness) -> tuple[HttpRequest, HttpResponse]:
        request = h.request(call)
        return request, h.send(request)

    return send


def _signed(
    method: str, target: str, body: bytes = b""
) -> Callable[[Harness], tuple[HttpRequest, HttpResponse]]:
    def send(h: Harness) -> tuple[HttpRequest, HttpResponse]:
        headers = h.keys.ed_credentials.headers(method, target, WALL)
        if body:
            headers = (*headers, ("Content-Type", "application/json"))
        request = HttpRequest(method, target, tuple(headers), body)
        return request, h.send(request)

    return send


def _bad_signature(h: Harness) -> tuple[HttpRequest, HttpResponse]:
    signed = h.request(calls.get_balance())
    headers = tuple(
        (k, "A" * 344 if k.lower() == "kalshi-access-signature" else v) for k, v in signed.headers
    )
    request = HttpRequest(signed.method, signed.target, headers, signed.body)
    return request, h.send(request)


def _unsigned(method: str, target: str) -> Callable[[Harness], tuple[HttpRequest, HttpResponse]]:
    def send(h: Harness) -> tuple[HttpRequest, HttpResponse]:
        request = HttpRequest(method, target, (), b"")
        return request, h.send(request)

    return send


def _duplicate(h: Harness) -> tuple[HttpRequest, HttpResponse]:
    assert h.call(calls.create_order_v2(order_request(client_order_id="dup"))).status == 201
    return _via(calls.create_order_v2(order_request(client_order_id="dup", price="0.51")))(h)


def _not_resting(h: Harness) -> tuple[HttpRequest, HttpResponse]:
    state = seed_state(h)
    return _via(calls.cancel_order_v2(state.filled_order_id))(h)


REFUSALS: dict[str, Refusal] = {
    "unknown-ticker-orderbook": Refusal(
        "GetMarketOrderbook",
        404,
        "market_not_found",
        _via(calls.get_market_orderbook("NOPE")),
        "schema",
    ),
    "unknown-ticker-market": Refusal(
        "GetMarket", 404, "market_not_found", _via(calls.get_market("NOPE")), "status"
    ),
    "unknown-order": Refusal(
        "GetOrder", 404, "order_not_found", _via(calls.get_order("missing")), "schema"
    ),
    "bad-signature": Refusal("GetBalance", 401, "invalid_signature", _bad_signature, "schema"),
    "missing-auth": Refusal(
        "GetOrders",
        401,
        "missing_authentication",
        _unsigned("GET", PREFIX + "/portfolio/orders"),
        "schema",
    ),
    "invalid-body": Refusal(
        "CreateOrderV2",
        400,
        "invalid_parameters",
        _signed("POST", PREFIX + "/portfolio/events/orders", b'{"ticker":"T"}'),
        "schema",
    ),
    "invalid-query": Refusal(
        "GetMarkets",
        400,
        "invalid_parameters",
        _signed("GET", PREFIX + "/markets?limit=abc"),
        "status",
    ),
    "insufficient-balance": Refusal(
        "CreateOrderV2",
        400,
        "insufficient_balance",
        _via(calls.create_order_v2(order_request(count="100000"))),
        "schema",
    ),
    "duplicate-client-order-id": Refusal(
        "CreateOrderV2", 409, "duplicate_client_order_id", _duplicate, "schema"
    ),
    "cancel-not-resting": Refusal(
        "CancelOrderV2", 404, "order_not_resting", _not_resting, "schema"
    ),
    "not-modelled-public": Refusal(
        "GetHistoricalCutoff",
        501,
        "not_implemented",
        _unsigned("GET", PREFIX + "/historical/cutoff"),
        "undeclared",
    ),
    "not-modelled-private": Refusal(
        "GetCommunicationsID",
        501,
        "not_implemented",
        _signed("GET", PREFIX + "/communications/id"),
        "undeclared",
    ),
}


def test_refusal_cases_name_real_operations() -> None:
    for refusal in REFUSALS.values():
        op = operation(refusal.operation_id)
        modelled = refusal.operation_id not in NOT_MODELLED
        assert modelled is (refusal.status != 501), refusal.operation_id
        declared = _declared(op, refusal.status)
        coverage = (
            "undeclared"
            if declared is None
            else "status"
            if _body_schema(declared) is None
            else "schema"
        )
        assert coverage == refusal.spec, refusal.operation_id
        if declared is not None:
            body = _body_schema(declared)
            assert body is None or body == {"$ref": REF + "ErrorResponse"}
    assert sum(r.spec == "schema" for r in REFUSALS.values()) >= 7


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_is_an_error_response(keys: Keys, case: str) -> None:
    refusal = REFUSALS[case]
    op = operation(refusal.operation_id)
    h = Harness(keys)
    request, response = refusal.send(h)
    assert response.status == refusal.status, response.body
    payload = _error_shape(response)
    assert payload["code"] == refusal.code
    errors = _spec_errors(op, request, response)
    if refusal.spec == "undeclared":
        # No response object to check against (501 is never declared): the shape check above
        # is the whole check, and openapi-core says so.
        assert [type(e) for e in errors] == [ResponseNotFound], _describe(errors)
    else:
        assert not errors, f"{case}:\n{_describe(errors)}"


def test_a_refusal_with_details_validates(keys: Keys) -> None:
    """``details`` appears (only) on body refusals, and the spec's ErrorResponse accepts it."""
    h = Harness(keys)
    request, response = REFUSALS["invalid-body"].send(h)
    assert "side: Field required" in _error_shape(response)["details"]
    assert not _spec_errors(operation("CreateOrderV2"), request, response)


# ---- injected faults -------------------------------------------------------------------------


def _faulty(keys: Keys, faults: Faults) -> tuple[HttpRequest, HttpResponse]:
    h = Harness(keys, faults=faults, rng=lambda: 0.0)
    request = h.request(calls.create_order_v2(order_request()))
    return request, h.send(request)


def test_an_injected_5xx_is_an_error_response(keys: Keys) -> None:
    request, response = _faulty(keys, Faults(error_share=1.0))
    assert response.status == 503
    assert _error_shape(response)["code"] == "service_unavailable"
    assert not _spec_errors(operation("CreateOrderV2"), request, response)


def test_an_injected_429_sends_its_documented_body_not_an_error_response(keys: Keys) -> None:
    """`Faults` documents its 429 body as ``{"error": "too many requests"}``. CreateOrderV2
    declares 429 with an ErrorResponse body; openapi-core accepts this one only because
    ErrorResponse requires no property. It has none of ``code`` / ``message``."""
    request, response = _faulty(keys, Faults(rate_limit_share=1.0, retry_after=1.0))
    assert response.status == 429 and response.header("retry-after") == "1"
    body = json.loads(response.body)
    assert body == {"error": "too many requests"}
    assert not _spec_errors(operation("CreateOrderV2"), request, response)
    assert _shape_problems({"$ref": REF + "ErrorResponse"}, body, "") == [
        ".error: not in the schema"
    ]
