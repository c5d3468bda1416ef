"""Client-side token buckets that mirror Kalshi's rate limits, so a busy loop waits instead of
collecting HTTP 429 answers. Using them is opt-in.

How Kalshi limits the Trade API (REST-NOTES.md section 3, from the Kalshi docs page
getting_started/rate_limits, the ``GetAccountApiLimits`` and ``GetAccountEndpointCosts``
operations and the ``BucketLimit`` schema in openapi.yaml):

* Each account has two independent token buckets. The Write bucket pays for order placement,
  amends, decreases, cancels, order groups and the RFQ quote flow (`WRITE_OPERATIONS`); the Read
  bucket pays for everything else.
* Each request spends its endpoint's cost in tokens: 10 by default (`DEFAULT_COST`), less or more
  for the endpoints in `ENDPOINT_COSTS`. Batch endpoints are billed per item (`PER_ITEM_COSTS`),
  so a batch saves no tokens.
* A bucket refills at ``refill_rate`` tokens per second up to ``bucket_capacity``. The per-second
  budgets per usage tier are in `TIERS`. A Read bucket holds one second of budget. The
  ``BucketLimit`` schema says Write buckets "at non-Basic tiers hold two seconds of budget", so
  the Basic Write bucket holds one second and the others two. The rate-limits page says only that
  the Write bucket holds two seconds; when in doubt, build the limiter with
  `RateLimiter.from_limits` from what ``GET /account/limits`` returns for your account.
* The Expert and Prestige tiers are named by the API but have no published budgets, so `TIERS`
  has no entry for them; use `RateLimiter.from_limits`.
* ``GET /account/endpoint_costs`` lists, for the account, the endpoints whose cost differs from
  its ``default_cost``. `CostTable.from_endpoint_costs` reads that answer; without it a limiter
  uses `DOCUMENTED_COSTS`, the costs the spec's descriptions give.

The client's buckets use reservation semantics. `TokenBucket.reserve` deducts the cost at once,
letting the balance go negative, and returns how long the caller must wait before sending; the
next caller then waits for the debt as well as for its own cost. A caller that gives up before
sending (its total timeout would pass first, it was cancelled, its client was closed) gives the
cost back with `Reservation.give_back`, so requests never sent leave no debt behind, as long as
no later caller was already given a turn counted after it (see `TokenBucket.refund`). An HTTP 429
from the server empties the bucket (`RateLimiter.drain`): the account's bucket at Kalshi is
empty, whatever the local one says. A request costing more than the whole capacity is allowed;
it waits until the balance it leaves behind would have refilled to zero. Callers honouring every
wait send no more than ``capacity + refill_rate * T`` tokens' worth in any window of ``T``
seconds (for requests no larger than the capacity), provided each sends as soon as its wait is
over: a caller that reserves and then waits for something else (a free connection) sends late,
and late requests can bunch. The clients therefore also pace each request once it holds its
connection (`RateLimiter.pace`: the same budgets, spent at the moment of sending; see
`kalshi_proto.rest.client.Claim`).

A bucket starts full at the time of its first use, because the adapter's clock origin is unknown
when the bucket is built. If the clock goes backwards, no tokens are added. Every caller of one
limiter must therefore read the same clock: the SDK's clients all pass ``time.monotonic()``. (A
clock with another origin, such as trio's loop clock, would refill a bucket by the difference of
the origins, or ask the other callers to wait that long.)

The core takes no locks of its own. `RateLimiter.guard`, when set, is held around every
`RateLimiter.reserve`: a reservation reads and writes the balance in several steps, and two
threads interleaving them would lose one of the two debits. Every client sets a
`threading.Lock` there unless the limiter has a guard already, so the threads sharing a blocking
client, or several clients sharing one limiter, never lose a reservation. A process forked from
another puts a lock of its own there as its first call starts (`RateLimiter.install_guard`).

These tables cover the Trade API (openapi.yaml). The perps API has its own limits
(``GET /account/limits/perps``). An operation id that is not in the API's table is refused by
`RateLimiter.cost_of` and the methods that spend tokens, so that a misspelt id is not priced
silently; a client's call of an operation built by hand (`kalshi_proto.rest.call.build_call`
with an `Operation` of an endpoint newer than this SDK's spec) is priced under
`UNLISTED_OPERATION` instead: the table's ``default``, from the Read bucket.
"""

from __future__ import annotations

import difflib
import enum
import functools
import math
import numbers
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, NoReturn, SupportsIndex

from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.rest.operation_table import operations

__all__ = [
    "DEFAULT_COST",
    "DOCUMENTED_COSTS",
    "ENDPOINT_COSTS",
    "PER_ITEM_COSTS",
    "TIERS",
    "UNLISTED_OPERATION",
    "WRITE_OPERATIONS",
    "Bucket",
    "BucketLimit",
    "CostTable",
    "RateLimiter",
    "Reservation",
    "TokenBucket",
    "check_clock",
    "priced_as",
]


def check_clock(now: object) -> None:
    """Refuse a reading of the monotonic clock that is not a finite number of seconds.

    A NaN would poison a bucket for good (every later wait NaN) and leave a call's deadlines
    unmet; the adapters read `time.monotonic()`, a sans-I/O driver passes its own.

    Raises:
        TypeError: ``now`` is not an int or a float (a bool is neither).
        ValueError: ``now`` is NaN or infinite.
    """
    if type(now) is not float and (isinstance(now, bool) or not isinstance(now, int | float)):
        raise TypeError(
            f"now must be a number of seconds (time.monotonic()), got {type(now).__name__}"
        )
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, got {now}")


class Bucket(enum.Enum):
    """The two rate-limit buckets of a Kalshi account."""

    #: GETs and every operation not in `WRITE_OPERATIONS`.
    READ = "read"
    #: Order entry, cancels, order groups and the RFQ quote flow.
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """The budget of one bucket, as in the ``BucketLimit`` schema of ``GET /account/limits``.

    Attributes:
        refill_rate: tokens added per second; a number (kept as a float), finite and > 0.
        capacity: the most tokens the bucket holds (``bucket_capacity``); must be finite and > 0.
    """

    refill_rate: float
    capacity: float

    def __post_init__(self) -> None:
        for name in ("refill_rate", "capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}")
            object.__setattr__(self, name, float(value))
        # The chained comparisons also reject NaN.
        if not 0 < self.refill_rate < math.inf:
            raise ConfigurationError(
                f"refill_rate must be a finite number of tokens per second > 0, "
                f"got {self.refill_rate!r}"
            )
        if not 0 < self.capacity < math.inf:
            raise ConfigurationError(
                f"capacity must be a finite number of tokens > 0, got {self.capacity!r}"
            )


@functools.cache
def _operation_ids() -> frozenset[str]:
    """Every operationId of the API, for checking the names in a `CostTable`."""
    return frozenset(op.operation_id for op in operations())


#: The id a call of an operation outside the API's table is priced under: the `CostTable`'s
#: ``default`` cost, from the Read bucket (see `priced_as`).
UNLISTED_OPERATION: Final = "*"


def priced_as(operation_id: str) -> str:
    """The id a call's cost is looked up under: ``operation_id`` itself when the API's table
    has it, else `UNLISTED_OPERATION` (an `Operation` built by hand)."""
    return operation_id if operation_id in _operation_ids() else UNLISTED_OPERATION


def _tier(per_second: float, *, write_seconds: float) -> tuple[BucketLimit, BucketLimit]:
    return (
        BucketLimit(refill_rate=per_second, capacity=per_second),
        BucketLimit(refill_rate=per_second, capacity=per_second * write_seconds),
    )


#: (read, write) bucket limits per usage tier, keyed by lower-case tier name.
TIERS: Mapping[str, tuple[BucketLimit, BucketLimit]] = MappingProxyType(
    {
        "basic": (
            BucketLimit(refill_rate=200, capacity=200),
            BucketLimit(refill_rate=100, capacity=100),
        ),
        "advanced": _tier(300, write_seconds=2),
        "premier": _tier(1000, write_seconds=2),
        "paragon": _tier(2000, write_seconds=2),
        "prime": _tier(4000, write_seconds=2),
    }
)

#: Tokens an operation costs when `ENDPOINT_COSTS` and `PER_ITEM_COSTS` do not list it
#: (``default_cost`` of ``GetAccountEndpointCosts``, "currently 10").
DEFAULT_COST = 10

#: Operations whose cost per request differs from `DEFAULT_COST`, by OpenAPI operationId.
#: The figures come from the "Rate limit:" lines of the operations' descriptions in openapi.yaml.
ENDPOINT_COSTS: Mapping[str, int] = MappingProxyType(
    {
        "GetOrder": 2,
        "CancelOrderV2": 2,
        "CancelAllOrders": 2,
        "CreateQuote": 2,
        "GetQuote": 2,
        "DeleteQuote": 2,
        "GetRFQQuote": 2,
        "DeleteRFQQuote": 2,
        "UpgradeAccountApiUsageLevel": 30,
    }
)

#: Batch operations, billed per item in the batch, by OpenAPI operationId.
PER_ITEM_COSTS: Mapping[str, int] = MappingProxyType(
    {
        "BatchCreateOrdersV2": 10,
        "BatchCancelOrdersV2": 2,
    }
)

#: Operations that spend from the Write bucket, by OpenAPI operationId; all others use Read.
WRITE_OPERATIONS: frozenset[str] = frozenset(
    {
        # Order entry, amends, decreases and cancels.
        "CreateOrderV2",
        "BatchCreateOrdersV2",
        "AmendOrderV2",
        "DecreaseOrderV2",
        "CancelOrderV2",
        "BatchCancelOrdersV2",
        "CancelAllOrders",
        # Order groups.
        "CreateOrderGroup",
        "DeleteOrderGroup",
        "ResetOrderGroup",
        "TriggerOrderGroup",
        "UpdateOrderGroupLimit",
        # The RFQ quote flow.
        "CreateRFQ",
        "DeleteRFQ",
        "CreateQuote",
        "DeleteQuote",
        "AcceptQuote",
        "ConfirmQuote",
        "AcceptRFQQuote",
        "ConfirmRFQQuote",
        "DeleteRFQQuote",
        # "This endpoint costs 30 tokens and uses the Predictions Write bucket."
        "UpgradeAccountApiUsageLevel",
    }
)


#: The prefix the trade API's paths may carry in ``GET /account/endpoint_costs``.
_API_PREFIX = "/trade-api/v2"


def _route(method: str, path: str) -> tuple[str, tuple[str | None, ...]]:
    """(method, path segments) with every path parameter as None, however it is written
    (``{order_id}``, ``{id}``, ``:order_id``), and without the API prefix or a query."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.startswith(_API_PREFIX + "/"):
        path = path[len(_API_PREFIX) :]
    segments = tuple(
        None if segment.startswith((":", "{")) else segment for segment in path.split("/")[1:]
    )
    return method.upper(), segments


@dataclass(frozen=True, slots=True)
class CostTable:
    """What each operation costs, in tokens.

    Attributes:
        default: the cost of an operation listed nowhere else.
        per_request: operations whose cost per request differs from ``default``, by OpenAPI
            operationId.
        per_item: batch operations, billed per order in the batch, by operationId; a batch
            operation (one of `PER_ITEM_COSTS`) listed neither here nor in ``per_request`` is
            billed ``default`` per order.
        unmatched: rows of ``GET /account/endpoint_costs`` that match no operation of the
            spec (method, path, cost), kept for inspection; they change no cost.
    """

    default: int = DEFAULT_COST
    per_request: Mapping[str, int] = field(default_factory=dict)
    per_item: Mapping[str, int] = field(default_factory=dict)
    unmatched: tuple[tuple[str, str, int], ...] = ()

    def __post_init__(self) -> None:
        known = _operation_ids()
        for table_name in ("per_request", "per_item"):
            table = getattr(self, table_name)
            if not isinstance(table, Mapping):
                raise ConfigurationError(
                    f"{table_name} must be a mapping of operationId to tokens, got "
                    f"{type(table).__name__}"
                )
            if not isinstance(table, MappingProxyType):
                # A copy that cannot change: the caller's dict stays the caller's.
                object.__setattr__(self, table_name, MappingProxyType(dict(table)))
            for operation_id in table:
                if operation_id not in known:
                    close = difflib.get_close_matches(str(operation_id), known, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise ConfigurationError(
                        f"{table_name} names {operation_id!r}, which is no operationId of the "
                        f"API{hint}"
                    )
        costs = [("default", self.default)]
        costs += [(name, cost) for name, cost in self.per_request.items()]
        costs += [(name, cost) for name, cost in self.per_item.items()]
        for name, cost in costs:
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                raise ConfigurationError(
                    f"the cost of {name} must be a whole number of tokens >= 0, got {cost!r}"
                )

    @classmethod
    def from_endpoint_costs(
        cls, default_cost: int, endpoint_costs: Iterable[tuple[str, str, int]]
    ) -> CostTable:
        """The costs ``GET /account/endpoint_costs`` gives for the account.

        Each row is matched to an operation by method and path: with or without the
        ``/trade-api/v2`` prefix, and whatever the path parameters are called. The batch
        operations of `PER_ITEM_COSTS` stay billed per order, at the row's cost (or
        ``default_cost``) per order. An operation without a row costs ``default_cost``, as the
        endpoint says; a row that matches no operation goes to ``unmatched``.

        Args:
            default_cost: the answer's ``default_cost``.
            endpoint_costs: (method, path, cost) of each row of the answer's ``endpoint_costs``.

        Raises:
            ConfigurationError: a cost is not a whole number of tokens >= 0.
        """
        by_route = {_route(op.method, op.path): op.operation_id for op in operations()}
        per_request: dict[str, int] = {}
        per_item = dict.fromkeys(PER_ITEM_COSTS, default_cost)
        unmatched: list[tuple[str, str, int]] = []
        for method, path, cost in endpoint_costs:
            operation_id = by_route.get(_route(method, path))
            if operation_id is None:
                unmatched.append((method, path, cost))
            elif operation_id in per_item:
                per_item[operation_id] = cost
            else:
                per_request[operation_id] = cost
        return cls(
            default=default_cost,
            per_request=MappingProxyType(per_request),
            per_item=MappingProxyType(per_item),
            unmatched=tuple(unmatched),
        )

    def __reduce__(self) -> tuple[type[CostTable], tuple[object, ...]]:
        # Pickled and copied as its four fields, the read-only mappings as plain dicts (a
        # mappingproxy does not pickle); the copy is checked and made read-only again.
        fields = (self.default, dict(self.per_request), dict(self.per_item), self.unmatched)
        return (CostTable, fields)

    def cost_of(self, operation_id: str, items: int = 1) -> int:
        """The tokens one call of an operation costs (see `RateLimiter.cost_of`)."""
        if operation_id not in _operation_ids() and operation_id != UNLISTED_OPERATION:
            # A misspelt id would be priced at the default, from the Read bucket, silently.
            close = difflib.get_close_matches(str(operation_id), _operation_ids(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise LocalProtocolError(f"no operation has the operationId {operation_id!r}{hint}")
        if isinstance(items, bool) or not isinstance(items, int):
            raise LocalProtocolError(f"items must be an int, got {type(items).__name__}")
        if items < 1:
            raise LocalProtocolError(f"items must be at least 1, got {items}")
        per_item = self.per_item.get(operation_id)
        if per_item is not None:
            return per_item * items
        cost = self.per_request.get(operation_id)
        if cost is not None:
            return cost
        return self.default * items if operation_id in PER_ITEM_COSTS else self.default


#: The costs the spec's descriptions give (`DEFAULT_COST`, `ENDPOINT_COSTS`, `PER_ITEM_COSTS`).
DOCUMENTED_COSTS = CostTable(DEFAULT_COST, ENDPOINT_COSTS, PER_ITEM_COSTS)


class TokenBucket:
    """One token bucket with reservation semantics.

    The bucket starts full at the time of its first `reserve` or `available` call.
    """

    __slots__ = ("_last", "_limit", "_serial", "_tokens")

    def __init__(self, limit: BucketLimit) -> None:
        """Build a bucket; it fills to capacity at its first use.

        Args:
            limit: the refill rate and capacity.

        Raises:
            ConfigurationError: ``limit`` is not a `BucketLimit`.
        """
        if not isinstance(limit, BucketLimit):
            raise ConfigurationError(
                "a bucket's limit must be a BucketLimit (for example "
                f"BucketLimit(refill_rate=20, capacity=20)), got {type(limit).__name__}"
            )
        self._limit = limit
        self._tokens = limit.capacity
        # The latest clock reading seen; None until the first call.
        self._last: float | None = None
        # Counts reservations and drains: a reservation may be given back exactly only while
        # it is the latest thing that happened to the bucket (see `refund`).
        self._serial = 0

    @property
    def serial(self) -> int:
        """How many reservations and drains the bucket has seen; read it right after
        `reserve` to give that reservation back with `refund`."""
        return self._serial

    @property
    def limit(self) -> BucketLimit:
        """The refill rate and capacity of this bucket."""
        return self._limit

    def reserve(self, cost: float, now: float) -> float:
        """Spend ``cost`` tokens and say how long to wait before sending the request.

        The cost is deducted at once, even when that leaves the balance negative; wait the
        returned number of seconds, then send. A cost above the capacity is allowed.

        Args:
            cost: tokens the request costs; ``0`` or more.
            now: the adapter's monotonic clock.

        Returns:
            Seconds to wait before sending; ``0.0`` when the balance stayed at or above zero.

        Raises:
            LocalProtocolError: ``cost`` is negative or not a number.
        """
        if not 0 <= cost < math.inf:
            raise LocalProtocolError(f"cost must be a finite number of tokens >= 0, got {cost!r}")
        last = self._refill(now)
        self._tokens -= cost
        self._serial += 1
        if self._tokens >= 0:
            return 0.0
        # The debt is paid off refill_rate tokens per second, counted from the latest clock
        # reading; when the clock went backwards that reading is later than now.
        return (last - now) + (-self._tokens) / self._limit.refill_rate

    def refund(self, cost: float, serial: int | None = None) -> bool:
        """Give back ``cost`` tokens reserved for a request that was never sent.

        The balance rises by ``cost``, up to the capacity. With ``serial`` (the `serial` read
        right after that `reserve`), the tokens go back only if nothing was reserved or drained
        since. Otherwise they stay spent and the request's turn stays empty: callers that
        reserved later were already given their turns, counted after this one, and a newcomer
        handed the freed tokens would go out together with the last of them, which the server's
        bucket (which banks no more than its capacity) would refuse. And a drain after a 429
        already set the balance to what the server has, which this request never spent from.

        Args:
            cost: the tokens `reserve` took; ``0`` or more.
            serial: the bucket's `serial` right after that reservation, or None to give the
                tokens back whatever happened since.

        Returns:
            True if the tokens went back.

        Raises:
            LocalProtocolError: ``cost`` is negative or not a number.
        """
        if not 0 <= cost < math.inf:
            raise LocalProtocolError(f"cost must be a finite number of tokens >= 0, got {cost!r}")
        if serial is not None and serial != self._serial:
            return False
        self._tokens = min(self._limit.capacity, self._tokens + cost)
        return True

    def drain(self, now: float) -> None:
        """Empty the bucket at ``now``: the server said it has no tokens left (HTTP 429).

        A balance already below zero (requests reserved and waiting) stays as it is.

        Args:
            now: the adapter's monotonic clock.
        """
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)
        self._serial += 1

    def available(self, now: float) -> float:
        """The balance at ``now``, without changing the bucket.

        Args:
            now: the adapter's monotonic clock.

        Returns:
            Tokens in the bucket; negative while reserved requests are still waiting.
        """
        check_clock(now)
        if self._last is None:
            return self._limit.capacity
        return self._balance_at(now, self._last)

    def _refill(self, now: float) -> float:
        check_clock(now)
        if self._last is None:
            self._last = now
        else:
            self._tokens = self._balance_at(now, self._last)
            # Keep the latest reading so that a clock that steps back and then forward again
            # does not credit the same interval twice.
            self._last = max(self._last, now)
        return self._last

    def _balance_at(self, now: float, last: float) -> float:
        # A clock reading earlier than the last one adds nothing.
        elapsed = max(0.0, now - last)
        return min(self._limit.capacity, self._tokens + elapsed * self._limit.refill_rate)


class RateLimiter:
    """The Read and Write buckets of one account, and the cost table that routes to them."""

    __slots__ = ("_buckets", "_guard_epoch", "_offered", "_wire", "costs", "guard")

    def __init__(
        self,
        read: BucketLimit,
        write: BucketLimit,
        *,
        guard: AbstractContextManager[object] | None = None,
        costs: CostTable = DOCUMENTED_COSTS,
    ) -> None:
        """Build a limiter from the limits of its two buckets.

        Args:
            read: the Read bucket's limit.
            write: the Write bucket's limit.
            guard: a lock to hold around every `reserve` (see `guard`); the clients set one.
            costs: what each operation costs; the spec's figures by default.

        Raises:
            ConfigurationError: a limit is not a `BucketLimit`, ``guard`` is not a context
                manager (a lock), or ``costs`` is not a `CostTable`.
        """
        if guard is not None and not (hasattr(guard, "__enter__") and hasattr(guard, "__exit__")):
            raise ConfigurationError(
                "guard must be a lock (such as threading.Lock()) or None, got "
                f"{type(guard).__name__}"
            )
        if not isinstance(costs, CostTable):
            raise ConfigurationError(
                "costs must be a CostTable (for example CostTable.from_endpoint_costs(...)), "
                f"got {type(costs).__name__}"
            )
        self._buckets = {Bucket.READ: TokenBucket(read), Bucket.WRITE: TokenBucket(write)}
        # The same budgets, spent when a request is sent rather than when its call queues (see
        # `pace`).
        self._wire = {Bucket.READ: TokenBucket(read), Bucket.WRITE: TokenBucket(write)}
        #: What each operation costs (`CostTable`).
        self.costs: CostTable = costs
        #: Held around every `reserve` when not None: a `threading.Lock`, for instance, so that
        #: threads sharing the limiter never lose a reservation. Every client installs one when
        #: it is None (`install_guard`). `TokenBucket.available` peeks without it.
        self.guard = guard
        # The first lock offered to install_guard in each epoch, kept by dict.setdefault, which
        # is atomic; and the epoch of the guard installed last.
        self._offered: dict[int, AbstractContextManager[object]] = {}
        self._guard_epoch = 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # Used by pickle, copy.copy and copy.deepcopy alike.
        raise TypeError(
            "RateLimiter objects cannot be copied or pickled: their buckets count what this "
            "process has spent, and a second limiter on the account would spend its budget "
            "again. Share the one limiter between the clients of a process, and give each "
            "process a limiter of its own with a share of the account's limits "
            "(RateLimiter.from_limits(...))."
        )

    def install_guard(
        self, lock: AbstractContextManager[object], *, epoch: int = 0
    ) -> AbstractContextManager[object]:
        """Make ``lock`` the `guard` unless the limiter has one for ``epoch`` (see
        `has_guard_for`); return the guard in use.

        Clients built at the same moment in different threads on one limiter each offer a lock:
        the first one offered wins, and every client gets that one, so no two reservations run
        under different locks. (A plain check-then-set could let two clients each install their
        own.)

        ``epoch`` names the process: the clients pass ``os.getpid()``. A process forked from
        another has a copy of the limiter, guard included, and a thread of the parent may have
        held that guard at the moment of the fork: no thread of the child would ever release
        it, and the child's first reservation would wait for good. The first lock offered in
        the new process replaces a guard installed in another. A guard given to the
        constructor, or set by hand, is kept in every process: making it fork-safe is up to
        whoever gave it.
        """
        guard = self.guard
        if guard is None or not self.has_guard_for(epoch):
            guard = self.guard = self._offered.setdefault(epoch, lock)
            self._guard_epoch = epoch
        return guard

    def has_guard_for(self, epoch: int) -> bool:
        """Whether a caller in ``epoch`` (a process id, for the clients) can use the `guard`:
        False when there is none, or when `install_guard` installed it in another epoch."""
        guard = self.guard
        if guard is None:
            return False
        installed = self._offered.get(self._guard_epoch)
        return guard is not installed or self._guard_epoch == epoch

    @classmethod
    def for_tier(cls, name: str) -> RateLimiter:
        """Build a limiter for a published usage tier (`TIERS`).

        Args:
            name: the tier name, e.g. ``"basic"`` or ``"Premier"``; case does not matter.

        Returns:
            A limiter with both buckets full.

        Raises:
            ConfigurationError: ``name`` is not a str, or the tier has no published budget.
        """
        if not isinstance(name, str):
            raise ConfigurationError(
                f"a tier name must be a str (such as 'basic'), got {type(name).__name__}"
            )
        limits = TIERS.get(name.strip().lower())
        if limits is None:
            known = ", ".join(TIERS)
            raise ConfigurationError(
                f"no published rate limits for tier {name!r}; known tiers: {known}. "
                "For other tiers use RateLimiter.from_limits with the figures from "
                "GET /account/limits"
            )
        return cls(*limits)

    @classmethod
    def from_limits(
        cls,
        read_refill_rate: float,
        read_capacity: float,
        write_refill_rate: float,
        write_capacity: float,
        *,
        costs: CostTable = DOCUMENTED_COSTS,
    ) -> RateLimiter:
        """Build a limiter from the ``read`` and ``write`` limits of ``GET /account/limits``.

        Args:
            read_refill_rate: ``read.refill_rate``, tokens per second.
            read_capacity: ``read.bucket_capacity``, tokens.
            write_refill_rate: ``write.refill_rate``, tokens per second.
            write_capacity: ``write.bucket_capacity``, tokens.
            costs: what each operation costs (`CostTable.from_endpoint_costs` reads them from
                ``GET /account/endpoint_costs``); the spec's figures by default.

        Returns:
            A limiter with both buckets full.

        Raises:
            ConfigurationError: a rate or capacity is not a finite number > 0.
        """
        return cls(
            BucketLimit(refill_rate=read_refill_rate, capacity=read_capacity),
            BucketLimit(refill_rate=write_refill_rate, capacity=write_capacity),
            costs=costs,
        )

    def bucket(self, which: Bucket) -> TokenBucket:
        """The bucket itself, e.g. to peek at `TokenBucket.available`.

        Args:
            which: `Bucket.READ` or `Bucket.WRITE`.

        Returns:
            The bucket.
        """
        return self._buckets[which]

    def cost_of(self, operation_id: str, items: int = 1) -> int:
        """The tokens one call of an operation costs.

        Args:
            operation_id: the OpenAPI operationId, e.g. ``"CreateOrderV2"``.
            items: the number of orders in a batch; only batch operations (`CostTable.per_item`)
                use it.

        Returns:
            The cost in tokens, from `costs`.

        Raises:
            LocalProtocolError: ``operation_id`` is neither in the API's table nor
                `UNLISTED_OPERATION`, or ``items`` is not an int of 1 or more.
        """
        return self.costs.cost_of(operation_id, items)

    def bucket_of(self, operation_id: str) -> Bucket:
        """The bucket an operation spends from.

        Args:
            operation_id: the OpenAPI operationId.

        Returns:
            `Bucket.WRITE` for the operations in `WRITE_OPERATIONS`, `Bucket.READ` otherwise.
        """
        return Bucket.WRITE if operation_id in WRITE_OPERATIONS else Bucket.READ

    def beyond_capacity(self, operation_id: str, items: int = 1) -> str | None:
        """Why the exchange would refuse a call of this cost whatever the wait, or None.

        A request is allowed only if its bucket holds enough tokens to cover its cost (the
        spec's ``BucketLimit``), so one that costs more than the bucket's capacity gets HTTP 429
        every time: a batch of too many orders for the account's tier, say.

        Args:
            operation_id: the OpenAPI operationId.
            items: the number of orders in a batch (see `cost_of`).
        """
        cost = self.cost_of(operation_id, items)
        which = self.bucket_of(operation_id)
        capacity = self._buckets[which].limit.capacity
        if cost <= capacity:
            return None
        what = f"{items} orders" if items > 1 else "one call"
        return (
            f"{what} cost {cost} {which.value} tokens, more than the {which.value} bucket holds "
            f"({capacity:g}); the exchange refuses such a request however long the client waits"
            + ("; send the orders in smaller batches" if items > 1 else "")
        )

    def reserve(self, operation_id: str, now: float, items: int = 1) -> float:
        """Spend the tokens of one call and say how long to wait before sending it.

        Call this right before each attempt (retries spend tokens too), sleep the returned
        seconds, then send.

        Args:
            operation_id: the OpenAPI operationId.
            now: the adapter's monotonic clock.
            items: the number of orders in a batch (see `cost_of`).

        Returns:
            Seconds to wait before sending; ``0.0`` when the bucket covered the cost.

        Raises:
            LocalProtocolError: ``items`` is below 1.
        """
        return self.reserve_turn(operation_id, now, items).wait

    def pace(self, operation_id: str, now: float, items: int = 1) -> float:
        """Spend the tokens of a request about to be sent, from the budget as the server sees
        it; say how long to wait first.

        `reserve` puts a call in line for its turn; the request may still go out later than
        that turn, after a wait for a free connection, and several late requests would then go
        out together, over the budget on the wire. So once the request holds its connection,
        it is paced too: the same budget, spent at the moment of sending. A request sent on
        its turn finds the tokens there and does not wait.

        Args:
            operation_id: the OpenAPI operationId.
            now: the adapter's monotonic clock.
            items: the number of orders in a batch (see `cost_of`).

        Returns:
            Seconds to wait before sending; ``0.0`` when the request may go now.
        """
        return self.pace_turn(operation_id, now, items).wait

    def reserve_turn(self, operation_id: str, now: float, items: int = 1) -> Reservation:
        """`reserve`, returning a `Reservation` that can give exactly these tokens back."""
        return self._take_turn(self._buckets, operation_id, now, items)

    def pace_turn(self, operation_id: str, now: float, items: int = 1) -> Reservation:
        """`pace`, returning a `Reservation` that can give exactly these tokens back."""
        return self._take_turn(self._wire, operation_id, now, items)

    def _take_turn(
        self, buckets: dict[Bucket, TokenBucket], operation_id: str, now: float, items: int
    ) -> Reservation:
        cost = self.cost_of(operation_id, items)
        bucket = buckets[self.bucket_of(operation_id)]
        with self._guarded():
            wait = bucket.reserve(cost, now)
            return Reservation(wait, self, bucket, cost, bucket.serial)

    def _guarded(self) -> AbstractContextManager[object]:
        guard = self.guard
        return nullcontext() if guard is None else guard

    def unpace(self, operation_id: str, items: int = 1) -> None:
        """Give back the tokens `pace` took for a request that was never sent, whatever
        happened since (`Reservation.give_back` is exact)."""
        cost = self.cost_of(operation_id, items)
        with self._guarded():
            self._wire[self.bucket_of(operation_id)].refund(cost)

    def drain(self, operation_id: str, now: float) -> None:
        """Empty the bucket ``operation_id`` spends from: the server answered it with HTTP 429.

        Kalshi sends no header with the balance it has left, so a 429 is the one sign that the
        account's bucket there is empty: other processes on the account spent it, or the
        account's tier is lower than the limiter was built for. Every caller of this limiter
        then waits for the refill instead of collecting 429s too.

        Args:
            operation_id: the OpenAPI operationId of the call that got the 429.
            now: the adapter's monotonic clock.
        """
        which = self.bucket_of(operation_id)
        with self._guarded():
            self._buckets[which].drain(now)
            self._wire[which].drain(now)

    def refund(self, operation_id: str, items: int = 1) -> None:
        """Give back the tokens `reserve` took for a call whose request was never sent, whatever
        happened since (`Reservation.give_back` gives back only what is safe to).

        For a caller that gives up during the wait `reserve` asked for, or instead of waiting.
        A request that went out, even one that failed, keeps its cost: it may have reached the
        server, which counts it.

        Args:
            operation_id: the OpenAPI operationId given to `reserve`.
            items: the number of orders given to `reserve`.

        Raises:
            LocalProtocolError: ``items`` is below 1.
        """
        cost = self.cost_of(operation_id, items)
        with self._guarded():
            self._buckets[self.bucket_of(operation_id)].refund(cost)


class Reservation:
    """The tokens one request took from one bucket (`RateLimiter.reserve_turn` or
    `RateLimiter.pace_turn`), until it is sent.

    Attributes:
        wait: seconds to wait before sending, as `RateLimiter.reserve` returns it.
    """

    __slots__ = ("_bucket", "_cost", "_given", "_limiter", "_serial", "wait")

    def __init__(
        self, wait: float, limiter: RateLimiter, bucket: TokenBucket, cost: float, serial: int
    ) -> None:
        self.wait: float = wait
        self._limiter = limiter
        self._bucket = bucket
        self._cost = cost
        self._serial = serial
        self._given = False

    def give_back(self) -> bool:
        """Give the tokens back: the request will not be sent.

        They go back only if nothing was reserved from the bucket, or drained, since; otherwise
        the request's turn stays empty (see `TokenBucket.refund`). Only the first call gives
        anything back: a second one would credit tokens this request never took.

        Returns:
            True if the tokens went back (now).
        """
        with self._limiter._guarded():
            if self._given:
                return False
            self._given = True
            return self._bucket.refund(self._cost, self._serial)
