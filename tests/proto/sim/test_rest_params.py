"""The query parameters of every operation the local exchange serves, checked against the spec.

Each list operation pages with its own bounds and default, as the spec declares them for its
page-size parameter; and every query parameter of every served operation is either looked up by
its handler or listed, with a reason, in `QUERY_PARAMETERS_WITHOUT_EFFECT`. The operations,
parameters and numbers are read from the merged spec here, not from a list in the test, so a spec
change that the exchange does not follow fails.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.operation_table import Operation, operation
from kalshi_proto.sim.exchange import EventState, MarketState, SeriesState
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce
from kalshi_proto.sim.rest import (
    NOT_MODELLED,
    QUERY_PARAMETERS_WITHOUT_EFFECT,
    ExchangeApp,
)
from kalshi_proto.sim.scenarios.default import START_MS
from tests.helpers.spec import load_spec
from tests.proto.sim import test_rest_app as rest_app
from tests.proto.sim.test_rest_app import PREFIX, T100K, Harness, Keys, error

keys = rest_app.keys  # the module fixture: an RSA trader and an Ed25519 trader
h = rest_app.h  # a fresh app over the default scenario per test
D = Decimal
DAY_MS = 86_400_000


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def spec_query_params() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operationId, method, path, resolved parameter) for every query parameter in the spec."""
    spec = load_spec()
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            for raw in [*shared, *op.get("parameters", [])]:
                param = _resolve(spec, raw)
                if param.get("in") == "query":
                    yield op["operationId"], method.upper(), path, param


@dataclass(frozen=True)
class PageSize:
    operation_id: str
    path: str
    name: str  #: the page-size parameter (``limit``; ``page_size`` on some operations)
    minimum: int
    maximum: int
    default: int


#: Lists the exchange serves that hold nothing, ever (no fee change is scheduled): their page
#: bounds are tested in test_rest_app.py, as no crowd fills their pages.
EMPTY_LISTS = frozenset({"GetEventFeeChanges"})


def spec_page_sizes() -> list[PageSize]:
    """The page-size parameter of every list operation the exchange serves and can fill, from
    the spec."""
    rows = []
    for op_id, method, path, param in spec_query_params():
        if (
            op_id in NOT_MODELLED
            or op_id in EMPTY_LISTS
            or param["name"] not in ("limit", "page_size")
        ):
            continue
        assert method == "GET"
        schema = param["schema"]
        rows.append(
            PageSize(
                op_id, path, param["name"], schema["minimum"], schema["maximum"], schema["default"]
            )
        )
    return rows


PAGE_SIZES = spec_page_sizes()

#: More of everything than the largest default page, so a default page is always full.
CROWD = max(row.default for row in PAGE_SIZES) + 1
#: Query parameters a listing needs to show the whole crowd (positions of settled markets).
SHOW_ALL = {"GetPositions": "settlement_status=all"}


@pytest.fixture(scope="module")
def crowded(keys: Keys) -> Harness:
    """The default scenario plus CROWD events, markets, trades, orders, fills, positions,
    settlements and transfers of the Ed25519 trader (the one `Harness.signed_raw` signs as)."""
    h = Harness(keys)
    ex = h.ex
    ex.add_series(SeriesState("KXCROWD", "Crowd", "Test"))
    for n in range(CROWD):
        event = f"KXCROWD-{n:03d}"
        ex.add_event(EventState(event, "KXCROWD", f"Crowd {n}"))
        ticker = f"{event}-M"
        ex.add_market(
            MarketState(
                ticker, event, f"Crowd {n}", "Yes", "No", START_MS, START_MS + DAY_MS, START_MS
            )
        )
        for user, side, tif in (
            ("mm", Side.ASK, TimeInForce.GTC),
            ("edtrader", Side.BID, TimeInForce.IOC),
        ):
            ex.place_order(
                user,
                ticker=ticker,
                side=side,
                price=D("0.50"),
                count=D(1),
                tif=tif,
                stp=StpMode.TAKER_AT_CROSS,
                client_order_id=f"crowd-{n}",
                wall_ms=START_MS,
            )
        ex.determine_market(ticker, "yes", START_MS)
        ex.settle_market(ticker, START_MS)
    sub = ex.create_subaccount("edtrader")
    for n in range(CROWD):
        ex.transfer("edtrader", 0, sub, D("0.01"), transfer_id=f"crowd-{n}", wall_ms=START_MS)
    return h


def _list(h: Harness, row: PageSize, limit: int | None) -> tuple[int, dict[str, Any]]:
    query = [SHOW_ALL[row.operation_id]] if row.operation_id in SHOW_ALL else []
    if limit is not None:
        query.append(f"{row.name}={limit}")
    response = h.signed_raw("GET", f"{PREFIX}{row.path}?{'&'.join(query)}")
    payload = json.loads(response.body)
    assert isinstance(payload, dict)
    return response.status, payload


def _items(row: PageSize, payload: dict[str, Any]) -> list[Any]:
    pagination = operation(row.operation_id).pagination
    assert pagination is not None
    items = payload[pagination.items_field]
    assert isinstance(items, list)
    return items


def test_every_served_list_has_the_spec_default_page_size() -> None:
    # Also keeps the parametrised test below from passing by finding nothing.
    assert len(PAGE_SIZES) == 8
    for row in PAGE_SIZES:
        assert operation(row.operation_id).param(row.name).default == row.default  # the table's


@pytest.mark.parametrize("row", PAGE_SIZES, ids=lambda row: row.operation_id)
def test_each_list_pages_with_the_spec_bounds_and_default(crowded: Harness, row: PageSize) -> None:
    status, payload = _list(crowded, row, None)
    assert status == 200, payload
    assert len(_items(row, payload)) == row.default
    assert payload["cursor"]  # there is more
    status, payload = _list(crowded, row, row.maximum)
    assert status == 200, payload
    # The whole list (the crowd and the scenario's own items), or a full page of the maximum.
    full = len(_items(row, payload))
    assert full == row.maximum if payload["cursor"] else CROWD <= full < row.maximum
    status, payload = _list(crowded, row, row.minimum)
    assert status == 200, payload
    # A minimum of 0 (GetMarkets, GetTrades) asks for the default page: their validate tag is
    # omitempty, so a zero counts as not given.
    assert len(_items(row, payload)) == (row.minimum or row.default)
    bounds = f"{row.name} must be between {row.minimum} and {row.maximum}"
    for refused in (row.maximum + 1, row.minimum - 1):
        status, payload = _list(crowded, row, refused)
        assert (status, payload["code"], payload["message"]) == (400, "invalid_parameters", bounds)


def test_a_list_refuses_a_page_size_below_its_minimum(crowded: Harness) -> None:
    # GetEvents starts at 1: 0 is refused there, where GetMarkets takes it as the default.
    response = crowded.signed_raw("GET", f"{PREFIX}/events?limit=0")
    assert (response.status, error(response)["message"]) == (400, "limit must be between 1 and 200")
    response = crowded.signed_raw("GET", f"{PREFIX}/markets?limit=0")
    assert response.status == 200 and len(json.loads(response.body)["markets"]) == 100


# ---- no query parameter is ignored silently -------------------------------------------------


class _ReadRecorder(dict[str, Any]):
    """The parsed arguments of a request, noting every name a handler looks up."""

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__(args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def _sample(param: dict[str, Any]) -> str:
    # A value the parameter's schema accepts (the handler must get to run and look).
    schema = param.get("schema", {})
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "boolean":
        return "true"
    if schema.get("type") == "integer" or "$ref" in schema:  # ExchangeIndex is an integer
        return "0"
    return "x"


SERVED_QUERY_PARAMS = sorted(
    (op_id, param["name"], _sample(param))
    for op_id, _, _, param in spec_query_params()
    if op_id not in NOT_MODELLED
)


def test_the_table_of_parameters_without_effect_names_only_served_spec_parameters() -> None:
    assert set(QUERY_PARAMETERS_WITHOUT_EFFECT) <= {
        (op_id, name) for op_id, name, _ in SERVED_QUERY_PARAMS
    }
    assert all(reason for reason in QUERY_PARAMETERS_WITHOUT_EFFECT.values())


@pytest.mark.parametrize(
    ("operation_id", "name", "value"),
    SERVED_QUERY_PARAMS,
    ids=[f"{o}-{n}" for o, n, _ in SERVED_QUERY_PARAMS],
)
def test_every_query_parameter_is_read_or_listed_as_without_effect(
    h: Harness, monkeypatch: pytest.MonkeyPatch, operation_id: str, name: str, value: str
) -> None:
    # The operation's example request from test_rest_app, with the parameter set; the handler
    # either looks the parameter up or the table says why it does not.
    parse = ExchangeApp._arguments
    recorded: list[_ReadRecorder] = []

    def recording(op: Operation, path_args: dict[str, str], query_text: str) -> dict[str, Any]:
        recorded.append(_ReadRecorder(parse(op, path_args, query_text)))
        return recorded[-1]

    monkeypatch.setattr(ExchangeApp, "_arguments", staticmethod(recording))
    call = rest_app.EXAMPLES[operation_id](rest_app.seed_state(h))
    query = (*((k, v) for k, v in call.query if k != name), (name, value))
    response = h.call(dataclasses.replace(call, query=query))
    assert response.status < 500, response.body
    [args] = recorded
    listed = (operation_id, name) in QUERY_PARAMETERS_WITHOUT_EFFECT
    assert (name in args.read) != listed, (
        f"{operation_id} {'reads' if listed else 'ignores'} {name}: "
        f"{'drop it from' if listed else 'apply it or add it to'} QUERY_PARAMETERS_WITHOUT_EFFECT"
    )


# ---- the parameters the exchange applies ----------------------------------------------------


def test_exchange_index_filters_lists_and_scopes_the_balance(h: Harness) -> None:
    # Everything lives on shard 0: filtering by it changes nothing, by another finds nothing.
    rest_app.seed_state(h)
    for listing in (calls.get_orders, calls.get_fills, calls.get_positions):
        everything = [item.model_dump() for item in h.ok(listing())]
        assert everything
        assert [item.model_dump() for item in h.ok(listing(exchange_index=0))] == everything
        assert len(h.ok(listing(exchange_index=1))) == 0
    whole = h.ok(calls.get_balance())
    assert h.ok(calls.get_balance(exchange_index=0)) == whole
    other = h.ok(calls.get_balance(exchange_index=1))
    assert (whole.balance_dollars > 0, whole.portfolio_value > 0) == (True, True)
    assert (other.balance, other.balance_dollars, other.portfolio_value) == (0, 0, 0)
    assert other.balance_breakdown == whole.balance_breakdown  # every shard, whatever the scope


def test_queue_positions_read_subaccount_0_unless_told(h: Harness) -> None:
    state = rest_app.seed_state(h)
    h.ex.transfer("trader", 0, 1, D(100), transfer_id="fund", wall_ms=START_MS)
    other = h.ex.place_order(
        "trader",
        ticker=T100K,
        side=Side.BID,
        price=D("0.53"),
        count=D(3),
        tif=TimeInForce.GTC,
        stp=StpMode.TAKER_AT_CROSS,
        client_order_id="sub-1",
        wall_ms=START_MS,
        subaccount=1,
    ).order
    # The spec: "Subaccount number (0 for primary, 1-63 for subaccounts). Defaults to 0."
    assert [r.order_id for r in h.ok(calls.get_order_queue_positions()).queue_positions] == [
        state.order_id
    ]
    rows = h.ok(calls.get_order_queue_positions(subaccount=1)).queue_positions
    assert [r.order_id for r in rows] == [other.order_id]


def test_order_groups_filter_by_subaccount(h: Harness) -> None:
    state = rest_app.seed_state(h)  # a group in subaccount 0, and subaccount 1
    second = h.ex.create_order_group("trader", D(5), START_MS, 1)
    # Both operations: "If omitted, defaults to all subaccounts."
    assert [g.id for g in h.ok(calls.get_order_groups()).order_groups] == [
        state.group_id,
        second.order_group_id,
    ]
    assert [g.id for g in h.ok(calls.get_order_groups(subaccount=1)).order_groups] == [
        second.order_group_id
    ]
    assert h.ok(calls.get_order_group(second.order_group_id, subaccount=1)).contracts_limit_fp == 5
    assert h.ok(calls.get_order_group(second.order_group_id)).contracts_limit_fp == 5
    response = h.call(calls.get_order_group(second.order_group_id, subaccount=0))
    assert (response.status, error(response)["code"]) == (404, "order_group_not_found")


def test_series_volume_and_updated_filter(h: Harness) -> None:
    rest_app.seed_state(h)  # 5 contracts traded on KXBTCD, 2 on KXFED (C50)
    assert h.ok(calls.get_series("KXBTCD")).series.volume_fp is None
    assert h.ok(calls.get_series("KXBTCD", include_volume=True)).series.volume_fp == D(5)
    listed = h.ok(calls.get_series_list(include_volume=True)).series
    assert [(s.ticker, s.volume_fp) for s in listed] == [
        ("KXBTCD", D(5)),
        ("KXFED", D(2)),
        ("KXHIGHNY", D(0)),
    ]
    assert all(s.volume_fp is None for s in h.ok(calls.get_series_list()).series)
    # A series' metadata was last updated when its markets were made, at the scenario start.
    start_s = START_MS // 1000
    assert len(h.ok(calls.get_series_list(min_updated_ts=start_s - 1)).series) == 3
    assert len(h.ok(calls.get_series_list(min_updated_ts=start_s)).series) == 0


def test_get_event_nests_its_markets_when_asked(h: Harness) -> None:
    plain = h.ok(calls.get_event("KXFED-26JAN"))
    assert plain.event.markets is None or plain.event.markets == []
    nested = h.ok(calls.get_event("KXFED-26JAN", with_nested_markets=True))
    assert nested.event.markets is not None
    assert [mk.ticker for mk in nested.event.markets] == [mk.ticker for mk in plain.markets]
    assert len(plain.markets) == 4 and nested.markets == plain.markets  # the deprecated list stays
