"""What the REST benchmarks share: keys, spec-valid response bodies and transports that never
touch the network.

The bodies are built from `tests.helpers.spec.example` and checked against the spec's schemas
(``openapi-schema-validator``) before anything is timed. The transports replace only the socket:

* `kalshi_sync` and `kalshi_anyio`: the package's ``_io.connect`` is swapped for one that returns
  a `FakeStream` / `AsyncFakeStream`. The client still serialises the request with h11 and
  parses the raw HTTP/1.1 response (status line, headers, ``Content-Length``, body), which
  arrives in one chunk.
* `kalshi_httpx`: an `httpx.MockTransport` whose handler answers with the pre-built body.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

from tests.helpers.spec import example, schemas  # noqa: E402

__all__ = [
    "KEY_ID",
    "AsyncFakeStream",
    "FakeStream",
    "Keys",
    "MockHandler",
    "Responses",
    "build_responses",
    "client_kwargs",
    "fake_connect",
    "make_keys",
    "mock_transport",
    "raw_response",
]

#: The key id sent in ``KALSHI-ACCESS-KEY`` (any visible ASCII is accepted).
KEY_ID = "0b6e3c9a-5d1f-4e7a-9c2b-8f4d6a1e3b70"

# Headers a real API response carries (besides Content-Length, added per body).
_HEADERS = (
    ("Date", "Fri, 02 Jan 2026 03:04:05 GMT"),
    ("Content-Type", "application/json; charset=utf-8"),
    ("Connection", "keep-alive"),
    ("Vary", "Accept-Encoding"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Request-Id", "5f0c2a7e-3b9d-4c1e-8a6f-2d7b9e4c1a03"),
)

_RULES_PRIMARY = (
    "If the highest temperature recorded in Central Park, New York for {date} is between "
    "{lo}-{hi}°, then the market resolves to Yes."
)
_RULES_SECONDARY = (
    "Not all weather data is the same. This market settles on the final NWS Climatological "
    "Report (Daily) for Central Park."
)


class Keys:
    """One RSA-2048 key and one Ed25519 key, made fresh for each run."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()

    def by_name(self, name: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
        return self.rsa if name == "RSA" else self.ed25519


def make_keys() -> Keys:
    return Keys()


def _market(template: dict[str, Any], i: int) -> dict[str, Any]:
    market = copy.deepcopy(template)
    day = 1 + i % 28
    date = f"Jan {day}, 2026"
    lo = 20 + (i % 40)
    hi = lo + 1
    event = f"KXHIGHNY-26JAN{day:02d}"
    ticker = f"{event}-B{lo}.5-{i:04d}"
    bid = 1 + (i * 37) % 97  # cents, 1..97
    ask = bid + 1 + i % 2
    last = bid + (i % 3 == 0)
    stamp = f"2026-01-{day:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
    market.update(
        ticker=ticker,
        event_ticker=event,
        market_type="binary",
        title=f"Will the high temp in NYC be {lo}-{hi}° on {date}?",
        subtitle=f"{lo}° to {hi}°",
        yes_sub_title=f"{lo}° to {hi}°",
        no_sub_title=f"Not {lo}° to {hi}°",
        created_time=stamp,
        updated_time=stamp,
        open_time=f"2026-01-{day:02d}T15:00:00Z",
        close_time=f"2026-01-{day:02d}T23:59:00Z",
        expected_expiration_time=f"2026-01-{min(day + 1, 28):02d}T15:00:00Z",
        expiration_time=f"2026-01-{min(day + 7, 28):02d}T15:00:00Z",
        latest_expiration_time=f"2026-01-{min(day + 7, 28):02d}T15:00:00Z",
        settlement_timer_seconds=1800,
        status="active",
        yes_bid_dollars=f"0.{bid:02d}00",
        yes_bid_size_fp=f"{(i * 13) % 5000}.00",
        yes_ask_dollars=f"0.{ask:02d}00",
        yes_ask_size_fp=f"{(i * 29) % 7000}.00",
        no_bid_dollars=f"0.{100 - ask:02d}00",
        no_ask_dollars=f"0.{100 - bid:02d}00",
        last_price_dollars=f"0.{last:02d}00",
        volume_fp=f"{i * 311 % 900000}.00",
        volume_24h_fp=f"{i * 97 % 90000}.00",
        result="",
        can_close_early=True,
        open_interest_fp=f"{i * 53 % 400000}.00",
        notional_value_dollars="1.0000",
        previous_yes_bid_dollars=f"0.{max(bid - 1, 1):02d}00",
        previous_yes_ask_dollars=f"0.{ask:02d}00",
        previous_price_dollars=f"0.{bid:02d}00",
        settlement_bounds_type="default",
        expiration_value="",
        early_close_condition="This market will close and expire early if the event occurs.",
        strike_type="between",
        floor_strike=lo,
        cap_strike=hi + 0.99,
        rules_primary=_RULES_PRIMARY.format(date=date, lo=lo, hi=hi),
        rules_secondary=_RULES_SECONDARY,
        mve_selected_legs=[],
        price_level_structure="linear_cent",
        price_ranges=[{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
        is_provisional=False,
        exchange_index=0,
    )
    # Optional fields Kalshi omits for an open binary market (x-omitempty in the spec).
    for key in _OMITTED:
        market.pop(key, None)
    return market


_OMITTED = (
    "settlement_value_dollars",
    "settlement_ts",
    "settlement_floor_dollars",
    "occurrence_datetime",
    "fee_waiver_expiration_time",
    "functional_strike",
    "custom_strike",
    "mve_collection_ticker",
    "primary_participant_key",
)


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check(value: Any, schema_name: str) -> None:
    from openapi_schema_validator import OAS30Validator

    root = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": schemas()}}
    OAS30Validator(root).validate(value)


class Responses:
    """The two pre-built answers: a small balance and a page of 1,000 markets."""

    def __init__(self, balance: bytes, markets: bytes, market_count: int) -> None:
        self.balance = balance
        self.markets = markets
        self.market_count = market_count
        self.balance_raw = raw_response(balance)
        self.markets_raw = raw_response(markets)


def build_responses(market_count: int = 1000, validate_all: bool = True) -> Responses:
    """Build and check the bodies; ``validate_all=False`` checks only a sample of markets."""
    template = example("Market")
    balance = example("GetBalanceResponse")
    balance.update(
        balance=1_234_567,
        balance_dollars="12345.6700",
        portfolio_value=2_345_678,
        updated_ts=1_767_323_045,
        balance_breakdown=[{"exchange_index": 0, "balance": "12345.6700"}],
    )
    _check(balance, "GetBalanceResponse")
    markets = [_market(template, i) for i in range(market_count)]
    page = {"markets": markets, "cursor": "CgsIu6qRwwYQgNnLYBIOS1hISUdITlktMjZKQU4wMg"}
    if validate_all:
        _check(page, "GetMarketsResponse")
    else:
        _check({"markets": markets[:25], "cursor": page["cursor"]}, "GetMarketsResponse")
    assert len({m["ticker"] for m in markets}) == market_count
    return Responses(_compact(balance), _compact(page), market_count)


def raw_response(body: bytes) -> bytes:
    """The bytes of an HTTP/1.1 ``200 OK`` with ``body``, as one chunk from the socket."""
    head = ["HTTP/1.1 200 OK"]
    head += [f"{name}: {value}" for name, value in _HEADERS]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


# ---- kalshi_sync / kalshi_anyio: a stream without a socket ------------------------------------


class FakeStream:
    """Stands in for `kalshi_sync._io.Stream`: records what is sent, answers in one chunk."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.requests = 0
        self.last_request = b""
        self._pending = False

    def send(self, data: bytes, deadline: float) -> None:
        self.requests += 1
        self.last_request = data
        self._pending = True

    def receive(self, deadline: float) -> bytes:
        if not self._pending:
            return b""
        self._pending = False
        return self.response

    def is_readable(self) -> bool:
        return False

    def close(self) -> None:
        pass


class AsyncFakeStream(FakeStream):
    """Stands in for `kalshi_anyio._io.Stream`."""

    async def send(self, data: bytes, deadline: float) -> None:  # type: ignore[override]
        FakeStream.send(self, data, deadline)

    async def receive(self, deadline: float) -> bytes:  # type: ignore[override]
        return FakeStream.receive(self, deadline)

    async def aclose(self) -> None:
        pass


@contextlib.contextmanager
def fake_connect(io_module: ModuleType, stream: FakeStream) -> Iterator[list[int]]:
    """Make ``io_module.connect`` hand out ``stream``; yields a one-item list counting connects."""
    original = getattr(io_module, "connect")  # noqa: B009
    connects = [0]
    is_async = isinstance(stream, AsyncFakeStream)

    if is_async:

        async def connect(host: str, port: int, ssl_context: object, *rest: object) -> Any:
            connects[0] += 1
            return stream

    else:

        def connect(host: str, port: int, ssl_context: object, *rest: object) -> Any:  # type: ignore[misc]
            connects[0] += 1
            return stream

    setattr(io_module, "connect", connect)  # noqa: B010  (a module attribute mypy cannot see)
    try:
        yield connects
    finally:
        setattr(io_module, "connect", original)  # noqa: B010


# ---- kalshi_httpx: a mock transport ----------------------------------------------------------


class MockHandler:
    """The handler of an `httpx.MockTransport`: counts requests, answers with ``body``.

    The response is built as httpx's own `httpx.HTTPTransport` builds one from what httpcore
    read: the raw header lines as bytes (``Content-Length`` among them) and the body as a
    stream, which the client then reads with its own code (the deadline on the whole body, raw
    chunks, decoding). A response made with ``httpx.Response(content=...)`` would arrive already
    read and skip that code, and its text headers would cost the transport more than a real one.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests = 0
        self.last_request: httpx.Request | None = None
        self._headers = [(name.encode("ascii"), value.encode("ascii")) for name, value in _HEADERS]
        self._headers.append((b"Content-Length", str(len(body)).encode("ascii")))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.last_request = request
        return httpx.Response(200, headers=self._headers, stream=httpx.ByteStream(self.body))


def mock_transport(body: bytes) -> tuple[httpx.MockTransport, MockHandler]:
    handler = MockHandler(body)
    return httpx.MockTransport(handler), handler


def client_kwargs(key: object) -> dict[str, Any]:
    """Constructor arguments shared by every flavour: production URL, a key, defaults otherwise."""
    return {"key_id": KEY_ID, "private_key": key}
