"""Every limit the spec sets on a request value is enforced at its boundary.

The cases come from walking the merged spec (``openapi.yaml`` plus the 3.34 overlay), not from a
list: every path and query parameter of every operation, and every property of every request
body, nested models and array items included. For each ``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``, ``maxLength``, ``pattern``,
``minItems`` and ``maxItems``, the value at the limit builds a `Call` that openapi-core accepts,
and the value one step beyond it is refused before anything is signed: a ``ValueError`` naming
the parameter from ``build_call``, or a ``pydantic.ValidationError`` at the field from the
request model. A keyword with no boundary rule here fails the walk, so a new kind of limit in
the spec cannot pass unnoticed.

The server's own rules, which the spec keeps as go-playground/validator tags
(``x-oapi-codegen-extra-tags: {validate: "omitempty,min=1,max=100,dive,max=200"}``), are limits
too: ``min``/``max`` (a number, a string's length or a list's size by the value's type),
``gte``/``gt``/``lte``/``lt``, and ``ne=0`` (the ``ne`` cases: zero is refused, the sample
value accepted). Where a rule and the schema limit the same side, the stricter is tested.
``required``, ``omitempty``, ``oneof`` and ``dive`` limit no value by themselves.

An integer's ``format`` (``int32``, ``int64``) is a limit too: on each side the spec leaves
open, the end of the format's range is accepted and one beyond it refused (``format-minimum``,
``format-maximum`` in the test ids).
"""

from __future__ import annotations

import copy
import json
import re
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from kalshi_proto.environments import BaseUrl
from kalshi_proto.rest.client import RestCore
from kalshi_proto.rest.operation_table import Operation, ParamKind, ParamLocation
from kalshi_proto.types import INT32_RANGE, INT64_RANGE
from tests.helpers.spec import schemas
from tests.proto.rest.test_spec_conformance import (
    OPS,
    REF_PREFIX,
    WALL_MS,
    _arguments,
    _body_json,
    _body_schema_name,
    _builder,
    _query_value,
    _request_model,
    _spec_param,
    _validate,
    base_url,
    core,
)

__all__ = ["base_url", "core"]  # module-scoped fixtures, shared with the conformance tests

pytestmark = pytest.mark.filterwarnings("ignore:.* parameter is deprecated:DeprecationWarning")

KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "multipleOf",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
#: Tag rules without a JSON Schema keyword; the ``ne`` case is ``ne=0``.
TAG_KEYWORDS = ("ne",)
GO_TAGS = "x-oapi-codegen-extra-tags"
_ARRAY_KINDS = (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY)
_FORMAT_RANGES = {"int32": INT32_RANGE, "int64": INT64_RANGE}


@dataclass(frozen=True)
class Limit:
    """One limit of the spec: where it sits, the keyword, and the schema that carries it."""

    where: str  #: ``GetMarkets limit`` or ``CreateOrderGroupRequest.contracts_limit``
    keyword: str
    node: dict[str, Any]  #: the merged limits and the type of the value
    op: Operation
    path: tuple[str | int, ...] = ()  #: into the request body; empty for a parameter
    python_name: str = ""  #: the parameter's keyword argument
    in_items: bool = False  #: the limit is on each item of an array parameter


def _tag(node: dict[str, Any]) -> list[str]:
    text = (node.get(GO_TAGS) or {}).get("validate")
    return [t.strip() for t in str(text).split(",")] if text else []


def _lower(found: dict[str, Any]) -> tuple[Any, bool] | None:
    if not isinstance(found.get("exclusiveMinimum", True), bool):
        return found["exclusiveMinimum"], True
    if "minimum" in found:
        return found["minimum"], found.get("exclusiveMinimum") is True
    return None


def _upper(found: dict[str, Any]) -> tuple[Any, bool] | None:
    if not isinstance(found.get("exclusiveMaximum", True), bool):
        return found["exclusiveMaximum"], True
    if "maximum" in found:
        return found["maximum"], found.get("exclusiveMaximum") is True
    return None


def _tighten(found: dict[str, Any], token: str, where: str) -> None:
    """Add one tag rule to ``found`` (the value's limits and type) unless a limit as strict is
    there already."""
    name, _, arg = token.partition("=")
    if name in ("omitempty", "required", "oneof"):
        return
    kind = found["type"]
    number = kind in ("integer", "number")
    sizes = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems")}
    if name == "ne" and number and arg == "0":
        found["ne"] = 0
        return
    if name in ("min", "max") and kind in sizes:
        key = sizes[kind][name == "max"]
        pick = max if name == "min" else min
        found[key] = pick(int(arg), found.get(key, int(arg)))
        return
    assert number and name in ("min", "max", "gte", "gt", "lte", "lt"), f"{where}: rule {token!r}"
    low = name in ("min", "gte", "gt")
    new = (int(arg), name in ("gt", "lt"))
    old = (_lower if low else _upper)(found)
    # The stricter bound: a higher low end, a lower high end; exclusive beats inclusive at a tie.
    if old is not None and (old >= new if low else (-old[0], old[1]) >= (-new[0], new[1])):
        return
    for key in ("minimum", "exclusiveMinimum") if low else ("maximum", "exclusiveMaximum"):
        found.pop(key, None)
    if new[1]:
        found["exclusiveMinimum" if low else "exclusiveMaximum"] = new[0]
    else:
        found["minimum" if low else "maximum"] = new[0]


def _resolve(
    node: dict[str, Any], rules: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """The schema ``node`` stands for, every limit met on the way ($ref, one-part allOf) with
    the tag rules (``rules``, from a parameter object, and those on the way) on top, and the
    rules for the items of an array (after ``dive``)."""
    found: dict[str, Any] = {}
    tokens = list(rules)
    where = json.dumps(node)[:80]
    while True:
        found.update({k: node[k] for k in KEYWORDS if k in node})
        tokens += _tag(node)
        if "$ref" in node:
            node = schemas()[node["$ref"].removeprefix(REF_PREFIX)]
        elif len(node.get("allOf", [])) == 1:
            node = node["allOf"][0]
        else:
            break
    found = {**found, "type": node.get("type"), "format": node.get("format"), "enum": node.get("enum")}
    at = tokens.index("dive") if "dive" in tokens else len(tokens)
    for token in tokens[:at]:
        _tighten(found, token, where)
    return node, found, tuple(tokens[at + 1 :])


def _limits_of(found: dict[str, Any]) -> list[str]:
    # exclusiveMinimum: true (OpenAPI 3.0) modifies minimum; it is tested with minimum.
    keywords = [
        k
        for k in (*KEYWORDS, *TAG_KEYWORDS)
        if k in found and not (k.startswith("exclusive") and isinstance(found[k], bool))
    ]
    if found["type"] == "integer" and found["format"] in _FORMAT_RANGES and not found["enum"]:
        for side in ("minimum", "maximum"):
            if side not in found and "exclusive" + side.title() not in found:
                keywords.append("format-" + side)
    return keywords


def _walk_body(
    op: Operation,
    node: dict[str, Any],
    where: str,
    path: tuple[str | int, ...],
    out: list[Limit],
    rules: tuple[str, ...] = (),
) -> None:
    schema, found, item_rules = _resolve(node, rules)
    for keyword in _limits_of(found):
        out.append(Limit(where, keyword, found, op, path))
    if schema.get("type") == "array":
        _walk_body(op, schema.get("items", {}), where + "[]", (*path, 0), out, item_rules)
    for name, prop in (schema.get("properties") or {}).items():
        _walk_body(op, prop, f"{where}.{name}", (*path, name), out)


def _collect() -> list[Limit]:
    out: list[Limit] = []
    seen_bodies: set[str] = set()
    for op in OPS:
        for param in op.params:
            spec_param = _spec_param(op, param)
            schema, found, item_rules = _resolve(
                spec_param.get("schema", {}), tuple(_tag(spec_param))
            )
            where = f"{op.operation_id} {param.name}"
            for keyword in _limits_of(found):
                out.append(Limit(where, keyword, found, op, python_name=param.python_name))
            if param.kind in _ARRAY_KINDS:
                _, items, _ = _resolve(schema["items"], item_rules)
                for keyword in _limits_of(items):
                    out.append(
                        Limit(where, keyword, items, op, python_name=param.python_name, in_items=True)
                    )
        body = _body_schema_name(op)
        if body is not None and body not in seen_bodies:
            seen_bodies.add(body)
            _walk_body(op, {"$ref": REF_PREFIX + body}, body, (), out)
    return out


LIMITS = _collect()


def _id(limit: Limit) -> str:
    return f"{limit.where}{'[]' if limit.in_items else ''}:{limit.keyword}"


def _number(node: dict[str, Any], value: object) -> int | Decimal:
    assert isinstance(value, int | float) and not isinstance(value, bool)
    return int(value) if node["type"] == "integer" else Decimal(str(value))


def _step(node: dict[str, Any]) -> int | Decimal:
    return 1 if node["type"] == "integer" else Decimal("0.0001")


def _boundary(limit: Limit, sample: Any) -> tuple[Any, Any]:
    """(the value at the limit, a value one step beyond it); ``sample`` is a valid value."""
    node, keyword = limit.node, limit.keyword
    if keyword == "ne":
        assert sample != 0, limit.where
        return sample, 0
    if keyword.startswith("format-"):
        low, high = _FORMAT_RANGES[node["format"]]
        return (low, low - 1) if keyword == "format-minimum" else (high, high + 1)
    bound = node[keyword]
    if keyword in ("minimum", "maximum"):
        exclusive = node.get("exclusiveMinimum" if keyword == "minimum" else "exclusiveMaximum")
        edge = _number(node, bound)
        inward = _step(node) if keyword == "minimum" else -_step(node)
        if exclusive is True:
            return edge + inward, edge
        return edge, edge - inward
    if keyword in ("exclusiveMinimum", "exclusiveMaximum"):  # JSON Schema 2020-12: a number
        edge = _number(node, bound)
        inward = _step(node) if keyword == "exclusiveMinimum" else -_step(node)
        return edge + inward, edge
    if keyword == "minLength":
        return "x" * bound, "x" * (bound - 1)
    if keyword == "maxLength":
        return "x" * bound, "x" * (bound + 1)
    if keyword in ("minItems", "maxItems"):
        assert isinstance(sample, list | tuple) and sample, limit.where
        size = bound - 1 if keyword == "minItems" else bound + 1
        return [sample[0]] * bound, [sample[0]] * size
    if keyword == "pattern":
        good = node.get("example", sample)
        assert isinstance(good, str) and re.search(bound, good), limit.where
        bad = next(c for c in ("", " ", "!", "\n") if re.search(bound, c) is None)
        return good, bad
    pytest.fail(f"{limit.where}: no boundary rule for {keyword}; teach the generator and this test")


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    data = copy.deepcopy(data)
    _get(data, path[:-1])[path[-1]] = value
    return data


def _param_case(limit: Limit, value: Any) -> dict[str, Any]:
    arguments = _arguments(limit.op, full=True)
    param = limit.op.param(limit.python_name)
    if limit.in_items:
        value = [value]
    elif param.kind is ParamKind.INTEGER and isinstance(value, Decimal):
        value = int(value)
    arguments[limit.python_name] = value
    return arguments


def _body_case(limit: Limit, value: Any) -> dict[str, Any]:
    body = _body_schema_name(limit.op)
    assert body is not None
    arguments = _arguments(limit.op, full=True)
    data = _set(_body_json(body, full=True), limit.path, value)
    arguments["request"] = _request_model(body).model_validate(data)
    return arguments


def _sample(limit: Limit) -> Any:
    if limit.python_name:
        param = limit.op.param(limit.python_name)
        if param.location is ParamLocation.PATH:
            return _arguments(limit.op, full=True)[limit.python_name]
        value = _query_value(limit.op, param)
        return typing.cast("list[object]", value)[0] if limit.in_items else value
    body = _body_schema_name(limit.op)
    assert body is not None
    return _get(_body_json(body, full=True), limit.path)


def test_the_walk_finds_the_limits_the_spec_sets() -> None:
    found = {_id(limit) for limit in LIMITS}
    assert {
        "GetMarkets limit:maximum",
        "GetMilestones limit:minimum",
        "GetMarketOrderbooks tickers:maxItems",
        "GetMarketOrderbooks tickers[]:maxLength",
        "GetEventForecastPercentilesHistory percentiles[]:maximum",
        "CreateOrderV2Request.subaccount:minimum",
        "AmendOrderV2Request.expiration_time:minimum",
        "CreateOrderGroupRequest.contracts_limit:minimum",
        "ProposeBlockTradeRequest.buyer_subaccount:maximum",
        "ProposeBlockTradeRequest.price_centi_cents:minimum",
        "BatchCancelOrdersV2Request.orders[].subaccount:minimum",
        "SetTargetBalanceAllocationRequest.allocations:maxItems",
        "SetTargetBalanceAllocationRequest.allocations[].percent:maximum",
        "GetTrades min_ts:format-minimum",
        "GetTrades min_ts:format-maximum",
        "CreateOrderV2Request.expiration_time:format-minimum",
        "CreateOrderV2Request.expiration_time:format-maximum",
        "AmendOrderV2Request.expiration_time:format-maximum",
        "ApplySubaccountTransferRequest.amount_cents:format-maximum",
        # from the server's validate rules only
        "CreateOrderV2Request.ticker:minLength",
        "AmendOrderV2Request.ticker:minLength",
        "CreateSubaccountRequest.exchange_index:minimum",
        "IntraExchangeInstanceTransferRequest.source_subaccount:minimum",
        "CreateFCMPositionTransferRequest.position_centicount:ne",
    } <= found
    assert "AmendOrderV2Request.expiration_time:format-minimum" not in found  # minimum: 0
    assert len(LIMITS) == len(found)


@pytest.mark.parametrize("limit", LIMITS, ids=_id)
def test_the_value_at_the_limit_is_accepted_and_one_beyond_refused(
    limit: Limit, core: RestCore, base_url: BaseUrl
) -> None:
    good, bad = _boundary(limit, _sample(limit))
    case = _param_case if limit.python_name else _body_case
    call = _builder(limit.op)(**case(limit, good))
    _validate(limit.op, core.build_request(call, WALL_MS), base_url)  # openapi-core agrees
    if limit.python_name:
        with pytest.raises(ValueError, match=rf"\b{limit.python_name}\b"):
            _builder(limit.op)(**case(limit, bad))
        return
    with pytest.raises(pydantic.ValidationError) as caught:
        case(limit, bad)
    locations = [error["loc"] for error in caught.value.errors()]
    assert tuple(limit.path) in locations, locations
