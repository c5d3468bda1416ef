"""REST core behaviour that mutation testing found unpinned: each test fails on a mutant that
every other test let through."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from fractions import Fraction
from typing import Any, cast

import numpy as np
import pytest

from kalshi_proto.errors import ConfigurationError, RemoteProtocolError
from kalshi_proto.rest.call import HttpRequest, HttpResponse, Page
from kalshi_proto.rest.events import ResponseReceived
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.generated import models as m
from kalshi_proto.rest.http11 import Http11Connection, decode_body
from kalshi_proto.rest.ratelimit import BucketLimit, CostTable, RateLimiter, TokenBucket
from kalshi_proto.rest.retry import MAX_SECONDS, RetryPolicy
from kalshi_proto.rest.settings import check_pool_options

HOST = "api.elections.kalshi.com"
GET = HttpRequest(method="GET", target="/trade-api/v2/markets", headers=(), body=b"")


def _awaiting() -> Http11Connection:
    conn = Http11Connection(HOST)
    conn.send_request(GET)
    conn.data_to_send()
    return conn


def _response(conn: Http11Connection) -> ResponseReceived:
    event = conn.next_event()
    assert isinstance(event, ResponseReceived)
    return event


# ---- http11 --------------------------------------------------------------------------------


def test_a_body_fed_from_a_reused_bytearray_is_copied_into_plain_bytes() -> None:
    """An adapter that reads into one bytearray and reuses it gets a body that does not change
    under it (the fast path copies a lone body part unless it is already immutable bytes)."""
    conn = _awaiting()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0.0)
    buffer = bytearray(b"hello")
    conn.receive_data(cast(bytes, buffer), 0.0)
    buffer[:] = b"XXXXX"
    body = _response(conn).response.body
    assert type(body) is bytes
    assert body == b"hello"


def _gzip_member(payload: bytes, size: int) -> bytes:
    """One gzip member of exactly ``size`` bytes: the file-name field pads it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(payload) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(payload), len(payload))
    name = b"n" * (size - 10 - 1 - len(deflated) - len(trailer))
    return b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff" + name + b"\x00" + deflated + trailer


def test_an_encoded_body_may_exceed_the_limit_by_exactly_64_kib() -> None:
    """The encoded bytes of a body are limited to ``max_body_size`` plus 64 KiB: a body of
    exactly that many encoded bytes decodes, one byte more is refused."""
    payload = b"x" * 10
    at_limit = _gzip_member(payload, len(payload) + 64 * 1024)
    assert decode_body("gzip", at_limit, max_body_size=len(payload)) == payload
    over = _gzip_member(payload, len(payload) + 64 * 1024 + 1)
    with pytest.raises(RemoteProtocolError, match="encoded response body exceeds 65546 bytes"):
        decode_body("gzip", over, max_body_size=len(payload))


def test_a_zlib_deflate_body_that_breaks_after_decoding_began_is_called_corrupt() -> None:
    """Once a ``deflate`` body has decoded as zlib, a later error is corruption: the decoder
    does not start over reading the rest as raw deflate (which here would blame "bytes after
    its end" instead)."""
    first = b"\x78\x9c" + b"\x00\x05\x00\xfa\xff" + b"hello"  # zlib header, stored block
    # The final stored block, then an Adler-32 that does not match.
    second = b"\x01\x05\x00\xfa\xff" + b"world" + b"\x00\x00\x00\x00"
    conn = _awaiting()
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.receive_data(head + b"%x\r\n" % len(first) + first + b"\r\n", 0.0)
    with pytest.raises(RemoteProtocolError, match=r"^the deflate response body is corrupt$"):
        conn.receive_data(b"%x\r\n" % len(second) + second + b"\r\n0\r\n\r\n", 0.0)


# ---- retry ---------------------------------------------------------------------------------


def test_every_delay_and_cap_is_stored_as_a_plain_float() -> None:
    """``base_delay``, ``retry_max_delay`` and ``retry_after_cap`` given as ints, Fractions or
    numpy scalars are stored as ``float``, as ``check_number`` promises its callers do."""
    numbers: dict[str, Any] = {
        "base_delay": Fraction(1, 4),
        "retry_max_delay": np.float32(2.0),
        "retry_after_cap": 30,
    }
    policy = RetryPolicy(**numbers)
    assert type(policy.base_delay) is float and policy.base_delay == 0.25
    assert type(policy.retry_max_delay) is float and policy.retry_max_delay == 2.0
    assert type(policy.retry_after_cap) is float and policy.retry_after_cap == 30.0


# ---- call ----------------------------------------------------------------------------------


def test_requests_and_responses_are_immutable_and_hashable() -> None:
    """`HttpRequest` and `HttpResponse` are frozen values: no field can be reassigned after
    they are built (a signed request cannot be retargeted), and equal ones hash alike."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        GET.target = "/elsewhere"  # type: ignore[misc]
    assert hash(GET) == hash(HttpRequest(method="GET", target=GET.target, headers=(), body=b""))
    response = HttpResponse(status=200, headers=(("content-length", "2"),), body=b"{}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = 500  # type: ignore[misc]
    same = HttpResponse(status=200, headers=(("content-length", "2"),), body=b"{}")
    assert hash(response) == hash(same)


def test_a_call_is_immutable_and_hashable() -> None:
    """A `Call` is a frozen description: it cannot be changed after it is built (``with_query``
    makes a copy), and equal calls hash alike, so they can key a dict."""
    call = calls.get_market("KXBTC-25")
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.path = "/elsewhere"  # type: ignore[misc]
    assert hash(call) == hash(calls.get_market("KXBTC-25"))
    assert {call: 1}[calls.get_market("KXBTC-25")] == 1


def test_a_page_is_immutable() -> None:
    """A `Page` cannot have its cursor or items swapped after parsing."""
    page = Page(items=["a"], cursor="next", response=m.EmptyResponse())
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.cursor = None  # type: ignore[misc]


def test_a_delay_of_exactly_max_seconds_is_allowed() -> None:
    """Delays and caps may be at most `MAX_SECONDS`: that value itself is accepted."""
    policy = RetryPolicy(
        base_delay=MAX_SECONDS, retry_max_delay=MAX_SECONDS, retry_after_cap=MAX_SECONDS
    )
    assert policy.base_delay == policy.retry_max_delay == policy.retry_after_cap == MAX_SECONDS


# ---- ratelimit -----------------------------------------------------------------------------


def test_a_new_bucket_has_seen_no_reservation() -> None:
    """``serial`` counts reservations and drains: 0 for a new bucket, one more per call."""
    bucket = TokenBucket(BucketLimit(refill_rate=10, capacity=10))
    assert bucket.serial == 0
    bucket.reserve(1, 0.0)
    assert bucket.serial == 1
    bucket.drain(0.0)
    assert bucket.serial == 2


def test_a_batch_of_two_orders_over_capacity_is_named_as_orders() -> None:
    """Two orders are already a batch: the refusal counts them and suggests smaller batches."""
    limiter = RateLimiter.from_limits(100, 100, 15, 15)
    assert limiter.beyond_capacity("BatchCreateOrdersV2", items=2) == (
        "2 orders cost 20 write tokens, more than the write bucket holds (15); the exchange "
        "refuses such a request however long the client waits; send the orders in smaller "
        "batches"
    )


def test_a_per_item_cost_is_checked_like_the_others() -> None:
    """A batch operation's cost per item must be a whole number of tokens >= 0 too."""
    with pytest.raises(
        ConfigurationError, match=r"^the cost of BatchCreateOrdersV2 must be a whole number"
    ):
        CostTable(per_item={"BatchCreateOrdersV2": -1})


def test_a_cost_table_is_immutable() -> None:
    """A `CostTable` cannot be changed once a limiter holds it."""
    costs = CostTable(default=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        costs.default = 0  # type: ignore[misc]


def test_a_cost_of_zero_tokens_is_allowed() -> None:
    """Zero is a whole number of tokens >= 0: a free operation costs nothing, batch or not."""
    costs = CostTable(default=0, per_request={"GetOrder": 0}, per_item={"BatchCreateOrdersV2": 0})
    assert costs.cost_of("GetMarkets") == 0
    assert costs.cost_of("GetOrder") == 0
    assert costs.cost_of("BatchCreateOrdersV2", items=5) == 0


# ---- settings ------------------------------------------------------------------------------


def test_a_keepalive_expiry_below_one_second_is_allowed() -> None:
    """``keepalive_expiry`` must be positive, not at least one second: 0.5 s is fine."""
    assert check_pool_options(1, 0.5) == (1, 0.5)
    assert check_pool_options(1, 1e-3) == (1, 1e-3)
