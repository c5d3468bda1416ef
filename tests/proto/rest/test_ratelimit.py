"""Tests for kalshi_proto.rest.ratelimit: tiers, endpoint costs and token buckets."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import re
from collections.abc import Callable
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.rest import operations
from kalshi_proto.rest.ratelimit import (
    DEFAULT_COST,
    DOCUMENTED_COSTS,
    ENDPOINT_COSTS,
    PER_ITEM_COSTS,
    TIERS,
    UNLISTED_OPERATION,
    WRITE_OPERATIONS,
    Bucket,
    BucketLimit,
    CostTable,
    RateLimiter,
    TokenBucket,
    priced_as,
)

SPEC = Path(__file__).resolve().parents[3] / ".." / "shared" / "specs" / "openapi.yaml"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@cache
def spec_operations() -> dict[str, tuple[str, str]]:
    """operationId -> (upper-case method, notes) for every operation in openapi.yaml.

    The notes are the ``description`` and the ``x-mint`` ``content``, where the spec puts its
    "**Rate limit:**" lines.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.load(handle, Loader=loader)
    operations: dict[str, tuple[str, str]] = {}
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                notes = (operation.get("description") or "") + "\n"
                notes += (operation.get("x-mint") or {}).get("content") or ""
                operations[operation["operationId"]] = (method.upper(), notes)
    return operations


# --- tables ---------------------------------------------------------------------------------------


def test_bucket_values() -> None:
    assert Bucket.READ.value == "read"
    assert Bucket.WRITE.value == "write"
    assert Bucket("write") is Bucket.WRITE


def test_tier_table() -> None:
    assert dict(TIERS) == {
        "basic": (BucketLimit(200, 200), BucketLimit(100, 100)),
        "advanced": (BucketLimit(300, 300), BucketLimit(300, 600)),
        "premier": (BucketLimit(1000, 1000), BucketLimit(1000, 2000)),
        "paragon": (BucketLimit(2000, 2000), BucketLimit(2000, 4000)),
        "prime": (BucketLimit(4000, 4000), BucketLimit(4000, 8000)),
    }
    assert "expert" not in TIERS
    assert "prestige" not in TIERS


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        TIERS["expert"] = TIERS["basic"]  # type: ignore[index]
    with pytest.raises(TypeError):
        ENDPOINT_COSTS["GetMarkets"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        PER_ITEM_COSTS["BatchCreateOrdersV2"] = 1  # type: ignore[index]


def test_cost_tables() -> None:
    assert DEFAULT_COST == 10
    assert dict(ENDPOINT_COSTS) == {
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
    assert dict(PER_ITEM_COSTS) == {"BatchCreateOrdersV2": 10, "BatchCancelOrdersV2": 2}
    assert not set(ENDPOINT_COSTS) & set(PER_ITEM_COSTS)


def test_write_operations() -> None:
    assert WRITE_OPERATIONS == frozenset(
        {
            "CreateOrderV2",
            "CancelAllOrders",
            "BatchCreateOrdersV2",
            "BatchCancelOrdersV2",
            "CancelOrderV2",
            "AmendOrderV2",
            "DecreaseOrderV2",
            "CreateOrderGroup",
            "DeleteOrderGroup",
            "ResetOrderGroup",
            "TriggerOrderGroup",
            "UpdateOrderGroupLimit",
            "CreateQuote",
            "DeleteQuote",
            "AcceptQuote",
            "ConfirmQuote",
            "AcceptRFQQuote",
            "ConfirmRFQQuote",
            "DeleteRFQQuote",
            "CreateRFQ",
            "DeleteRFQ",
            "UpgradeAccountApiUsageLevel",
        }
    )


# --- tables against openapi.yaml ------------------------------------------------------------------


def test_every_table_name_is_an_operation_in_the_spec() -> None:
    known = spec_operations()
    names = set(ENDPOINT_COSTS) | set(PER_ITEM_COSTS) | WRITE_OPERATIONS
    assert sorted(names - set(known)) == []


def test_write_operations_are_not_reads_in_the_spec() -> None:
    known = spec_operations()
    assert sorted(op for op in WRITE_OPERATIONS if known[op][0] == "GET") == []


def test_costs_match_the_spec_descriptions() -> None:
    """Each "**Rate limit:** N tokens per ..." note in the spec matches the tables, both ways."""
    pattern = re.compile(r"\*\*Rate limit:\*\* (\d+) tokens (per request|per order)")
    found: dict[str, tuple[int, str]] = {}
    for operation_id, (_, notes) in spec_operations().items():
        match = pattern.search(notes)
        if match is not None:
            found[operation_id] = (int(match.group(1)), match.group(2))
    expected = {op: (cost, "per request") for op, cost in ENDPOINT_COSTS.items()}
    expected |= {op: (cost, "per order") for op, cost in PER_ITEM_COSTS.items()}
    assert found == expected


# --- BucketLimit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_bucket_limit_rejects_bad_rate(rate: float) -> None:
    with pytest.raises(ConfigurationError, match="refill_rate must be a finite number"):
        BucketLimit(refill_rate=rate, capacity=10)


@pytest.mark.parametrize("capacity", [0.0, -1.0, math.nan, math.inf])
def test_bucket_limit_rejects_bad_capacity(capacity: float) -> None:
    with pytest.raises(ConfigurationError, match="capacity must be a finite number"):
        BucketLimit(refill_rate=10, capacity=capacity)


@pytest.mark.parametrize(("bad", "kind"), [("10", "str"), (None, "NoneType"), (True, "bool")])
def test_bucket_limit_rejects_what_is_not_a_number(bad: object, kind: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^refill_rate must be a number, got {kind}$"):
        BucketLimit(refill_rate=bad, capacity=10)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=rf"^capacity must be a number, got {kind}$"):
        BucketLimit(refill_rate=10, capacity=bad)  # type: ignore[arg-type]


def test_bucket_limit_keeps_any_real_number_as_a_float() -> None:
    rate, capacity = np.float32(2.5), Fraction(7, 2)
    limit = BucketLimit(refill_rate=rate, capacity=capacity)  # type: ignore[arg-type]
    assert (limit.refill_rate, limit.capacity) == (2.5, 3.5)
    assert type(limit.refill_rate) is float and type(limit.capacity) is float


def test_what_is_not_a_bucket_limit_is_refused_by_buckets_and_limiters() -> None:
    good = BucketLimit(refill_rate=10, capacity=10)
    message = r"^a bucket's limit must be a BucketLimit .*got int$"
    with pytest.raises(ConfigurationError, match=message):
        TokenBucket(10)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        RateLimiter(read=good, write=10)  # type: ignore[arg-type]


def test_a_limiter_refuses_a_guard_that_is_no_lock_and_costs_that_are_no_table() -> None:
    good = BucketLimit(refill_rate=10, capacity=10)
    with pytest.raises(ConfigurationError, match=r"^guard must be a lock .*got str$"):
        RateLimiter(good, good, guard="lock")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^costs must be a CostTable .*got dict$"):
        RateLimiter(good, good, costs={"GetMarket": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 5, 5.0, b"basic"])
def test_a_tier_name_that_is_not_a_str_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^a tier name must be a str \(such as 'basic'\)"):
        RateLimiter.for_tier(bad)  # type: ignore[arg-type]


def test_bucket_limit_is_frozen() -> None:
    limit = BucketLimit(refill_rate=10, capacity=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limit.capacity = 30  # type: ignore[misc]
    assert limit.capacity == 20


def test_bucket_limit_allows_capacity_below_rate() -> None:
    assert BucketLimit(refill_rate=10, capacity=0.5).capacity == 0.5


# --- TokenBucket ----------------------------------------------------------------------------------


def test_bucket_starts_full_at_first_use() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.limit == BucketLimit(10, 20)
    assert bucket.available(5_000.0) == 20
    # The first use may come at any clock reading; the bucket is full then.
    assert bucket.reserve(20, 9_000.0) == 0.0
    assert bucket.available(9_000.0) == 0.0
    assert bucket.available(9_000.5) == 5.0


def test_exact_waits() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(10, 0.0) == 0.0
    assert bucket.reserve(10, 0.0) == 0.0
    assert bucket.reserve(10, 0.0) == 1.0  # balance -10, paid off at 10 tokens/s
    assert bucket.available(0.0) == -10.0
    assert bucket.reserve(5, 0.5) == 1.0  # -10 + 5 refilled - 5 = -10 at t=0.5
    assert bucket.available(1.5) == 0.0
    assert bucket.reserve(2, 1.5) == 0.2
    assert bucket.reserve(0, 2.0) == 0.0  # a free request at the moment the debt is paid


def test_refill_stops_at_capacity() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(15, 0.0) == 0.0
    assert bucket.available(100.0) == 20.0
    assert bucket.reserve(20, 100.0) == 0.0
    assert bucket.reserve(1, 100.0) == 0.1


def test_negative_balance_refills_to_capacity_only() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(50, 0.0) == 3.0  # cost above capacity: 20 - 50 = -30
    assert bucket.available(1.0) == -20.0
    assert bucket.available(3.0) == 0.0
    assert bucket.available(60.0) == 20.0


def test_cost_above_capacity_is_allowed() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=100, capacity=100))
    assert bucket.reserve(250, 10.0) == 1.5
    assert bucket.reserve(100, 11.5) == 1.0


def test_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(20, 10.0) == 0.0
    assert bucket.available(5.0) == 0.0
    # At t=5 the bucket is still empty as of t=10; the debt is paid 1s after t=10.
    assert bucket.reserve(10, 5.0) == 6.0
    assert bucket.available(5.0) == -10.0
    assert bucket.available(11.0) == 0.0
    # A free request still queues behind the debt.
    assert bucket.reserve(0, 10.0) == 1.0
    assert bucket.available(10.0) == -10.0
    # Stepping back and forward again does not credit t=5..10 twice: -10 + 2s * 10/s - 20.
    assert bucket.reserve(20, 12.0) == 1.0


def test_clock_going_backwards_with_tokens_left() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(5, 10.0) == 0.0
    assert bucket.reserve(5, 3.0) == 0.0
    assert bucket.available(10.0) == 10.0


def test_emptying_the_bucket_exactly_after_the_clock_went_back_needs_no_wait() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(15, 10.0) == 0.0
    # The balance is 0 as of t=10, which is later than now: still nothing to wait for.
    assert bucket.reserve(5, 3.0) == 0.0
    assert bucket.available(10.0) == 0.0


@pytest.mark.parametrize("cost", [-1.0, math.nan, math.inf])
def test_bad_cost_is_rejected_without_changing_the_bucket(cost: float) -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    with pytest.raises(LocalProtocolError, match="cost must be a finite number"):
        bucket.reserve(cost, 0.0)
    assert bucket.available(0.0) == 20.0


# --- RateLimiter ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["basic", "Basic", " PREMIER ", "paragon", "Prime", "advanced"])
def test_for_tier(name: str) -> None:
    limiter = RateLimiter.for_tier(name)
    read, write = TIERS[name.strip().lower()]
    assert limiter.bucket(Bucket.READ).limit == read
    assert limiter.bucket(Bucket.WRITE).limit == write


@pytest.mark.parametrize("name", ["expert", "Prestige", "", "gold"])
def test_for_unknown_tier(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimiter.for_tier(name)
    message = str(info.value)
    assert f"tier {name!r}" in message
    assert "known tiers: basic, advanced, premier, paragon, prime" in message
    assert "RateLimiter.from_limits" in message


def test_from_limits() -> None:
    limiter = RateLimiter.from_limits(500, 500, 500, 1000)
    assert limiter.bucket(Bucket.READ).limit == BucketLimit(500, 500)
    assert limiter.bucket(Bucket.WRITE).limit == BucketLimit(500, 1000)


def test_from_limits_validates() -> None:
    with pytest.raises(ConfigurationError, match="capacity"):
        RateLimiter.from_limits(500, 500, 500, 0)


def test_cost_of() -> None:
    limiter = RateLimiter.for_tier("basic")
    assert limiter.cost_of("GetMarkets") == 10
    assert limiter.cost_of("CreateOrderV2") == 10
    assert limiter.cost_of("GetOrder") == 2
    assert limiter.cost_of("CancelOrderV2") == 2
    assert limiter.cost_of("UpgradeAccountApiUsageLevel") == 30
    # items only matters for batches.
    assert limiter.cost_of("GetOrder", items=7) == 2


@pytest.mark.parametrize(
    ("operation_id", "items", "message"),
    [
        ("CreateOrderv2", 1, "no operation has the operationId 'CreateOrderv2'; did you mean "),
        ("SomethingNew", 1, "no operation has the operationId 'SomethingNew'"),
        (None, 1, "no operation has the operationId None"),
        ("BatchCreateOrdersV2", 1.5, "items must be an int, got float"),
        ("BatchCreateOrdersV2", True, "items must be an int, got bool"),
    ],
)
def test_cost_of_refuses_an_unknown_operation_or_items_that_are_not_a_count(
    operation_id: Any, items: Any, message: str
) -> None:
    # A misspelt id was priced at the default cost, from the Read bucket (a write misspelt
    # spent read tokens), and 1.5 orders cost 15.0 tokens.
    limiter = RateLimiter.for_tier("basic")
    for spend in (limiter.cost_of, limiter.beyond_capacity, limiter.unpace):
        with pytest.raises(LocalProtocolError) as info:
            spend(operation_id, items)
        assert str(info.value).startswith(message)
    with pytest.raises(LocalProtocolError):
        limiter.reserve(operation_id, 0.0, items)
    assert limiter.bucket(Bucket.READ).available(0.0) == 200  # nothing was spent


@pytest.mark.parametrize(
    ("now", "error", "message"),
    [
        (math.nan, ValueError, "now must be finite, got nan"),
        (-math.inf, ValueError, "now must be finite, got -inf"),
        ("1", TypeError, "now must be a number of seconds (time.monotonic()), got str"),
    ],
)
def test_a_clock_reading_that_is_not_a_finite_number_is_refused(
    now: Any, error: type[Exception], message: str
) -> None:
    # One NaN made every later wait of the bucket NaN.
    limiter = RateLimiter.from_limits(10, 10, 10, 10)
    for use in (
        lambda: limiter.reserve("GetMarkets", now),
        lambda: limiter.pace("GetMarkets", now),
        lambda: limiter.drain("GetMarkets", now),
        lambda: limiter.bucket(Bucket.READ).available(now),
    ):
        with pytest.raises(error) as info:
            use()
        assert str(info.value) == message
    assert limiter.reserve("GetMarkets", 100.0) == 0.0
    assert limiter.reserve("GetMarkets", 100.0) == 1.0


@pytest.mark.parametrize(
    ("operation_id", "items", "cost"),
    [
        ("BatchCreateOrdersV2", 1, 10),
        ("BatchCreateOrdersV2", 5, 50),
        ("BatchCreateOrdersV2", 20, 200),
        ("BatchCancelOrdersV2", 1, 2),
        ("BatchCancelOrdersV2", 20, 40),
    ],
)
def test_batch_costs_per_item(operation_id: str, items: int, cost: int) -> None:
    assert RateLimiter.for_tier("basic").cost_of(operation_id, items) == cost


@pytest.mark.parametrize("operation_id", sorted(PER_ITEM_COSTS))
def test_a_batch_without_an_item_count_costs_one_item(operation_id: str) -> None:
    limiter = RateLimiter.for_tier("basic")
    write = limiter.bucket(Bucket.WRITE)
    per_item = PER_ITEM_COSTS[operation_id]
    assert limiter.cost_of(operation_id) == per_item
    assert limiter.reserve(operation_id, 0.0) == 0.0
    assert write.available(0.0) == write.limit.capacity - per_item


@pytest.mark.parametrize("items", [0, -2])
def test_items_below_one_is_rejected(items: int) -> None:
    limiter = RateLimiter.for_tier("basic")
    with pytest.raises(LocalProtocolError, match="items must be at least 1"):
        limiter.cost_of("BatchCreateOrdersV2", items)
    with pytest.raises(LocalProtocolError, match="items must be at least 1"):
        limiter.reserve("GetMarkets", 0.0, items)
    assert limiter.bucket(Bucket.READ).available(0.0) == 200


@pytest.mark.parametrize("operation_id", sorted(WRITE_OPERATIONS))
def test_write_operations_use_the_write_bucket(operation_id: str) -> None:
    assert RateLimiter.for_tier("basic").bucket_of(operation_id) is Bucket.WRITE


@pytest.mark.parametrize(
    "operation_id", ["GetMarkets", "GetOrder", "GetOrders", "GetQuote", "GetRFQQuote", "Unknown"]
)
def test_other_operations_use_the_read_bucket(operation_id: str) -> None:
    assert RateLimiter.for_tier("basic").bucket_of(operation_id) is Bucket.READ


def test_reserve_routes_to_the_right_bucket() -> None:
    limiter = RateLimiter.for_tier("basic")  # read 200/s, write 100/s with 100 capacity
    for _ in range(10):
        assert limiter.reserve("CreateOrderV2", 0.0) == 0.0
    assert limiter.bucket(Bucket.WRITE).available(0.0) == 0.0
    assert limiter.bucket(Bucket.READ).available(0.0) == 200.0
    assert limiter.reserve("CancelOrderV2", 0.0) == 0.02
    assert limiter.reserve("GetMarkets", 0.0) == 0.0
    assert limiter.bucket(Bucket.READ).available(0.0) == 190.0
    assert limiter.bucket(Bucket.WRITE).available(0.0) == -2.0


class _Guard:
    """A stand-in lock that records the Read balance each time it is taken and given back."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter
        self.held = False
        self.seen: list[tuple[str, float]] = []

    def __enter__(self) -> None:
        assert not self.held, "the guard was taken twice"
        self.held = True
        self.seen.append(("taken", self._balance()))

    def __exit__(self, *exc_info: object) -> None:
        self.held = False
        self.seen.append(("given back", self._balance()))

    def _balance(self) -> float:
        assert self.limiter is not None
        return self.limiter.bucket(Bucket.READ).available(0.0)


def test_no_guard_by_default() -> None:
    assert RateLimiter.for_tier("basic").guard is None
    assert RateLimiter.from_limits(1, 1, 1, 1).guard is None


def test_reserve_debits_while_holding_the_guard() -> None:
    limiter = RateLimiter.for_tier("basic")  # read capacity 200
    guard = _Guard(limiter)
    limiter.guard = guard
    assert limiter.reserve("GetMarkets", 0.0) == 0.0
    assert limiter.reserve("GetOrder", 0.0) == 0.0
    assert guard.seen == [
        ("taken", 200.0),
        ("given back", 190.0),
        ("taken", 190.0),
        ("given back", 188.0),
    ]
    assert not guard.held


def test_a_guard_given_at_construction_is_used() -> None:
    guard = _Guard()
    limiter = RateLimiter(*TIERS["basic"], guard=guard)
    guard.limiter = limiter
    assert limiter.guard is guard
    limiter.reserve("CreateOrderV2", 0.0)
    assert [what for what, _ in guard.seen] == ["taken", "given back"]


def test_install_guard_keeps_a_guard_already_there() -> None:
    guard, other = _Guard(), _Guard()
    limiter = RateLimiter(*TIERS["basic"], guard=guard)
    assert limiter.install_guard(other) is guard
    assert limiter.guard is guard


def test_the_first_lock_offered_is_the_guard_of_every_client() -> None:
    first, second, third = _Guard(), _Guard(), _Guard()
    limiter = RateLimiter.for_tier("basic")
    assert limiter.install_guard(first) is first
    assert limiter.install_guard(second) is first
    # Two clients built at once both saw no guard; the first had offered its lock but not yet
    # set it when the second offered its own: the second gets the first's, not a lock of its own.
    racing = RateLimiter.for_tier("basic")
    racing._offered[0] = second
    assert racing.install_guard(third) is second
    assert racing.guard is second


def test_a_forked_process_replaces_the_guard_a_client_installed() -> None:
    # A thread of the parent may have held the guard as the process forked; the child's copy
    # would stay held for good. The first lock offered in the new process takes its place.
    parents, childs, late = _Guard(), _Guard(), _Guard()
    limiter = RateLimiter.for_tier("basic")
    assert limiter.install_guard(parents, epoch=100) is parents
    assert limiter.has_guard_for(100) and not limiter.has_guard_for(200)
    assert limiter.install_guard(childs, epoch=200) is childs
    assert limiter.guard is childs
    assert limiter.has_guard_for(200) and not limiter.has_guard_for(100)
    assert limiter.install_guard(late, epoch=200) is childs  # one lock per process


def test_two_clients_renewing_the_guard_at_once_in_a_child_share_one_lock() -> None:
    first, second, third = _Guard(), _Guard(), _Guard()
    limiter = RateLimiter.for_tier("basic")
    limiter.install_guard(first, epoch=100)
    # Both saw the parent's guard; the first had offered its lock but not yet set it.
    limiter._offered[200] = second
    assert limiter.install_guard(third, epoch=200) is second
    assert limiter.guard is second


def test_a_guard_given_or_set_by_hand_is_kept_in_every_process() -> None:
    given, offered = _Guard(), _Guard()
    limiter = RateLimiter(*TIERS["basic"], guard=given)
    assert limiter.has_guard_for(200)
    assert limiter.install_guard(offered, epoch=200) is given
    by_hand = _Guard()
    installed = RateLimiter.for_tier("basic")
    installed.install_guard(offered, epoch=100)
    installed.guard = by_hand
    assert installed.has_guard_for(200)
    assert installed.install_guard(_Guard(), epoch=200) is by_hand
    assert not RateLimiter.for_tier("basic").has_guard_for(0)


def test_reserve_batches_per_item() -> None:
    limiter = RateLimiter.for_tier("advanced")  # write 300/s, 600 capacity
    assert limiter.reserve("BatchCreateOrdersV2", 0.0, items=60) == 0.0
    assert limiter.reserve("BatchCancelOrdersV2", 0.0, items=30) == 0.2
    assert limiter.bucket(Bucket.WRITE).available(0.2) == 0.0


def test_write_burst_at_non_basic_tiers() -> None:
    limiter = RateLimiter.for_tier("premier")  # 1000/s, write capacity 2000
    for _ in range(200):
        assert limiter.reserve("CreateOrderV2", 50.0) == 0.0
    assert limiter.reserve("CreateOrderV2", 50.0) == 0.01


# --- properties -----------------------------------------------------------------------------------


@given(
    rate=st.floats(min_value=0.5, max_value=5000.0),
    capacity=st.floats(min_value=1.0, max_value=10000.0),
    requests=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.0),  # seconds since the previous reservation
            st.floats(min_value=0.0, max_value=1.0),  # cost as a fraction of the capacity
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_bucket_never_lets_more_than_capacity_plus_refill_through(
    rate: float, capacity: float, requests: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=rate, capacity=capacity))
    now = 1000.0
    sent: list[tuple[float, float]] = []  # (send time, cost)
    for gap, fraction in requests:
        now += gap
        cost = fraction * capacity
        wait = bucket.reserve(cost, now)
        assert wait >= 0.0
        sent.append((now + wait, cost))
    sent.sort()
    for first in range(len(sent)):
        total = 0.0
        for last in range(first, len(sent)):
            total += sent[last][1]
            window = sent[last][0] - sent[first][0]
            assert total <= capacity + rate * window + 1e-6 * (capacity + total)


@given(
    rate=st.floats(min_value=0.5, max_value=5000.0),
    capacity=st.floats(min_value=1.0, max_value=10000.0),
    steps=st.lists(
        st.tuples(st.floats(min_value=-5.0, max_value=5.0), st.floats(0.0, 2.0)),
        max_size=40,
    ),
)
def test_balance_never_exceeds_capacity(
    rate: float, capacity: float, steps: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=rate, capacity=capacity))
    now = 0.0
    for step, fraction in steps:
        now += step
        wait = bucket.reserve(fraction * capacity, now)
        assert wait >= 0.0
        assert bucket.available(now) <= capacity
        # After waiting as told, the balance is back to zero or more.
        assert bucket.available(now + wait) >= -1e-9 * capacity


def test_refund_gives_back_a_reservation_up_to_the_capacity() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(30, 0.0) == 1.0
    bucket.refund(30)
    assert bucket.available(0.0) == 20
    assert bucket.reserve(10, 0.0) == 0.0
    bucket.refund(25)  # more than was taken: the bucket holds no more than its capacity
    assert bucket.available(0.0) == 20


def test_drain_empties_the_bucket_and_keeps_any_debt() -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    assert bucket.reserve(5, 0.0) == 0.0
    bucket.drain(0.5)  # 15 tokens left, and 5 refilled (capped at 20): all gone
    assert bucket.available(0.5) == 0
    assert bucket.reserve(10, 0.5) == 1.0  # the next request waits for its whole cost
    bucket.drain(1.0)  # 5 in debt: a waiting request's reservation stands
    assert bucket.available(1.0) == -5
    assert bucket.available(2.0) == 5  # and refilling goes on from there


def test_the_limiter_drains_the_bucket_the_operation_spends_from_under_its_guard() -> None:
    limiter = RateLimiter.for_tier("basic")  # read capacity 200, write 100
    guard = _Guard(limiter)
    limiter.guard = guard
    limiter.drain("CreateOrderV2", 0.0)
    assert limiter.bucket(Bucket.WRITE).available(0.0) == 0
    assert limiter.bucket(Bucket.READ).available(0.0) == 200
    limiter.drain("GetMarkets", 0.0)
    assert guard.seen[-2:] == [("taken", 200.0), ("given back", 0.0)]
    assert not guard.held


@pytest.mark.parametrize("cost", [-1, math.nan, math.inf])
def test_refund_refuses_a_cost_that_is_not_a_finite_count(cost: float) -> None:
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=20))
    with pytest.raises(LocalProtocolError, match="cost must be a finite number of tokens >= 0"):
        bucket.refund(cost)


class _CountingGuard:
    def __init__(self) -> None:
        self.entered = 0

    def __enter__(self) -> None:
        self.entered += 1

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("guarded", [False, True])
def test_the_limiter_refunds_what_an_operation_reserved(guarded: bool) -> None:
    guard = _CountingGuard()
    limiter = RateLimiter.from_limits(100, 100, 100, 100)
    limiter.guard = guard if guarded else None
    limiter.reserve("BatchCreateOrdersV2", 0.0, items=3)
    limiter.reserve("GetMarkets", 0.0)
    limiter.refund("BatchCreateOrdersV2", items=3)
    assert limiter.bucket(Bucket.WRITE).available(0.0) == 100
    assert limiter.bucket(Bucket.READ).available(0.0) == 90
    assert guard.entered == (3 if guarded else 0)
    with pytest.raises(LocalProtocolError, match="items must be at least 1"):
        limiter.refund("BatchCreateOrdersV2", items=0)


# ---- the account's costs: GET /account/endpoint_costs ---------------------------------------


def test_the_documented_costs_are_the_default_cost_table() -> None:
    limiter = RateLimiter.for_tier("basic")
    assert limiter.costs is DOCUMENTED_COSTS
    assert DOCUMENTED_COSTS == CostTable(DEFAULT_COST, ENDPOINT_COSTS, PER_ITEM_COSTS)


@pytest.mark.parametrize(
    "path",
    [
        "/trade-api/v2/portfolio/orders/{order_id}",
        "/portfolio/orders/{order_id}",
        "/portfolio/orders/{id}",
        "/trade-api/v2/portfolio/orders/:order_id",
        "/portfolio/orders/{order_id}/",
        "/portfolio/orders/{order_id}?with=query",
    ],
)
def test_a_row_matches_its_operation_however_the_path_is_written(path: str) -> None:
    costs = CostTable.from_endpoint_costs(10, [("get", path, 4)])
    assert costs.per_request == {"GetOrder": 4}
    assert costs.unmatched == ()


def test_the_account_costs_replace_the_documented_ones() -> None:
    costs = CostTable.from_endpoint_costs(
        5,
        [
            ("DELETE", "/portfolio/events/orders/{order_id}", 1),  # CancelOrderV2
            ("DELETE", "/portfolio/events/orders/batched", 3),  # per order
            ("GET", "/no/such/endpoint/{id}", 9),
            ("PUT", "/portfolio/orders/{order_id}", 9),  # no such method on that path
        ],
    )
    limiter = RateLimiter.from_limits(100, 100, 100, 100, costs=costs)
    assert limiter.cost_of("CancelOrderV2") == 1
    assert limiter.cost_of("BatchCancelOrdersV2", items=4) == 12
    # Batches stay billed per order, at the default when the account lists no cost for them.
    assert limiter.cost_of("BatchCreateOrdersV2", items=3) == 15
    # Unlisted operations cost the account's default, whatever the spec said of them.
    assert limiter.cost_of("GetMarkets") == 5
    assert limiter.cost_of("GetOrder") == 5
    assert costs.unmatched == (
        ("GET", "/no/such/endpoint/{id}", 9),
        ("PUT", "/portfolio/orders/{order_id}", 9),
    )
    assert limiter.reserve("CancelOrderV2", 0.0) == 0.0
    assert limiter.bucket(Bucket.WRITE).available(0.0) == 99


def test_no_two_operations_share_a_route_once_parameters_are_blanked() -> None:
    # Else a row of the endpoint could be charged to the wrong one of the two.
    rows = [(op.method, op.path, 1) for op in operations()]
    costs = CostTable.from_endpoint_costs(10, rows)
    assert costs.unmatched == ()
    assert len(costs.per_request) + len(costs.per_item) == len(rows)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_cost_that_is_not_a_whole_number_of_tokens_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="must be a whole number of tokens"):
        CostTable.from_endpoint_costs(10, [("GET", "/portfolio/orders/{order_id}", bad)])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="the cost of default"):
        CostTable(default=bad)  # type: ignore[arg-type]


def test_a_cost_table_names_only_operations_of_the_api() -> None:
    # A misspelt operationId would otherwise never match, and its cost never apply.
    with pytest.raises(
        ConfigurationError,
        match=r"^per_request names 'GetMarketz', which is no operationId of the API; did you "
        r"mean 'GetMarkets?'\?$",
    ):
        CostTable(per_request={"GetMarketz": 3})
    with pytest.raises(ConfigurationError, match=r"^per_item names 'Nothing', which is no .*API$"):
        CostTable(per_item={"Nothing": 3})
    with pytest.raises(ConfigurationError, match=r"^per_request must be a mapping .*got list$"):
        CostTable(per_request=[("GetMarket", 3)])  # type: ignore[arg-type]


def test_a_cost_table_keeps_its_own_copy_of_the_costs() -> None:
    given = {"GetMarket": 3}
    table = CostTable(per_request=given)
    given["GetMarket"] = 99
    given["GetEvent"] = 99
    assert table.cost_of("GetMarket") == 3
    assert table.cost_of("GetEvent") == table.default
    with pytest.raises(TypeError):
        table.per_request["GetMarket"] = 1  # type: ignore[index]


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_a_cost_table_pickles_and_copies_as_a_read_only_table(how: str) -> None:
    # The read-only mappings made pickling fail ("cannot pickle 'mappingproxy' object").
    table = CostTable.from_endpoint_costs(
        5, [("GET", "/trade-api/v2/markets", 2), ("POST", "/portfolio/events/orders", 3)]
    )
    twin: CostTable
    if how == "pickle":
        twin = pickle.loads(pickle.dumps(table))
    else:
        twin = getattr(copy, how)(table)
    assert twin == table
    assert twin.cost_of("GetMarkets") == 2
    assert twin.cost_of("BatchCreateOrdersV2", items=4) == 20
    with pytest.raises(TypeError):
        twin.per_request["GetMarkets"] = 1  # type: ignore[index]


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_rate_limiter_refuses_to_be_copied_or_pickled(how: Callable[[object], object]) -> None:
    # A copy would be a second budget for the one account (and copy.copy shared the buckets).
    limiter = RateLimiter.for_tier("basic")
    with pytest.raises(TypeError, match=r"^RateLimiter objects cannot be copied or pickled: "):
        how(limiter)


def test_a_cost_table_prices_a_batch_of_no_orders_as_an_error() -> None:
    with pytest.raises(LocalProtocolError, match="items must be at least 1"):
        DOCUMENTED_COSTS.cost_of("BatchCreateOrdersV2", items=0)


# ---- pacing: the same budget, spent at the moment of sending ---------------------------------


def test_pace_spends_its_own_budget_and_unpace_gives_it_back() -> None:
    limiter = RateLimiter.from_limits(10, 10, 10, 10)  # one call, refilled in a second
    assert limiter.reserve("GetMarkets", 0.0) == 0.0
    assert limiter.pace("GetMarkets", 0.0) == 0.0  # a request on its turn is not held up
    assert limiter.pace("GetMarkets", 0.0) == 1.0  # a second one at the same moment waits
    limiter.unpace("GetMarkets")
    assert limiter.pace("GetMarkets", 0.0) == 1.0
    assert limiter.bucket(Bucket.READ).available(0.0) == 0  # the turns' budget is apart
    assert limiter.pace("CreateOrderV2", 0.0) == 0.0  # and so is the other bucket


def test_a_429_drains_the_paced_budget_too() -> None:
    limiter = RateLimiter.from_limits(10, 20, 10, 20)
    limiter.drain("GetMarkets", 0.0)
    assert limiter.pace("GetMarkets", 0.0) == 1.0


# ---- giving back exactly: Reservation -----------------------------------------------------


def test_a_reservation_goes_back_once() -> None:
    # A second give_back credited the tokens again: another request's turn came back with them.
    limiter = RateLimiter.from_limits(1, 100, 1, 100)
    limiter.reserve_turn("GetMarkets", 0.0)
    second = limiter.reserve_turn("GetMarkets", 0.0)
    assert second.give_back() is True
    assert second.give_back() is False
    assert limiter.bucket(Bucket.READ).available(0.0) == 90


def test_a_reservation_last_in_line_goes_back_exactly() -> None:
    limiter = RateLimiter.from_limits(5, 10, 5, 10)  # 10 tokens, 5 a second
    assert limiter.reserve_turn("GetMarkets", 0.0).wait == 0.0
    second = limiter.reserve_turn("GetMarkets", 0.0)
    assert second.wait == 2.0
    assert second.give_back() is True
    assert limiter.bucket(Bucket.READ).available(0.0) == 0
    assert limiter.reserve_turn("GetMarkets", 0.0).wait == 2.0  # the freed turn, taken again


def test_a_reservation_given_back_from_the_middle_of_the_line_leaves_its_turn_empty() -> None:
    # A sends at 0; B, C and D wait 2, 4 and 6 s. B gives up. Handing B's tokens to a newcomer
    # would send it at 6 s with D: 20 tokens at once where the server's bucket holds 10.
    limiter = RateLimiter.from_limits(5, 10, 5, 10)
    waits = [limiter.reserve_turn("GetMarkets", 0.0) for _ in range(4)]
    assert [turn.wait for turn in waits] == [0.0, 2.0, 4.0, 6.0]
    assert waits[1].give_back() is False
    assert limiter.reserve_turn("GetMarkets", 0.0).wait == 8.0  # after D, not with it


def test_a_reservation_made_before_a_429_drain_does_not_go_back() -> None:
    # The drain set the bucket to what the server has; this request never spent from that.
    limiter = RateLimiter.from_limits(5, 20, 5, 20)
    held = limiter.reserve_turn("GetMarkets", 0.0)  # 10 of 20: 10 left
    limiter.drain("GetMarkets", 0.0)
    assert held.give_back() is False
    assert limiter.bucket(Bucket.READ).available(0.0) == 0
    assert limiter.reserve_turn("GetMarkets", 0.0).wait == 2.0


def test_a_reservation_gives_back_no_more_than_the_bucket_could_have_held() -> None:
    limiter = RateLimiter.from_limits(5, 10, 5, 10)
    held = limiter.reserve_turn("GetMarkets", 0.0)  # empty at 0, full again at 2 s
    assert held.give_back() is True
    assert limiter.bucket(Bucket.READ).available(3.0) == 10


def test_paced_reservations_give_back_from_the_wire_buckets() -> None:
    limiter = RateLimiter.from_limits(5, 10, 5, 10)
    turn = limiter.reserve_turn("GetMarkets", 0.0)
    paced = limiter.pace_turn("GetMarkets", 0.0)
    assert paced.give_back() is True
    assert limiter.pace_turn("GetMarkets", 0.0).wait == 0.0  # the wire bucket had it back
    assert limiter.bucket(Bucket.READ).available(0.0) == 0  # the turn is still taken
    assert turn.give_back() is True


class _FalsyGuard(_CountingGuard):
    def __bool__(self) -> bool:
        return False


def test_a_guard_is_held_by_every_change_even_one_that_is_false_as_a_bool() -> None:
    guard = _FalsyGuard()
    limiter = RateLimiter.from_limits(100, 100, 100, 100)
    limiter.guard = guard
    limiter.reserve_turn("GetMarkets", 0.0).give_back()
    limiter.pace_turn("GetMarkets", 0.0).give_back()
    limiter.refund("GetMarkets")
    limiter.unpace("GetMarkets")
    limiter.drain("GetMarkets", 0.0)
    assert guard.entered == 7


def test_a_cost_table_without_per_item_rows_bills_batches_per_order() -> None:
    costs = CostTable(default=10, per_request={"GetMarkets": 2})
    assert costs.cost_of("BatchCreateOrdersV2", items=20) == 200
    assert costs.cost_of("BatchCancelOrdersV2", items=3) == 30
    assert costs.cost_of("CreateOrderV2", items=1) == 10
    assert costs.cost_of("GetMarkets") == 2
    listed = CostTable(default=10, per_request={"BatchCreateOrdersV2": 40})
    assert listed.cost_of("BatchCreateOrdersV2", items=20) == 40  # listed per request: as listed


def test_an_operation_outside_the_table_is_priced_as_unlisted_at_the_default_read_cost() -> None:
    assert priced_as("CreateOrderV2") == "CreateOrderV2"
    assert priced_as("CreateOrderV3") == UNLISTED_OPERATION
    limiter = RateLimiter.for_tier("basic")
    table = CostTable.from_endpoint_costs(7, [("GET", "/trade-api/v2/markets", 3)])
    assert limiter.cost_of(UNLISTED_OPERATION) == DEFAULT_COST
    assert table.cost_of(UNLISTED_OPERATION, 5) == 7  # the account's default, not per item
    assert limiter.bucket_of(UNLISTED_OPERATION) is Bucket.READ
    assert limiter.reserve(UNLISTED_OPERATION, 0.0) == 0.0
    assert limiter.bucket(Bucket.READ).available(0.0) == 200 - DEFAULT_COST
    with pytest.raises(ConfigurationError, match="per_request names '\\*'"):
        CostTable(per_request={UNLISTED_OPERATION: 1})
