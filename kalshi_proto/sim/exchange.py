"""The state of the local exchange and every command that changes it.

`Exchange` holds series, events and markets (one `OrderBook` each), users with their API keys,
balances per subaccount, positions, orders, fills, trades, settlements and order groups. Every
command takes ``wall_ms`` (Unix milliseconds) as its clock; nothing here reads a clock or a
random source, and ids come from counters, so a scenario replayed with the same inputs gives the
same state and the same bytes.

Money rules (all `Decimal`, never float):

* Prices are YES prices in dollars; a bid pays ``price`` per contract, an ask (selling YES, the
  same as buying NO) pays ``1 - price``. A fill that reduces an opposite position instead
  releases $1 per closed pair, so buying YES while holding NO receives ``1 - price`` per contract.
* Collateral: an order needs ``count * cost per contract`` plus its fee budget in available
  cash when it is placed, even when it would close a position (a simplification: the real
  exchange nets). The fee budget is the largest fee its fills could be charged -- the taker rate
  at the least favourable price it may trade at -- plus $0.02 per contract for per-fill rounding
  (at most $0.0001 of fee rounding and $0.0001 of balance rounding on a fill of at least 0.01
  contracts). What rests keeps its cost and its maker fee budget reserved until it fills (each
  fill releases its share, floored to $0.0001; the last contracts release the rest) or is
  cancelled, so available cash never goes below zero and every amount stays exact.
* Fees follow the series' ``fee_type`` and ``fee_multiplier``: the taker pays
  ``0.07 * fee_multiplier * count * P * (1 - P)``; on ``quadratic_with_maker_fees`` and
  ``quadratic_with_combo_maker_fees`` series the maker pays the same with 0.0175; ``flat`` series
  charge ``fee_multiplier`` dollars per contract to the taker. The Kalshi docs page
  getting_started/fee_rounding gives the rounding, applied per fill: the trade fee is rounded up
  to $0.0001; the balance change is floored to $0.0001 (every simulated user is a direct member)
  and the difference is a rounding fee; rounding overpaid across the fills of one order comes back
  as a $0.01 rebate once it reaches $0.01.
* Cost basis (``PositionState.exposure``): opening adds what the contracts cost; closing
  releases the average cost of the contracts closed, floored to $0.0001, and closing the last
  contracts releases whatever basis is left. Every partial close therefore moves exposure and
  realized P&L by whole $0.0001 steps, a full close leaves exactly zero, and over a position's
  life realized P&L is exactly what closing paid minus what opening cost (a plain
  ``exposure * closed / held`` rounds at 28 digits and leaves residue such as 1E-28 behind).
  The YES and NO cost bases are the exposure of whichever side is held.
* Settlement pays $1 per contract on the winning side; the market's resting orders are
  cancelled when it closes.

Errors are `ExchangeError` with the HTTP status, code and message the REST layer answers with.
"""

from __future__ import annotations

import heapq
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import InitVar, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from kalshi_proto.auth import check_wall_ms
from kalshi_proto.errors import ConfigurationError
from kalshi_proto.prices import PriceBand, PriceError, PriceGrid
from kalshi_proto.sim.matching import BookOrder, OrderBook, Side, StpMode, TimeInForce

__all__ = [
    "Account",
    "EventState",
    "Exchange",
    "ExchangeError",
    "FillState",
    "MarketState",
    "OrderGroupState",
    "OrderState",
    "PlaceResult",
    "PositionState",
    "SeriesState",
    "SettlementState",
    "TradeState",
    "TransferState",
]

ZERO = Decimal(0)
ONE = Decimal(1)
CENTICENT = Decimal("0.0001")
CENT = Decimal("0.01")
DECICENT = Decimal("0.001")

#: The price-level structures Kalshi names (its subpenny-pricing page), as the ranges a market
#: of that structure lists in ``price_ranges``.
PRICE_LEVEL_STRUCTURES: dict[str, PriceGrid] = {
    "linear_cent": PriceGrid([PriceBand(ZERO, ONE, CENT)]),
    "deci_cent": PriceGrid([PriceBand(ZERO, ONE, DECICENT)]),
    "tapered_deci_cent": PriceGrid(
        [
            PriceBand(ZERO, Decimal("0.1"), DECICENT),
            PriceBand(Decimal("0.1"), Decimal("0.9"), CENT),
            PriceBand(Decimal("0.9"), ONE, DECICENT),
        ]
    ),
}


def linear_grid(tick: Decimal) -> tuple[str, PriceGrid]:
    """(structure name, grid) of one tick from 0 to 1: a named structure, or ``custom``."""
    grid = PriceGrid([PriceBand(ZERO, ONE, tick)])
    name = next((n for n, known in PRICE_LEVEL_STRUCTURES.items() if known == grid), "custom")
    return name, grid
TAKER_RATE = Decimal("0.07")
MAKER_RATE = Decimal("0.0175")
MAKER_FEE_TYPES = frozenset({"quadratic_with_maker_fees", "quadratic_with_combo_maker_fees"})
DUST_PER_CONTRACT = Decimal("0.02")  #: per-fill rounding budget: $0.0002 per fill of >= 0.01 contracts
QUARTER = Decimal("0.25")
ORDER_GROUP_WINDOW_MS = 15_000  #: order-group limits count contracts over a rolling 15 s (REST-NOTES 7)


class ExchangeError(Exception):
    """A command was refused; the REST layer answers ``status`` with an ``ErrorResponse``."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _ceil(value: Decimal, quantum: Decimal = CENTICENT) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_CEILING)


def _floor(value: Decimal, quantum: Decimal = CENTICENT) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_FLOOR)


@dataclass(slots=True)
class SeriesState:
    ticker: str
    title: str
    category: str
    frequency: str = "daily"
    fee_type: str = "quadratic"
    fee_multiplier: Decimal = ONE
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class EventState:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str = ""
    mutually_exclusive: bool = False


@dataclass(slots=True)
class MarketState:
    ticker: str
    event_ticker: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    open_ms: int
    close_ms: int
    created_ms: int
    status: str = "active"  #: initialized, active, closed, determined, finalized
    result: str = ""  #: "", "yes" or "no"
    price_level_structure: str = "linear_cent"  #: a name from PRICE_LEVEL_STRUCTURES, or custom
    grid: PriceGrid = PRICE_LEVEL_STRUCTURES["linear_cent"]  #: the valid order prices
    #: a shorthand for one tick from 0 to 1; it sets the structure and grid (see `linear_grid`)
    tick: InitVar[Decimal | None] = None
    rules_primary: str = ""
    rules_secondary: str = ""
    last_price: Decimal = ZERO
    volume: Decimal = ZERO
    open_interest: Decimal = ZERO
    settled_ms: int | None = None
    updated_ms: int = 0
    book: OrderBook = field(init=False)

    def __post_init__(self, tick: Decimal | None) -> None:
        self.book = OrderBook(self.ticker)
        if tick is not None:
            self.price_level_structure, self.grid = linear_grid(tick)



@dataclass(slots=True)
class OrderState:
    order_id: str
    user_id: str
    client_order_id: str
    ticker: str
    side: Side
    price: Decimal
    initial_count: Decimal
    tif: TimeInForce
    stp: StpMode
    subaccount: int
    created_ms: int
    updated_ms: int
    post_only: bool = False
    reduce_only: bool = False
    cancel_order_on_pause: bool = False
    order_group_id: str | None = None
    expiration_s: int | None = None
    fill_count: Decimal = ZERO
    remaining: Decimal = ZERO
    status: str = "resting"  #: resting, canceled, executed
    reserved: Decimal = ZERO  #: collateral held for the resting remainder (its cost)
    fee_reserved: Decimal = ZERO  #: fee budget held for the resting remainder
    taker_fill_cost: Decimal = ZERO
    maker_fill_cost: Decimal = ZERO
    taker_fees: Decimal = ZERO
    maker_fees: Decimal = ZERO
    rounding_accumulator: Decimal = ZERO

    @property
    def cost_per_contract(self) -> Decimal:
        return self.price if self.side is Side.BID else ONE - self.price


@dataclass(frozen=True, slots=True)
class FillState:
    fill_id: str
    trade_id: str
    order_id: str
    user_id: str
    ticker: str
    side: Side
    price: Decimal  #: the YES price
    count: Decimal
    is_taker: bool
    fee: Decimal
    created_ms: int
    subaccount: int


@dataclass(frozen=True, slots=True)
class TradeState:
    trade_id: str
    ticker: str
    price: Decimal
    count: Decimal
    taker_side: Side
    created_ms: int


@dataclass(slots=True)
class PositionState:
    position: Decimal = ZERO  #: contracts; positive YES, negative NO
    total_traded: Decimal = ZERO
    exposure: Decimal = ZERO  #: cost basis of the open position (see the module docstring)
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    updated_ms: int = 0

    @property
    def yes_cost(self) -> Decimal:
        """The cost basis of the YES contracts held (zero unless the position is long YES)."""
        return self.exposure if self.position > 0 else ZERO

    @property
    def no_cost(self) -> Decimal:
        """The cost basis of the NO contracts held (zero unless the position is long NO)."""
        return self.exposure if self.position < 0 else ZERO

    def release(self, closing: Decimal) -> Decimal:
        """Take the basis of ``closing`` of the contracts held off `exposure`; returns it.

        The average cost of the contracts closed, floored to $0.0001; all that is left when
        ``closing`` is the whole position.
        """
        held = abs(self.position)
        released = self.exposure if closing >= held else self.exposure * closing // (held * CENTICENT) * CENTICENT
        self.exposure -= released
        return released


@dataclass(frozen=True, slots=True)
class SettlementState:
    ticker: str
    event_ticker: str
    user_id: str
    subaccount: int
    result: str
    yes_count: Decimal
    no_count: Decimal
    yes_cost: Decimal
    no_cost: Decimal
    revenue: Decimal
    fees: Decimal
    settled_ms: int


@dataclass(frozen=True, slots=True)
class TransferState:
    transfer_id: str
    user_id: str
    source: int
    destination: int
    amount: Decimal
    created_ms: int


@dataclass(slots=True)
class OrderGroupState:
    order_group_id: str
    user_id: str
    contracts_limit: Decimal
    subaccount: int = 0
    triggered: bool = False
    window: deque[tuple[int, Decimal]] = field(default_factory=deque)

    def matched_in_window(self, wall_ms: int) -> Decimal:
        while self.window and self.window[0][0] <= wall_ms - ORDER_GROUP_WINDOW_MS:
            self.window.popleft()
        return sum((count for _, count in self.window), ZERO)


@dataclass(slots=True)
class Account:
    user_id: str
    cash: dict[int, Decimal] = field(default_factory=lambda: {0: ZERO})
    reserved: dict[int, Decimal] = field(default_factory=lambda: {0: ZERO})
    fee_reserved: dict[int, Decimal] = field(default_factory=lambda: {0: ZERO})
    positions: dict[tuple[int, str], PositionState] = field(default_factory=dict)
    api_keys: dict[str, bytes] = field(default_factory=dict)  #: key id -> public key PEM

    def available(self, subaccount: int) -> Decimal:
        return self.cash[subaccount] - self.reserved[subaccount] - self.fee_reserved[subaccount]


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """What placing (or re-placing, on amend) an order did."""

    order: OrderState
    fills: tuple[FillState, ...]


class Exchange:
    """The whole local exchange. See the module docstring for its rules.

    Args:
        seed: mixed into generated ids, so two exchanges in one test have distinct ids.
    """

    def __init__(self, *, seed: int = 0) -> None:
        # The seed fills the top 32 bits of every generated id (see new_id).
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise ConfigurationError(f"seed must be an int from 0 to 2**32 - 1, got {seed!r}")
        self.seed = seed
        self.series: dict[str, SeriesState] = {}
        self.events: dict[str, EventState] = {}
        self.markets: dict[str, MarketState] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[str, OrderState] = {}
        self.fills: list[FillState] = []
        self.trades: list[TradeState] = []
        self.settlements: list[SettlementState] = []
        self.order_groups: dict[str, OrderGroupState] = {}
        self.transfers: list[TransferState] = []
        self.fees_collected: Decimal = ZERO
        self.wall_ms: int = 0
        self._counter = 0
        self._client_ids: dict[tuple[str, str], str] = {}  # (user, client_order_id) -> order id
        self._expiries: list[tuple[int, str]] = []  # heap of (expiration ms, order id)

    # ---- ids and time --------------------------------------------------------------------

    def new_id(self, kind: int) -> str:
        """A deterministic UUID-shaped id: seed, kind and a counter."""
        self._counter += 1
        return str(uuid.UUID(int=(self.seed << 96) | (kind << 64) | self._counter))

    def advance(self, wall_ms: int) -> None:
        """Let time pass: open and close markets, expire orders. Time never goes back."""
        check_wall_ms(wall_ms)  # tests call the lifecycle methods directly
        if wall_ms < self.wall_ms:
            return
        self.wall_ms = wall_ms
        for market in self.markets.values():
            if market.status == "initialized" and wall_ms >= market.open_ms:
                market.status = "active"
                market.updated_ms = wall_ms
            if market.status == "active" and wall_ms >= market.close_ms:
                self.close_market(market.ticker, wall_ms)
        while self._expiries and self._expiries[0][0] <= wall_ms:
            due, order_id = heapq.heappop(self._expiries)
            order = self.orders[order_id]
            # An amend may have moved or removed the expiry since this entry was pushed.
            if order.status == "resting" and order.expiration_s is not None and order.expiration_s * 1000 == due:
                self._cancel(order, wall_ms)

    # ---- set-up ----------------------------------------------------------------------------

    def add_series(self, series: SeriesState) -> None:
        self.series[series.ticker] = series

    def add_event(self, event: EventState) -> None:
        if event.series_ticker not in self.series:
            raise ValueError(f"unknown series {event.series_ticker}")
        self.events[event.event_ticker] = event

    def add_market(self, market: MarketState) -> None:
        if market.event_ticker not in self.events:
            raise ValueError(f"unknown event {market.event_ticker}")
        self.markets[market.ticker] = market

    def add_account(self, user_id: str, balance: Decimal | int, api_keys: dict[str, bytes] | None = None) -> Account:
        """Open an account with ``balance`` dollars in subaccount 0.

        Raises:
            ConfigurationError: ``balance`` is not a finite `Decimal` (or int) of 0 or more; a
                float is refused, since money here is exact.
        """
        if isinstance(balance, int) and not isinstance(balance, bool):
            balance = Decimal(balance)
        if not isinstance(balance, Decimal) or not balance.is_finite() or balance < 0:
            hint = " (money is exact: use Decimal('100.50'))" if isinstance(balance, float) else ""
            raise ConfigurationError(
                f"a balance must be a finite Decimal of 0 or more{hint}, got {balance!r}"
            )
        account = Account(
            user_id=user_id, cash={0: balance}, reserved={0: ZERO}, fee_reserved={0: ZERO}, api_keys=dict(api_keys or {})
        )
        self.accounts[user_id] = account
        return account

    def key_owner(self, key_id: str) -> tuple[Account, bytes] | None:
        """The account and public key PEM registered under an API key id, or None."""
        for account in self.accounts.values():
            pem = account.api_keys.get(key_id)
            if pem is not None:
                return account, pem
        return None

    # ---- lookups ---------------------------------------------------------------------------

    def market(self, ticker: str) -> MarketState:
        market = self.markets.get(ticker)
        if market is None:
            raise ExchangeError(404, "market_not_found", f"market {ticker} not found")
        return market

    def account(self, user_id: str) -> Account:
        return self.accounts[user_id]

    def order_of(self, user_id: str, order_id: str) -> OrderState:
        order = self.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise ExchangeError(404, "order_not_found", f"order {order_id} not found")
        return order

    def subaccount_number(self, account: Account, subaccount: int | None) -> int:
        """The subaccount a request means (0 when omitted); 400 if it does not exist."""
        number = 0 if subaccount is None else subaccount
        if number not in account.cash:
            raise ExchangeError(400, "invalid_subaccount", f"subaccount {number} does not exist")
        return number

    def position(self, account: Account, subaccount: int, ticker: str) -> PositionState:
        key = (subaccount, ticker)
        pos = account.positions.get(key)
        if pos is None:
            pos = account.positions[key] = PositionState()
        return pos

    # ---- fees ------------------------------------------------------------------------------

    def _fee(self, market: MarketState, count: Decimal, pp: Decimal, *, taker: bool) -> Decimal:
        # The series' fee model, unrounded; ``pp`` is P * (1 - P) at the trade price.
        series = self.series[self.events[market.event_ticker].series_ticker]
        if series.fee_type == "flat":
            return series.fee_multiplier * count if taker else ZERO
        if taker:
            return TAKER_RATE * series.fee_multiplier * count * pp
        if series.fee_type in MAKER_FEE_TYPES:
            return MAKER_RATE * series.fee_multiplier * count * pp
        return ZERO

    def trade_fee(self, market: MarketState, count: Decimal, price: Decimal, *, taker: bool) -> Decimal:
        """The trade fee of one fill before balance rounding (rounded up to $0.0001)."""
        return _ceil(self._fee(market, count, price * (ONE - price), taker=taker))

    def fee_budget(self, market: MarketState, count: Decimal, worst_pp: Decimal, *, taker: bool) -> Decimal:
        """The most the fills of ``count`` contracts can be charged in fees (see the module docs).

        ``worst_pp`` is the largest ``P * (1 - P)`` of any price the order may trade at.
        """
        return _ceil(self._fee(market, count, worst_pp, taker=taker)) + DUST_PER_CONTRACT * count

    @staticmethod
    def taker_worst_pp(side: Side, limit: Decimal) -> Decimal:
        """The largest ``P * (1 - P)`` over the prices an order with this limit may trade at."""
        own = limit * (ONE - limit)
        if side is Side.BID:  # trades at or below the limit
            return own if limit <= Decimal("0.5") else QUARTER
        return own if limit >= Decimal("0.5") else QUARTER

    def _reserve(self, order: OrderState, market: MarketState) -> None:
        # Hold the resting remainder's cost and its maker fee budget.
        account = self.account(order.user_id)
        order.reserved = order.remaining * order.cost_per_contract
        order.fee_reserved = self.fee_budget(market, order.remaining, order.price * (ONE - order.price), taker=False)
        account.reserved[order.subaccount] += order.reserved
        account.fee_reserved[order.subaccount] += order.fee_reserved

    def _release(self, order: OrderState, count: Decimal, before: Decimal) -> None:
        # Release what ``count`` of the ``before`` resting contracts held: their cost, and their
        # share of the fee budget, floored to $0.0001 so every amount stays exact (a plain
        # ``fee_reserved * count / before`` rounds at 28 digits and leaves residue such as 6E-29
        # behind); what flooring keeps back goes with the last contracts.
        account = self.account(order.user_id)
        cost = order.reserved if count >= before else count * order.cost_per_contract
        fees = order.fee_reserved if count >= before else order.fee_reserved * count // (before * CENTICENT) * CENTICENT
        order.reserved -= cost
        order.fee_reserved -= fees
        account.reserved[order.subaccount] -= cost
        account.fee_reserved[order.subaccount] -= fees

    # ---- orders ----------------------------------------------------------------------------

    def place_order(
        self,
        user_id: str,
        *,
        ticker: str,
        side: Side,
        price: Decimal,
        count: Decimal,
        tif: TimeInForce,
        stp: StpMode,
        client_order_id: str,
        wall_ms: int,
        subaccount: int | None = None,
        post_only: bool = False,
        reduce_only: bool = False,
        cancel_order_on_pause: bool = False,
        order_group_id: str | None = None,
        expiration_s: int | None = None,
    ) -> PlaceResult:
        """Check, match and (per time in force) rest a new order.

        Raises:
            ExchangeError: unknown market (404), market not open, bad tick, insufficient
                balance, duplicate client order id, post-only cross, order group triggered.
        """
        self.advance(wall_ms)
        account = self.account(user_id)
        sub = self.subaccount_number(account, subaccount)
        market = self.market(ticker)
        if market.status != "active":
            raise ExchangeError(400, "market_closed", f"market {ticker} is {market.status}, not open for trading")
        self._check_price(market, price)
        if count <= 0:
            raise ExchangeError(400, "invalid_count", "count must be positive")
        if (user_id, client_order_id) in self._client_ids:
            raise ExchangeError(409, "duplicate_client_order_id", f"client_order_id {client_order_id!r} was already used")
        if expiration_s is not None and expiration_s * 1000 <= wall_ms:
            raise ExchangeError(400, "invalid_expiration", "expiration_time must be in the future")
        group = None
        if order_group_id is not None:
            group = self.order_groups.get(order_group_id)
            if group is None or group.user_id != user_id:
                raise ExchangeError(404, "order_group_not_found", f"order group {order_group_id} not found")
            if group.subaccount != sub:
                raise ExchangeError(
                    400, "invalid_subaccount", f"order group {order_group_id} belongs to subaccount {group.subaccount}, not {sub}"
                )
            if group.triggered:
                raise ExchangeError(400, "order_group_triggered", f"order group {order_group_id} hit its limit; reset it first")
        if post_only and market.book.would_cross(side, price):
            raise ExchangeError(400, "post_only_cross", "a post-only order would trade at once")
        if reduce_only:
            held = self.position(account, sub, ticker).position
            reducible = max(ZERO, -held) if side is Side.BID else max(ZERO, held)
            count = min(count, reducible)
            if count <= 0:
                raise ExchangeError(400, "reduce_only_no_position", "reduce_only order has no position to reduce")
        cost = count * (price if side is Side.BID else ONE - price)
        needed = cost + self.fee_budget(market, count, self.taker_worst_pp(side, price), taker=True)
        if account.available(sub) < needed:
            raise ExchangeError(
                400,
                "insufficient_balance",
                f"insufficient balance: the order needs {needed} (cost and fee budget) and "
                f"{account.available(sub)} is available",
            )
        order = OrderState(
            order_id=self.new_id(1),
            user_id=user_id,
            client_order_id=client_order_id,
            ticker=ticker,
            side=side,
            price=price,
            initial_count=count,
            remaining=count,
            tif=tif,
            stp=stp,
            subaccount=sub,
            created_ms=wall_ms,
            updated_ms=wall_ms,
            post_only=post_only,
            reduce_only=reduce_only,
            cancel_order_on_pause=cancel_order_on_pause,
            order_group_id=order_group_id,
            expiration_s=expiration_s,
        )
        self.orders[order.order_id] = order
        self._client_ids[(user_id, client_order_id)] = order.order_id
        if expiration_s is not None:
            heapq.heappush(self._expiries, (expiration_s * 1000, order.order_id))
        fills = self._submit(order, market, wall_ms)
        return PlaceResult(order=order, fills=fills)

    def _check_price(self, market: MarketState, price: Decimal) -> None:
        if not ZERO < price < ONE:
            raise ExchangeError(400, "invalid_price", f"price must be between 0 and 1, got {price}")
        try:
            market.grid.check(price)
        except PriceError as exc:
            raise ExchangeError(400, "invalid_price", str(exc)) from None

    def _submit(self, order: OrderState, market: MarketState, wall_ms: int) -> tuple[FillState, ...]:
        incoming = BookOrder(order.order_id, order.user_id, order.side, order.price, order.remaining)
        result = market.book.match(incoming, order.tif, order.stp)
        fills: list[FillState] = []
        for made in result.matches:
            maker = self.orders[made.maker.order_id]
            trade_id = self.new_id(2)
            self.trades.append(TradeState(trade_id, market.ticker, made.price, made.count, order.side, wall_ms))
            market.last_price = made.price
            market.volume += made.count
            fills.append(self._fill(order, market, trade_id, made.price, made.count, True, wall_ms))
            fills.append(self._fill(maker, market, trade_id, made.price, made.count, False, wall_ms))
            if maker.remaining == 0:
                maker.status = "executed"
        for cancelled in result.maker_cancels:
            self._finish_cancel(self.orders[cancelled.order_id], wall_ms)
        order.remaining = incoming.remaining
        if result.rested:
            self._reserve(order, market)
        else:
            # Nothing rests: an order that traded at all is executed, one that never did is
            # canceled (an IOC or FOK that found nothing, a self-trade stop at once).
            order.status = "executed" if order.fill_count > 0 else "canceled"
        self._check_groups(wall_ms)
        return tuple(fills)

    def _fill(
        self, order: OrderState, market: MarketState, trade_id: str, price: Decimal, count: Decimal,
        is_taker: bool, wall_ms: int,
    ) -> FillState:
        account = self.account(order.user_id)
        sub = order.subaccount
        pos = self.position(account, sub, market.ticker)
        cost = price if order.side is Side.BID else ONE - price
        direction = 1 if order.side is Side.BID else -1
        held_opposite = max(ZERO, -pos.position) if direction == 1 else max(ZERO, pos.position)
        closing = min(count, held_opposite)
        opening = count - closing
        revenue = closing * (ONE - cost) - opening * cost
        if closing > 0:
            pos.realized_pnl += closing * (ONE - cost) - pos.release(closing)
        pos.exposure += opening * cost
        before = pos.position
        pos.position += count * direction
        pos.total_traded += count * cost
        market.open_interest += max(ZERO, pos.position) - max(ZERO, before)
        # Fee and balance rounding, per the docs' fee_rounding page.
        trade_fee = self.trade_fee(market, count, price, taker=is_taker)
        change = revenue - trade_fee
        floored = _floor(change)
        rounding_fee = change - floored
        order.rounding_accumulator += rounding_fee
        rebate = ZERO
        while order.rounding_accumulator >= CENT:
            order.rounding_accumulator -= CENT
            rebate += CENT
        net_fee = trade_fee + rounding_fee - rebate
        account.cash[sub] += floored + rebate
        self.fees_collected += net_fee
        pos.fees_paid += net_fee
        pos.updated_ms = wall_ms
        if not is_taker:
            self._release(order, count, order.remaining)
        order.fill_count += count
        if is_taker:
            order.taker_fill_cost += count * cost
            order.taker_fees += net_fee
        else:
            order.remaining -= count
            order.maker_fill_cost += count * cost
            order.maker_fees += net_fee
        order.updated_ms = wall_ms
        if order.order_group_id is not None:
            # A deleted group cancelled its orders first, so a filling order's group exists.
            self.order_groups[order.order_group_id].window.append((wall_ms, count))
        fill = FillState(
            fill_id=self.new_id(3),
            trade_id=trade_id,
            order_id=order.order_id,
            user_id=order.user_id,
            ticker=market.ticker,
            side=order.side,
            price=price,
            count=count,
            is_taker=is_taker,
            fee=net_fee,
            created_ms=wall_ms,
            subaccount=sub,
        )
        self.fills.append(fill)
        return fill

    def _check_groups(self, wall_ms: int) -> None:
        for group in self.order_groups.values():
            if not group.triggered and group.matched_in_window(wall_ms) >= group.contracts_limit:
                self._trigger(group, wall_ms)

    def _trigger(self, group: OrderGroupState, wall_ms: int) -> None:
        group.triggered = True
        for order in list(self.orders.values()):
            if order.order_group_id == group.order_group_id and order.status == "resting":
                self._cancel(order, wall_ms)

    def _cancel(self, order: OrderState, wall_ms: int) -> Decimal:
        """Take a resting order off its book; returns the count cancelled."""
        self.markets[order.ticker].book.remove(order.order_id)  # "resting" means on the book
        return self._finish_cancel(order, wall_ms)

    def _finish_cancel(self, order: OrderState, wall_ms: int) -> Decimal:
        self._release(order, order.remaining, order.remaining)
        cancelled = order.remaining
        order.remaining = ZERO
        order.status = "canceled"
        order.updated_ms = wall_ms
        return cancelled

    def cancel_order(self, user_id: str, order_id: str, wall_ms: int) -> tuple[OrderState, Decimal]:
        """Cancel a resting order; returns it and the count cancelled.

        Raises:
            ExchangeError: 404 for an unknown order, and 404 ``order_not_resting`` when it no
                longer rests: CancelOrderV2 declares 200, 401, 404 and 500 only.
        """
        self.advance(wall_ms)
        order = self.order_of(user_id, order_id)
        if order.status != "resting":
            raise ExchangeError(404, "order_not_resting", f"order {order_id} is {order.status}; nothing rests to cancel")
        return order, self._cancel(order, wall_ms)

    def cancel_all(self, user_id: str, wall_ms: int, subaccount: int | None = None) -> list[OrderState]:
        """Cancel every resting order of a user (of one subaccount when given)."""
        self.advance(wall_ms)
        done = []
        for order in list(self.orders.values()):
            if order.user_id == user_id and order.status == "resting" and subaccount in (None, order.subaccount):
                self._cancel(order, wall_ms)
                done.append(order)
        return done

    def decrease_order(
        self, user_id: str, order_id: str, wall_ms: int, *, reduce_by: Decimal | None, reduce_to: Decimal | None
    ) -> OrderState:
        """Lower a resting order's remaining count, keeping its place in the queue."""
        self.advance(wall_ms)
        order = self.order_of(user_id, order_id)
        if order.status != "resting":
            raise ExchangeError(400, "order_not_resting", f"order {order_id} is {order.status}")
        target = order.remaining - reduce_by if reduce_by is not None else reduce_to
        assert target is not None
        if target < 0 or target > order.remaining:
            raise ExchangeError(400, "invalid_decrease", f"cannot decrease {order.remaining} to {target}")
        if target == 0:
            self._cancel(order, wall_ms)
            return order
        market = self.markets[order.ticker]
        market.book.reduce(order_id, target)
        self._release(order, order.remaining - target, order.remaining)
        order.remaining = target
        order.updated_ms = wall_ms
        return order

    def amend_order(
        self,
        user_id: str,
        order_id: str,
        wall_ms: int,
        *,
        ticker: str,
        side: Side,
        price: Decimal,
        count: Decimal,
        updated_client_order_id: str | None = None,
        expiration_s: int | None = None,
    ) -> PlaceResult:
        """Change a resting order's price or total count.

        ``count`` is the new total (already filled plus resting). Lowering the count at the same
        price keeps the order's place; any other change takes it off the book and re-enters it
        at the back of its new level, where it may trade at once.
        """
        self.advance(wall_ms)
        order = self.order_of(user_id, order_id)
        if order.status != "resting":
            raise ExchangeError(400, "order_not_resting", f"order {order_id} is {order.status}")
        if order.ticker != ticker or order.side is not side:
            raise ExchangeError(400, "invalid_amend", "ticker and side must match the order")
        market = self.markets[ticker]
        self._check_price(market, price)
        new_remaining = count - order.fill_count
        if new_remaining <= 0:
            raise ExchangeError(400, "invalid_amend", f"count {count} is not above the filled {order.fill_count}")
        if expiration_s and expiration_s * 1000 <= wall_ms:
            raise ExchangeError(400, "invalid_expiration", "expiration_time must be in the future")
        # Resending the order's own client order id (a retried amend) is no duplicate.
        if updated_client_order_id and self._client_ids.get((user_id, updated_client_order_id), order_id) != order_id:
            raise ExchangeError(409, "duplicate_client_order_id", f"client_order_id {updated_client_order_id!r} was already used")
        if order.post_only and price != order.price and market.book.would_cross(side, price):
            raise ExchangeError(400, "post_only_cross", "a post-only order would trade at once")
        if price == order.price and new_remaining <= order.remaining:
            self._apply_amend_fields(order, updated_client_order_id, expiration_s)
            self.decrease_order(user_id, order_id, wall_ms, reduce_by=None, reduce_to=new_remaining)
            return PlaceResult(order=order, fills=())
        account = self.account(user_id)
        new_cost = new_remaining * (price if side is Side.BID else ONE - price)
        needed = new_cost + self.fee_budget(market, new_remaining, self.taker_worst_pp(side, price), taker=True)
        if account.available(order.subaccount) + order.reserved + order.fee_reserved < needed:
            # Checked before anything moves: a refused amend leaves the order where it was.
            raise ExchangeError(400, "insufficient_balance", "insufficient balance for the amended order")
        market.book.remove(order_id)
        self._release(order, order.remaining, order.remaining)
        self._apply_amend_fields(order, updated_client_order_id, expiration_s)
        order.price = price
        order.initial_count = count
        order.remaining = new_remaining
        order.updated_ms = wall_ms
        fills = self._submit(order, market, wall_ms)
        return PlaceResult(order=order, fills=fills)

    def _apply_amend_fields(self, order: OrderState, client_order_id: str | None, expiration_s: int | None) -> None:
        if client_order_id:
            del self._client_ids[(order.user_id, order.client_order_id)]
            self._client_ids[(order.user_id, client_order_id)] = order.order_id
            order.client_order_id = client_order_id
        if expiration_s is not None:
            order.expiration_s = expiration_s or None  # 0 removes the expiry
            if expiration_s:
                heapq.heappush(self._expiries, (expiration_s * 1000, order.order_id))

    # ---- order groups ----------------------------------------------------------------------

    def create_order_group(self, user_id: str, contracts_limit: Decimal, wall_ms: int, subaccount: int | None = None) -> OrderGroupState:
        sub = self.subaccount_number(self.account(user_id), subaccount)
        if contracts_limit <= 0:
            raise ExchangeError(400, "invalid_contracts_limit", "contracts_limit must be positive")
        group = OrderGroupState(self.new_id(4), user_id, contracts_limit, sub)
        self.order_groups[group.order_group_id] = group
        return group

    def order_group(self, user_id: str, group_id: str) -> OrderGroupState:
        group = self.order_groups.get(group_id)
        if group is None or group.user_id != user_id:
            raise ExchangeError(404, "order_group_not_found", f"order group {group_id} not found")
        return group

    def delete_order_group(self, user_id: str, group_id: str, wall_ms: int) -> None:
        group = self.order_group(user_id, group_id)
        self._trigger(group, wall_ms)
        del self.order_groups[group_id]

    def reset_order_group(self, user_id: str, group_id: str, wall_ms: int) -> None:
        group = self.order_group(user_id, group_id)
        group.triggered = False
        group.window.clear()

    def trigger_order_group(self, user_id: str, group_id: str, wall_ms: int) -> None:
        self._trigger(self.order_group(user_id, group_id), wall_ms)

    def update_order_group_limit(self, user_id: str, group_id: str, limit: Decimal, wall_ms: int) -> None:
        if limit <= 0:
            raise ExchangeError(400, "invalid_contracts_limit", "contracts_limit must be positive")
        self.order_group(user_id, group_id).contracts_limit = limit
        self._check_groups(wall_ms)

    # ---- subaccounts -----------------------------------------------------------------------

    def create_subaccount(self, user_id: str) -> int:
        account = self.account(user_id)
        number = max(account.cash) + 1
        if number > 63:
            raise ExchangeError(400, "subaccount_limit", "at most 63 subaccounts")
        account.cash[number] = ZERO
        account.reserved[number] = ZERO
        account.fee_reserved[number] = ZERO
        return number

    def transfer(
        self, user_id: str, source: int, destination: int, amount: Decimal, *, transfer_id: str, wall_ms: int
    ) -> TransferState:
        """Move cash between two subaccounts of one user."""
        account = self.account(user_id)
        for earlier in self.transfers:
            if earlier.user_id == user_id and earlier.transfer_id == transfer_id:
                if (earlier.source, earlier.destination, earlier.amount) != (source, destination, amount):
                    raise ExchangeError(409, "duplicate_transfer_id", f"client_transfer_id {transfer_id!r} was used for another transfer")
                return earlier  # the same transfer again: it happened once
        for number in (source, destination):
            self.subaccount_number(account, number)
        if amount <= 0:
            raise ExchangeError(400, "invalid_amount", "amount must be positive")
        if account.available(source) < amount:
            raise ExchangeError(400, "insufficient_balance", f"subaccount {source} has {account.available(source)} available")
        account.cash[source] -= amount
        account.cash[destination] += amount
        record = TransferState(transfer_id, user_id, source, destination, amount, wall_ms)
        self.transfers.append(record)
        return record

    # ---- market lifecycle ------------------------------------------------------------------

    def close_market(self, ticker: str, wall_ms: int) -> None:
        """Stop trading: the market becomes ``closed`` and its resting orders are cancelled."""
        check_wall_ms(wall_ms)  # tests call the lifecycle methods directly
        market = self.market(ticker)
        if market.status not in ("active", "initialized"):
            return
        market.status = "closed"
        market.updated_ms = wall_ms
        for order in list(self.orders.values()):
            if order.ticker == ticker and order.status == "resting":
                self._cancel(order, wall_ms)

    def determine_market(self, ticker: str, result: str, wall_ms: int) -> None:
        """Record the outcome (``yes`` or ``no``); the market becomes ``determined``."""
        check_wall_ms(wall_ms)  # tests call the lifecycle methods directly
        if result not in ("yes", "no"):
            raise ValueError(f"result must be 'yes' or 'no', not {result!r}")
        self.close_market(ticker, wall_ms)
        market = self.market(ticker)
        if market.status != "closed":
            raise ExchangeError(400, "market_not_closed", f"market {ticker} is {market.status}")
        market.result = result
        market.status = "determined"
        market.updated_ms = wall_ms

    def settle_market(self, ticker: str, wall_ms: int) -> list[SettlementState]:
        """Pay $1 per winning contract; the market becomes ``finalized``."""
        check_wall_ms(wall_ms)  # tests call the lifecycle methods directly
        market = self.market(ticker)
        if market.status != "determined":
            raise ExchangeError(400, "market_not_determined", f"market {ticker} is {market.status}")
        done = []
        for account in self.accounts.values():
            for (sub, held_ticker), pos in account.positions.items():
                if held_ticker != ticker or (pos.position == 0 and pos.fees_paid == 0):
                    continue
                yes = max(ZERO, pos.position)
                no = max(ZERO, -pos.position)
                payout = yes if market.result == "yes" else no
                account.cash[sub] += payout
                pos.realized_pnl += payout - pos.exposure
                record = SettlementState(
                    ticker=ticker,
                    event_ticker=market.event_ticker,
                    user_id=account.user_id,
                    subaccount=sub,
                    result=market.result,
                    yes_count=yes,
                    no_count=no,
                    yes_cost=pos.yes_cost,
                    no_cost=pos.no_cost,
                    revenue=payout,
                    fees=pos.fees_paid,
                    settled_ms=wall_ms,
                )
                pos.position = ZERO
                pos.exposure = ZERO
                pos.updated_ms = wall_ms
                self.settlements.append(record)
                done.append(record)
        market.open_interest = ZERO
        market.status = "finalized"
        market.settled_ms = wall_ms
        market.updated_ms = wall_ms
        return done

    # ---- invariants ------------------------------------------------------------------------

    def total_cash(self) -> Decimal:
        """Every account's cash, reserved collateral included."""
        return sum((sum(a.cash.values(), ZERO) for a in self.accounts.values()), ZERO)

    def total_open_interest(self) -> Decimal:
        """$1 per open contract pair across all markets (what settlement will pay out)."""
        return sum((m.open_interest for m in self.markets.values()), ZERO)

    def user_orders(self, user_id: str) -> Iterator[OrderState]:
        return (o for o in self.orders.values() if o.user_id == user_id)

    def user_fills(self, user_id: str) -> Iterable[FillState]:
        return (f for f in self.fills if f.user_id == user_id)
