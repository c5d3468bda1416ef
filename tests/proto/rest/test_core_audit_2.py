"""Gaps a second mutation audit of the core found: the shared client loop (`AsyncClientBase` and
its generated twin), the log lines of a run, the rows of the operation table, and frames."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest

from kalshi_proto.environments import resolve_base_url
from kalshi_proto.errors import ConfigurationError, LocalProtocolError
from kalshi_proto.frames import to_pandas, to_polars, to_records
from kalshi_proto.rest.client import DEBUG, INFO, LogLine, RestConfig
from kalshi_proto.rest.generated import calls
from kalshi_proto.rest.operation_table import ParamKind, ParamLocation, operation
from kalshi_proto.rest.ratelimit import Bucket, RateLimiter
from tests.helpers.stepping import step
from tests.proto.rest.test_base import STATUS, FakeAsyncClient, FakeClient, resolve

# ---- the shared client loop ----------------------------------------------------------------


class Interrupted(BaseException):
    """What a cancelled sleep raises in these fakes (a cancellation or KeyboardInterrupt)."""


class InterruptedAsyncClient(FakeAsyncClient):
    def _rest(self, seconds: float) -> None:
        self.slept.append(seconds)
        raise Interrupted


class InterruptedClient(FakeClient):
    def _rest(self, seconds: float) -> None:
        self.slept.append(seconds)
        raise Interrupted


class ClosingAsyncClient(FakeAsyncClient):
    async def aclose(self) -> None:
        self._closed = True  # as every adapter's aclose does


class ClosingClient(FakeClient):
    def close(self) -> None:
        self._closed = True


@pytest.mark.parametrize(
    "flavour", [InterruptedAsyncClient, InterruptedClient], ids=["async", "sync"]
)
def test_a_call_interrupted_in_its_rate_limit_wait_gives_its_tokens_back(
    flavour: type[InterruptedAsyncClient | InterruptedClient],
) -> None:
    # GetExchangeStatus costs 10 Read tokens; the bucket holds 10 and refills 20 a second.
    client = flavour(rate_limit=RateLimiter.from_limits(20, 10, 20, 10), script=[STATUS, STATUS])
    resolve(client.execute(calls.get_exchange_status()))
    # 10 tokens spent at 1000.0; 1.25 of them back by 1000.0625, when the exchange ended.
    assert client.rate_limiter is not None
    bucket = client.rate_limiter.bucket(Bucket.READ)
    assert bucket.available(client.clock.now) == 1.25
    with pytest.raises(Interrupted):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.slept == [0.4375]
    assert len(client.sent) == 1
    # The second call reserved 10 tokens for an attempt it never sent: they are back.
    assert bucket.available(client.clock.now) == 1.25


@pytest.mark.parametrize("flavour", [ClosingAsyncClient, ClosingClient], ids=["async", "sync"])
def test_a_closed_client_refuses_a_call_before_it_reserves_tokens(
    flavour: type[ClosingAsyncClient | ClosingClient],
) -> None:
    client = flavour(rate_limit=RateLimiter.from_limits(20, 10, 20, 10), script=[STATUS])
    if isinstance(client, ClosingAsyncClient):
        step(client.aclose())
    else:
        client.close()
    with pytest.raises(LocalProtocolError, match="the client is closed"):
        resolve(client.execute(calls.get_exchange_status()))
    assert client.sent == []
    assert client.rate_limiter is not None
    assert client.rate_limiter.bucket(Bucket.READ).available(client.clock.now) == 10


# ---- log lines -----------------------------------------------------------------------------


def test_a_log_line_cannot_be_changed() -> None:
    line = LogLine(DEBUG, "GetExchangeStatus: waiting", {"kalshi_attempt": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.level = INFO  # type: ignore[misc]


# ---- the operation table -------------------------------------------------------------------


def test_the_rows_of_the_operation_table_cannot_be_changed() -> None:
    # Every client shares the one table; a row changed by one caller would change it for all.
    op = operation("GetMarkets")
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.path = "/markets/{ticker}"  # type: ignore[misc]
    limit = op.param("limit")
    assert (limit.name, limit.location, limit.kind) == (
        "limit",
        ParamLocation.QUERY,
        ParamKind.INTEGER,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        limit.required = True  # type: ignore[misc]
    assert op.pagination is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.pagination.cursor_field = "next_cursor"  # type: ignore[misc]


# ---- frames --------------------------------------------------------------------------------


@pytest.mark.parametrize("convert", [to_records, to_pandas, to_polars])
def test_a_model_that_is_not_a_class_is_named_in_the_type_error(
    convert: Callable[..., object],
) -> None:
    with pytest.raises(TypeError, match=r"model must be a pydantic model class, got 'Market'"):
        convert([], model="Market")


# ---- configuration -------------------------------------------------------------------------


def test_rest_config_refuses_an_infinite_timeout() -> None:
    # An attempt without a deadline cannot be bounded: the blocking clients crashed on the
    # first call with OverflowError (a socket or queue timeout of inf seconds) rather than
    # a KalshiError. A call with no total bound is RetryPolicy(total_timeout=None).
    with pytest.raises(ConfigurationError, match=r"^timeout must be finite, got inf$"):
        RestConfig(base_url=resolve_base_url(), timeout=math.inf)
    assert RestConfig(base_url=resolve_base_url(), timeout=1e6).timeout == 1e6
