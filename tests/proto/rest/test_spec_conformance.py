"""The REST layer against the merged trade-API spec (``openapi.yaml`` plus the 3.34 overlay).

* Every request the generated builders produce, turned into an `HttpRequest` by `RestCore`,
  validates with openapi-core: method, server URL and path, query, auth headers and JSON body.
* Every response model parses spec-derived examples, and `Call.parse` returns the model or a
  `Page`; money fields keep every digit; null lists, unknown enum values and unknown keys parse.
* The operation table covers the spec exactly, and every facade method exists, typed, on every
  client class of every adapter.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import Parameters, RequestParameters
from openapi_core.templating.paths.finders import APICallPathFinder
from pydantic import BaseModel
from werkzeug.datastructures import Headers, ImmutableMultiDict

import kalshi_anyio
import kalshi_httpx
import kalshi_sync
from kalshi_proto.auth import Credentials
from kalshi_proto.environments import BaseUrl, resolve_base_url
from kalshi_proto.rest.call import Call, HttpRequest, HttpResponse, Page
from kalshi_proto.rest.client import RestConfig, RestCore
from kalshi_proto.rest.generated import calls, models, table
from kalshi_proto.rest.operation_table import (
    Operation,
    Param,
    ParamKind,
    ParamLocation,
    operation,
    operations,
)
from tests.helpers.spec import example, load_spec, schema, schemas

WALL_MS = 1_767_225_600_000
EXPECTED_OPERATIONS = 118
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
REF_PREFIX = "#/components/schemas/"

# openapi-core warns when a request uses a parameter the spec marks deprecated; the "every
# parameter" requests do that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.* parameter is deprecated:DeprecationWarning")

OPS: list[Operation] = list(operations())
PAGINATED = [op for op in OPS if op.pagination is not None]
WITH_RESPONSE = [op for op in OPS if op.response_model is not None]


def _op_id(op: Operation) -> str:
    return op.operation_id


# ---- the spec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecOperation:
    """One operation as the merged spec declares it."""

    method: str  #: upper case
    path: str
    node: dict[str, Any]
    params: tuple[dict[str, Any], ...]  #: resolved parameter objects, path-level ones first


@functools.cache
def _spec() -> dict[str, Any]:
    return load_spec()


def _allow_null_in_nullable_enums(node: object) -> None:
    # OpenAPI 3.0.3: a nullable enum must list null to accept it. The spec's
    # MveHistoricalFilterQuery (``enum: ['exclude'], nullable: true, default: null``) does not,
    # so openapi-core would reject its own default when the parameter is left out.
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None not in enum:
            node["enum"] = [*enum, None]
        for value in node.values():
            _allow_null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _allow_null_in_nullable_enums(value)


@functools.cache
def _openapi() -> OpenAPI:
    spec = load_spec()
    _allow_null_in_nullable_enums(spec)
    return OpenAPI.from_dict(spec)


@functools.cache
def _spec_operations() -> dict[str, SpecOperation]:
    spec = _spec()
    shared_params: dict[str, Any] = spec["components"].get("parameters", {})

    def resolve(param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref")
        if ref is None:
            return param
        return dict(shared_params[ref.rsplit("/", 1)[-1]])

    out: dict[str, SpecOperation] = {}
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in HTTP_METHODS:
            node = item.get(method)
            if node is None:
                continue
            params = tuple(resolve(p) for p in [*shared, *node.get("parameters", [])])
            out[node["operationId"]] = SpecOperation(method.upper(), path, node, params)
    return out


def _spec_op(op: Operation) -> SpecOperation:
    return _spec_operations()[op.operation_id]


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and a one-part ``allOf``) to the schema a parameter or field uses."""
    while True:
        ref = node.get("$ref")
        if ref is not None:
            node = schemas()[ref.removeprefix(REF_PREFIX)]
        elif len(node.get("allOf", [])) == 1 and "type" not in node:
            node = node["allOf"][0]
        else:
            return node


def _spec_param(op: Operation, param: Param) -> dict[str, Any]:
    found = [
        p
        for p in _spec_op(op).params
        if p["name"] == param.name and p["in"] == param.location.value
    ]
    assert len(found) == 1, (
        f"{op.operation_id}: spec parameter {param.name!r} ({param.location.value})"
    )
    return found[0]


def _ref_name(node: dict[str, Any]) -> str:
    ref = node["$ref"]
    assert isinstance(ref, str) and ref.startswith(REF_PREFIX)
    return ref.removeprefix(REF_PREFIX)


def _body_schema_name(op: Operation) -> str | None:
    body = _spec_op(op).node.get("requestBody")
    if body is None:
        return None
    return _ref_name(body["content"]["application/json"]["schema"])


def _success(op: Operation) -> tuple[int, str | None]:
    """The first 2xx status of the spec operation and its JSON schema name (None: no body)."""
    responses = _spec_op(op).node["responses"]
    shared = _spec()["components"].get("responses", {})
    code = min(c for c in responses if str(c).startswith("2"))
    response = responses[code]
    if "$ref" in response:
        response = shared[response["$ref"].rsplit("/", 1)[-1]]
    body = response.get("content", {}).get("application/json", {}).get("schema")
    return int(code), None if body is None else _ref_name(body)


def _response_schema(op: Operation) -> str:
    name = _success(op)[1]
    assert name is not None, op.operation_id
    return name


# ---- example arguments ---------------------------------------------------------------------

_PATH_VALUES = {
    "ticker": "KXHIGHNY-26JAN02-T60",
    "series_ticker": "KXHIGHNY",
    "event_ticker": "KXHIGHNY-26JAN02",
    "collection_ticker": "KXMVECROSSCATEGORY-R",
}
_UUID = "8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1"


def _path_value(param: Param) -> str:
    if param.name in _PATH_VALUES:
        return _PATH_VALUES[param.name]
    if param.name.endswith("_id") or param.name in ("api_key", "id"):
        return _UUID
    return f"{param.name.replace('_', '-')}-1"


def _int_value(node: dict[str, Any], offset: int = 0) -> int:
    low = node.get("minimum")
    high = node.get("maximum")
    value = node.get("example", node.get("default", low if low is not None else 1))
    if not isinstance(value, int) or isinstance(value, bool):
        value = low if low is not None else 1
    value += offset
    if high is not None:
        value = min(value, high)
    return int(value)


def _query_value(op: Operation, param: Param) -> object:
    """A valid Python argument for a query parameter, from the SDK kind and the spec schema."""
    node = _deref(_spec_param(op, param).get("schema", {}))
    if param.enum is not None:
        assert param.kind not in (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY)
        return param.enum[0]
    kind = param.kind
    if kind is ParamKind.STRING:
        sample = node.get("example")
        return sample if isinstance(sample, str) and sample else f"{param.name}-x"
    if kind is ParamKind.INTEGER:
        return _int_value(node)
    if kind is ParamKind.BOOLEAN:
        return True
    if kind is ParamKind.NUMBER:
        return Decimal("1.5")
    if kind is ParamKind.DATETIME:
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    items = _deref(node.get("items", {}))
    if kind is ParamKind.INTEGER_ARRAY:
        return [_int_value(items), _int_value(items, 1)]
    assert kind is ParamKind.STRING_ARRAY
    return [f"{param.name}-a", f"{param.name}-b"]


def _new_order(data: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """Make an example V2 order pass the SDK's own checks (`kalshi_proto.rest.checks`)."""
    data = dict(data)
    data["client_order_id"] = _UUID
    if full:
        data["time_in_force"] = "good_till_canceled"  # may carry expiration_time
        data["reduce_only"] = False  # reduce_only needs immediate_or_cancel
    return data


def _body_json(name: str, *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = example(name, required_only=not full)
    if name == "CreateOrderV2Request":
        data = _new_order(data, full=full)
    elif name == "BatchCreateOrdersV2Request":
        order = _new_order(data["orders"][0], full=full)
        second = {**order, "client_order_id": "5e8c2b1a-7f3d-4c6e-9a0b-1d2e3f4a5b6c"}
        data = {**data, "orders": [order, second]}
    elif name == "DecreaseOrderV2Request":
        data = {k: v for k, v in data.items() if k != "reduce_to"}
        data["reduce_by"] = "2.00"
    return data


def _request_model(name: str) -> type[BaseModel]:
    cls = getattr(models, "EmptyResponseBody" if name == "EmptyResponse" else name)
    assert isinstance(cls, type) and issubclass(cls, BaseModel)
    return cls


def _builder(op: Operation) -> Callable[..., Call[Any]]:
    """The generated builder of an operation: the function named like its table constant."""
    names = [n for n in table.__all__ if getattr(table, n) is op]
    assert len(names) == 1, op.operation_id
    fn = getattr(calls, names[0].lower())
    assert callable(fn)
    return typing.cast(Callable[..., Call[Any]], fn)


def _arguments(op: Operation, *, full: bool) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for param in op.params:
        if param.location is ParamLocation.PATH:
            args[param.python_name] = _path_value(param)
        elif param.required or full:
            args[param.python_name] = _query_value(op, param)
    body_name = _body_schema_name(op)
    if body_name is not None:
        cls = _request_model(body_name)
        assert op.request_model is cls, op.operation_id
        args["request"] = cls.model_validate_json(json.dumps(_body_json(body_name, full=full)))
    return args


def _build(op: Operation, *, full: bool) -> Call[Any]:
    return _build_with(op, _arguments(op, full=full))


def _build_with(op: Operation, arguments: dict[str, Any]) -> Call[Any]:
    call = _builder(op)(**arguments)
    assert call.operation is op
    return call


# ---- validating requests with openapi-core --------------------------------------------------


@dataclass
class SpecRequest:
    """openapi-core's request protocol over an `HttpRequest`."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str

    @classmethod
    def from_http(cls, request: HttpRequest, base: BaseUrl) -> SpecRequest:
        parts = urlsplit(request.target)
        headers = Headers(list(request.headers))
        return cls(
            host_url=base.origin,
            path=parts.path,
            method=request.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
                header=headers,
            ),
            body=request.body or None,
            content_type=(headers.get("Content-Type") or "").lower(),
        )

    @property
    def full_url(self) -> str:
        return self.host_url + self.path


@pytest.fixture(scope="module")
def base_url() -> BaseUrl:
    base = resolve_base_url()
    assert base.url == _spec()["servers"][0]["url"]
    return base


@pytest.fixture(scope="module")
def core(rsa_pem: bytes, base_url: BaseUrl) -> RestCore:
    credentials = Credentials.from_pem("key-id", rsa_pem)
    return RestCore(RestConfig(base_url=base_url, credentials=credentials), rng=lambda: 0.5)


def _describe(errors: list[Exception]) -> str:
    lines = []
    for error in errors:
        lines.append(f"{type(error).__name__}: {error}")
        cause = error.__cause__
        for inner in getattr(cause, "schema_errors", None) or ([cause] if cause else []):
            lines.append(f"    {inner}".splitlines()[0])
    return "\n".join(lines)


def _validate(op: Operation, request: HttpRequest, base: BaseUrl) -> Parameters:
    """Validate ``request`` against ``op`` in the spec; return the parameters openapi-core read."""
    spec_request = SpecRequest.from_http(request, base)
    api = _openapi()
    found = APICallPathFinder(api.spec).find(spec_request.method, spec_request.full_url)
    with (found.operation / "operationId").open() as operation_id:  # (any jsonschema-path)
        assert operation_id == op.operation_id
    result = api.unmarshal_request(spec_request)
    assert not result.errors, f"{op.operation_id}:\n{_describe(list(result.errors))}"
    assert isinstance(result.parameters, Parameters)
    return result.parameters


def _as_read(value: object) -> object:
    """A Python argument as openapi-core reads it back from the wire."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_as_read(v) for v in value]
    return value


def _check_read_back(op: Operation, arguments: dict[str, Any], read: Parameters) -> None:
    """What openapi-core decoded from the request equals the arguments given to the builder."""
    sent_query = {
        p.name: _as_read(arguments[p.python_name])
        for p in op.query_params
        if p.python_name in arguments
    }
    got_query = {k: v for k, v in read.query.items() if k in sent_query}
    assert got_query == sent_query, op.operation_id
    sent_path = {p.name: arguments[p.python_name] for p in op.path_params}
    assert dict(read.path) == sent_path, op.operation_id


def _wire_names(call: Call[Any]) -> list[str]:
    return [name for name, _ in call.query]


def test_the_table_has_118_operations() -> None:
    assert len(OPS) == EXPECTED_OPERATIONS
    assert len({op.operation_id for op in OPS}) == EXPECTED_OPERATIONS


def test_the_table_is_public_where_the_issue_names_it() -> None:
    # `kalshi_proto.rest.operations()`, spelt that way, with the attributes other SDKs read.
    import kalshi_proto.rest

    public = list(kalshi_proto.rest.operations())
    assert public == OPS
    markets = kalshi_proto.rest.operation("GetMarkets")
    assert markets in public
    row = (markets.operation_id, markets.method, markets.path, markets.facade)
    assert row == ("GetMarkets", "GET", "/markets", "markets.list")
    assert (markets.requires_auth, markets.idempotent) == (False, True)
    create = kalshi_proto.rest.operation("CreateOrderV2")
    assert (create.facade, create.requires_auth, create.idempotent) == ("orders.create_v2", True, False)


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("getmarkets", "no operation has the operationId 'getmarkets'; did you mean 'GetMarkets'?"),
        ("Nothing", "no operation has the operationId 'Nothing'"),
        (None, "no operation has the operationId None"),
    ],
)
def test_an_unknown_operation_id_is_a_key_error_naming_the_nearest(
    wanted: Any, message: str
) -> None:
    import kalshi_proto.rest

    with pytest.raises(KeyError) as info:
        kalshi_proto.rest.operation(wanted)
    assert info.value.args == (message,)


@pytest.mark.parametrize("op", OPS, ids=_op_id)
def test_request_with_every_parameter_matches_the_spec(
    op: Operation, core: RestCore, base_url: BaseUrl
) -> None:
    arguments = _arguments(op, full=True)
    call = _build_with(op, arguments)
    assert "{" not in call.path
    expected = [p.name for p in op.query_params]
    assert sorted(set(_wire_names(call))) == sorted(expected)
    request = core.build_request(call, WALL_MS)
    assert request.target.startswith(base_url.prefix + call.path)
    _check_read_back(op, arguments, _validate(op, request, base_url))
    for param in op.query_params:
        if param.kind is ParamKind.BOOLEAN:
            assert call.query_value(param.name) == "true"


@pytest.mark.parametrize("op", OPS, ids=_op_id)
def test_request_with_required_parameters_only_matches_the_spec(
    op: Operation, core: RestCore, base_url: BaseUrl
) -> None:
    arguments = _arguments(op, full=False)
    call = _build_with(op, arguments)
    expected = [p.name for p in op.query_params if p.required]
    assert sorted(set(_wire_names(call))) == sorted(expected)
    request = core.build_request(call, WALL_MS)
    header_names = {name.lower() for name, _ in request.headers}
    assert ("kalshi-access-signature" in header_names) is op.requires_auth
    assert ("content-type" in header_names) is bool(request.body)
    _check_read_back(op, arguments, _validate(op, request, base_url))


def test_array_query_parameters_repeat_in_valid_requests(core: RestCore, base_url: BaseUrl) -> None:
    arrays = [
        op
        for op in OPS
        if any(p.kind in (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY) for p in op.params)
    ]
    assert arrays
    for op in arrays:
        call = _build(op, full=True)
        for param in op.query_params:
            if param.kind in (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY):
                assert _wire_names(call).count(param.name) == 2, (op.operation_id, param.name)


# ---- responses -----------------------------------------------------------------------------


def _response_body(op: Operation, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = example(_response_schema(op), required_only=not full)
    return body


def _page_body(op: Operation, cursor: str | None) -> dict[str, Any]:
    assert op.pagination is not None
    return {**_response_body(op, full=True), op.pagination.cursor_field: cursor}


def _parse(op: Operation, body: object) -> Any:
    status = op.success_status
    response = HttpResponse(
        status, (("content-type", "application/json"),), json.dumps(body).encode()
    )
    return Call(operation=op, path=op.path).parse(response)


@pytest.mark.parametrize("full", [True, False], ids=["all-fields", "required-only"])
@pytest.mark.parametrize("op", WITH_RESPONSE, ids=_op_id)
def test_response_example_parses(op: Operation, full: bool) -> None:
    status, name = _success(op)
    assert op.success_status == status
    model = op.response_model
    assert model is not None and name is not None
    assert model.__name__ == name
    body = _response_body(op, full=full)
    text = json.dumps(body)
    direct = model.model_validate_json(text)
    parsed = _parse(op, body)
    if op.pagination is None:
        assert type(parsed) is model
        assert parsed == direct
        return
    assert isinstance(parsed, Page)
    assert type(parsed.response) is model
    assert parsed.response == direct
    assert parsed.items == getattr(direct, op.pagination.items_field)
    assert parsed.items is getattr(parsed.response, op.pagination.items_field)
    sent_cursor = body.get(op.pagination.cursor_field)
    assert parsed.cursor == (sent_cursor or None)


@pytest.mark.parametrize("cursor", ["", "CgwIpc2", "next page/+="])
@pytest.mark.parametrize("op", PAGINATED, ids=_op_id)
def test_page_cursor(op: Operation, cursor: str) -> None:
    parsed = _parse(op, _page_body(op, cursor))
    assert isinstance(parsed, Page)
    assert parsed.cursor == (cursor or None)
    assert parsed.has_next is bool(cursor)
    assert len(parsed) == 1


def _cursor_optional(op: Operation) -> bool:
    assert op.pagination is not None
    return op.pagination.cursor_field not in schema(_response_schema(op)).get("required", [])


@pytest.mark.parametrize("op", [op for op in PAGINATED if _cursor_optional(op)], ids=_op_id)
def test_optional_cursor_may_be_null_or_missing(op: Operation) -> None:
    assert op.pagination is not None
    null = _page_body(op, None)
    missing = {k: v for k, v in null.items() if k != op.pagination.cursor_field}
    for body in (null, missing):
        parsed = _parse(op, body)
        assert isinstance(parsed, Page)
        assert parsed.cursor is None and not parsed.has_next


def test_operations_without_a_response_body_parse_to_none() -> None:
    empty = [op for op in OPS if op.response_model is None]
    assert empty
    for op in empty:
        assert _success(op)[1] is None, op.operation_id
        response = HttpResponse(op.success_status, (), b"")
        assert Call(operation=op, path=op.path).parse(response) is None


# ---- money, nulls, enums, extra keys -------------------------------------------------------


def _decimal_leaves(value: object, sent: object, dumped: object, where: str) -> int:
    """Compare every Decimal in a parsed value with what was sent and what is dumped."""
    if isinstance(value, Decimal):
        if isinstance(sent, str):
            assert dumped == sent, f"{where}: sent {sent!r}, dumped {dumped!r}"
        else:  # a JSON number (``type: number``) goes back out as a JSON number of the same value
            assert isinstance(sent, int | float) and isinstance(dumped, int | float), where
            assert dumped == sent, where
        return 1
    if isinstance(value, BaseModel):
        assert isinstance(sent, dict) and isinstance(dumped, dict), where
        count = 0
        for name, info in type(value).model_fields.items():
            key = info.alias or name
            if key in sent:
                count += _decimal_leaves(
                    getattr(value, name), sent[key], dumped[key], f"{where}.{key}"
                )
        return count
    if isinstance(value, list | tuple):
        assert isinstance(sent, list) and isinstance(dumped, list), where
        assert len(value) == len(sent) == len(dumped), where
        return sum(
            _decimal_leaves(v, s, d, f"{where}[{i}]")
            for i, (v, s, d) in enumerate(zip(value, sent, dumped, strict=True))
        )
    if isinstance(value, dict):
        assert isinstance(sent, dict) and isinstance(dumped, dict), where
        return sum(_decimal_leaves(v, sent[k], dumped[k], f"{where}.{k}") for k, v in value.items())
    return 0


RESPONSE_MODELS = sorted(
    {op.response_model for op in WITH_RESPONSE if op.response_model is not None},
    key=lambda m: m.__name__,
)


def _model_id(model: type[BaseModel]) -> str:
    return model.__name__


@pytest.mark.parametrize("model", RESPONSE_MODELS, ids=_model_id)
def test_money_fields_round_trip_exactly(model: type[BaseModel]) -> None:
    sent = example(model.__name__)
    parsed = model.model_validate_json(json.dumps(sent))
    dumped = json.loads(parsed.model_dump_json(by_alias=True))
    _decimal_leaves(parsed, sent, dumped, model.__name__)


def test_money_round_trip_covers_many_fields() -> None:
    total = 0
    for model in RESPONSE_MODELS:
        sent = example(model.__name__)
        parsed = model.model_validate_json(json.dumps(sent))
        total += _decimal_leaves(parsed, sent, json.loads(parsed.model_dump_json()), "")
    assert total > 100


@pytest.mark.parametrize(
    "text", ["0.5600", "0.560000", "0.000100", "1.00", "0", "0.10", "12345.678901"]
)
def test_market_prices_keep_every_digit(text: str) -> None:
    market = example("Market")
    market["yes_bid_dollars"] = text
    market["volume_fp"] = text
    parsed = models.Market.model_validate_json(json.dumps(market))
    assert parsed.yes_bid_dollars == Decimal(text)
    assert str(parsed.yes_bid_dollars) == text
    dumped = json.loads(parsed.model_dump_json())
    assert dumped["yes_bid_dollars"] == text
    assert dumped["volume_fp"] == text


def _walk_schema(
    node: dict[str, Any], value: Any, visit: Callable[[dict[str, Any], Any], Any]
) -> Any:
    """Rebuild ``value`` (an `example` of ``node``), letting ``visit`` replace any subvalue.

    ``visit(schema, value)`` returns the replacement, or ``value`` to keep walking into it.
    """
    ref = node.get("$ref")
    if ref is not None:
        name = ref.removeprefix(REF_PREFIX)
        if name in ("FixedPointDollars", "FixedPointCount", "PriceLevelDollarsCountFp"):
            return value
        node = schema(name)
    replaced = visit(node, value)
    if replaced is not value or value is None:
        return replaced
    if "allOf" in node:
        for part in node["allOf"]:
            value = _walk_schema(part, value, visit)
        return value
    if isinstance(value, dict):
        props = node.get("properties") or {}
        return {k: _walk_schema(props[k], v, visit) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and "items" in node:
        return [_walk_schema(node["items"], v, visit) for v in value]
    return value


def _unknown_enums(model: type[BaseModel]) -> tuple[Any, int]:
    """An example of ``model`` with every enum value replaced by one the spec does not list."""
    replaced: list[object] = []

    def visit(node: dict[str, Any], value: Any) -> Any:
        if "enum" in node and isinstance(value, str):
            replaced.append(value)
            return "brand_new_value"
        if "enum" in node and isinstance(value, int) and not isinstance(value, bool):
            replaced.append(value)
            return 987_654
        return value

    sent = _walk_schema({"$ref": REF_PREFIX + model.__name__}, example(model.__name__), visit)
    return sent, len(replaced)


def _null_lists(model: type[BaseModel]) -> tuple[Any, int]:
    """An example of ``model`` with every array replaced by ``null``."""
    replaced: list[object] = []

    def visit(node: dict[str, Any], value: Any) -> Any:
        if isinstance(value, list) and node.get("type") == "array":
            replaced.append(value)
            return None
        return value

    sent = _walk_schema({"$ref": REF_PREFIX + model.__name__}, example(model.__name__), visit)
    return sent, len(replaced)


def _collect(value: object, wanted: Callable[[object], bool]) -> list[object]:
    """Every value inside a parsed model (fields, not ``model_extra``) that ``wanted`` accepts."""
    out: list[object] = []

    def visit(value: object) -> None:
        if wanted(value):
            out.append(value)
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)

    visit(value)
    return out


@pytest.mark.parametrize("model", RESPONSE_MODELS, ids=_model_id)
def test_unknown_enum_values_parse(model: type[BaseModel]) -> None:
    sent, count = _unknown_enums(model)
    parsed = model.model_validate_json(json.dumps(sent))
    found = _collect(parsed, lambda v: v == "brand_new_value" or v == 987_654)
    assert len(found) == count


@pytest.mark.parametrize("model", RESPONSE_MODELS, ids=_model_id)
def test_null_lists_read_as_empty(model: type[BaseModel]) -> None:
    sent, count = _null_lists(model)
    parsed = model.model_validate_json(json.dumps(sent))
    lists = _collect(parsed, lambda v: isinstance(v, list))
    assert lists == [[]] * count


def test_enum_and_list_mutations_reach_many_fields() -> None:
    assert sum(_unknown_enums(model)[1] for model in RESPONSE_MODELS) > 50
    assert sum(_null_lists(model)[1] for model in RESPONSE_MODELS) > 50


def test_null_list_in_a_market_reads_as_empty() -> None:
    body = example("GetMarketsResponse")
    body["markets"] = None
    parsed = _parse(operation("GetMarkets"), body)
    assert isinstance(parsed, Page)
    assert parsed.items == [] and parsed.cursor == "x"
    orderbook = example("GetMarketOrderbookResponse")
    orderbook["orderbook_fp"]["yes_dollars"] = None
    book = models.GetMarketOrderbookResponse.model_validate_json(json.dumps(orderbook))
    assert book.orderbook_fp.yes_dollars == []


def test_null_list_inside_a_map_reads_as_empty() -> None:
    body = {"tags_by_categories": {"Sports": ["NFL"], "Climate": None}}
    parsed = models.GetTagsForSeriesCategoriesResponse.model_validate_json(json.dumps(body))
    assert parsed.tags_by_categories == {"Sports": ["NFL"], "Climate": []}


def test_unknown_market_status_and_extra_keys_parse() -> None:
    market = example("Market")
    market["status"] = "brand_new_status"
    market["brand_new_field"] = {"nested": [1, 2]}
    body = {"market": market, "top_level_extra": "kept"}
    parsed = _parse(operation("GetMarket"), body)
    assert isinstance(parsed, models.GetMarketResponse)
    assert parsed.market.status == "brand_new_status"
    assert parsed.model_extra == {"top_level_extra": "kept"}
    assert parsed.market.model_extra == {"brand_new_field": {"nested": [1, 2]}}


@pytest.mark.parametrize("model", RESPONSE_MODELS, ids=_model_id)
def test_unknown_keys_land_in_model_extra(model: type[BaseModel]) -> None:
    sent = example(model.__name__, required_only=True)
    sent["zz_new_server_field"] = ["0.5600", None]
    parsed = model.model_validate_json(json.dumps(sent))
    assert parsed.model_extra == {"zz_new_server_field": ["0.5600", None]}


# ---- the table covers the spec -------------------------------------------------------------


def test_table_covers_every_spec_operation() -> None:
    spec_pairs = {
        (m.upper(), p) for p, item in _spec()["paths"].items() for m in item if m in HTTP_METHODS
    }
    table_pairs = {(op.method, op.path) for op in OPS}
    assert table_pairs == spec_pairs
    assert len(spec_pairs) == EXPECTED_OPERATIONS
    by_id = _spec_operations()
    assert set(by_id) == {op.operation_id for op in OPS}
    for op in OPS:
        spec_op = by_id[op.operation_id]
        assert (op.method, op.path) == (spec_op.method, spec_op.path), op.operation_id


@pytest.mark.parametrize("op", OPS, ids=_op_id)
def test_operation_row_matches_the_spec(op: Operation) -> None:
    spec_op = _spec_op(op)
    assert op.requires_auth is bool(spec_op.node.get("security"))
    assert op.idempotent is (op.method == "GET")
    assert op.deprecated is bool(spec_op.node.get("deprecated", False))
    assert op.success_status == _success(op)[0]
    # the same parameters: path ones in template order, query ones in spec order
    template = re.findall(r"{([^}]+)}", op.path)
    assert [p.name for p in op.path_params] == template
    assert all(p.required for p in op.path_params)
    declared = [(p["name"], bool(p.get("required"))) for p in spec_op.params if p["in"] == "query"]
    assert [(p.name, p.required) for p in op.query_params] == declared
    assert {p["name"] for p in spec_op.params if p["in"] == "path"} == set(template)
    assert len(op.params) == len(spec_op.params)
    for param in op.params:
        node = _deref(_spec_param(op, param).get("schema", {}))
        enum = node.get("enum") or _deref(node.get("items", {})).get("enum")
        assert param.enum == (tuple(enum) if enum else None), param.name
        assert param.default == node.get("default"), param.name
        assert type(param.default) is type(node.get("default")), param.name  # False is not 0
        assert param.python_name.isidentifier() and param.python_name.rstrip("_") == param.name
    body = _body_schema_name(op)
    assert (op.request_model is None) is (body is None)


@pytest.mark.parametrize("op", OPS, ids=_op_id)
def test_cursor_operations_are_paginated(op: Operation) -> None:
    query = {p.name for p in op.query_params}
    name = _success(op)[1]
    props: dict[str, Any] = schema(name).get("properties", {}) if name else {}
    cursor_fields = [k for k in props if k == "cursor" or k.endswith("_cursor")]
    pagination = op.pagination
    if "cursor" in query and cursor_fields:
        assert pagination is not None, op.operation_id
        assert pagination.cursor_param == "cursor"
        assert pagination.cursor_field in cursor_fields
        assert props[pagination.items_field].get("type") == "array"
        assert pagination.limit_param is None or pagination.limit_param in query
    else:
        assert pagination is None, op.operation_id


def test_facades_are_unique_and_dotted() -> None:
    facades = [op.facade for op in OPS]
    assert len(set(facades)) == len(facades)
    for facade in facades:
        assert re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", facade), facade


# ---- every client has every facade method --------------------------------------------------

CLIENTS: list[tuple[type[Any], bool]] = [
    (kalshi_httpx.KalshiClient, False),
    (kalshi_httpx.AsyncKalshiClient, True),
    (kalshi_sync.KalshiClient, False),
    (kalshi_anyio.AsyncKalshiClient, True),
]


def _client_id(entry: tuple[type[Any], bool]) -> str:
    return f"{entry[0].__module__}.{entry[0].__name__}"


@pytest.mark.parametrize("client", CLIENTS, ids=_client_id)
def test_every_facade_is_a_typed_method_on_every_client(client: tuple[type[Any], bool]) -> None:
    client_cls, is_async = client
    resources = typing.get_type_hints(client_cls)
    for op in OPS:
        resource, _, method = op.facade.partition(".")
        resource_cls = resources[resource]
        assert isinstance(resource_cls, type), op.facade
        fn = getattr(resource_cls, method)
        assert inspect.isfunction(fn), op.facade
        hints = typing.get_type_hints(fn)
        assert "return" in hints, op.facade
        assert inspect.iscoroutinefunction(fn) is is_async, op.facade
        if op.pagination is None:
            assert not hasattr(resource_cls, method + "_all"), op.facade
            continue
        walker = getattr(resource_cls, method + "_all")
        assert inspect.isfunction(walker), op.facade
        assert not inspect.iscoroutinefunction(walker)
        returns = typing.get_type_hints(walker)["return"]
        assert typing.get_origin(returns) is (AsyncIterator if is_async else Iterator), op.facade
        assert "max_pages" in inspect.signature(walker).parameters


def test_facade_methods_take_the_builder_arguments() -> None:
    client_cls = kalshi_sync.KalshiClient
    resources = typing.get_type_hints(client_cls)
    for op in OPS:
        resource, _, method = op.facade.partition(".")
        facade = inspect.signature(getattr(resources[resource], method))
        builder = inspect.signature(_builder(op))
        assert list(facade.parameters)[1:] == list(builder.parameters), op.facade


def test_request_bodies_are_not_shared_with_responses() -> None:
    body_models = {op.request_model for op in OPS if op.request_model is not None}
    response_models = {op.response_model for op in OPS if op.response_model is not None}
    assert not body_models & response_models
    # EmptyResponse is both a response and a PUT body: the body side is EmptyResponseBody.
    assert operation("ResetOrderGroup").request_model is models.EmptyResponseBody
    assert operation("ResetOrderGroup").response_model is models.EmptyResponse
