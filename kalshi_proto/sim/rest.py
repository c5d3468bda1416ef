"""The REST side of the local exchange: requests in, spec-shaped responses out.

`ExchangeApp.handle` routes a request by the operation table (the same generated table the
clients use), checks it the way the real API does, runs the command on the `Exchange`, and
answers with a body built from the generated response models:

* unknown path -> 404; a known path with another method -> 405;
* private operations need ``KALSHI-ACCESS-KEY``, ``-TIMESTAMP`` and ``-SIGNATURE``: an unknown
  key, a timestamp more than ``max_clock_skew_ms`` away from the exchange's clock, or a signature
  that does not verify with the registered public key (RSA-PSS SHA-256 with salt length 32, or
  Ed25519) -> 401;
* a query value of the wrong type or a body the request model refuses -> 400 with the reason
  in ``details``; refusals from the exchange (unknown ticker 404, insufficient balance 400, ...)
  -> their status with an ``ErrorResponse`` body;
* operations the exchange does not model -> 501 naming the operation (`NOT_MODELLED` lists them);
* each list pages with its own bounds and default (the spec's, for its page-size parameter, as
  the operation table gives them); a page size out of bounds -> 400 naming them;
* the query parameters the spec gives an operation are applied as it describes them, except
  those in `QUERY_PARAMETERS_WITHOUT_EFFECT`, which are accepted and change nothing (the table
  says why for each); parameters the spec does not declare are ignored.

Fault injection (`Faults`) turns a share of requests into 429s (with or without
``Retry-After``), bursts of 5xx, added latency, or responses cut off mid-body; the decisions come
from the injected ``rng``, so a seeded run repeats exactly.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from kalshi_proto.auth import signing_message
from kalshi_proto.errors import ConfigurationError
from kalshi_proto.rest.call import HttpRequest, HttpResponse
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.operation_table import Operation, ParamKind, ParamLocation, operations
from kalshi_proto.rest.ratelimit import DEFAULT_COST, ENDPOINT_COSTS, PER_ITEM_COSTS
from kalshi_proto.rest.retry import check_number
from kalshi_proto.sim.app import Drop, Reply, Respond
from kalshi_proto.sim.exchange import (
    ONE,
    ZERO,
    Account,
    Exchange,
    ExchangeError,
    FillState,
    MarketState,
    OrderGroupState,
    OrderState,
    PlaceResult,
    TradeState,
)
from kalshi_proto.sim.matching import Side, StpMode, TimeInForce
from kalshi_proto.sim.scenario import ActionRefused, check_actions, run_actions

__all__ = ["NOT_MODELLED", "QUERY_PARAMETERS_WITHOUT_EFFECT", "ExchangeApp", "Faults"]

_JSON = (("content-type", "application/json"),)
_DOLLARS = Decimal("0.0001")
_COUNT = Decimal("0.01")
_K = TypeVar("_K", int, str)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults to inject, as shares of requests in [0, 1].

    Args:
        rate_limit_share: answer this share with 429 ``{"error": "too many requests"}``.
        retry_after: seconds to send in ``Retry-After`` on those 429s (None: no header, as the
            real API does).
        error_share: start a burst of ``error_status`` answers on this share of requests.
        error_burst: how many consecutive requests each burst fails.
        error_status: the 5xx status of a burst.
        latency: seconds added before every response.
        drop_share: cut this share of responses off half-way through the body.

    Raises:
        ConfigurationError: a share is not a number within [0, 1]; ``latency`` or
            ``retry_after`` is not a finite number of seconds >= 0; ``error_burst`` is not an
            int of 1 or more, or ``error_status`` not an int from 500 to 599.
    """

    rate_limit_share: float = 0.0
    retry_after: float | None = None
    error_share: float = 0.0
    error_burst: int = 1
    error_status: int = 503
    latency: float = 0.0
    drop_share: float = 0.0

    def __post_init__(self) -> None:
        # Numbers are kept as floats and ints; a bool, a str or NaN is refused, and so is an
        # infinite delay (the server would never answer, or send "Retry-After: inf").
        for name in ("rate_limit_share", "error_share", "drop_share", "latency", "retry_after"):
            value = getattr(self, name)
            if value is None and name == "retry_after":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}")
            amount = float(value)
            if name.endswith("_share") and not 0.0 <= amount <= 1.0:
                raise ConfigurationError(f"{name} must be within [0, 1], got {value}")
            if not name.endswith("_share") and not 0.0 <= amount < math.inf:
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds >= 0, got {value}"
                )
            object.__setattr__(self, name, amount)
        for name, low, high in (("error_burst", 1, None), ("error_status", 500, 599)):
            value = getattr(self, name)
            check_number(name, value, int)
            whole = int(value)
            if whole < low or (high is not None and whole > high):
                within = f"from {low} to {high}" if high is not None else f"{low} or more"
                raise ConfigurationError(f"{name} must be {within}, got {whole}")
            object.__setattr__(self, name, whole)

    @property
    def active(self) -> bool:
        return bool(self.rate_limit_share or self.error_share or self.drop_share)


def _dollars(value: Decimal) -> Decimal:
    return value.quantize(_DOLLARS)


def _count(value: Decimal) -> Decimal:
    return value.quantize(_COUNT)


#: BatchGetMarketCandlesticks: the most tickers one request may name, and the most candles one
#: answer holds (the spec's description gives both).
BATCH_CANDLE_MARKETS_MAX = 100
BATCH_CANDLES_MAX = 10_000


def _candle_range(args: Mapping[str, Any]) -> tuple[int, int, int]:
    # start_ts, end_ts and the period in seconds, from a candlestick operation's arguments.
    start, end = args["start_ts"], args["end_ts"]
    if end < start:
        raise ExchangeError(400, "invalid_parameters", "end_ts is before start_ts")
    return start, end, args["period_interval"] * 60


def _trades_by_ticker(trades: Sequence[TradeState]) -> dict[str, list[TradeState]]:
    grouped: dict[str, list[TradeState]] = {}
    for trade in trades:
        grouped.setdefault(trade.ticker, []).append(trade)
    return grouped


def _time(wall_ms: int) -> datetime:
    return datetime.fromtimestamp(wall_ms / 1000, UTC)


def _newest_first(items: Sequence[_T], keep: Callable[[_T], bool]) -> list[tuple[int, _T]]:
    # The rows of a list that only grows, newest first, keyed for `ExchangeApp._page` by minus
    # their place in it: ascending keys, and what arrives later sorts before every cursor.
    return [(-index, item) for index, item in reversed(list(enumerate(items))) if keep(item)]


def _sequence_cursor(issued: int) -> tuple[Callable[[str], int | None], Callable[[int], str]]:
    # Cursors over `_newest_first` rows: the place of the last item returned, which must be a
    # place the list has.
    def decode(text: str) -> int | None:
        return -int(text) if text.isascii() and text.isdigit() and int(text) < issued else None

    return decode, lambda key: str(-key)


def _ticker_cursor(known: Mapping[str, object]) -> tuple[Callable[[str], str | None], Callable[[str], str]]:
    # Cursors over rows sorted by ticker: the ticker of the last item returned.
    return (lambda text: text if text in known else None), str


def _in_window(wall_ms: int, args: Mapping[str, Any], low: str = "min_ts", high: str = "max_ts") -> bool:
    # The spec's "Filter items after / before this Unix timestamp", in seconds: strictly after
    # ``low`` and strictly before ``high``.
    after, before = args.get(low), args.get(high)
    return (after is None or wall_ms > after * 1000) and (before is None or wall_ms < before * 1000)


def _on_shard(args: Mapping[str, Any]) -> bool:
    # The exchange is one shard, index 0: an ``exchange_index`` filter for any other finds nothing.
    return args.get("exchange_index") in (None, 0)


def _verify(public_key: object, message: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                hashes.SHA256(),
            )
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return False
    except InvalidSignature:
        return False
    return True


class _Route:
    __slots__ = ("operation", "pattern")

    def __init__(self, operation: Operation, prefix: str) -> None:
        self.operation = operation
        regex = re.sub(r"\\{([a-z_]+)\\}", r"(?P<\1>[^/]+)", re.escape(operation.path))
        self.pattern = re.compile(re.escape(prefix) + regex + r"\Z")


def _page_size(op: Operation, args: Mapping[str, Any]) -> int:
    # The operation's own bounds, from the spec's minimum and maximum. GetMarkets and GetTrades
    # allow 0, and their validate tag (``omitempty,gte=0,lte=1000``) counts a zero as not
    # given: 0 asks for the default page there.
    assert op.pagination is not None and op.pagination.limit_param is not None
    name = op.pagination.limit_param
    param = next(p for p in op.query_params if p.name == name)
    default, bounds = param.default, param.constraints
    assert isinstance(default, int) and bounds is not None
    assert bounds.minimum is not None and bounds.maximum is not None
    limit: int | None = args.get(name)
    if limit is None:
        return default
    if not bounds.minimum <= limit <= bounds.maximum:
        raise ExchangeError(400, "invalid_parameters", f"{name} must be {bounds.describe_range()}")
    return limit or default


_ORDER_BY_ID = "the order id alone names the order, in whichever subaccount it is; the subaccount is not checked"
_GROUP_BY_ID = "the order group id alone names the group, in whichever subaccount it is; the subaccount is not checked"
_NO_FEE_CHANGES = "the exchange schedules no fee changes: the list is empty whatever it says"
_ONE_SHARD = "it routes the request to an exchange shard, and the exchange is one shard (index 0)"

#: Query parameters of modelled operations that the exchange accepts and does nothing with, as
#: (operationId, parameter) -> why. Every other query parameter the spec gives an operation it
#: serves is read and applied as the spec describes it (a test checks that each is either read or
#: listed here). None is refused: a client that sends one to the real API must not fail here.
QUERY_PARAMETERS_WITHOUT_EFFECT: Mapping[tuple[str, str], str] = {
    ("GetMarketCandlesticks", "include_latest_before_start"): (
        "the spec does not say the synthetic candle's end when start_ts falls on a period boundary, "
        "nor its volume, open interest and bid/ask values"
    ),
    ("BatchGetMarketCandlesticks", "include_latest_before_start"): (
        "as for GetMarketCandlesticks: the spec does not say the synthetic candle's end when start_ts falls "
        "on a period boundary, nor its volume, open interest and bid/ask values"
    ),
    ("GetSeriesFeeChanges", "series_ticker"): _NO_FEE_CHANGES,
    ("GetSeriesFeeChanges", "show_historical"): _NO_FEE_CHANGES,
    ("GetEventFeeChanges", "event_ticker"): _NO_FEE_CHANGES,
    ("GetSeriesList", "tags"): "the spec does not describe it",
    ("GetSeriesList", "include_product_metadata"): "the spec does not describe it, and the exchange keeps no product metadata",
    ("GetEvents", "with_milestones"): "there are no milestones: `milestones` is empty either way",
    ("CancelOrderV2", "subaccount"): _ORDER_BY_ID,
    ("CancelOrderV2", "exchange_index"): _ONE_SHARD,
    ("CancelOrderV2", "market_ticker"): "it serves only to route the cancel to a shard, and the exchange is one shard (index 0)",
    ("AmendOrderV2", "subaccount"): _ORDER_BY_ID,
    ("DecreaseOrderV2", "subaccount"): _ORDER_BY_ID,
    ("DeleteOrderGroup", "subaccount"): _GROUP_BY_ID,
    ("DeleteOrderGroup", "exchange_index"): _ONE_SHARD,
    ("ResetOrderGroup", "subaccount"): _GROUP_BY_ID,
    ("ResetOrderGroup", "exchange_index"): _ONE_SHARD,
    ("TriggerOrderGroup", "subaccount"): _GROUP_BY_ID,
    ("TriggerOrderGroup", "exchange_index"): _ONE_SHARD,
    ("UpdateOrderGroupLimit", "subaccount"): _GROUP_BY_ID,
    ("UpdateOrderGroupLimit", "exchange_index"): _ONE_SHARD,
}

#: Operations the local exchange answers with 501: it models a single trader's account on binary
#: markets, not RFQs, block trades, FCM, API-key management, live data or historical archives.
NOT_MODELLED: frozenset[str]


class ExchangeApp:
    """Answers REST requests for one `Exchange`.

    Args:
        exchange: the exchange to serve.
        faults: faults to inject (none by default).
        rng: floats in [0, 1) for fault decisions; required when any fault share is set.
        prefix: the path prefix of the API (``/trade-api/v2``).
        max_clock_skew_ms: how far a request timestamp may be from ``wall_ms``.
        actions: the scenario's scripted actions (``scenario["actions"]``), applied when the
            exchange's clock reaches them; times count from the exchange's start. One the
            exchange refuses when it comes due is skipped and added to `action_refusals`; the
            request being answered, and every later one, is served as usual.
        epoch_ms: the wall-clock time at which the exchange's own clock reads its start time
            (``exchange.wall_ms`` when the app is made); the first request's ``wall_ms`` when
            None. The exchange's clock then runs at wall-clock speed from its scenario start, so
            a scenario dated in the past still trades; signatures are checked against
            ``wall_ms`` itself.

    Raises:
        ValueError: a malformed action (see `kalshi_proto.sim.scenario.check_actions`).
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        faults: Faults | None = None,
        rng: Callable[[], float] | None = None,
        prefix: str = "/trade-api/v2",
        max_clock_skew_ms: int = 30_000,
        epoch_ms: int | None = None,
        actions: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        if faults is not None and not isinstance(faults, Faults):
            raise ConfigurationError(
                "faults must be a Faults (for example Faults(rate_limit_share=0.1)) or None, got "
                f"{type(faults).__name__}"
            )
        self.exchange = exchange
        self._origin = exchange.wall_ms
        self._epoch = epoch_ms
        self._actions = tuple(actions)  # taken once: an iterator would be used up by the check
        check_actions(exchange, self._actions)
        self._actions_done = 0
        #: Scripted actions the exchange refused when they came due, in order.
        self.action_refusals: list[ActionRefused] = []
        self.faults: Faults = faults or Faults()
        if self.faults.active and rng is None:
            raise ConfigurationError("fault injection needs an rng (e.g. random.Random(seed).random)")
        self._rng = rng
        self.prefix = prefix
        self.max_clock_skew_ms = max_clock_skew_ms
        # Literal segments win over parameters: /markets/trades before /markets/{ticker}.
        ordered = sorted(operations(), key=lambda op: op.path.count("{"))
        self._routes = [_Route(op, prefix) for op in ordered]
        self._keys: dict[bytes, object] = {}
        self._burst_left = 0
        self.requests: int = 0
        #: How many requests each operation answered (by operationId), faults and refusals included.
        self.operation_counts: Counter[str] = Counter()
        self._handlers: dict[str, Callable[[_Context], tuple[int, BaseModel | None]]] = {
            name.removeprefix("_op_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("_op_")
        }

    # ---- entry point -----------------------------------------------------------------------

    def handle(self, request: HttpRequest, *, now: float, wall_ms: int) -> Reply:
        """Answer one request (see the module docstring for the rules)."""
        del now
        self.requests += 1
        faulted = self._fault()
        if faulted is not None:
            return faulted
        try:
            status, body = self._dispatch(request, wall_ms)
        except ExchangeError as exc:
            status, body = exc.status, self._error_body(exc.code, exc.message, exc.details)
        response = HttpResponse(status=status, headers=_JSON, body=body)
        if self.faults.drop_share and self._roll(self.faults.drop_share):
            return Drop(response, after=len(body) // 2, delay=self.faults.latency)  # half the body
        return Respond(response, delay=self.faults.latency)

    def _roll(self, share: float) -> bool:
        assert self._rng is not None
        return self._rng() < share

    def _fault(self) -> Reply | None:
        faults = self.faults
        if self._burst_left > 0 or (faults.error_share and self._roll(faults.error_share)):
            self._burst_left = (self._burst_left or faults.error_burst) - 1
            body = self._error_body("service_unavailable", "injected server error")
            return Respond(HttpResponse(faults.error_status, _JSON, body), delay=faults.latency)
        if faults.rate_limit_share and self._roll(faults.rate_limit_share):
            headers: tuple[tuple[str, str], ...] = _JSON
            if faults.retry_after is not None:
                headers = (*_JSON, ("retry-after", f"{faults.retry_after:g}"))
            return Respond(HttpResponse(429, headers, b'{"error":"too many requests"}'), delay=faults.latency)
        return None

    @staticmethod
    def _error_body(code: str, message: str, details: str | None = None) -> bytes:
        payload = {"code": code, "message": message}
        if details:
            payload["details"] = details
        return json.dumps(payload, separators=(",", ":")).encode()

    def _dispatch(self, request: HttpRequest, wall_ms: int) -> tuple[int, bytes]:
        path, _, query_text = request.target.partition("?")
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.operation.method != request.method:
                allowed.append(route.operation.method)
                continue
            return self._run(route.operation, request, found.groupdict(), query_text, wall_ms)
        if allowed:
            raise ExchangeError(405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(sorted(set(allowed)))}")
        raise ExchangeError(404, "not_found", f"no endpoint at {path}")

    def exchange_time(self, wall_ms: int) -> int:
        """The exchange's clock (Unix ms on its own timeline) at wall-clock time ``wall_ms``."""
        if self._epoch is None:
            self._epoch = wall_ms
        return self._origin + (wall_ms - self._epoch)

    def _run(
        self, op: Operation, request: HttpRequest, path_args: dict[str, str], query_text: str, wall_ms: int
    ) -> tuple[int, bytes]:
        self.operation_counts[op.operation_id] += 1
        account = self._authenticate(op, request, wall_ms) if op.requires_auth else None
        wall_ms = self.exchange_time(wall_ms)
        if self._actions_done < len(self._actions):
            self._actions_done, refused = run_actions(self.exchange, self._actions, self._origin, wall_ms, self._actions_done)
            self.action_refusals.extend(refused)
        self.exchange.advance(wall_ms)
        handler = self._handlers.get(op.operation_id)
        if handler is None:
            raise ExchangeError(
                501, "not_implemented", f"the local exchange does not model {op.operation_id} ({op.method} {op.path})"
            )
        args = self._arguments(op, path_args, query_text)
        body: BaseModel | None = None
        if op.request_model is not None:
            try:
                body = op.request_model.model_validate_json(request.body or b"{}")
            except PydanticValidationError as exc:
                details = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
                )
                raise ExchangeError(400, "invalid_parameters", "the request body is invalid", details) from None
        status, model = handler(_Context(op, account, args, body, wall_ms))
        if model is None:
            return status, b""
        return status, model.model_dump_json(by_alias=True, exclude_none=True).encode()

    def _authenticate(self, op: Operation, request: HttpRequest, wall_ms: int) -> Account:
        headers = {k.lower(): v for k, v in request.headers}
        key_id = headers.get("kalshi-access-key")
        stamp = headers.get("kalshi-access-timestamp")
        signature = headers.get("kalshi-access-signature")
        if not key_id or not stamp or not signature:
            raise ExchangeError(401, "missing_authentication", f"{op.operation_id} needs the KALSHI-ACCESS-* headers")
        owner = self.exchange.key_owner(key_id)
        if owner is None:
            raise ExchangeError(401, "invalid_api_key", "unknown API key id")
        account, pem = owner
        if not (stamp.isascii() and stamp.isdigit()) or abs(int(stamp) - wall_ms) > self.max_clock_skew_ms:
            raise ExchangeError(401, "stale_timestamp", f"KALSHI-ACCESS-TIMESTAMP must be within {self.max_clock_skew_ms} ms of the exchange clock")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise ExchangeError(401, "invalid_signature", "the signature is not base64") from None
        key = self._keys.get(pem)
        if key is None:
            key = self._keys[pem] = serialization.load_pem_public_key(pem)
        path = request.target.partition("?")[0]
        if not _verify(key, signing_message(int(stamp), request.method, path), raw):
            raise ExchangeError(401, "invalid_signature", "the signature does not verify")
        return account

    @staticmethod
    def _arguments(op: Operation, path_args: dict[str, str], query_text: str) -> dict[str, Any]:
        from urllib.parse import parse_qsl, unquote

        args: dict[str, Any] = {name: unquote(value) for name, value in path_args.items()}
        by_name = {p.name: p for p in op.params if p.location is ParamLocation.QUERY}
        for name, value in parse_qsl(query_text, keep_blank_values=True):
            param = by_name.get(name)
            if param is None:
                continue
            try:
                if param.kind in (ParamKind.INTEGER, ParamKind.INTEGER_ARRAY):
                    parsed: Any = int(value)
                elif param.kind is ParamKind.BOOLEAN:
                    if value not in ("true", "false"):
                        raise ValueError(value)
                    parsed = value == "true"
                else:
                    parsed = value
            except ValueError:
                raise ExchangeError(400, "invalid_parameters", f"query parameter {name} has an invalid value {value!r}") from None
            if param.enum is not None and parsed not in param.enum:
                raise ExchangeError(400, "invalid_parameters", f"query parameter {name} must be one of {list(param.enum)}")
            if param.kind in (ParamKind.STRING_ARRAY, ParamKind.INTEGER_ARRAY):
                args.setdefault(name, []).append(parsed)
            else:
                args[name] = parsed
        return args

    # ---- shared views ----------------------------------------------------------------------

    def _market_view(self, market: MarketState) -> dict[str, Any]:
        book = market.book
        bid = book.best(Side.BID)
        ask = book.best(Side.ASK)
        bids = book.levels(Side.BID)
        asks = book.levels(Side.ASK)
        status = market.status
        return {
            "ticker": market.ticker,
            "event_ticker": market.event_ticker,
            "market_type": "binary",
            "title": market.title,
            "yes_sub_title": market.yes_sub_title,
            "no_sub_title": market.no_sub_title,
            "created_time": _time(market.created_ms),
            "updated_time": _time(market.updated_ms or market.created_ms),
            "open_time": _time(market.open_ms),
            "close_time": _time(market.close_ms),
            "latest_expiration_time": _time(market.close_ms),
            "settlement_timer_seconds": 0,
            "status": status,
            "notional_value_dollars": _dollars(ONE),
            "yes_bid_dollars": _dollars(bid or ZERO),
            "yes_ask_dollars": _dollars(ask or ONE),
            "no_bid_dollars": _dollars(ONE - ask if ask is not None else ZERO),
            "no_ask_dollars": _dollars(ONE - bid if bid is not None else ONE),
            "yes_bid_size_fp": _count(bids[0][1] if bids else ZERO),
            "yes_ask_size_fp": _count(asks[0][1] if asks else ZERO),
            "last_price_dollars": _dollars(market.last_price),
            "previous_yes_bid_dollars": _dollars(ZERO),
            "previous_yes_ask_dollars": _dollars(ZERO),
            "previous_price_dollars": _dollars(ZERO),
            "volume_fp": _count(market.volume),
            "volume_24h_fp": _count(market.volume),
            "open_interest_fp": _count(market.open_interest),
            "result": market.result,
            "can_close_early": False,
            "expiration_value": "",
            "rules_primary": market.rules_primary,
            "rules_secondary": market.rules_secondary,
            "price_level_structure": market.price_level_structure,
            "price_ranges": [
                {"start": str(_dollars(band.start)), "end": str(_dollars(band.end)), "step": str(_dollars(band.step))}
                for band in market.grid.bands
            ],
            "settlement_bounds_type": "default",
            "exchange_index": 0,
        }

    def _order_view(self, order: OrderState) -> m.Order:
        return m.Order.model_validate(
            {
                "order_id": order.order_id,
                "user_id": order.user_id,
                "client_order_id": order.client_order_id,
                "ticker": order.ticker,
                "side": "yes",
                "action": "buy" if order.side is Side.BID else "sell",
                "outcome_side": "yes",
                "book_side": order.side.value,
                "type": "limit",
                "status": order.status,
                "yes_price_dollars": _dollars(order.price),
                "no_price_dollars": _dollars(ONE - order.price),
                "fill_count_fp": _count(order.fill_count),
                "remaining_count_fp": _count(order.remaining),
                "initial_count_fp": _count(order.initial_count),
                "taker_fill_cost_dollars": _dollars(order.taker_fill_cost),
                "maker_fill_cost_dollars": _dollars(order.maker_fill_cost),
                "taker_fees_dollars": _dollars(order.taker_fees),
                "maker_fees_dollars": _dollars(order.maker_fees),
                "expiration_time": _time(order.expiration_s * 1000) if order.expiration_s else None,
                "created_time": _time(order.created_ms),
                "last_update_time": _time(order.updated_ms),
                "self_trade_prevention_type": order.stp.value,
                "order_group_id": order.order_group_id,
                "cancel_order_on_pause": order.cancel_order_on_pause,
                "subaccount_number": order.subaccount,
                "exchange_index": 0,
            }
        )

    def _fill_view(self, fill: FillState) -> m.Fill:
        return m.Fill.model_validate(
            {
                "fill_id": fill.fill_id,
                "exchange_index": 0,
                "trade_id": fill.trade_id,
                "order_id": fill.order_id,
                "ticker": fill.ticker,
                "market_ticker": fill.ticker,
                "side": "yes",
                "action": "buy" if fill.side is Side.BID else "sell",
                "outcome_side": "yes",
                "book_side": fill.side.value,
                "count_fp": _count(fill.count),
                "yes_price_dollars": _dollars(fill.price),
                "no_price_dollars": _dollars(ONE - fill.price),
                "is_taker": fill.is_taker,
                "created_time": _time(fill.created_ms),
                "fee_cost": _dollars(fill.fee),
                "subaccount_number": fill.subaccount,
                "ts": fill.created_ms // 1000,
            }
        )

    @staticmethod
    def _page(
        ctx: _Context,
        rows: Sequence[tuple[_K, _T]],
        cursor: tuple[Callable[[str], _K | None], Callable[[_K], str]],
    ) -> tuple[list[_T], str]:
        # ``rows`` ascend by key; a cursor names the key of the last item returned, and the next
        # page starts after it. Items that arrive between two requests therefore neither repeat
        # an item nor push one out of reach (an offset into a rebuilt list does both).
        decode, encode = cursor
        text = ctx.args.get("cursor") or ""
        limit = _page_size(ctx.operation, ctx.args)
        if text:
            after = decode(text)
            if after is None:
                raise ExchangeError(400, "invalid_cursor", "the cursor is not one this exchange issued")
            rows = [row for row in rows if row[0] > after]
        chunk = rows[:limit]
        following = encode(chunk[-1][0]) if len(rows) > limit else ""
        return [item for _, item in chunk], following

    @staticmethod
    def _average(total: Decimal, count: Decimal) -> Decimal | None:
        return _dollars(total / count) if count > 0 else None

    def _placed(self, result: PlaceResult, wall_ms: int) -> dict[str, Any]:
        order = result.order
        taker = [f for f in result.fills if f.order_id == order.order_id]
        filled = sum((f.count for f in taker), ZERO)
        # V2 order prices are YES prices, for bids and asks alike.
        cost = sum((f.count * f.price for f in taker), ZERO)
        fees = sum((f.fee for f in taker), ZERO)
        return {
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "fill_count": _count(filled),
            "remaining_count": _count(order.remaining),
            "average_fill_price": self._average(cost, filled),
            "average_fee_paid": self._average(fees, filled),
            "ts_ms": wall_ms,
        }

    # ---- operations ------------------------------------------------------------------------
    # One method per modelled operationId, named _op_<operationId>; each returns (status, model).

    def _op_GetExchangeStatus(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 200, m.ExchangeStatus(exchange_active=True, trading_active=True)

    def _op_GetExchangeSchedule(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 200, m.GetExchangeScheduleResponse.model_validate({"schedule": {"standard_hours": [], "maintenance_windows": []}})

    def _op_GetUserDataTimestamp(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 200, m.GetUserDataTimestampResponse(as_of_time=_time(ctx.wall_ms))

    def _series_view(self, ticker: str, with_volume: bool) -> dict[str, Any]:
        s = self.exchange.series[ticker]
        view: dict[str, Any] = {
            "ticker": s.ticker,
            "frequency": s.frequency,
            "title": s.title,
            "category": s.category,
            "categories": [s.category],
            "tags": list(s.tags),
            "settlement_sources": [],
            "contract_url": "",
            "contract_terms_url": "",
            "fee_type": s.fee_type,
            "fee_multiplier": s.fee_multiplier,
            "additional_prohibitions": [],
        }
        if with_volume:  # include_volume: contracts traded across all the series' events
            view["volume_fp"] = _count(sum((mk.volume for mk in self._markets_of_series(ticker)), ZERO))
        return view

    def _markets_of_series(self, series_ticker: str) -> list[MarketState]:
        return [mk for mk in self.exchange.markets.values() if self.exchange.events[mk.event_ticker].series_ticker == series_ticker]

    def _op_GetSeriesList(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        category = args.get("category")
        # A series' metadata never changes here: it was last updated when its markets were made
        # (as GetEvents reads min_updated_ts for events).
        min_updated = args.get("min_updated_ts")
        with_volume = bool(args.get("include_volume"))
        series = [
            self._series_view(t, with_volume)
            for t, s in sorted(self.exchange.series.items())
            if category in (None, s.category)
            and (min_updated is None or any(mk.created_ms > min_updated * 1000 for mk in self._markets_of_series(t)))
        ]
        return 200, m.GetSeriesListResponse.model_validate({"series": series})

    # The exchange schedules no fee changes: a series keeps the fee type and multiplier its
    # scenario gives it, and no event overrides them. Both lists are empty, whatever the filters.

    def _op_GetSeriesFeeChanges(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 200, m.GetSeriesFeeChangesResponse.model_validate({"series_fee_change_arr": []})

    def _op_GetEventFeeChanges(self, ctx: _Context) -> tuple[int, BaseModel]:
        # A page like any other: its size is checked, and a cursor is one this exchange never
        # issued.
        none: list[tuple[str, dict[str, Any]]] = []
        changes, cursor = self._page(ctx, none, _ticker_cursor({}))
        return 200, m.GetEventFeeChangesResponse.model_validate({"event_fee_changes": changes, "cursor": cursor})

    def _op_GetSeries(self, ctx: _Context) -> tuple[int, BaseModel]:
        ticker = ctx.args["series_ticker"]
        if ticker not in self.exchange.series:
            raise ExchangeError(404, "series_not_found", f"series {ticker} not found")
        view = self._series_view(ticker, bool(ctx.args.get("include_volume")))
        return 200, m.GetSeriesResponse.model_validate({"series": view})

    def _event_view(self, ticker: str, with_markets: bool) -> dict[str, Any]:
        e = self.exchange.events[ticker]
        view: dict[str, Any] = {
            "event_ticker": e.event_ticker,
            "series_ticker": e.series_ticker,
            "sub_title": e.sub_title,
            "title": e.title,
            "collateral_return_type": "",
            "mutually_exclusive": e.mutually_exclusive,
            "category": self.exchange.series[e.series_ticker].category,
            "settlement_sources": [],
        }
        if with_markets:
            view["markets"] = [self._market_view(mk) for mk in self._markets_of(ticker)]
        return view

    def _markets_of(self, event_ticker: str) -> list[MarketState]:
        return [mk for _, mk in sorted(self.exchange.markets.items()) if mk.event_ticker == event_ticker]

    def _markets_by_event(self) -> dict[str, list[MarketState]]:
        # Every event's markets in ticker order, in one pass over the markets.
        grouped: dict[str, list[MarketState]] = {}
        for _, mk in sorted(self.exchange.markets.items()):
            grouped.setdefault(mk.event_ticker, []).append(mk)
        return grouped

    @staticmethod
    def _event_status(markets: list[MarketState]) -> str:
        # The spec's event statuses from the markets': open while one trades, settled once all
        # are, unopened while none has opened, closed otherwise.
        statuses = {mk.status for mk in markets}
        if "active" in statuses:
            return "open"
        if statuses == {"finalized"}:
            return "settled"
        if statuses <= {"initialized"}:
            return "unopened"
        return "closed"

    def _op_GetEvents(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        wanted = set(args["tickers"].split(",")) if args.get("tickers") else None
        min_close = args.get("min_close_ts")
        # An event's metadata never changes here: it was last updated when its markets were made.
        min_updated = args.get("min_updated_ts")
        status = args.get("status")
        markets = self._markets_by_event()  # once per request, not once per event and filter
        tickers = [
            (t, t)
            for t, e in sorted(self.exchange.events.items())
            if args.get("series_ticker") in (None, e.series_ticker)
            and (wanted is None or t in wanted)
            and (status is None or status == self._event_status(markets.get(t, [])))
            and (min_close is None or any(mk.close_ms > min_close * 1000 for mk in markets.get(t, [])))
            and (min_updated is None or any(mk.created_ms > min_updated * 1000 for mk in markets.get(t, [])))
        ]
        chunk, cursor = self._page(ctx, tickers, _ticker_cursor(self.exchange.events))
        nested = bool(ctx.args.get("with_nested_markets"))
        events = [self._event_view(t, nested) for t in chunk]
        return 200, m.GetEventsResponse.model_validate({"events": events, "cursor": cursor})

    def _op_GetEvent(self, ctx: _Context) -> tuple[int, BaseModel]:
        ticker = ctx.args["event_ticker"]
        if ticker not in self.exchange.events:
            raise ExchangeError(404, "event_not_found", f"event {ticker} not found")
        # with_nested_markets also puts the markets inside the event; the top-level list, which
        # the spec deprecates in favour of that one, stays.
        event = self._event_view(ticker, bool(ctx.args.get("with_nested_markets")))
        markets = [self._market_view(mk) for mk in self._markets_of(ticker)]
        return 200, m.GetEventResponse.model_validate({"event": event, "markets": markets})

    _STATUS_FILTER: ClassVar[dict[str, tuple[str, ...]]] = {
        "unopened": ("initialized", "inactive"),
        "open": ("active",),
        "paused": (),
        "closed": ("closed", "determined"),
        "settled": ("finalized",),
    }

    def _op_GetMarkets(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        wanted = self._STATUS_FILTER.get(args.get("status", ""), None)
        tickers = set(args["tickers"].split(",")) if args.get("tickers") else None
        chosen = []
        for ticker, market in sorted(self.exchange.markets.items()):
            event = self.exchange.events[market.event_ticker]
            if wanted is not None and market.status not in wanted:
                continue
            if args.get("event_ticker") not in (None, market.event_ticker):
                continue
            if args.get("series_ticker") not in (None, event.series_ticker):
                continue
            if tickers is not None and ticker not in tickers:
                continue
            # No market here is multivariate: mve_filter=only finds none. A market's metadata
            # changes only with its status (updated_ms).
            if not (
                _in_window(market.close_ms, args, "min_close_ts", "max_close_ts")
                and _in_window(market.created_ms, args, "min_created_ts", "max_created_ts")
                and _in_window(market.updated_ms or market.created_ms, args, "min_updated_ts", "max_updated_ts")
                and args.get("mve_filter") != "only"
            ):
                continue
            settled = args.get("min_settled_ts") is not None or args.get("max_settled_ts") is not None
            if settled and (market.settled_ms is None or not _in_window(market.settled_ms, args, "min_settled_ts", "max_settled_ts")):
                continue
            chosen.append((ticker, market))
        chunk, cursor = self._page(ctx, chosen, _ticker_cursor(self.exchange.markets))
        return 200, m.GetMarketsResponse.model_validate({"markets": [self._market_view(mk) for mk in chunk], "cursor": cursor})

    def _op_GetMarket(self, ctx: _Context) -> tuple[int, BaseModel]:
        market = self.exchange.market(ctx.args["ticker"])
        return 200, m.GetMarketResponse.model_validate({"market": self._market_view(market)})

    def _book_view(self, market: MarketState, depth: int | None) -> dict[str, Any]:
        # YES bids, and NO bids (a NO bid at q is a YES ask at 1 - q), each best price last.
        bids = market.book.levels(Side.BID)
        asks = market.book.levels(Side.ASK)
        if depth:
            bids, asks = bids[:depth], asks[:depth]
        yes = [[str(_dollars(p)), str(_count(c))] for p, c in reversed(bids)]
        no = [[str(_dollars(ONE - p)), str(_count(c))] for p, c in reversed(asks)]
        return {"yes_dollars": yes, "no_dollars": no}

    def _op_GetMarketOrderbook(self, ctx: _Context) -> tuple[int, BaseModel]:
        market = self.exchange.market(ctx.args["ticker"])
        depth = ctx.args.get("depth")
        if depth is not None and not 0 <= depth <= 100:  # the spec's minimum and maximum
            raise ExchangeError(400, "invalid_parameters", "depth must be between 0 and 100")
        view = self._book_view(market, depth)
        return 200, m.GetMarketOrderbookResponse.model_validate({"orderbook_fp": view})

    def _op_GetMarketOrderbooks(self, ctx: _Context) -> tuple[int, BaseModel]:
        books = [
            {"ticker": ticker, "orderbook_fp": self._book_view(self.exchange.market(ticker), None)}
            for ticker in ctx.args.get("tickers", [])
        ]
        return 200, m.GetMarketOrderbooksResponse.model_validate({"orderbooks": books})

    def _op_GetMarketCandlesticks(self, ctx: _Context) -> tuple[int, BaseModel]:
        market = self.exchange.market(ctx.args["ticker"])
        if self.exchange.events[market.event_ticker].series_ticker != ctx.args["series_ticker"]:
            raise ExchangeError(404, "market_not_found", f"market {market.ticker} is not in series {ctx.args['series_ticker']}")
        trades = [t for t in self.exchange.trades if t.ticker == market.ticker]
        candles = self._candles(market, trades, *_candle_range(ctx.args))
        return 200, m.GetMarketCandlesticksResponse.model_validate({"ticker": market.ticker, "candlesticks": candles})

    def _op_BatchGetMarketCandlesticks(self, ctx: _Context) -> tuple[int, BaseModel]:
        # One entry per distinct ticker, in the order asked. The first BATCH_CANDLES_MAX candles
        # are returned, market by market in that order; the markets past the cap get none.
        tickers = list(dict.fromkeys(ctx.args["market_tickers"].split(",")))
        if "" in tickers:
            raise ExchangeError(400, "invalid_parameters", "market_tickers has an empty ticker")
        if len(tickers) > BATCH_CANDLE_MARKETS_MAX:
            raise ExchangeError(
                400, "invalid_parameters", f"market_tickers names {len(tickers)} markets; at most {BATCH_CANDLE_MARKETS_MAX}"
            )
        if ctx.args["period_interval"] < 1:  # the spec's minimum
            raise ExchangeError(400, "invalid_parameters", "period_interval must be at least 1")
        markets = [self.exchange.market(ticker) for ticker in tickers]
        window = _candle_range(ctx.args)
        trades = _trades_by_ticker(self.exchange.trades)
        left = BATCH_CANDLES_MAX
        entries = []
        for market in markets:
            candles = self._candles(market, trades.get(market.ticker, []), *window)[:left]
            left -= len(candles)
            entries.append({"market_ticker": market.ticker, "candlesticks": candles})
        return 200, m.BatchGetMarketCandlesticksResponse.model_validate({"markets": entries})

    def _op_GetMarketCandlesticksByEvent(self, ctx: _Context) -> tuple[int, BaseModel]:
        # The event's markets in ticker order, each with its own candles. No aggregate limit is
        # modelled: adjusted_end_ts is end_ts as asked.
        ticker = ctx.args["ticker"]
        event = self.exchange.events.get(ticker)
        if event is None:
            raise ExchangeError(404, "event_not_found", f"event {ticker} not found")
        if event.series_ticker != ctx.args["series_ticker"]:
            raise ExchangeError(404, "event_not_found", f"event {ticker} is not in series {ctx.args['series_ticker']}")
        window = _candle_range(ctx.args)
        trades = _trades_by_ticker(self.exchange.trades)
        markets = self._markets_of(ticker)
        return 200, m.GetEventCandlesticksResponse.model_validate(
            {
                "market_tickers": [mk.ticker for mk in markets],
                "market_candlesticks": [self._candles(mk, trades.get(mk.ticker, []), *window) for mk in markets],
                "adjusted_end_ts": ctx.args["end_ts"],
            }
        )

    @staticmethod
    def _candles(market: MarketState, trades: Sequence[TradeState], start: int, end: int, period: int) -> list[dict[str, Any]]:
        # Candles from the market's trades (``trades``, oldest first), one per period that had
        # trades. A candle covers (end_period_ts - period, end_period_ts], in seconds; the ones
        # returned end within [start, end]. The exchange keeps no quote history, so yes_bid and
        # yes_ask are the current best prices throughout.
        buckets: dict[int, list[TradeState]] = {}
        for trade in trades:
            end_period = -(-(trade.created_ms // 1000) // period) * period
            if start <= end_period <= end:
                buckets.setdefault(end_period, []).append(trade)
        bid = _dollars(market.book.best(Side.BID) or ZERO)
        ask = _dollars(market.book.best(Side.ASK) or ONE)
        flat_bid = {"open_dollars": bid, "low_dollars": bid, "high_dollars": bid, "close_dollars": bid}
        flat_ask = {"open_dollars": ask, "low_dollars": ask, "high_dollars": ask, "close_dollars": ask}
        candles = []
        for end_period, bucket in sorted(buckets.items()):
            prices = [t.price for t in bucket]
            volume = sum((t.count for t in bucket), ZERO)
            mean = sum((t.price * t.count for t in bucket), ZERO) / volume
            candles.append(
                {
                    "end_period_ts": end_period,
                    "yes_bid": flat_bid,
                    "yes_ask": flat_ask,
                    "price": {
                        "open_dollars": _dollars(prices[0]),
                        "low_dollars": _dollars(min(prices)),
                        "high_dollars": _dollars(max(prices)),
                        "close_dollars": _dollars(prices[-1]),
                        "mean_dollars": _dollars(mean),
                    },
                    "volume_fp": _count(volume),
                    "open_interest_fp": _count(market.open_interest),
                }
            )
        return candles

    def _op_GetTrades(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        # Every trade here is an ordinary one: is_block_trade=true finds none.
        trades = _newest_first(
            self.exchange.trades,
            lambda t: args.get("ticker") in (None, t.ticker)
            and _in_window(t.created_ms, args)
            and not args.get("is_block_trade"),
        )
        chunk, cursor = self._page(ctx, trades, _sequence_cursor(len(self.exchange.trades)))
        views = [
            {
                "trade_id": t.trade_id,
                "ticker": t.ticker,
                "count_fp": _count(t.count),
                "yes_price_dollars": _dollars(t.price),
                "no_price_dollars": _dollars(ONE - t.price),
                "taker_side": "yes" if t.taker_side is Side.BID else "no",
                "taker_outcome_side": "yes" if t.taker_side is Side.BID else "no",
                "taker_book_side": t.taker_side.value,
                "created_time": _time(t.created_ms),
                "is_block_trade": False,
            }
            for t in chunk
        ]
        return 200, m.GetTradesResponse.model_validate({"trades": views, "cursor": cursor})

    # -- portfolio --

    def _op_GetBalance(self, ctx: _Context) -> tuple[int, BaseModel]:
        account = ctx.user
        # GetBalance declares no 400: a subaccount that was never created holds nothing, as
        # GetPositions and the other portfolio lists answer for it.
        sub = ctx.args.get("subaccount") or 0
        available = account.available(sub) if sub in account.cash else ZERO
        value = sum(
            (max(p.position, ZERO) * self.exchange.markets[t].last_price + max(-p.position, ZERO) * (ONE - self.exchange.markets[t].last_price))
            for (s, t), p in account.positions.items()
            if s == sub
        )
        # exchange_index scopes balance and portfolio value to one shard; everything is on 0.
        # The breakdown lists every shard whatever the scope.
        in_scope = _on_shard(ctx.args)
        return 200, m.GetBalanceResponse.model_validate(
            {
                "balance": int(available * 100) if in_scope else 0,
                "balance_dollars": _dollars(available if in_scope else ZERO),
                "portfolio_value": int(Decimal(value) * 100) if in_scope else 0,
                "updated_ts": ctx.wall_ms // 1000,
                "balance_breakdown": [{"exchange_index": 0, "balance": _dollars(available)}],
            }
        )

    def _op_GetPositions(self, ctx: _Context) -> tuple[int, BaseModel]:
        account = ctx.user
        args = ctx.args
        sub = args.get("subaccount") or 0
        # count_filter: keep positions where any of the named counts is non-zero.
        fields = [name.strip() for name in args["count_filter"].split(",")] if args.get("count_filter") else []
        unknown = sorted(set(fields) - {"position", "total_traded"})
        if unknown:
            raise ExchangeError(400, "invalid_parameters", f"count_filter accepts position and total_traded, not {', '.join(unknown)}")
        rows = []
        by_event: dict[str, list[Any]] = {}
        shard = _on_shard(args)
        for (s, ticker), pos in sorted(account.positions.items()):
            market = self.exchange.markets[ticker]
            if not shard or s != sub or args.get("ticker") not in (None, ticker):
                continue
            if fields and not any(getattr(pos, name) for name in fields):
                continue
            if args.get("event_ticker") not in (None, market.event_ticker):
                continue
            settled = market.status == "finalized"
            wanted = args.get("settlement_status", "unsettled")
            if (wanted == "unsettled" and settled) or (wanted == "settled" and not settled):
                continue
            rows.append((ticker, (ticker, pos)))
            by_event.setdefault(market.event_ticker, []).append(pos)
        chunk, cursor = self._page(ctx, rows, _ticker_cursor(self.exchange.markets))
        markets = [
            {
                "ticker": ticker,
                "exchange_index": 0,
                "total_traded_dollars": _dollars(pos.total_traded),
                "position_fp": _count(pos.position),
                "market_exposure_dollars": _dollars(pos.exposure),
                "realized_pnl_dollars": _dollars(pos.realized_pnl),
                "fees_paid_dollars": _dollars(pos.fees_paid),
                "last_updated_ts": _time(pos.updated_ms),
            }
            for ticker, pos in chunk
        ]
        events = [
            {
                "event_ticker": event,
                "total_cost_dollars": _dollars(sum((p.total_traded for p in group), ZERO)),
                "total_cost_shares_fp": _count(sum((abs(p.position) for p in group), ZERO)),
                "event_exposure_dollars": _dollars(sum((p.exposure for p in group), ZERO)),
                "realized_pnl_dollars": _dollars(sum((p.realized_pnl for p in group), ZERO)),
                "fees_paid_dollars": _dollars(sum((p.fees_paid for p in group), ZERO)),
            }
            for event, group in sorted(by_event.items())
        ]
        return 200, m.GetPositionsResponse.model_validate({"market_positions": markets, "event_positions": events, "cursor": cursor})

    def _op_GetOrders(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        user_id = ctx.user.user_id
        # event_ticker is a comma-separated list (at most 10) here.
        events = args["event_ticker"].split(",") if args.get("event_ticker") else None
        if events is not None and len(events) > 10:
            raise ExchangeError(400, "invalid_parameters", "event_ticker takes at most 10 event tickers")
        everything = list(self.exchange.orders.values())
        shard = _on_shard(args)
        orders = _newest_first(
            everything,
            lambda o: shard
            and o.user_id == user_id
            and args.get("ticker") in (None, o.ticker)
            and args.get("status") in (None, o.status)
            and (events is None or self.exchange.markets[o.ticker].event_ticker in events)
            and args.get("subaccount") in (None, o.subaccount)
            and _in_window(o.created_ms, args),
        )
        chunk, cursor = self._page(ctx, orders, _sequence_cursor(len(everything)))
        return 200, m.GetOrdersResponse(orders=[self._order_view(o) for o in chunk], cursor=cursor)

    def _op_GetOrder(self, ctx: _Context) -> tuple[int, BaseModel]:
        order = self.exchange.order_of(ctx.user.user_id, ctx.args["order_id"])
        return 200, m.GetOrderResponse(order=self._order_view(order))

    def _op_GetFills(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        user_id = ctx.user.user_id
        shard = _on_shard(args)
        fills = _newest_first(
            self.exchange.fills,
            lambda f: shard
            and f.user_id == user_id
            and args.get("ticker") in (None, f.ticker)
            and args.get("order_id") in (None, f.order_id)
            and args.get("subaccount") in (None, f.subaccount)
            and _in_window(f.created_ms, args),
        )
        chunk, cursor = self._page(ctx, fills, _sequence_cursor(len(self.exchange.fills)))
        return 200, m.GetFillsResponse(fills=[self._fill_view(f) for f in chunk], cursor=cursor)

    def _op_GetSettlements(self, ctx: _Context) -> tuple[int, BaseModel]:
        args = ctx.args
        user_id = ctx.user.user_id
        rows = _newest_first(
            self.exchange.settlements,
            lambda s: s.user_id == user_id
            and args.get("ticker") in (None, s.ticker)
            and args.get("event_ticker") in (None, s.event_ticker)
            and args.get("subaccount") in (None, s.subaccount)
            and _in_window(s.settled_ms, args),
        )
        chunk, cursor = self._page(ctx, rows, _sequence_cursor(len(self.exchange.settlements)))
        views = [
            {
                "ticker": s.ticker,
                "exchange_index": 0,
                "event_ticker": s.event_ticker,
                "market_result": s.result,
                "yes_count_fp": _count(s.yes_count),
                "yes_total_cost_dollars": _dollars(s.yes_cost),
                "no_count_fp": _count(s.no_count),
                "no_total_cost_dollars": _dollars(s.no_cost),
                "revenue": int(s.revenue * 100),
                "settled_time": _time(s.settled_ms),
                "fee_cost": _dollars(s.fees),
                # The spec's Settlement.value: the payout of a single YES contract, in cents.
                "value": 100 if s.result == "yes" else 0,
            }
            for s in chunk
        ]
        return 200, m.GetSettlementsResponse.model_validate({"settlements": views, "cursor": cursor})

    def _op_GetPortfolioRestingOrderTotalValue(self, ctx: _Context) -> tuple[int, BaseModel]:
        total = sum(ctx.user.reserved.values(), ZERO)
        return 200, m.GetPortfolioRestingOrderTotalValueResponse.model_validate(
            {
                "total_resting_order_value": int(total * 100),
                "resting_order_value_breakdown": [{"exchange_index": 0, "balance": _dollars(total)}],
            }
        )

    def _op_GetOrderQueuePosition(self, ctx: _Context) -> tuple[int, BaseModel]:
        order = self.exchange.order_of(ctx.user.user_id, ctx.args["order_id"])
        return 200, m.GetOrderQueuePositionResponse(queue_position_fp=_count(self._queue_position(order)))

    def _op_GetOrderQueuePositions(self, ctx: _Context) -> tuple[int, BaseModel]:
        rows = []
        wanted = set(ctx.args["market_tickers"].split(",")) if ctx.args.get("market_tickers") else None
        event = ctx.args.get("event_ticker")
        sub = ctx.args.get("subaccount") or 0  # the spec: "Defaults to 0"
        for order in self.exchange.user_orders(ctx.user.user_id):
            if order.status != "resting" or order.subaccount != sub or (wanted is not None and order.ticker not in wanted):
                continue
            if event in (None, self.exchange.markets[order.ticker].event_ticker):
                rows.append({"order_id": order.order_id, "market_ticker": order.ticker, "queue_position_fp": _count(self._queue_position(order))})
        return 200, m.GetOrderQueuePositionsResponse.model_validate({"queue_positions": rows})

    def _queue_position(self, order: OrderState) -> Decimal:
        ahead = ZERO
        book = self.exchange.markets[order.ticker].book
        for resting in book.orders():
            if resting.order_id == order.order_id:
                return ahead
            if resting.side is order.side and resting.price == order.price:
                ahead += resting.remaining
        return ZERO

    # -- V2 orders --

    def _place(self, user: Account, req: m.CreateOrderV2Request, wall_ms: int) -> PlaceResult:
        return self.exchange.place_order(
            user.user_id,
            ticker=req.ticker,
            side=Side(req.side),
            price=req.price,
            count=req.count,
            tif=TimeInForce(req.time_in_force),
            stp=StpMode(req.self_trade_prevention_type),
            client_order_id=req.client_order_id or "",
            wall_ms=wall_ms,
            subaccount=req.subaccount,
            post_only=bool(req.post_only),
            reduce_only=bool(req.reduce_only),
            cancel_order_on_pause=bool(req.cancel_order_on_pause),
            order_group_id=req.order_group_id,
            expiration_s=req.expiration_time,
        )

    def _op_CreateOrderV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        assert isinstance(ctx.body, m.CreateOrderV2Request)
        result = self._place(ctx.user, ctx.body, ctx.wall_ms)
        return 201, m.CreateOrderV2Response.model_validate(self._placed(result, ctx.wall_ms))

    def _op_BatchCreateOrdersV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        assert isinstance(ctx.body, m.BatchCreateOrdersV2Request)
        rows: list[dict[str, Any]] = []
        for req in ctx.body.orders:
            try:
                rows.append(self._placed(self._place(ctx.user, req, ctx.wall_ms), ctx.wall_ms))
            except ExchangeError as exc:
                rows.append({"client_order_id": req.client_order_id, "error": {"code": exc.code, "message": exc.message}})
        return 201, m.BatchCreateOrdersV2Response.model_validate({"orders": rows})

    def _op_AmendOrderV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        req = ctx.body
        assert isinstance(req, m.AmendOrderV2Request)
        result = self.exchange.amend_order(
            ctx.user.user_id,
            ctx.args["order_id"],
            ctx.wall_ms,
            ticker=req.ticker,
            side=Side(req.side),
            price=req.price,
            count=req.count,
            updated_client_order_id=req.updated_client_order_id,
            expiration_s=req.expiration_time,
        )
        return 200, m.AmendOrderV2Response.model_validate(self._placed(result, ctx.wall_ms))

    def _op_DecreaseOrderV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        req = ctx.body
        assert isinstance(req, m.DecreaseOrderV2Request)
        order = self.exchange.decrease_order(
            ctx.user.user_id, ctx.args["order_id"], ctx.wall_ms, reduce_by=req.reduce_by, reduce_to=req.reduce_to
        )
        return 200, m.DecreaseOrderV2Response(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            remaining_count=_count(order.remaining),
            ts_ms=ctx.wall_ms,
        )

    def _op_CancelOrderV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        order, reduced = self.exchange.cancel_order(ctx.user.user_id, ctx.args["order_id"], ctx.wall_ms)
        return 200, m.CancelOrderV2Response(
            order_id=order.order_id, client_order_id=order.client_order_id, reduced_by=_count(reduced), ts_ms=ctx.wall_ms
        )

    def _op_BatchCancelOrdersV2(self, ctx: _Context) -> tuple[int, BaseModel]:
        assert isinstance(ctx.body, m.BatchCancelOrdersV2Request)
        rows: list[dict[str, Any]] = []
        for item in ctx.body.orders:
            try:
                order, reduced = self.exchange.cancel_order(ctx.user.user_id, item.order_id, ctx.wall_ms)
                rows.append({"order_id": order.order_id, "client_order_id": order.client_order_id, "reduced_by": _count(reduced), "ts_ms": ctx.wall_ms})
            except ExchangeError as exc:
                rows.append({"order_id": item.order_id, "reduced_by": _count(ZERO), "error": {"code": exc.code, "message": exc.message}})
        return 200, m.BatchCancelOrdersV2Response.model_validate({"orders": rows})

    def _op_CancelAllOrders(self, ctx: _Context) -> tuple[int, None]:
        self.exchange.cancel_all(ctx.user.user_id, ctx.wall_ms, ctx.args.get("subaccount"))
        return 204, None

    # -- order groups --

    @staticmethod
    def _group_limit(body: Any) -> Decimal:
        if body.contracts_limit_fp is not None:
            return Decimal(body.contracts_limit_fp)
        if body.contracts_limit is not None:
            return Decimal(body.contracts_limit)
        raise ExchangeError(400, "invalid_parameters", "give contracts_limit or contracts_limit_fp")

    def _group_view(self, group: OrderGroupState) -> dict[str, Any]:
        return {
            "id": group.order_group_id,
            "contracts_limit_fp": _count(group.contracts_limit),
            "is_auto_cancel_enabled": group.triggered,
            "exchange_index": 0,
        }

    def _op_GetOrderGroups(self, ctx: _Context) -> tuple[int, BaseModel]:
        sub = ctx.args.get("subaccount")  # all subaccounts when omitted
        groups = [
            self._group_view(g)
            for g in self.exchange.order_groups.values()
            if g.user_id == ctx.user.user_id and sub in (None, g.subaccount)
        ]
        return 200, m.GetOrderGroupsResponse.model_validate({"order_groups": groups})

    def _op_CreateOrderGroup(self, ctx: _Context) -> tuple[int, BaseModel]:
        assert isinstance(ctx.body, m.CreateOrderGroupRequest)
        group = self.exchange.create_order_group(ctx.user.user_id, self._group_limit(ctx.body), ctx.wall_ms, ctx.body.subaccount)
        return 201, m.CreateOrderGroupResponse(order_group_id=group.order_group_id, subaccount=group.subaccount, exchange_index=0)

    def _op_GetOrderGroup(self, ctx: _Context) -> tuple[int, BaseModel]:
        group = self.exchange.order_group(ctx.user.user_id, ctx.args["order_group_id"])
        if ctx.args.get("subaccount") not in (None, group.subaccount):  # any subaccount when omitted
            raise ExchangeError(404, "order_group_not_found", f"order group {group.order_group_id} is not in subaccount {ctx.args['subaccount']}")
        orders = [o.order_id for o in self.exchange.user_orders(ctx.user.user_id) if o.order_group_id == group.order_group_id and o.status == "resting"]
        view = self._group_view(group)
        return 200, m.GetOrderGroupResponse.model_validate(
            {"is_auto_cancel_enabled": view["is_auto_cancel_enabled"], "contracts_limit_fp": view["contracts_limit_fp"], "orders": orders, "exchange_index": 0}
        )

    def _op_DeleteOrderGroup(self, ctx: _Context) -> tuple[int, BaseModel]:
        self.exchange.delete_order_group(ctx.user.user_id, ctx.args["order_group_id"], ctx.wall_ms)
        return 200, m.EmptyResponse()

    def _op_ResetOrderGroup(self, ctx: _Context) -> tuple[int, BaseModel]:
        self.exchange.reset_order_group(ctx.user.user_id, ctx.args["order_group_id"], ctx.wall_ms)
        return 200, m.EmptyResponse()

    def _op_TriggerOrderGroup(self, ctx: _Context) -> tuple[int, BaseModel]:
        self.exchange.trigger_order_group(ctx.user.user_id, ctx.args["order_group_id"], ctx.wall_ms)
        return 200, m.EmptyResponse()

    def _op_UpdateOrderGroupLimit(self, ctx: _Context) -> tuple[int, BaseModel]:
        self.exchange.update_order_group_limit(ctx.user.user_id, ctx.args["order_group_id"], self._group_limit(ctx.body), ctx.wall_ms)
        return 200, m.EmptyResponse()

    # -- subaccounts --

    def _op_CreateSubaccount(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 201, m.CreateSubaccountResponse(subaccount_number=self.exchange.create_subaccount(ctx.user.user_id))

    def _op_ApplySubaccountTransfer(self, ctx: _Context) -> tuple[int, BaseModel]:
        req = ctx.body
        assert isinstance(req, m.ApplySubaccountTransferRequest)
        self.exchange.transfer(
            ctx.user.user_id,
            req.from_subaccount,
            req.to_subaccount,
            Decimal(req.amount_cents) / 100,
            transfer_id=req.client_transfer_id,
            wall_ms=ctx.wall_ms,
        )
        return 200, m.ApplySubaccountTransferResponse()

    def _op_GetSubaccountBalances(self, ctx: _Context) -> tuple[int, BaseModel]:
        rows = [
            {"subaccount_number": n, "exchange_index": 0, "balance": _dollars(ctx.user.available(n)), "updated_ts": ctx.wall_ms // 1000}
            for n in sorted(ctx.user.cash)
        ]
        return 200, m.GetSubaccountBalancesResponse.model_validate({"subaccount_balances": rows})

    def _op_GetSubaccountTransfers(self, ctx: _Context) -> tuple[int, BaseModel]:
        user_id = ctx.user.user_id
        rows = _newest_first(self.exchange.transfers, lambda t: t.user_id == user_id)
        chunk, cursor = self._page(ctx, rows, _sequence_cursor(len(self.exchange.transfers)))
        views = [
            {
                "transfer_id": t.transfer_id,
                "from_subaccount": t.source,
                "to_subaccount": t.destination,
                "amount_cents": int(t.amount * 100),
                "created_ts": t.created_ms // 1000,
                "exchange_index": 0,
            }
            for t in chunk
        ]
        return 200, m.GetSubaccountTransfersResponse.model_validate({"transfers": views, "cursor": cursor})

    # -- account --

    def _op_GetAccountApiLimits(self, ctx: _Context) -> tuple[int, BaseModel]:
        return 200, m.GetAccountApiLimitsResponse.model_validate(
            {
                "usage_tier": "basic",
                "read": {"refill_rate": 200, "bucket_capacity": 200},
                "write": {"refill_rate": 100, "bucket_capacity": 100},
                "grants": [],
            }
        )

    def _op_GetAccountEndpointCosts(self, ctx: _Context) -> tuple[int, BaseModel]:
        by_id = {op.operation_id: op for op in operations()}
        costs = sorted({**ENDPOINT_COSTS, **PER_ITEM_COSTS}.items())
        rows = [
            {"method": by_id[op_id].method, "path": self.prefix + by_id[op_id].path, "cost": cost}
            for op_id, cost in costs
            if op_id in by_id and cost != DEFAULT_COST
        ]
        return 200, m.GetAccountEndpointCostsResponse.model_validate({"default_cost": DEFAULT_COST, "endpoint_costs": rows})


@dataclass(slots=True)
class _Context:
    operation: Operation
    account: Account | None
    args: dict[str, Any]
    body: BaseModel | None
    wall_ms: int

    @property
    def user(self) -> Account:
        assert self.account is not None  # only private operations read the user
        return self.account


NOT_MODELLED = frozenset(
    op.operation_id for op in operations() if not hasattr(ExchangeApp, f"_op_{op.operation_id}")
)
